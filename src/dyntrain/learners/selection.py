"""Model selection by cross-validation on the training data, every candidate recorded.

No single learner wins everywhere (a linear probe on Lite0 features wins on photos, a small
CNN or raw pixels on tiny grey digits), so each training run cross-validates a fixed,
cheap-first list of candidates (each linear head at several strengths C). Few-shot CV scores
are noisy, so no single winner is trusted on its own score:

* the one-standard-error rule (:func:`choose_one_se`) picks one candidate: each learner is
  represented by its best-scoring configuration, and among learners within one standard error
  of the overall best the simplest (linear before nets) wins; ties: the higher mean, then the
  earlier, cheaper one;
* a soft vote of the top :data:`ENSEMBLE_SIZE` learners' best configurations
  (:mod:`~dyntrain.learners.ensemble`) is scored on the same folds from the members' out-of-fold
  probabilities (no refitting), and chosen over the one-SE pick unless :func:`prefers_soft_vote`
  says it adds nothing.

A time budget can cut the list, but only between candidates and never before three
have run; the cut is recorded, and re-running ``result.ran`` replays the same scores.
(The cut itself depends on the clock; the scores of the candidates that ran do not.)

Progress callback: ``progress(fraction, candidate)`` where ``fraction`` is the overall
fraction done (0..1, non-decreasing) and ``candidate`` is the :class:`Candidate` being
cross-validated (the chosen one on the final call). It may raise ``Cancelled``.

>>> cands = default_candidates(n_samples=200, n_classes=4, time_budget_s=120)
>>> [c.learner for c in cands][:3], cands[-1].learner
(['image.linear_probe', 'image.pixel_logreg', 'image.linear_probe'], 'image.small_cnn')
>>> result = select(cands, {k: fx.features(k, keys, load) for k in required_kinds(cands)},
...                 y, n_classes=4, seed=0, time_budget_s=120)  # doctest: +SKIP
>>> result.chosen.learner, result.cut_at  # doctest: +SKIP
('image.linear_probe', None)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..kernel.errors import Cancelled, Invalid
from .base import Learner
from .candidates import Candidate, default_candidates, estimated_cv_seconds, required_kinds
from .metrics import macro_f1

__all__ = [
    "Candidate",
    "CandidateScore",
    "SelectionResult",
    "HoldoutScore",
    "SelectionProgress",
    "default_candidates",
    "estimated_cv_seconds",
    "required_kinds",
    "make_folds",
    "cross_validate",
    "select",
    "fit_candidate",
    "holdout_score",
    "choose_one_se",
    "vote_members",
    "soft_vote_score",
    "prefers_soft_vote",
    "standard_error",
    "MIN_CANDIDATES",
    "ENSEMBLE_SIZE",
    "RULES",
]

#: Candidates that always run, whatever the budget.
MIN_CANDIDATES = 3
#: How select() picks: "soft_vote" (default: the soft vote of the top candidates unless
#: prefers_soft_vote says no, then the one-SE pick), "one_se" (see choose_one_se) or "best" (the
#: highest mean); the last two are kept to measure the default against in benchmarks/estimates.py.
#: Measured there before the vote shipped (36 few-shot runs, 4 datasets, k = 5/10/20, mean test
#: accuracy): one-SE rule 74.9%, highest mean 74.9%, soft vote of the top 3 candidates 76.8% (the
#: gain is on MNIST, +6 to +9 points, where the top 3 mix Lite0 and pixel features; elsewhere
#: within a point either way). benchmarks/RESULTS.md has the current figures.
RULES = ("soft_vote", "one_se", "best")
#: Members of the soft vote: the best configuration of each of the top ENSEMBLE_SIZE learners (by
#: mean CV macro-F1), so the members see different features or learn differently. Measured in a
#: first, partial run of benchmarks/estimates.py (16 runs on digits and MNIST): 90.3% mean test
#: accuracy against 89.0% for a vote of the top 3 configurations (often three strengths of one
#: learner, which mostly agree); the benchmark keeps measuring both (False: configurations).
ENSEMBLE_SIZE = 3
ENSEMBLE_PER_LEARNER = True
SelectionProgress = Callable[[float, "Candidate"], None]


@dataclass
class CandidateScore:
    """Cross-validation outcome of one candidate (``error`` set if it failed)."""

    index: int
    candidate: Candidate
    macro_f1_mean: float | None
    macro_f1_sd: float | None
    accuracy_mean: float | None
    accuracy_sd: float | None
    fold_macro_f1: list[float]
    fold_accuracy: list[float]
    seconds: float
    error: str | None = None
    #: out-of-fold class probabilities [n, n_classes] (NaN on rows no fold scored): what the
    #: soft vote is scored from; not recorded with the run
    oof: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("oof")
        d["candidate"] = self.candidate.to_dict()
        d["label"] = self.candidate.label
        return d


@dataclass
class SelectionResult:
    """Every candidate's scores, the chosen one, and where the budget cut the list."""

    scores: list[CandidateScore]
    chosen_index: int
    cut_at: int | None
    n_splits: int
    splitter: str
    seed: int
    seconds: float
    n_candidates: int
    best_index: int | None = None  # the highest mean (== chosen_index unless the rule moved it)
    rule: str = "best"
    one_se_index: int | None = None  # the one-standard-error pick
    #: the soft vote of the top candidates, scored on the same folds (index len(scores)), if built
    ensemble: CandidateScore | None = None
    reason: str = ""  # why the chosen one, in a sentence

    @property
    def chosen_score(self) -> CandidateScore:
        if self.ensemble is not None and self.chosen_index == self.ensemble.index:
            return self.ensemble
        return self.scores[self.chosen_index]

    @property
    def chosen(self) -> Candidate:
        return self.chosen_score.candidate

    @property
    def ran(self) -> list[Candidate]:
        """The candidates that ran, in order: pass them to :func:`select` to replay (the soft
        vote is built again from their scores)."""
        return [s.candidate for s in self.scores]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record for the run; the soft vote, when built, is the last score."""
        return {
            "chosen_index": self.chosen_index,
            "chosen": self.chosen.to_dict(),
            "best_index": self.best_index,
            "one_se_index": self.one_se_index,
            "ensemble_index": None if self.ensemble is None else self.ensemble.index,
            "reason": self.reason,
            "rule": self.rule,
            "cut_at": self.cut_at,
            "n_candidates": self.n_candidates,
            "n_splits": self.n_splits,
            "splitter": self.splitter,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "scores": [s.to_dict() for s in self.scores + ([self.ensemble] if self.ensemble else [])],
        }


@dataclass
class HoldoutScore:
    """A candidate re-fitted on training data and scored on a fixed holdout."""

    candidate: Candidate
    macro_f1: float
    accuracy: float
    seconds: float
    proba: np.ndarray
    learner: Learner


# -- folds -------------------------------------------------------------------------------


def make_folds(
    y: np.ndarray, *, groups: np.ndarray | None = None, n_splits: int = 5, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Stratified folds; with ``groups`` every group (a source sample and its augmented
    copies) stays inside one fold. ``n_splits`` is reduced to the smallest class count
    (counted in groups when given), but is at least 2. Returns (folds, splitter name).

    >>> folds, how = make_folds(np.array([0, 0, 0, 1, 1, 1]), n_splits=5)
    >>> len(folds), how
    (3, 'StratifiedKFold')
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y)
    if len(y) < 2:
        raise Invalid("cross-validation needs at least 2 samples")
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise Invalid("groups must have one entry per sample")
        per_class = [len(np.unique(groups[y == c])) for c in np.unique(y)]
        n_groups = len(np.unique(groups))
    else:
        per_class = list(np.bincount(y)[np.unique(y)])
        n_groups = len(y)
    if n_groups < 2:
        raise Invalid("cross-validation needs at least 2 independent samples (groups)")
    k = max(2, min(int(n_splits), int(min(per_class)), n_groups))
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer members than folds; we chose k knowingly.
        warnings.simplefilter("ignore")
        if groups is not None:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
            folds = list(splitter.split(np.zeros(len(y)), y, groups))
            name = "StratifiedGroupKFold"
        else:
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(seed))
            folds = list(splitter.split(np.zeros(len(y)), y))
            name = "StratifiedKFold"
    return [(np.sort(tr), np.sort(va)) for tr, va in folds], name


# -- evaluation --------------------------------------------------------------------------


def cross_validate(
    candidate: Candidate,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    groups: np.ndarray | None = None,
    seed: int = 0,
    n_splits: int = 5,
    sample_weight: np.ndarray | None = None,
    score_mask: np.ndarray | None = None,
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Callable[[float], None] | None = None,
    index: int = 0,
) -> CandidateScore:
    """Cross-validated macro-F1 and accuracy of one candidate on features ``X`` of its kind.

    ``score_mask`` (bool per row) says which validation rows count: pass False for
    augmented copies so they train but are never scored. ``folds`` overrides the splits
    (``select`` computes them once so every candidate sees the same folds).

    >>> s = cross_validate(Candidate("image.pixel_logreg"), X_gray, y, n_classes=10)  # doctest: +SKIP
    >>> s.macro_f1_mean, s.macro_f1_sd  # doctest: +SKIP
    (0.91, 0.02)
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.int64)
    if len(X) != len(y):
        raise Invalid(f"X has {len(X)} rows but y has {len(y)}")
    if folds is None:
        folds, _ = make_folds(y, groups=groups, n_splits=n_splits, seed=seed)
    mask = np.ones(len(y), bool) if score_mask is None else np.asarray(score_mask, bool)
    f1s, accs = [], []
    oof = np.full((len(y), n_classes), np.nan, np.float32)
    start = time.perf_counter()
    for k, (tr, va) in enumerate(folds):
        va = va[mask[va]]
        fold_progress = None
        if progress is not None:
            fold_progress = (lambda f, k=k: progress((k + min(max(f, 0.0), 1.0)) / len(folds)))
            fold_progress(0.0)
        learner = candidate.build()
        learner.fit(
            X[tr],
            y[tr],
            n_classes=n_classes,
            sample_weight=None if sample_weight is None else np.asarray(sample_weight)[tr],
            progress=fold_progress,
        )
        if len(va) == 0:
            continue
        oof[va] = learner.predict_proba(X[va])
        pred = oof[va].argmax(axis=1)
        f1s.append(macro_f1(y[va], pred, n_classes))
        accs.append(float((pred == y[va]).mean()))
    if progress is not None:
        progress(1.0)
    if not f1s:
        raise Invalid("no validation rows to score (is score_mask all False?)")
    return CandidateScore(
        index=index,
        candidate=candidate,
        macro_f1_mean=round(float(np.mean(f1s)), 4),
        macro_f1_sd=round(float(np.std(f1s)), 4),
        accuracy_mean=round(float(np.mean(accs)), 4),
        accuracy_sd=round(float(np.std(accs)), 4),
        fold_macro_f1=[round(v, 4) for v in f1s],
        fold_accuracy=[round(v, 4) for v in accs],
        seconds=time.perf_counter() - start,
        oof=oof,
    )


def _fold_scores(index: int, candidate: Candidate, proba: np.ndarray, y: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray, n_classes: int,
                 seconds: float) -> CandidateScore:
    """The score of out-of-fold probabilities on ``folds``, as cross_validate reports it."""
    f1s, accs = [], []
    for _, va in folds:
        va = va[mask[va]]
        if len(va):
            pred = proba[va].argmax(axis=1)
            f1s.append(macro_f1(y[va], pred, n_classes))
            accs.append(float((pred == y[va]).mean()))
    return CandidateScore(index, candidate, round(float(np.mean(f1s)), 4), round(float(np.std(f1s)), 4),
                          round(float(np.mean(accs)), 4), round(float(np.std(accs)), 4), [round(v, 4) for v in f1s],
                          [round(v, 4) for v in accs], seconds, oof=proba)


def vote_members(scores: Sequence[CandidateScore], per_learner: bool | None = None) -> list[CandidateScore]:
    """The top :data:`ENSEMBLE_SIZE` of ``scores`` by mean macro-F1 (ties: the earlier) that
    succeeded; with ``per_learner`` (default :data:`ENSEMBLE_PER_LEARNER`) only each learner's
    best configuration competes, so the members are distinct learners."""
    per_learner = ENSEMBLE_PER_LEARNER if per_learner is None else per_learner
    ranked = sorted((s for s in scores if s.error is None and s.oof is not None),
                    key=lambda s: (-s.macro_f1_mean, s.index))
    if per_learner:
        ranked = list({s.candidate.learner: s for s in reversed(ranked)}.values())[::-1]
        ranked.sort(key=lambda s: (-s.macro_f1_mean, s.index))
    return ranked[:ENSEMBLE_SIZE]


def soft_vote_score(members: Sequence[CandidateScore], y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                    *, n_classes: int, index: int, score_mask: np.ndarray | None = None) -> CandidateScore | None:
    """The soft vote of ``members`` (see :func:`vote_members`), scored on the same ``folds``
    from their out-of-fold probabilities: in each fold every member was fitted on that fold's
    training part only, so their mean is exactly what the vote fitted there would predict.
    None with fewer than two members."""
    if len(members) < 2:
        return None
    from .ensemble import soft_vote_candidate  # (imported here: the learner registry stays cheap-first)

    start = time.perf_counter()
    mask = np.ones(len(y), bool) if score_mask is None else np.asarray(score_mask, bool)
    proba = np.mean([s.oof for s in members], axis=0)
    score = _fold_scores(index, soft_vote_candidate([s.candidate for s in members]), proba, np.asarray(y), folds,
                         mask, n_classes, 0.0)
    score.seconds = time.perf_counter() - start  # milliseconds: nothing is refitted
    return score


def prefers_soft_vote(vote: CandidateScore, single: CandidateScore) -> tuple[bool, str]:
    """Whether the soft vote replaces the one-SE pick ``single``, and why.

    The vote is kept unless its out-of-fold predictions are the single model's own (then it adds
    nothing but cost) or its mean macro-F1 is more than one standard error (over folds) below the
    single model's: a clear sign on these folds that the members' mistakes coincide. Otherwise the
    benchmark's finding holds: averaging the top candidates is steadier than trusting one of them
    on a noisy lead (benchmarks/estimates.py)."""
    scored = ~np.isnan(single.oof[:, 0])
    if np.array_equal(vote.oof[scored].argmax(axis=1), single.oof[scored].argmax(axis=1)):
        return False, f"the soft vote predicts what {single.candidate.label} alone does"
    floor = single.macro_f1_mean - standard_error(single.fold_macro_f1)
    if vote.macro_f1_mean < floor - 1e-9:
        return False, (f"the soft vote scores {vote.macro_f1_mean:.3f}, more than one standard error below "
                       f"{single.candidate.label} ({single.macro_f1_mean:.3f})")
    return True, (f"the soft vote scores {vote.macro_f1_mean:.3f} against {single.macro_f1_mean:.3f} for "
                  f"{single.candidate.label} (the one-standard-error pick) on the same folds")


def select(
    candidates: Sequence[Candidate],
    X_by_kind: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    n_classes: int,
    groups: np.ndarray | None = None,
    seed: int = 0,
    time_budget_s: float | None = None,
    n_splits: int = 5,
    sample_weight: np.ndarray | None = None,
    score_mask: np.ndarray | None = None,
    progress: SelectionProgress | None = None,
    rule: str = "soft_vote",
) -> SelectionResult:
    """Cross-validate ``candidates`` in order on the same folds and choose the best.

    The budget is checked before each candidate from the fourth on: if the time spent so far
    plus the candidate's estimated time (:func:`estimated_cv_seconds`) exceeds
    ``time_budget_s``, it and the rest of the list are skipped and ``cut_at`` records its
    index. A running candidate is never interrupted (only ``Cancelled`` does that). A candidate that raises (other than ``Cancelled``) is
    recorded with its error and never chosen. ``seed`` fixes the folds; learners' own seeds
    are part of their params. ``rule``: see :data:`RULES`.
    """
    if rule not in RULES:
        raise Invalid(f"unknown selection rule {rule!r}; use one of {', '.join(RULES)}")
    candidates = list(candidates)
    if not candidates:
        raise Invalid("no candidates to select from")
    y = np.asarray(y, dtype=np.int64)
    for c in candidates:
        if c.kind not in X_by_kind:
            raise Invalid(f"candidate {c.label} needs features of kind {c.kind!r}; got {sorted(X_by_kind)}")
        if len(X_by_kind[c.kind]) != len(y):
            raise Invalid(f"features of kind {c.kind!r} have {len(X_by_kind[c.kind])} rows, y has {len(y)}")
    folds, splitter = make_folds(y, groups=groups, n_splits=n_splits, seed=seed)
    start = time.perf_counter()
    scores: list[CandidateScore] = []
    cut_at: int | None = None
    n = len(candidates)
    for i, cand in enumerate(candidates):
        if i >= MIN_CANDIDATES and time_budget_s is not None:
            # Start the next candidate only if it is expected to finish within the budget.
            expected = estimated_cv_seconds(cand, len(y), len(folds))
            if time.perf_counter() - start + expected > time_budget_s:
                cut_at = i
                break
        cand_progress = None
        if progress is not None:
            cand_progress = (lambda f, i=i, cand=cand: progress((i + f) / n, cand))
        try:
            score = cross_validate(
                cand,
                X_by_kind[cand.kind],
                y,
                n_classes=n_classes,
                sample_weight=sample_weight,
                score_mask=score_mask,
                folds=folds,
                progress=cand_progress,
                index=i,
            )
        except Cancelled:
            raise
        except Exception as exc:  # one broken candidate must not sink the whole run
            score = CandidateScore(i, cand, None, None, None, None, [], [], 0.0, error=f"{type(exc).__name__}: {exc}")
        scores.append(score)

    ok = [s for s in scores if s.error is None]
    if not ok:
        raise Invalid("every candidate failed: " + "; ".join(f"{s.candidate.label}: {s.error}" for s in scores))
    best = _highest(ok)
    one_se = choose_one_se([(s.index, s.candidate, s.macro_f1_mean, s.fold_macro_f1) for s in ok])
    chosen, reason, vote = one_se, "the one-standard-error rule", None
    if rule == "best":
        chosen, reason = best.index, "the highest mean score"
    elif rule == "soft_vote":
        vote = soft_vote_score(vote_members(ok), y, folds, n_classes=n_classes, index=len(scores),
                               score_mask=score_mask)
        if vote is None:
            reason = "only one learner ran, so there was nothing to vote with: the one-standard-error rule"
        else:
            use, why = prefers_soft_vote(vote, scores[one_se])
            chosen, reason = (vote.index, why) if use else (one_se, why + ": the one-standard-error pick")
    result = SelectionResult(
        scores=scores,
        chosen_index=chosen,
        cut_at=cut_at,
        n_splits=len(folds),
        splitter=splitter,
        seed=int(seed),
        seconds=time.perf_counter() - start,
        n_candidates=n,
        best_index=best.index,
        rule=rule,
        one_se_index=one_se,
        ensemble=vote,
        reason=reason,
    )
    if progress is not None:
        progress(1.0, result.chosen)
    return result


def _highest(scores: list[CandidateScore]) -> CandidateScore:
    # Strictly greater wins, so ties keep the earlier (cheaper) candidate.
    best = scores[0]
    for s in scores[1:]:
        if s.macro_f1_mean > best.macro_f1_mean + 1e-9:
            best = s
    return best


def standard_error(fold_scores: Sequence[float]) -> float:
    """Standard error of a mean over folds (0 with fewer than two folds).

    >>> standard_error([0.5, 0.7, 0.9, 0.7])
    0.0816
    """
    v = np.asarray(fold_scores, np.float64)
    return round(float(v.std(ddof=1) / np.sqrt(len(v))), 4) if len(v) > 1 else 0.0


def choose_one_se(scored: Sequence[tuple[int, Candidate, float, Sequence[float]]]) -> int:
    """The one-standard-error rule over (index, candidate, mean score, fold scores): the index
    of the chosen candidate.

    Each learner is represented by its best configuration (a C picked by the mean: settings
    of one learner differ too little for a simplicity order to mean much). Learners whose
    best mean is within one standard error (over folds) of the overall best are not separated
    by the data; the simplest of them (:func:`~dyntrain.learners.candidates.complexity`) wins,
    the higher mean among equally simple ones, then the earlier one.

    >>> cnn, lin = Candidate("image.small_cnn"), Candidate("image.linear_probe")
    >>> choose_one_se([(0, cnn, 0.80, [0.6, 1.0, 0.8]), (1, lin, 0.75, [0.7, 0.8, 0.75])])
    1
    >>> choose_one_se([(0, cnn, 0.95, [0.95, 0.95, 0.95]), (1, lin, 0.75, [0.7, 0.8, 0.75])])
    0
    """
    from .candidates import complexity

    def higher(a, b):  # strictly greater mean wins; ties keep the earlier entry
        return b if b[2] > a[2] + 1e-9 else a

    per_learner: dict[str, tuple] = {}
    for entry in scored:
        name = entry[1].learner
        per_learner[name] = higher(per_learner[name], entry) if name in per_learner else entry
    best = scored[0]
    for entry in scored[1:]:
        best = higher(best, entry)
    floor = best[2] - standard_error(best[3]) - 1e-9
    close = [e for e in per_learner.values() if e[2] >= floor]
    simplest = min(complexity(e[1]) for e in close)
    pick = None
    for e in sorted((e for e in close if complexity(e[1]) == simplest), key=lambda e: e[0]):
        pick = e if pick is None else higher(pick, e)
    return pick[0]


def fit_candidate(
    candidate: Candidate,
    X_by_kind: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    n_classes: int,
    sample_weight: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> Learner:
    """Fit ``candidate`` on all the data (the final model after :func:`select`).

    >>> model = fit_candidate(result.chosen, X_by_kind, y, n_classes=4)  # doctest: +SKIP
    >>> model.export_onnx("model.onnx", backbone_dir=cache_dir)  # doctest: +SKIP
    """
    learner = candidate.build()
    return learner.fit(X_by_kind[candidate.kind], y, n_classes=n_classes, sample_weight=sample_weight, progress=progress)


def holdout_score(
    candidate: Candidate,
    Xtr: np.ndarray,
    ytr: np.ndarray,
    Xte: np.ndarray,
    yte: np.ndarray,
    n_classes: int,
    *,
    sample_weight: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> HoldoutScore:
    """Re-fit ``candidate`` on (Xtr, ytr) and score it on (Xte, yte).

    For a fair comparison of a new model with the production model's configuration: both
    configurations are re-fitted on the same training data and scored on the same holdout.
    Pass ``proba`` to :func:`~dyntrain.learners.metrics.classification_metrics` for details.

    >>> new = holdout_score(new_cand, Xtr, ytr, Xte, yte, 4)  # doctest: +SKIP
    >>> old = holdout_score(prod_cand, Xtr, ytr, Xte, yte, 4)  # doctest: +SKIP
    >>> new.macro_f1 >= old.macro_f1  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    learner = candidate.build().fit(Xtr, ytr, n_classes=n_classes, sample_weight=sample_weight, progress=progress)
    proba = learner.predict_proba(Xte)
    pred = proba.argmax(axis=1)
    yte = np.asarray(yte, dtype=np.int64)
    return HoldoutScore(
        candidate=candidate,
        macro_f1=macro_f1(yte, pred, n_classes),
        accuracy=round(float((pred == yte).mean()), 4) if len(yte) else 0.0,
        seconds=time.perf_counter() - start,
        proba=proba,
        learner=learner,
    )
