"""Features of a version's contents, per learner feature kind, for every task type.

Image kinds come from the (cached) Lite0 feature extractor; text kinds from the (cached)
MiniLM encoder, or the raw strings for TF-IDF. The candidate list per task lives here too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..entities import TASKS
from ..learners import selection
from ..learners.features import FeatureExtractor
from ..serving.inputs import decode_content

__all__ = ["featurize", "default_candidates"]

_TEXT_CANDIDATES = (
    selection.Candidate("text.embedding_logreg", {"C": 10.0}),
    selection.Candidate("text.tfidf_logreg", {"C": 10.0}),
    selection.Candidate("text.embedding_logreg", {"C": 1.0}),
    selection.Candidate("text.tfidf_logreg", {"C": 100.0}),
)


def default_candidates(task: str, n_samples: int, n_classes: int, time_budget_s: float) -> list[selection.Candidate]:
    """The fixed, cheap-first candidate list for a task and data size."""
    if TASKS[task] == "text":
        return list(_TEXT_CANDIDATES)
    return selection.default_candidates(n_samples, n_classes, time_budget_s)


def featurize(task: str, kinds: list[str], hashes: list[str], load_blob: Callable[[str], bytes],
              extractor: FeatureExtractor, progress: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:
    """Features of each kind for the contents ``hashes`` (cached on disk where it pays)."""
    if TASKS[task] != "text":
        return extractor.features_by_kind(kinds, hashes, lambda h: decode_content("image", load_blob(h)),
                                          progress=progress)
    from ..learners.text import TEXT_EMBED, TEXT_RAW, TextEncoder

    load_text = lambda h: decode_content("text", load_blob(h))  # noqa: E731
    out = {}
    if TEXT_RAW in kinds:
        out[TEXT_RAW] = np.array([load_text(h) for h in hashes], dtype=object)
    if TEXT_EMBED in kinds:
        out[TEXT_EMBED] = TextEncoder(extractor.cache_dir, threads=extractor.threads).features(hashes, load_text,
                                                                                              progress=progress)
    return out
