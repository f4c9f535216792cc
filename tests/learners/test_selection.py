"""Cross-validated selection: folds, budget cut, determinism, recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dyntrain import learners
from dyntrain.kernel.errors import Cancelled, Invalid
from dyntrain.learners import Candidate, select
from dyntrain.learners import selection
from dyntrain.learners.selection import choose_one_se

CHEAP = [
    Candidate("image.linear_probe", {"C": 10.0}),
    Candidate("image.pixel_logreg", {"C": 0.1}),
    Candidate("image.small_cnn", {"epochs": 2, "width": 8}),
    Candidate("image.linear_probe", {"C": 1.0}),
    Candidate("image.pixel_logreg", {"C": 1.0}),
]


def test_default_candidates_fixed_cheap_first_and_finetune_only_when_allowed():
    tiny = learners.default_candidates(12, 3, time_budget_s=600)
    assert [c.learner for c in tiny][:3] == ["image.linear_probe", "image.pixel_logreg", "image.linear_probe"]
    assert tiny[-1].learner == "image.small_cnn"
    # every strength of the linear probe is a candidate (C is tuned by selection, not fixed)
    assert {c.params["C"] for c in tiny if c.learner == "image.linear_probe"} == {0.1, 1.0, 10.0, 100.0}
    assert learners.default_candidates(12, 3, time_budget_s=600) == tiny  # same inputs, same list
    big = learners.default_candidates(400, 5, time_budget_s=3600)
    assert big[-1].learner == "image.finetune" and big[:3] == tiny[:3]
    assert all(c.learner != "image.finetune" for c in learners.default_candidates(400, 5, time_budget_s=60))
    for n, k, b in [(2, 2, 0), (10_000, 100, 1), (50, 5, None)]:
        assert len(learners.default_candidates(n, k, b)) >= 3
    assert learners.required_kinds(big) == [learners.POOLED, learners.GRAY32, learners.ACTIVATION]


def test_candidate_is_frozen_hashable_and_round_trips():
    c = Candidate("image.small_cnn", {"epochs": 3})
    assert hash(c) == hash(Candidate("image.small_cnn", {"epochs": 3}))
    assert Candidate.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(Exception):
        c.learner = "x"  # type: ignore[misc]
    with pytest.raises(Invalid):
        Candidate("image.small_cnn", {"nope": 1}).build()


def test_folds_reduce_to_smallest_class_and_min_two():
    y = np.array([0] * 10 + [1] * 3)
    folds, how = learners.make_folds(y, n_splits=5)
    assert len(folds) == 3 and how == "StratifiedKFold"
    folds, _ = learners.make_folds(np.array([0] * 10 + [1]), n_splits=5)
    assert len(folds) == 2
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0


def test_augmented_copies_never_split_across_folds():
    rng = np.random.default_rng(0)
    n_sources = 30
    source_y = np.arange(n_sources) % 3
    copies = rng.integers(1, 5, n_sources)  # each source has 1-4 augmented copies
    groups = np.repeat(np.arange(n_sources), copies + 1)
    y = source_y[groups]
    folds, how = learners.make_folds(y, groups=groups, n_splits=5, seed=3)
    assert how == "StratifiedGroupKFold" and len(folds) == 5
    seen_in_val = np.zeros(len(y), int)
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
        seen_in_val[va] += 1
    assert np.all(seen_in_val == 1)
    # n_splits is limited by groups per class, not rows per class.
    few_groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    folds, _ = learners.make_folds(np.array([0] * 6 + [1] * 4), groups=few_groups, n_splits=5)
    assert len(folds) == 2


def test_budget_cuts_only_at_a_candidate_boundary(digits_small):
    seen = []
    result = select(
        CHEAP, digits_small["X"], digits_small["y"], n_classes=5, seed=0, time_budget_s=0,
        progress=lambda f, c: seen.append((f, c.label)),
    )
    assert result.cut_at == 3 and len(result.scores) == 3 and result.n_candidates == 5
    assert all(s.error is None and len(s.fold_macro_f1) == result.n_splits for s in result.scores)
    assert result.ran == CHEAP[:3]
    record = json.loads(json.dumps(result.to_dict()))
    # the three that ran, then their soft vote scored on the same folds
    assert record["cut_at"] == 3 and len(record["scores"]) == 4 and record["ensemble_index"] == 3
    assert record["scores"][3]["label"] == result.ensemble.candidate.label
    assert record["chosen"] == result.chosen.to_dict()
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {label for _, label in seen} >= {c.label for c in CHEAP[:3]}
    # No budget: everything runs.
    full = select(CHEAP, digits_small["X"], digits_small["y"], n_classes=5, seed=0, time_budget_s=None)
    assert full.cut_at is None and len(full.scores) == 5


def test_budget_skips_a_candidate_expected_to_overrun(digits_small):
    cands = CHEAP[:3] + [Candidate("image.small_cnn", {"epochs": 10_000}), Candidate("image.pixel_logreg", {"C": 1.0})]
    result = select(cands, digits_small["X"], digits_small["y"], n_classes=5, seed=0, time_budget_s=60)
    assert result.cut_at == 3 and len(result.scores) == 3  # a 10,000-epoch CNN is not started


def test_selection_is_deterministic_and_replayable(digits_small):
    a = select(CHEAP, digits_small["X"], digits_small["y"], n_classes=5, seed=1)
    b = select(a.ran, digits_small["X"], digits_small["y"], n_classes=5, seed=1)
    strip = lambda r: [(s.candidate, s.fold_macro_f1, s.fold_accuracy) for s in r.scores]  # noqa: E731
    assert strip(a) == strip(b) and a.chosen_index == b.chosen_index
    best = max(s.macro_f1_mean for s in a.scores)
    assert a.scores[a.best_index].macro_f1_mean == best and a.rule == "soft_vote"
    assert a.best_index == min(s.index for s in a.scores if s.macro_f1_mean == best)  # ties -> earlier
    plain = select(CHEAP, digits_small["X"], digits_small["y"], n_classes=5, seed=1, rule="best")
    assert plain.chosen_index == plain.best_index == a.best_index


def test_ties_go_to_the_earlier_candidate(digits_small):
    same = [Candidate("image.pixel_logreg", {"C": 0.1}), Candidate("image.pixel_logreg", {"C": 0.1})]
    result = select(same, digits_small["X"], digits_small["y"], n_classes=5, seed=0)
    assert result.scores[0].macro_f1_mean == result.scores[1].macro_f1_mean
    assert result.chosen_index == 0


def test_failing_candidate_is_recorded_not_chosen(digits_small):
    cands = [Candidate("image.small_cnn", {"epochs": 0}), Candidate("image.pixel_logreg")]
    result = select(cands, digits_small["X"], digits_small["y"], n_classes=5, seed=0)
    assert result.scores[0].error and "epochs" in result.scores[0].error
    assert result.chosen_index == 1


def test_cancel_propagates_out_of_select(digits_small):
    def progress(fraction, candidate):
        if fraction > 0.3:
            raise Cancelled("superseded by a newer dataset version")

    with pytest.raises(Cancelled):
        select(CHEAP, digits_small["X"], digits_small["y"], n_classes=5, seed=0, progress=progress)


def test_missing_features_are_a_clear_error(digits_small):
    with pytest.raises(Invalid, match="lite0.block15_in"):
        select([Candidate("image.finetune")], {learners.POOLED: digits_small["X"][learners.POOLED]}, digits_small["y"], n_classes=5)


def test_groups_and_score_mask_with_augmented_copies(digits_small):
    """Augmented copies train but are never scored, and stay in their source's fold."""
    X = digits_small["X"][learners.GRAY32]
    y = digits_small["y"]
    n = len(y)
    shifted = np.roll(X, 1, axis=2)  # a cheap "augmented copy" of every sample
    Xa = np.concatenate([X, shifted])
    ya = np.concatenate([y, y])
    groups = np.concatenate([np.arange(n), np.arange(n)])
    mask = np.arange(2 * n) < n
    result = select(
        [Candidate("image.pixel_logreg")] * 3, {learners.GRAY32: Xa}, ya, n_classes=5, groups=groups, score_mask=mask, seed=0
    )
    assert result.splitter == "StratifiedGroupKFold"
    score = learners.cross_validate(Candidate("image.pixel_logreg"), Xa, ya, n_classes=5, groups=groups, score_mask=mask)
    assert score.macro_f1_mean == result.scores[0].macro_f1_mean


def test_holdout_score_refits_the_config(digits_small):
    X, y = digits_small["X"][learners.GRAY32], digits_small["y"]
    tr, te = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    h = learners.holdout_score(Candidate("image.pixel_logreg"), X[tr], y[tr], X[te], y[te], 5)
    assert h.proba.shape == (te.sum(), 5) and 0 <= h.macro_f1 <= 1
    assert h.accuracy == round(float((h.proba.argmax(1) == y[te]).mean()), 4)
    again = learners.holdout_score(Candidate("image.pixel_logreg"), X[tr], y[tr], X[te], y[te], 5)
    assert again.macro_f1 == h.macro_f1
    model = learners.fit_candidate(Candidate("image.pixel_logreg"), digits_small["X"], y, n_classes=5)
    assert model.predict_proba(X).shape == (len(y), 5)


def _scored(*entries):
    return [(i, Candidate(name, {"C": c} if c else {}), mean, folds) for i, (name, c, mean, folds) in enumerate(entries)]


def test_one_se_rule_prefers_the_simpler_learner_within_noise():
    lucky_cnn = ("image.small_cnn", None, 0.75, [0.5, 1.0, 0.5, 1.0, 1.0])  # mean .80, SE .12
    probe = ("image.linear_probe", 10.0, 0.68, [0.6, 0.7, 0.7, 0.7, 0.7])
    # the CNN's lead is inside one standard error of its own folds: the linear probe wins
    assert choose_one_se(_scored(lucky_cnn, probe)) == 1
    # a lead the folds agree on is kept
    steady_cnn = ("image.small_cnn", None, 0.95, [0.95, 0.9, 1.0, 0.95, 0.95])
    assert choose_one_se(_scored(steady_cnn, probe)) == 0
    # within one learner the best C wins (no simplicity order between strengths) ...
    weak, strong = ("image.linear_probe", 100.0, 0.9, [0.8, 1.0]), ("image.linear_probe", 0.1, 0.85, [0.8, 0.9])
    assert choose_one_se(_scored(strong, weak)) == 1
    # ... and between equally simple learners the higher mean, ties to the earlier one
    pixels = ("image.pixel_logreg", 0.1, 0.7, [0.6, 0.8])
    assert choose_one_se(_scored(probe, pixels)) == 1
    assert choose_one_se(_scored(("image.pixel_logreg", 0.1, 0.68, [0.6, 0.76]), probe)) == 0


def test_select_records_the_rule_and_the_highest_mean(digits_small):
    cands = [Candidate("image.small_cnn", {"epochs": 2, "width": 8}), Candidate("image.linear_probe", {"C": 10.0}),
             Candidate("image.pixel_logreg", {"C": 0.1})]
    r = select(cands, digits_small["X"], digits_small["y"], n_classes=5, seed=0)
    scored = [(s.index, s.candidate, s.macro_f1_mean, s.fold_macro_f1) for s in r.scores]
    assert r.one_se_index == choose_one_se(scored)
    voted, _ = selection.prefers_soft_vote(r.ensemble, r.scores[r.one_se_index])
    assert r.chosen_index == (r.ensemble.index if voted else r.one_se_index)
    record = r.to_dict()
    assert record["rule"] == "soft_vote" and record["best_index"] == r.best_index and record["reason"] == r.reason
    one_se = select(cands, digits_small["X"], digits_small["y"], n_classes=5, seed=0, rule="one_se")
    assert one_se.chosen_index == r.one_se_index and one_se.ensemble is None
    with pytest.raises(Invalid):
        select(cands, digits_small["X"], digits_small["y"], n_classes=5, rule="luck")


GRID = [Candidate("text.embedding_logreg", {"C": c}) for c in (0.1, 1.0, 10.0, 100.0)]


def _correlated(seed, n=40):
    """The class shows only in x0 - x1, both carrying the same large noise: only a weakly
    regularised fit finds that direction (the class means point along the noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    common = rng.normal(0, 3, n)
    X = rng.normal(0, 0.05, (n, 20))
    X[:, 0] += common + 0.3 * (2 * y - 1)
    X[:, 1] += common
    return X.astype(np.float32), y


def _isotropic(seed, n=24, d=200):
    """Few samples, many equally informative noisy dimensions: the class-mean direction (strong
    regularisation) is all there is to learn."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return (rng.normal(0, 1, (n, d)) + 0.25 * (2 * y[:, None] - 1)).astype(np.float32), y


def test_c_is_tuned_by_selection_and_differs_with_the_data():
    from dyntrain.training.featurize import default_candidates

    for task in ("text-classification",):
        for name in ("text.embedding_logreg", "text.tfidf_logreg"):
            assert {c.params["C"] for c in default_candidates(task, 40, 2, 60) if c.learner == name} >= {
                0.1, 1.0, 10.0, 100.0}
    Xc, yc = _correlated(0)
    Xi, yi = _isotropic(0)
    weak = select(GRID, {"minilm.mean": Xc}, yc, n_classes=2, seed=0).chosen.params["C"]
    strong = select(GRID, {"minilm.mean": Xi}, yi, n_classes=2, seed=0).chosen.params["C"]
    assert weak >= 10.0 and strong <= 1.0
