"""What a training run is given and gives back, shared by the run and its per-target stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import tasks

import numpy as np

__all__ = ["TrainingSpec", "TrainingOutcome", "Prepared", "Progress", "stage"]

# progress(stage, stage_fraction, candidate) — may raise Cancelled (cooperative cancellation)
Progress = Callable[[str, float, str | None], None]


@dataclass(frozen=True)
class TrainingSpec:
    """Everything that decides a run's result; saved verbatim in the run record.

    ``candidates`` None means "the default list for this data"; a finished run records the
    candidates it actually tried, so replaying that spec reproduces it.
    """

    dataset_version: int
    task: str = tasks.DEFAULT
    seed: int = 0
    time_budget_s: float = 60.0
    min_holdout_per_class: int = 10
    holdout_fraction: float = 0.2
    n_splits: int = 5
    cv_repeats: int = 2
    mode: str = "full"  # full: select among candidates | reuse: refit the given single candidate
    candidates: tuple[dict, ...] | None = None
    learners: tuple[str, ...] | None = None  # allowed learners (project setting); None = all
    augmentation: str = "auto"
    augmentation_custom: dict | None = None
    augmentation_copies: int = 2
    balance_target_ratio: float = 1.0
    recipe: dict | None = None  # a fixed data recipe (quick retrain, replay); None = selection decides
    recipe_limit: int | None = None  # replay: how many recipes the recorded run had time to try

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = list(self.candidates) if self.candidates is not None else None
        d["learners"] = list(self.learners) if self.learners is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainingSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("candidates", "learners"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class TrainingOutcome:
    result: dict[str, Any]
    onnx_path: Path
    card: dict[str, Any]
    log: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """A version's data, ready for learners: labels, features per kind, evaluation plan."""

    labels: list[str]  # the classes y indexes ([] for a target without classes: y holds the values)
    y: np.ndarray
    sample_ids: list[int]
    hashes: list[str]
    X: dict[str, np.ndarray]
    plan: dict[str, Any]
    waiting: dict[str, int] = field(default_factory=dict)  # classes left out until they have enough examples

    def __post_init__(self) -> None:
        from ..learners.features import FeatureSet

        self.X = FeatureSet(self.X)  # answers an ensemble's composite kind too


def stage(progress: Progress | None, name: str) -> Callable[..., None]:
    """``report(fraction, candidate=None)`` for one stage of the run (a no-op without ``progress``)."""
    def report(fraction: float, candidate: str | None = None) -> None:
        if progress is not None:
            progress(name, min(1.0, max(0.0, float(fraction))), candidate)
    return report
