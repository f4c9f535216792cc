"""The score a small-data run shows is a nested estimate: no sample it scores chose the model."""

from __future__ import annotations

import numpy as np

from dyntrain.learners import Candidate, select
from dyntrain.learners import selection
from dyntrain.training import pipeline
from dyntrain.training.classes import nested_estimate
from dyntrain.training.spec import Prepared, TrainingSpec

# Four learner families on four independent feature sets, two strengths each: on pure noise
# the best of them wins its own folds by luck.
SHAPES = {"text.embedding_logreg": (384,), "text.tfidf_logreg": None, "image.linear_probe": (1280,),
          "image.pixel_logreg": (32, 32)}
CANDIDATES = [Candidate(name, {"C": c}) for name in SHAPES for c in (0.1, 10.0)]


def _noise(seed: int, n: int = 40) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = {}
    for c in CANDIDATES:
        shape = SHAPES[c.learner]
        X[c.kind] = (np.array([" ".join(rng.choice(list("abcdefghij"), 5)) for _ in range(n)], dtype=object)
                     if shape is None else rng.normal(size=(n, *shape)).astype(np.float32))
    return X, rng.permutation(np.arange(n) % 2)  # labels unrelated to anything


def _prepared(X: dict[str, np.ndarray], y: np.ndarray) -> Prepared:
    n = len(y)
    return Prepared(["a", "b"], y, list(range(n)), [f"h{i}" for i in range(n)], X,
                    {"mode": "cv", "holdout": [False] * n, "reason": "test"})


def test_on_pure_noise_the_shown_estimate_is_near_chance_while_the_winners_cv_score_is_not():
    shown, winner_cv = [], []
    for seed in range(4):
        X, y = _noise(seed)
        sel = select(CANDIDATES, X, y, n_classes=2, seed=0)
        m = nested_estimate(sel.ran, _prepared(X, y), TrainingSpec(1), chosen=sel.chosen)
        shown.append(m["accuracy"])
        winner_cv.append(sel.chosen_score.accuracy_mean)  # what the old run page showed
        assert m["estimate"]["method"] == "nested_cv" and len(m["predictions"]) == len(y)
        lo, hi = m["interval"]["accuracy"]
        assert lo < 0.5 < hi  # chance is inside the range shown
    assert np.mean(winner_cv) > 0.56  # the folds that chose flatter the winner ...
    assert abs(np.mean(shown) - 0.5) < 0.08  # ... the nested estimate does not
    assert np.mean(shown) < np.mean(winner_cv) - 0.05


def test_no_scored_sample_reaches_the_inner_selection(monkeypatch):
    X, y = _noise(7, n=30)
    X = {k: v for k, v in X.items() if k == "minilm.mean"}
    X["minilm.mean"][:, 0] = np.arange(len(y))  # tag each row with its index
    cands = [c for c in CANDIDATES if c.kind == "minilm.mean"]
    seen: list[set[int]] = []
    real = selection.select

    def spy(candidates, X_by_kind, y_, **kw):
        seen.append({int(v) for v in X_by_kind["minilm.mean"][:, 0]})
        return real(candidates, X_by_kind, y_, **kw)

    monkeypatch.setattr(pipeline.selection, "select", spy)
    m = nested_estimate(cands, _prepared(X, y), TrainingSpec(1, n_splits=5), chosen=cands[0])
    outer, _ = selection.make_folds(y, n_splits=5, seed=1)  # nested_estimate's outer folds (seed + 1)
    assert len(seen) == len(outer) == m["estimate"]["outer_folds"]
    for rows, (tr, te) in zip(seen, outer):
        assert rows == set(tr.tolist()) and not rows & set(te.tolist())
    assert sorted(p["sample_id"] for p in m["predictions"]) == list(range(len(y)))  # each scored once


def test_small_regression_runs_show_a_nested_estimate_with_intervals(tmp_path):
    from dyntrain.kernel.entities import VersionItem
    from dyntrain.learners.features import FeatureExtractor
    from dyntrain.storage import FileBlobStore
    from dyntrain.codecs.tables import row_bytes, target_text
    from dyntrain.training.pipeline import train

    rng = np.random.default_rng(0)
    blobs = FileBlobStore(tmp_path / "blobs")
    items = []
    for i in range(24):
        x = float(rng.normal())
        items.append(VersionItem(i + 1, blobs.put(row_bytes({"x": x, "id": i})), target_text(round(3 * x + 1, 3))))
    out = train(items, TrainingSpec(1, task="tabular-regression", candidates=(
        {"learner": "tabular.ridge", "params": {"alpha": 1.0}}, {"learner": "tabular.ridge", "params": {"alpha": 10.0}},
        {"learner": "tabular.ridge", "params": {"alpha": 100.0}})),
        load_image=blobs.get, extractor=FeatureExtractor(tmp_path / "cache"), work_dir=tmp_path / "work")
    m = out.result["metrics"]
    assert out.result["evaluation"]["mode"] == "cv" and m["estimate"]["method"] == "nested_cv"
    assert len(m["predictions"]) == len(items) and m["repeats"] == 1
    for key in ("r2", "mae"):
        lo, hi = m["interval"][key]
        assert lo <= m[key] <= hi
    assert out.card["metrics"]["interval"] == m["interval"]


def test_the_nested_estimate_reruns_the_vote_rule_inside_each_outer_fold(monkeypatch):
    """Two independent noisy views: inner selection votes; the vote a fold chose is fitted on
    that fold's training part (both kinds side by side) and scores only its hidden part."""
    rng = np.random.default_rng(2)
    n = 60
    y = np.arange(n) % 3
    X = {"lite0.pooled": rng.normal(size=(n, 1280)).astype(np.float32),
         "pixels.gray32": rng.normal(size=(n, 32, 32)).astype(np.float32)}
    X["lite0.pooled"][np.arange(n), y] += 3.5
    X["pixels.gray32"][np.arange(n), 0, y] += 4.0
    cands = [Candidate("image.linear_probe", {"C": 1.0}), Candidate("image.pixel_logreg", {"C": 0.1})]
    sel = select(cands, X, y, n_classes=3, seed=0)
    assert sel.chosen.learner == "ensemble.soft_vote"
    rules = []
    real = selection.select

    def spy(candidates, X_by_kind, y_, **kw):
        result = real(candidates, X_by_kind, y_, **kw)
        rules.append(result.rule)
        return result

    monkeypatch.setattr(pipeline.selection, "select", spy)
    prepared = Prepared(["a", "b", "c"], y, list(range(n)), [f"h{i}" for i in range(n)], X,
                        {"mode": "cv", "holdout": [False] * n, "reason": "test"})
    m = nested_estimate(sel.ran, prepared, TrainingSpec(1), chosen=sel.chosen)
    winners = m["estimate"]["chosen_per_fold"]
    assert rules == ["soft_vote"] * len(winners)  # the run's own rule, in every outer fold
    assert sum(w.startswith("soft vote of") for w in winners) >= 3
    assert len(m["predictions"]) == n and m["accuracy"] > 0.6
