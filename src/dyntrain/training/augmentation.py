"""Data recipes: augmentation and class balancing as candidates that selection may reject.

A :class:`Recipe` says how the training part is enlarged: augmented copies per sample,
minority classes brought up with copies, or class weights. Copies are made only from
training samples (never the holdout), stay in their source sample's cross-validation fold,
and their backbone features are cached under ``<content hash>.<augmentation id>.<seed>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..codecs import imaging
from ..kernel.core import Core
from ..datasets.augment import AugmentConfig, augment, augmentation_id, get_preset
from ..datasets.balance import class_weights, copies_report, plan_augmented_copies, weights_report
from ..learners.features import FeatureExtractor, FeatureSet, base_kinds

__all__ = ["Recipe", "NO_RECIPE", "recipes_to_try", "project_augment_config", "Copies", "make_copies",
           "training_arrays", "is_imbalanced", "extend_folds"]

IMBALANCE = 1.5  # largest / smallest class count from which balancing strategies are tried


@dataclass(frozen=True)
class Recipe:
    """How to enlarge the training part. ``augment`` is an AugmentConfig dict (None = no copies)."""

    name: str = "none"
    augment: dict | None = None
    copies_per_sample: int = 0
    balance: str | None = None  # None | "weights" | "copies"
    target_ratio: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Recipe":
        return cls(**d) if d else NO_RECIPE

    @property
    def makes_copies(self) -> bool:
        return self.augment is not None and (self.copies_per_sample > 0 or self.balance == "copies")


NO_RECIPE = Recipe()


def is_imbalanced(y: np.ndarray) -> bool:
    counts = np.bincount(y)
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.min() >= IMBALANCE


def _config(preset: str, custom: dict | None) -> AugmentConfig:
    return AugmentConfig.from_dict(custom or {}) if preset == "custom" else get_preset(preset)


#: ``auto`` augments few-shot data only: measured gains are 0 to +2 points at 5–20 examples per
#: class (benchmarks/RESULTS.md) while every recipe embeds all its copies — 30 s of a 500-image
#: project's cold run here. Beyond this many training examples per class (mean), auto skips it.
AUTO_AUGMENT_MAX_PER_CLASS = 30


def recipes_to_try(augmentation: str, custom: dict | None, copies: int, target_ratio: float,
                   y: np.ndarray, copies_possible: bool = True) -> list[Recipe]:
    """The recipes selection compares with "no augmentation", in a fixed order.

    ``augmentation`` is the project setting: ``auto`` tries the light and medium presets
    (while classes have at most ``AUTO_AUGMENT_MAX_PER_CLASS`` examples on average), a preset
    name or ``custom`` tries just that one, ``off`` tries none. Balancing strategies are added
    only when the classes are imbalanced.
    """
    few = len(y) <= AUTO_AUGMENT_MAX_PER_CLASS * max(1, len(np.unique(y)))
    presets = ([] if augmentation == "off" else (["light", "medium"] if few else []) if augmentation == "auto"
               else [augmentation])
    recipes = [Recipe(f"augment:{p}", _config(p, custom).to_dict(), copies) for p in presets if copies > 0]
    if is_imbalanced(y):
        recipes.append(Recipe("balance:class_weights", balance="weights"))
        if not copies_possible or augmentation == "off":  # "off" never makes augmented copies
            return recipes
        source = presets[0] if presets else "light"
        recipes.append(Recipe(f"balance:copies({source})", _config(source, custom).to_dict(), 0, "copies",
                              target_ratio))
    return recipes


def project_augment_config(core: Core, project: str, preset: str | None = None) -> AugmentConfig:
    """The augmentation a project's setting stands for (``auto`` previews ``medium``)."""
    from ..kernel.project_settings import ProjectSettings
    from ..kernel.projects import get_project

    settings = ProjectSettings(**get_project(core, project).settings)
    name = preset or settings.augmentation
    if name in ("auto", "off"):
        name = "medium" if name == "auto" else "none"
    return _config(name, settings.augmentation_custom)


@dataclass
class Copies:
    """Augmented copies of some training samples: features per kind, labels, source indices."""

    X: dict[str, np.ndarray]
    y: np.ndarray
    source: np.ndarray  # index into the version's items
    report: dict

    def __post_init__(self) -> None:
        self.X = FeatureSet(self.X)  # answers an ensemble's composite kind too


def make_copies(recipe: Recipe, sources: np.ndarray, y: np.ndarray, hashes: list[str], kinds: list[str],
                X: dict[str, np.ndarray], *, extractor: FeatureExtractor, load_image: Callable[[str], bytes],
                seed: int, progress: Callable[[float], None] | None = None) -> Copies:
    """Plan and embed the recipe's copies of ``sources`` (training samples only)."""
    kinds = base_kinds(kinds)  # an ensemble's composite kind is built from these
    if not recipe.makes_copies:  # (no class index is needed: a target without classes gets here too)
        report = weights_report(y[sources], int(y.max()) + 1).to_dict() if recipe.balance == "weights" else {}
        return Copies({k: X[k][:0] for k in kinds}, np.zeros(0, np.int64), np.zeros(0, np.int64), report)
    n_classes = int(y.max()) + 1
    plan = plan_augmented_copies(y[sources], copies_per_sample=recipe.copies_per_sample,
                                 balance_target_ratio=recipe.target_ratio if recipe.balance == "copies" else None,
                                 seed=seed, sample_keys=[hashes[i] for i in sources])
    config = AugmentConfig.from_dict(recipe.augment)
    aug_id = augmentation_id(config)
    keys = [f"{hashes[sources[c.source_index]]}.{aug_id}.{c.copy_seed}" for c in plan]
    seeds = {key: c.copy_seed for key, c in zip(keys, plan)}

    def load(key: str) -> np.ndarray:
        content = key.split(".", 1)[0]
        return augment(imaging.model_input(imaging.decode_image(load_image(content))), config, seeds[key])

    feats = extractor.features_by_kind(kinds, keys, load, progress=progress)
    source = np.array([sources[c.source_index] for c in plan], np.int64)
    report = copies_report(y[sources], plan, copies_per_sample=recipe.copies_per_sample,
                           balance_target_ratio=recipe.target_ratio if recipe.balance == "copies" else None).to_dict()
    return Copies(feats, y[source], source, report)


def extend_folds(folds: list[tuple[np.ndarray, np.ndarray]], copy_source: np.ndarray,
                 n_originals: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds over originals → folds over originals + copies (rows ``n_originals + k``).

    Copy k joins the training side of every fold that trains on its source, and is never
    validated on: no augmented twin of a validation image is ever seen in training.

    >>> extend_folds([(np.array([0]), np.array([1]))], np.array([0, 1]), 2)
    [(array([0, 2]), array([1]))]
    """
    return [(np.concatenate([tr, n_originals + np.flatnonzero(np.isin(copy_source, tr))]), va) for tr, va in folds]


def training_arrays(train_idx: np.ndarray, X: np.ndarray, y: np.ndarray, kind: str, recipe: Recipe,
                    copies: Copies) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Features, labels and weights to fit on: ``train_idx`` plus the copies of exactly those samples."""
    mine = np.isin(copies.source, train_idx)
    X_fit = np.concatenate([X[train_idx], copies.X[kind][mine]]) if mine.any() else X[train_idx]
    y_fit = np.concatenate([y[train_idx], copies.y[mine]]) if mine.any() else y[train_idx]
    weights = None
    if recipe.balance == "weights":
        weights = class_weights(y_fit, int(y.max()) + 1)[y_fit]
    return X_fit, y_fit, weights
