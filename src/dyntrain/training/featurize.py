"""Features of a version's contents and the candidate learners, as the project's task says.

The task's modality owns both (see :mod:`dyntrain.tasks`): image kinds come from the (cached)
Lite0 feature extractor, text kinds from the (cached) MiniLM encoder or the raw strings, table
rows become one structured array with column types inferred from the version's rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import tasks
from ..learners import selection
from ..learners.features import FeatureExtractor

__all__ = ["featurize", "default_candidates"]


def default_candidates(task: str, n_samples: int, n_classes: int, time_budget_s: float) -> list[selection.Candidate]:
    """The fixed, cheap-first candidate list for a task and data size."""
    return tasks.get(task).candidates(n_samples, n_classes, time_budget_s)


def featurize(task: str, kinds: list[str], hashes: list[str], load_blob: Callable[[str], bytes],
              extractor: FeatureExtractor, progress: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:
    """Features of each kind for the contents ``hashes`` (cached on disk where it pays)."""
    return tasks.get(task).modality.features(kinds, hashes, load_blob, extractor, progress)
