"""A soft-vote ensemble: several fitted configurations whose class probabilities are averaged.

Few-shot cross-validation scores separate the best candidates by noise more often than not; a
vote of the top ones is steadier than any one of them, most of all when they read different
features (Lite0 features and raw pixels make different mistakes). Measured in
``benchmarks/estimates.py``; selection decides when to use it (:func:`dyntrain.learners.selection.select`).

The members are :class:`~dyntrain.learners.candidates.Candidate` dicts (learner + params) of one
modality, so their ONNX files share their input(s): the exported file is ONE graph fed like any
model of the modality, whose ``probabilities`` are the mean of the members'
(:func:`dyntrain.learners._onnx.soft_vote`). Members reading different feature kinds get them side
by side, as one composite kind (:func:`dyntrain.learners.features.composite_kind`).

>>> from dyntrain.learners.candidates import Candidate
>>> vote = Candidate("ensemble.soft_vote", {"members": [
...     {"learner": "image.linear_probe", "params": {"C": 100.0}},
...     {"learner": "image.pixel_logreg", "params": {"C": 0.1}}]})
>>> vote.label, vote.kind, vote.learners
('soft vote of linear_probe(C=100.0), pixel_logreg(C=0.1)', 'lite0.pooled+pixels.gray32', ('image.linear_probe', 'image.pixel_logreg'))
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..kernel.errors import Invalid
from . import _onnx
from .base import Learner, ProgressFn, register
from .features import composite_kind

__all__ = ["SoftVote", "NAME", "soft_vote_candidate"]

NAME = "ensemble.soft_vote"


def _members(params: dict[str, Any]) -> list:
    from .candidates import Candidate

    members = [Candidate.from_dict(m) for m in params.get("members", ())]
    for m in members:
        if m.learner == NAME:
            raise Invalid("a soft vote's members must be single learners, not another soft vote")
        if m.learner_class.contract != "classifier":
            raise Invalid(f"{m.learner} gives no class probabilities, so it cannot vote")
    return members


def soft_vote_candidate(members: list) -> Any:
    """The candidate of a soft vote of ``members`` (candidates, in order)."""
    from .candidates import Candidate

    return Candidate(NAME, {"members": [m.to_dict() for m in members]})


@register
class SoftVote(Learner):
    """The mean of its members' class probabilities; each member is fitted on the same rows."""

    name = NAME
    input_kind = "composite"  # each instance reads its members' kinds: see kind_for
    composite = True

    def __init__(self, *, members: list | tuple = ()) -> None:
        super().__init__()
        self.members = members

    @classmethod
    def kind_for(cls, params: dict[str, Any]) -> str:
        return composite_kind(m.kind for m in _members(params))

    @classmethod
    def made_of(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.learner for m in _members(params)))

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "soft vote of " + ", ".join(m.label.split(".", 1)[-1] for m in _members(params))

    def _parts(self, X) -> list[tuple[Any, np.ndarray]]:
        """(member candidate, its features) per member; X is composite when the kinds differ."""
        members = _members({"members": self.members})
        if len(members) < 2:
            raise Invalid(f"a soft vote needs at least two members, got {len(members)}")
        composite = X.dtype.names is not None and len({m.kind for m in members}) > 1
        return [(m, X[m.kind] if composite else X) for m in members]

    def fit(self, X, y, *, n_classes, sample_weight=None, progress: ProgressFn | None = None):
        parts = self._parts(X)
        self.fitted_ = []
        for k, (member, Xm) in enumerate(parts):
            sub = None if progress is None else (lambda f, k=k: progress((k + f) / len(parts)))
            self.fitted_.append(member.build().fit(Xm, y, n_classes=n_classes, sample_weight=sample_weight,
                                                   progress=sub))
        self.n_classes_ = int(n_classes)
        return self

    def predict_proba(self, X):
        self._check_fitted()
        parts = self._parts(X)
        return np.mean([m.predict_proba(Xm) for m, (_, Xm) in zip(self.fitted_, parts)], axis=0).astype(np.float32)

    def export_onnx(self, path, *, backbone_dir=None):
        """Each member's own file, joined into one graph that averages them."""
        import onnx

        self._check_fitted()
        with tempfile.TemporaryDirectory(prefix="soft-vote-") as tmp:
            models = [onnx.load(str(m.export_onnx(Path(tmp) / f"member{k}.onnx", backbone_dir=backbone_dir)))
                      for k, m in enumerate(self.fitted_)]
        return _onnx.soft_vote(models, path)
