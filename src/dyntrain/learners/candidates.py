"""Candidates for model selection: a learner name + hyperparameters, and the default list.

>>> [c.label for c in default_candidates(30, 3, time_budget_s=10)][:2]
['image.linear_probe(C=10.0)', 'image.pixel_logreg(C=0.1)']
>>> complexity(Candidate("image.linear_probe")) < complexity(Candidate("image.small_cnn"))
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..kernel.errors import Invalid
from . import base
from .base import Learner

__all__ = ["Candidate", "default_candidates", "estimated_cv_seconds", "required_kinds", "complexity",
           "LINEAR_C"]


@dataclass(frozen=True)
class Candidate:
    """A learner name and its hyperparameters: what a run record stores to rebuild a model.

    >>> Candidate("image.small_cnn", {"epochs": 20}).label
    'image.small_cnn(epochs=20)'
    """

    learner: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))  # own copy: callers may mutate theirs

    def __hash__(self) -> int:
        return hash((self.learner, json.dumps(self.params, sort_keys=True, default=str)))

    @property
    def learner_class(self) -> type[Learner]:
        return base.get(self.learner)

    @property
    def kind(self) -> str:
        """The feature kind this candidate's learner consumes (an ensemble's may be composite,
        see :func:`~dyntrain.learners.features.composite_kind`)."""
        return self.learner_class.kind_for(self.params)

    @property
    def learners(self) -> tuple[str, ...]:
        """The registered learners it is made of: itself, or an ensemble's members."""
        return self.learner_class.made_of(self.params)

    @property
    def label(self) -> str:
        custom = self.learner_class.describe(self.params)
        if custom is not None:
            return custom
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{self.learner}({args})"

    def build(self) -> Learner:
        """A fresh, unfitted learner."""
        try:
            return self.learner_class(**self.params)
        except TypeError as exc:
            raise Invalid(f"bad hyperparameters for {self.learner}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        return cls(data["learner"], data.get("params", {}))


# Rough fit seconds per training sample and epoch on 2 shared cores (measured while other
# jobs ran; see benchmarks/RESULTS.md). Used to keep fine-tuning out of small budgets and
# to skip a candidate that would overrun the budget.
_SECONDS_PER_SAMPLE_EPOCH = {
    "image.linear_probe": 0.0005,
    "image.pixel_logreg": 0.001,
    "image.small_cnn": 0.002,
    "image.finetune": 0.008,
    # a logistic regression on precomputed features: as cheap as the linear probe
    "text.embedding_logreg": 0.0005,
    "text.tfidf_logreg": 0.001,
}

#: Strengths every linear head is cross-validated at (C: inverse L2 strength). One fixed C was
#: 2-3 points off on a 10-class silhouette set; a logistic regression is a fraction of a second.
LINEAR_C = (0.1, 1.0, 10.0, 100.0)

# Simplicity order for the one-standard-error rule (selection.choose_one_se): a linear model on
# fixed features (convex, one optimum, few parameters) before models that learn features or
# grow trees, and fine-tuning a whole backbone last.
_COMPLEXITY = {"image.small_cnn": 1, "tabular.hgb": 1, "tabular.hgb_regressor": 1, "image.finetune": 2}


def complexity(candidate: Candidate) -> int:
    """0 for linear models, higher for models with more freedom to fit noise."""
    return _COMPLEXITY.get(candidate.learner, 0)


def estimated_cv_seconds(candidate: Candidate, n_samples: int, n_splits: int = 5) -> float:
    """Rough cross-validation time of ``candidate`` on ``n_samples`` rows (2 shared cores).

    >>> round(estimated_cv_seconds(Candidate("image.small_cnn", {"epochs": 30}), 500), 1)
    120.5
    """
    per = _SECONDS_PER_SAMPLE_EPOCH.get(candidate.learner, 0.01)
    epochs = float(candidate.params.get("epochs", getattr(candidate.learner_class(), "epochs", 1)))
    n_train = n_samples * (n_splits - 1) / max(1, n_splits)
    return n_splits * per * epochs * n_train + 0.5


def default_candidates(n_samples: int, n_classes: int, time_budget_s: float | None) -> list[Candidate]:
    """The fixed, cheap-first candidate list for a dataset of this size.

    The first three always run (two linear-probe strengths and pixel logistic regression:
    seconds in total), then the other strengths of both (:data:`LINEAR_C`; pixels one decade
    lower: raw pixels have 1,024 unnormalised inputs). The small CNN comes next (selection
    skips it if its estimated time does not fit what is left of the budget); fine-tuning is
    listed only when there are at least 8 samples per class and the estimated time of the
    whole list fits the budget.

    >>> [c.label for c in default_candidates(30, 3, 10)][:3]
    ['image.linear_probe(C=10.0)', 'image.pixel_logreg(C=0.1)', 'image.linear_probe(C=1.0)']
    >>> [c.learner for c in default_candidates(30, 3, 10)][-1]
    'image.small_cnn'
    """
    n_samples, n_classes = int(n_samples), int(n_classes)
    n_train = max(1, n_samples * 4 // 5)  # rows a 5-fold CV fold trains on
    cands = [
        Candidate("image.linear_probe", {"C": 10.0}),
        Candidate("image.pixel_logreg", {"C": 0.1}),
        Candidate("image.linear_probe", {"C": 1.0}),
        *[Candidate("image.linear_probe", {"C": c}) for c in LINEAR_C if c not in (10.0, 1.0)],
        *[Candidate("image.pixel_logreg", {"C": c / 10}) for c in LINEAR_C if c / 10 != 0.1],
        # From scratch needs enough gradient steps: ~300 whatever the dataset size.
        Candidate("image.small_cnn", {"epochs": _epochs_for(n_train, 300, 30, 100)}),
    ]
    budget = float("inf") if time_budget_s is None else float(time_budget_s)
    spent = sum(estimated_cv_seconds(c, n_samples) for c in cands)
    finetune = Candidate("image.finetune", {"epochs": _epochs_for(n_train, 60, 8, 20)})
    if n_samples >= 8 * n_classes and spent + estimated_cv_seconds(finetune, n_samples) <= budget:
        cands.append(finetune)
    return cands


def _epochs_for(n_train: int, target_steps: int, lo: int, hi: int, batch_size: int = 32) -> int:
    """Epochs giving about ``target_steps`` optimiser steps, clamped to [lo, hi]."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(hi, max(lo, math.ceil(target_steps / steps_per_epoch))))


def required_kinds(candidates: Sequence[Candidate]) -> list[str]:
    """Feature kinds the candidates need, in first-use order (pass to the extractor).

    >>> required_kinds(default_candidates(30, 3, 10))
    ['lite0.pooled', 'pixels.gray32']
    """
    from .features import base_kinds

    return base_kinds(c.kind for c in candidates)


