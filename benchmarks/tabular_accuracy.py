"""Tabular prediction accuracy on scikit-learn's bundled datasets, against a plain linear model (issue 7).

Data (bundled with scikit-learn, nothing downloaded):

* ``breast_cancer`` — 569 rows, 30 numeric columns, 2 classes (tabular-classification);
* ``wine`` — 178 rows, 13 numeric columns, 3 classes (tabular-classification);
* ``diabetes`` — 442 rows, 10 columns (raw units, ``sex`` as 1/2), a number (tabular-regression);
* ``diabetes, gaps`` — the same with 20 % of the feature cells blanked at random (fixed seed) and ``sex``
  written as a word ("female"/"male", a categorical column): the missing-value and category paths.

Split, per seed: a fixed-fraction test set (25 %, stratified for classes) and the rest as the training
pool; training sets are nested draws from the pool — for classification *k* rows per class (10, 40,
and all of the pool), for regression *n* rows (50, 150, all). Every model of one (dataset, size,
seed) cell trains on exactly the same rows and is scored on the same test rows.

Models:

* **selected** — the real pipeline (:func:`dyntrain.training.pipeline.train`, no database) with the
  default tabular candidate list (classification: linear C=1, trees, linear C=0.1, larger trees;
  regression: ridge α=1, trees, ridge α=10, trees with absolute error); cross-validation picks one;
* **trees alone** / **linear alone** — the same pipeline with one candidate (``tabular.hgb`` /
  ``tabular.hgb_regressor`` defaults; ``tabular.linear`` C=1 / ``tabular.ridge`` α=1), no selection;
* **plain linear** — scikit-learn, trained in this script on the same rows: median imputation (for
  the gaps), then ``StandardScaler`` + ``LogisticRegression(max_iter=1000)`` for classes, or ordinary
  least squares ``LinearRegression`` for numbers; ``sex`` one-hot encoded where it is a word.

Rows go through the platform's own path: canonical JSON blobs (:mod:`dyntrain.codecs.tables`), features
inferred in ``train()``, one ONNX file per model; every pipeline model is scored from that file with
dyntrain's serving code (``serving.live.load_model(..., task=…).predict_items``). Evaluation inside
``train()`` is forced to cross-validation (``min_holdout_per_class=10**6``) so each final model trains
on all the drawn rows.

    python benchmarks/tabular_accuracy.py            # full: 4 datasets, 3 sizes, 3 seeds
    python benchmarks/tabular_accuracy.py --quick    # smoke test: breast_cancer + diabetes, smallest size, 1 seed

Prints a table and rewrites only its own section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.kernel.entities import VersionItem  # noqa: E402
from dyntrain.learners.features import FeatureExtractor  # noqa: E402
from dyntrain.serving.live import load_model  # noqa: E402
from dyntrain.storage import FileBlobStore  # noqa: E402
from dyntrain.codecs.tables import decode_row, row_bytes, target_text  # noqa: E402
from dyntrain.training.pipeline import TrainingSpec, train  # noqa: E402

TEST_FRACTION = 0.25
GAP_FRACTION = 0.20
MODELS = ["selected", "trees alone", "linear alone", "plain linear"]
ALONE = {
    "classification": {"trees alone": {"learner": "tabular.hgb", "params": {}},
                       "linear alone": {"learner": "tabular.linear", "params": {"C": 1.0}}},
    "regression": {"trees alone": {"learner": "tabular.hgb_regressor", "params": {}},
                   "linear alone": {"learner": "tabular.ridge", "params": {"alpha": 1.0}}},
}
SHORT = {"tabular.linear": "linear", "tabular.hgb": "trees", "tabular.ridge": "ridge",
         "tabular.hgb_regressor": "trees"}


# -- data --------------------------------------------------------------------------------


def datasets(quick: bool) -> list[dict]:
    """[{name, kind, rows (list of dicts), y (class names or floats), categorical}]"""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    out = []
    for name, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        if quick and name == "wine":
            continue
        d = loader()
        rows = [{c: float(v) for c, v in zip(d.feature_names, x)} for x in d.data]
        out.append({"name": name, "kind": "classification", "rows": rows,
                    "y": [str(d.target_names[t]) for t in d.target], "categorical": []})
    d = load_diabetes(scaled=False)
    rows = [{c: float(v) for c, v in zip(d.feature_names, x)} for x in d.data]
    out.append({"name": "diabetes", "kind": "regression", "rows": rows, "y": [float(t) for t in d.target],
                "categorical": []})
    if not quick:
        rng = np.random.default_rng(2024)
        gaps = []
        for row in rows:
            new = dict(row)
            new["sex"] = "female" if row["sex"] == 1 else "male"
            for c in new:
                if rng.random() < GAP_FRACTION:
                    new[c] = None
            gaps.append(new)
        out.append({"name": "diabetes, gaps", "kind": "regression", "rows": gaps, "y": [float(t) for t in d.target],
                    "categorical": ["sex"]})
    return out


def split(ds: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds["rows"]))
    strat = ds["y"] if ds["kind"] == "classification" else None
    pool, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=seed, stratify=strat)
    return np.sort(test), pool


def draws(ds: dict, pool: np.ndarray, sizes: list, seed: int) -> dict:
    """Nested draws from the pool: k per class (classification) or n rows (regression); "all" = the pool."""
    rng = np.random.default_rng(1000 + seed)
    if ds["kind"] == "regression":
        order = rng.permutation(pool)
        return {s: np.sort(order if s == "all" else order[:s]) for s in sizes}
    y = np.array(ds["y"])
    order = {c: rng.permutation(pool[y[pool] == c]) for c in sorted(set(ds["y"]))}
    return {s: np.sort(np.concatenate([o if s == "all" else o[:s] for o in order.values()])) for s in sizes}


# -- models --------------------------------------------------------------------------------


def scores(kind: str, y_true, pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

    if kind == "classification":
        return {"acc": float(accuracy_score(y_true, pred)), "f1": float(f1_score(y_true, pred, average="macro"))}
    return {"r2": float(r2_score(y_true, pred)), "mae": float(mean_absolute_error(y_true, pred))}


def score_onnx(ds: dict, path: Path, labels: list[str], test_rows: list[dict], y_test) -> dict:
    task = "tabular-regression" if ds["kind"] == "regression" else "tabular-classification"
    model = load_model(path, 0, 0, labels, threads=1, task=task)
    out = model.predict_items(test_rows)
    if ds["kind"] == "regression":
        return scores("regression", y_test, out.reshape(-1))
    return scores("classification", y_test, [labels[i] for i in np.argmax(out, axis=1)])


def plain_linear(ds: dict, train_idx: np.ndarray, test_idx: np.ndarray) -> dict:
    """The plain scikit-learn linear model this benchmark compares with."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from threadpoolctl import threadpool_limits

    columns = list(ds["rows"][0])
    numeric = [c for c in columns if c not in ds["categorical"]]

    def matrix(idx):
        return np.array([[ds["rows"][i][c] if ds["rows"][i][c] is not None else
                          (np.nan if c in numeric else "") for c in columns] for i in idx], dtype=object)

    parts = [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
              [columns.index(c) for c in numeric])]
    if ds["categorical"]:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), [columns.index(c) for c in ds["categorical"]]))
    head = LogisticRegression(max_iter=1000) if ds["kind"] == "classification" else LinearRegression()
    model = make_pipeline(ColumnTransformer(parts), head)
    y = np.array(ds["y"], dtype=object if ds["kind"] == "classification" else float)
    t = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        model.fit(matrix(train_idx), y[train_idx])
        pred = model.predict(matrix(test_idx))
    return {**scores(ds["kind"], list(y[test_idx]), pred), "seconds": time.perf_counter() - t}


def run_pipeline(ds: dict, items: list[VersionItem], seed: int, candidates, *, blobs, fx, work: Path,
                 test_rows: list[dict], y_test) -> dict:
    task = "tabular-" + ds["kind"]
    spec = TrainingSpec(dataset_version=1, task=task, seed=seed, time_budget_s=60, min_holdout_per_class=10**6,
                        candidates=candidates)
    t = time.perf_counter()
    out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=work)
    seconds = time.perf_counter() - t
    res = score_onnx(ds, out.onnx_path, out.card["labels"], test_rows, y_test)
    chosen = out.result["chosen"]
    return {**res, "chosen": _name(chosen), "seconds": seconds}


def _name(c: dict) -> str:
    """A candidate in short; a soft vote (ensemble.soft_vote) by its members."""
    if "members" in c["params"]:
        return "vote of " + " + ".join(_name(m) for m in c["params"]["members"])
    return SHORT[c["learner"]] + _params(c["params"])


def _params(p: dict) -> str:
    return "" if not p else " (" + ", ".join(f"{k}={v}" for k, v in sorted(p.items())) + ")"


# -- reporting ---------------------------------------------------------------------------


def ms(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = scale * np.array(values)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def counts(values: list[str]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(Counter(values).items(), key=lambda kv: -kv[1]))


def size_name(ds: dict, s, n_rows: int) -> str:
    if ds["kind"] == "classification":
        return f"{s}/class ({n_rows})" if s != "all" else f"all ({n_rows})"
    return f"{n_rows}" if s != "all" else f"all ({n_rows})"


def describe_data(data: list[dict]) -> str:
    """The datasets as this run loaded them (sizes counted, not quoted)."""
    parts = []
    for ds in data:
        shape = f"{len(ds['rows'])} rows, {len(ds['rows'][0])} columns"
        if ds["kind"] == "classification":
            parts.append(f"`{ds['name']}` ({shape}, {len(set(ds['y']))} classes)")
        elif not ds["categorical"]:
            parts.append(f"`{ds['name']}` ({shape}, raw units; a number to predict)")
        else:
            blank = sum(v is None for row in ds["rows"] for v in row.values()) / (len(ds["rows"]) * len(ds["rows"][0]))
            parts.append(f"**{ds['name']}** (the same rows with {blank:.0%} of the feature cells blanked, fixed seed, "
                         f"and {', '.join(f'`{c}`' for c in ds['categorical'])} as a word — the missing-value and "
                         "categorical paths)")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 datasets, smallest size, 1 seed")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    n_seeds = args.seeds or (1 if args.quick else 3)
    sizes = {"classification": [10] if args.quick else [10, 40, "all"],
             "regression": [50] if args.quick else [50, 150, "all"]}

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bench-tabacc-")
    root = Path(tmp.name)
    fx = FeatureExtractor(root / "cache")  # unused by tabular learners; train() takes one
    blobs = FileBlobStore(root / "blobs")
    data = datasets(args.quick)
    results: dict[tuple[str, str, str], list[dict]] = {}
    size_names: dict[str, list[str]] = {}
    run_no = 0
    for ds in data:
        hashes = [blobs.put(row_bytes(r)) for r in ds["rows"]]
        labels = [target_text(v) if ds["kind"] == "regression" else v for v in ds["y"]]
        names: list[str] = []
        for seed in range(n_seeds):
            test, pool = split(ds, seed)
            test_rows = [decode_row(row_bytes(ds["rows"][i])) for i in test]  # as the API would store them
            y_test = [ds["y"][i] for i in test]
            for s, idx in draws(ds, pool, sizes[ds["kind"]], seed).items():
                sname = size_name(ds, s, len(idx))
                if seed == 0:
                    names.append(sname)
                key_size = names[sizes[ds["kind"]].index(s)]
                items = [VersionItem(int(i) + 1, hashes[i], labels[i]) for i in idx]
                runs = {}
                for name, cands in (("selected", None), *((m, (c,)) for m, c in ALONE[ds["kind"]].items())):
                    run_no += 1
                    runs[name] = run_pipeline(ds, items, seed, cands, blobs=blobs, fx=fx, work=root / "w" / str(run_no),
                                              test_rows=test_rows, y_test=y_test)
                runs["plain linear"] = plain_linear(ds, idx, test)
                for name, r in runs.items():
                    results.setdefault((ds["name"], key_size, name), []).append(r)
                metric = "acc" if ds["kind"] == "classification" else "r2"
                print(f"  {ds['name']:15s} {sname:16s} seed={seed}: " + " | ".join(
                    f"{m} {runs[m][metric]:.3f}" for m in MODELS) + f"  (chose {runs['selected']['chosen']}, "
                    f"{runs['selected']['seconds']:.1f} s)", flush=True)
        size_names[ds["name"]] = names
    total_s = time.perf_counter() - t_start

    # -- tables --------------------------------------------------------------------------
    cls_rows, reg_rows, chosen_rows, verdict_rows = [], [], [], []
    cells_ok, cells = 0, 0  # selected at least as good as plain linear, within 1 point / 0.01 R²
    for ds in data:
        for sname in size_names[ds["name"]]:
            r = {m: results[(ds["name"], sname, m)] for m in MODELS}
            if ds["kind"] == "classification":
                cls_rows.append([ds["name"], sname] + [f"{ms([x['acc'] for x in r[m]], 100)} / "
                                                       f"{ms([x['f1'] for x in r[m]], 100)}" for m in MODELS])
                metric, scale, unit = "acc", 100, "points of accuracy"
            else:
                reg_rows.append([ds["name"], sname] + [f"{ms([x['r2'] for x in r[m]], 1, 3)} / "
                                                       f"{ms([x['mae'] for x in r[m]], 1, 1)}" for m in MODELS])
                metric, scale, unit = "r2", 1, "R²"
            chosen_rows.append([ds["name"], sname, counts([x["chosen"] for x in r["selected"]]),
                                f"{np.mean([x['seconds'] for x in r['selected']]):.1f} s"])
            sel = np.array([x[metric] for x in r["selected"]])
            base = np.array([x[metric] for x in r["plain linear"]])
            best = max(("trees alone", "linear alone"), key=lambda m: np.mean([x[metric] for x in r[m]]))
            best_v = np.array([x[metric] for x in r[best]])
            fmt = (lambda d: f"{d * scale:+.1f}") if metric == "acc" else (lambda d: f"{d:+.3f}")
            cells += 1
            cells_ok += int((sel - base).mean() >= (-0.01 if metric == "acc" else -0.01))
            verdict_rows.append([ds["name"], sname, unit, fmt((sel - base).mean()),
                                 ", ".join(fmt(d) for d in sel - base), best.replace(" alone", ""),
                                 fmt((sel - best_v).mean())])
    parts = [
        f"Data: scikit-learn's bundled {describe_data(data)}"
        + f". Per seed a {TEST_FRACTION:.0%} test split (stratified for classes); training rows are nested draws "
        "from the rest (k per class, or n rows; \"all\" = the whole rest). Pipeline models: real `train()` (no "
        "database), default candidate list (**selected**) or one candidate alone, evaluation forced to "
        "cross-validation so the final model trains on every drawn row, each scored from its exported ONNX file "
        "through dyntrain's serving code. **plain linear**: scikit-learn median imputation + StandardScaler + "
        "LogisticRegression / ordinary least squares, same rows. "
        f"{n_seeds} seed(s); mean ± sd over seeds.",
        "",
    ]
    if cls_rows:
        parts += ["**Classification** — test accuracy % / macro-F1 %:", "",
                  table(["dataset", "training rows"] + MODELS, cls_rows), ""]
    if reg_rows:
        spread = "; ".join(f"{ds['name']}: {min(ds['y']):.0f}–{max(ds['y']):.0f}" for ds in data
                           if ds["kind"] == "regression")
        parts += [f"**Regression** — test R² / MAE (target units; range of the target: {spread}):", "",
                  table(["dataset", "training rows"] + MODELS, reg_rows), ""]
    parts += ["**Selected against the plain linear model** (positive = the platform is better) and against the "
              "better single learner:", "",
              table(["dataset", "training rows", "unit", "selected − plain linear", "per seed", "better single learner",
                     "selected − it"], verdict_rows), "",
              "**What selection chose** (per seed) and the mean time of one `train()` (selection + evaluation + "
              "final fit + ONNX export + check):", "",
              table(["dataset", "training rows", "chosen", "train() time"], chosen_rows), "",
              f"Selected is at least as good as the plain linear model (within 1 point of accuracy or 0.01 R², "
              f"mean over seeds) in **{cells_ok} of {cells}** cells.  ",
              f"Runtime: {run_no} `train()` runs, total {total_s / 60:.1f} min (load average at end "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, shared).  ",
              f"Command: `.venv/bin/python benchmarks/tabular_accuracy.py{' --quick' if args.quick else ''}`."]
    body = "\n".join(parts)
    print()
    print(body)
    if not args.no_write:
        write_section("tabular_accuracy", "Tabular prediction accuracy (issue 7)", body, quick=args.quick)
    tmp.cleanup()


if __name__ == "__main__":
    main()
