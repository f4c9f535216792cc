"""Features of a version's contents, per learner feature kind, for every task type.

Image kinds come from the (cached) Lite0 feature extractor; text kinds from the (cached)
MiniLM encoder, or the raw strings for TF-IDF; table rows become the structured array of
:func:`dyntrain.learners.tabular.to_matrix`, column types inferred from the version's rows.
The candidate list per task lives here too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..entities import REGRESSION_TASKS, TASKS
from ..learners import selection
from ..learners.candidates import LINEAR_C
from ..learners.features import FeatureExtractor
from ..serving.inputs import decode_content

__all__ = ["featurize", "default_candidates", "row_features"]

# Both heads at every strength of LINEAR_C (features are computed once; each fit is a fraction
# of a second), the historical first four first so a short budget keeps them.
_TEXT_FIRST = (
    selection.Candidate("text.embedding_logreg", {"C": 10.0}),
    selection.Candidate("text.tfidf_logreg", {"C": 10.0}),
    selection.Candidate("text.embedding_logreg", {"C": 1.0}),
    selection.Candidate("text.tfidf_logreg", {"C": 100.0}),
)
_TEXT_CANDIDATES = _TEXT_FIRST + tuple(
    c for c in (selection.Candidate(name, {"C": C}) for name in ("text.embedding_logreg", "text.tfidf_logreg")
                for C in LINEAR_C) if c not in _TEXT_FIRST)

# Cheap first; the first three always run. The linear models are the plain baselines the
# trees must beat (see benchmarks/tabular_accuracy.py).
_TABLE_CANDIDATES = (
    selection.Candidate("tabular.linear", {"C": 1.0}),
    selection.Candidate("tabular.hgb", {}),
    selection.Candidate("tabular.linear", {"C": 0.1}),
    selection.Candidate("tabular.hgb", {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 10}),
)
# The trees keep their 20-row leaves even on tiny data: smaller leaves won cross-validation on
# 20-50 rows by noise and then lost on the test set (benchmarks/tabular_accuracy.py, --quick),
# while unsplit trees simply lose selection to the linear model.
_REGRESSION_CANDIDATES = (
    selection.Candidate("tabular.ridge", {"alpha": 1.0}),
    selection.Candidate("tabular.hgb_regressor", {}),
    selection.Candidate("tabular.ridge", {"alpha": 10.0}),
    selection.Candidate("tabular.hgb_regressor", {"loss": "absolute_error"}),
)


def default_candidates(task: str, n_samples: int, n_classes: int, time_budget_s: float) -> list[selection.Candidate]:
    """The fixed, cheap-first candidate list for a task and data size."""
    if TASKS[task] == "row":
        return list(_REGRESSION_CANDIDATES if task in REGRESSION_TASKS else _TABLE_CANDIDATES)
    if TASKS[task] == "text":
        return list(_TEXT_CANDIDATES)
    return selection.default_candidates(n_samples, n_classes, time_budget_s)


def featurize(task: str, kinds: list[str], hashes: list[str], load_blob: Callable[[str], bytes],
              extractor: FeatureExtractor, progress: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:
    """Features of each kind for the contents ``hashes`` (cached on disk where it pays)."""
    if TASKS[task] == "row":
        return {kind: row_features(hashes, load_blob, progress) for kind in kinds}
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


def row_features(hashes: list[str], load_blob: Callable[[str], bytes],
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
    """The ``table.rows`` array of stored rows; each column's type is inferred from all of them.

    Reading rows is cheap (small JSON blobs), so nothing is cached.
    """
    from ..learners.tabular import infer_schema, to_matrix

    rows = []
    for k, h in enumerate(hashes):
        rows.append(decode_content("row", load_blob(h)))
        if progress is not None and k % 500 == 0:
            progress(k / max(1, len(hashes)))
    X = to_matrix(rows, infer_schema(rows))
    if progress is not None:
        progress(1.0)
    return X
