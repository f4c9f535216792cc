"""The one contract every learner follows, and the registry that names them.

A learner is pure ML: arrays in, a fitted model and one ONNX file out. Hyperparameters are
constructor keyword arguments stored unchanged (like scikit-learn and river), so a run
record can save ``learner.name`` + ``learner.get_params()`` and rebuild the same learner.

>>> from dyntrain.learners import base
>>> sorted(base.names())  # doctest: +SKIP
['image.finetune', 'image.linear_probe', 'image.pixel_logreg', 'image.small_cnn']
>>> learner = base.get("image.linear_probe")(C=0.5)  # doctest: +SKIP
>>> learner.get_params()  # doctest: +SKIP
{'C': 0.5, 'class_weight': None}
"""

from __future__ import annotations

import abc
import inspect
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import numpy as np

from ..kernel.errors import Invalid, NotFound, NotReady

__all__ = [
    "Learner",
    "ProgressFn",
    "register",
    "get",
    "names",
    "check_fit_inputs",
    "check_predict_input",
]

# ``progress(fraction)`` with 0 <= fraction <= 1. It may raise ``dyntrain.kernel.errors.Cancelled``;
# learners never catch it, so a cancelled job stops at the next callback (cooperative).
ProgressFn = Callable[[float], None]

_REGISTRY: dict[str, type["Learner"]] = {}

L = TypeVar("L", bound=type["Learner"])


def register(cls: L) -> L:
    """Class decorator: make a learner available under ``cls.name``.

    >>> @register  # doctest: +SKIP
    ... class MyLearner(Learner):
    ...     name = "image.mine"; input_kind = "lite0.pooled"
    """
    if not getattr(cls, "name", None) or not getattr(cls, "input_kind", None):
        raise TypeError(f"{cls.__name__} needs class attributes 'name' and 'input_kind'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"learner name {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type["Learner"]:
    """The learner class registered under ``name``; raises :class:`NotFound`.

    >>> get("image.linear_probe").input_kind  # doctest: +SKIP
    'lite0.pooled'
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NotFound(f"no learner named {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names(prefix: str | None = None, contract: str | None = None) -> list[str]:
    """Registered learner names in registration order (cheap ones first), optionally only
    those starting with ``prefix`` (``"image."``, ``"text."``) and following ``contract``
    (``"classifier"``, ``"regressor"``, ``"detector"``).

    >>> names("image.", contract="classifier")  # doctest: +SKIP
    ['image.linear_probe', 'image.pixel_logreg', 'image.small_cnn', 'image.finetune']
    """
    return [n for n, cls in _REGISTRY.items()
            if (prefix is None or n.startswith(prefix)) and (contract is None or cls.contract == contract)]


class Learner(abc.ABC):
    """Base class: sklearn-like ``fit`` / ``predict_proba`` plus ``export_onnx``.

    Subclasses set ``name`` and ``input_kind`` (the feature kind ``fit`` and
    ``predict_proba`` take, see :mod:`dyntrain.learners.features`) and declare every
    hyperparameter as a keyword argument of ``__init__`` that is stored under the same
    attribute name, unchanged. Fitted state lives in attributes ending in ``_``.

    The exported ONNX file always has one uint8 input ``image`` [N, 224, 224, 3] (the output
    of :func:`dyntrain.codecs.imaging.model_input`) and one float output ``probabilities``
    [N, n_classes]; everything else (normalisation, backbone, head, softmax) is inside.
    """

    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = ""
    #: The target contract it follows (dyntrain.tasks): "classifier" — ``fit(X, y, *, n_classes,
    #: …)`` and ``predict_proba``, ONNX output ``probabilities``; or "regressor" — ``fit(X, y, …)``
    #: with float targets and ``predict``, ONNX output ``value`` [N, 1].
    contract: ClassVar[str] = "classifier"
    #: True if the learner trains epoch by epoch and records :attr:`curves`.
    epochs_based: ClassVar[bool] = False
    #: True for a learner made of other learners' configurations (the soft vote): never a
    #: candidate of its own, selection builds it from the candidates that ran.
    composite: ClassVar[bool] = False

    n_classes_: int
    curves: list[dict[str, float]]

    def __init__(self) -> None:  # subclasses define their own keyword-only hyperparameters
        self.curves = []

    # -- what a configuration is made of (a learner of learners answers for its parts) ---
    @classmethod
    def kind_for(cls, params: dict[str, Any]) -> str:
        """The feature kind a learner with these hyperparameters consumes."""
        return cls.input_kind

    @classmethod
    def made_of(cls, params: dict[str, Any]) -> tuple[str, ...]:
        """The registered learners a learner with these hyperparameters consists of."""
        return (cls.name,)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str | None:
        """A label in place of ``name(params)``, or None for that default."""
        return None

    # -- hyperparameters -------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments exactly as given (or defaulted): ``type(l)(**l.get_params())``
        rebuilds an unfitted equivalent learner."""
        return {k: getattr(self, k) for k in self.param_names()}

    def clone(self) -> "Learner":
        """A new unfitted learner with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the contract ------------------------------------------------------------------
    @abc.abstractmethod
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        n_classes: int,
        sample_weight: np.ndarray | None = None,
        progress: ProgressFn | None = None,
    ) -> "Learner":
        """Fit on features ``X`` (of :attr:`input_kind`) and labels ``y`` in 0..n_classes-1."""

    @abc.abstractmethod
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), rows sum to 1 (float32)."""

    @abc.abstractmethod
    def export_onnx(self, path: str | Path, *, backbone_dir: str | Path) -> Path:
        """Write the fitted model as ONE self-contained ONNX file (atomic rename).

        ``backbone_dir`` is the cache directory of the exported backbone (the one given
        to :class:`~dyntrain.learners.features.FeatureExtractor`); learners without a
        backbone ignore it.
        """

    def export(self, work_dir: str | Path, *, backbone_dir: str | Path) -> Path:
        """Write the served model file into ``work_dir`` and return its path: ``model.onnx`` (see
        :meth:`export_onnx`) unless a learner serves another format (a recommender's ``.npz``)."""
        return self.export_onnx(Path(work_dir) / "model.onnx", backbone_dir=backbone_dir)

    # -- helpers for subclasses --------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_classes_"):
            raise NotReady(f"{self.name} is not fitted yet; call fit() first")


def check_fit_inputs(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    sample_weight: np.ndarray | None,
    feature_shape: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and normalise fit inputs; raise :class:`Invalid` with a clear message.

    >>> X, y, w = check_fit_inputs(np.zeros((2, 3)), [0, 1], 2, None)
    >>> X.dtype, y.dtype
    (dtype('float32'), dtype('int64'))
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim < 2 or len(X) == 0:
        raise Invalid(f"X must be a non-empty batch of feature arrays, got shape {X.shape}")
    if feature_shape is not None and tuple(X.shape[1:]) != tuple(feature_shape):
        raise Invalid(f"X has feature shape {X.shape[1:]}, expected {feature_shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise Invalid(f"y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise Invalid("y must hold integer class indices")
    y = y.astype(np.int64)
    if n_classes < 2:
        raise Invalid(f"n_classes must be at least 2, got {n_classes}")
    if y.min() < 0 or y.max() >= n_classes:
        raise Invalid(f"labels must be in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    if not np.all(np.isfinite(X)):
        raise Invalid("X contains NaN or infinite values")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (len(X),) or np.any(sample_weight < 0) or not np.all(np.isfinite(sample_weight)):
            raise Invalid("sample_weight must be one finite, non-negative weight per row")
        if sample_weight.sum() <= 0:
            raise Invalid("sample_weight sums to zero")
    return X, y, sample_weight


def check_predict_input(X: np.ndarray, feature_shape: tuple[int, ...] | None) -> np.ndarray:
    """Validate a predict batch (may be empty)."""
    X = np.asarray(X, dtype=np.float32)
    if feature_shape is not None and tuple(X.shape[1:]) != tuple(feature_shape):
        raise Invalid(f"X has feature shape {X.shape[1:]}, expected {feature_shape}")
    return X
