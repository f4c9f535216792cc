"""Pure ML: image features, learners behind one contract, model selection, metrics.

Arrays and files in, fitted models and ONNX files out; no database, no HTTP. Importing this
package does not import torch (training and export do, lazily), so the API and serving can
use :mod:`~dyntrain.learners.metrics` and the registry without the ``train`` extra.

>>> from dyntrain import learners
>>> learners.names()[:4]
['image.linear_probe', 'image.pixel_logreg', 'image.small_cnn', 'image.finetune']
>>> fx = learners.FeatureExtractor("/tmp/dyntrain-cache")  # doctest: +SKIP
>>> cands = learners.default_candidates(len(keys), n_classes, time_budget_s=300)  # doctest: +SKIP
>>> X = fx.features_by_kind(learners.required_kinds(cands), keys, load)  # doctest: +SKIP
>>> result = learners.select(cands, X, y, n_classes=n_classes, seed=0, time_budget_s=300)  # doctest: +SKIP
>>> model = learners.fit_candidate(result.chosen, X, y, n_classes=n_classes)  # doctest: +SKIP
>>> model.export_onnx("model.onnx", backbone_dir="/tmp/dyntrain-cache")  # doctest: +SKIP
"""

from __future__ import annotations

from .base import Learner, ProgressFn, get, names, register
from .features import ACTIVATION, GRAY32, KINDS, POOLED, FeatureExtractor, gray32
from .metrics import classification_metrics, macro_f1, majority_baseline
from .selection import (
    Candidate,
    CandidateScore,
    HoldoutScore,
    SelectionProgress,
    SelectionResult,
    cross_validate,
    default_candidates,
    estimated_cv_seconds,
    fit_candidate,
    holdout_score,
    make_folds,
    required_kinds,
    select,
)

# Importing the learner modules registers them, cheapest first (registry order).
from .linear import LinearProbe, PixelLogReg  # noqa: E402  isort: skip
from .small_cnn import SmallCNN  # noqa: E402  isort: skip
from .finetune import Finetune  # noqa: E402  isort: skip
from .text import TextEmbeddingLogReg, TfidfLogReg  # noqa: E402  isort: skip
from .tabular import (TABLE, TabularHGB, TabularHGBRegressor, TabularLinear, TabularRidge,  # noqa: E402  isort: skip
                      infer_schema, regression_metrics, row_feed, schema_of, to_matrix)
from .detector import CenterNetDetector  # noqa: E402  isort: skip
from .recommenders import (ALSRecommender, ItemKNNRecommender, PopularityRecommender,  # noqa: E402  isort: skip
                           SVDRecommender)
from .ensemble import SoftVote  # noqa: E402  isort: skip
from .segmenter import Segmenter  # noqa: E402  isort: skip
from .filter import FilterCNN  # noqa: E402  isort: skip

__all__ = [
    # contract and registry
    "Learner",
    "ProgressFn",
    "register",
    "get",
    "names",
    # learners
    "LinearProbe",
    "PixelLogReg",
    "SmallCNN",
    "Finetune",
    "TextEmbeddingLogReg",
    "TfidfLogReg",
    "TABLE",
    "TabularHGB",
    "TabularHGBRegressor",
    "TabularLinear",
    "TabularRidge",
    "CenterNetDetector",
    "SoftVote",
    "Segmenter",
    "FilterCNN",
    "infer_schema",
    "regression_metrics",
    "row_feed",
    "schema_of",
    "to_matrix",
    # features
    "FeatureExtractor",
    "KINDS",
    "POOLED",
    "ACTIVATION",
    "GRAY32",
    "gray32",
    # selection
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
    # metrics
    "classification_metrics",
    "macro_f1",
    "majority_baseline",
]
