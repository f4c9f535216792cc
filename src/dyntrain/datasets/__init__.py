"""Datasets: changes to samples and classes, immutable versions, augmentation, balancing, health.

Import submodules directly (``from dyntrain.datasets import changes``); the names below are
the pure, database-free parts.
"""

from .augment import (
    AUGMENT_VERSION, PRESETS, AugmentConfig, apply_params, augment, augmentation_id, draw_params, get_preset,
    preview_grid,
)
from .balance import (
    AugmentedCopy, BalanceReport, class_weights, copies_report, copy_groups, plan_augmented_copies, weights_report,
)
from .health import Finding, HealthSample, check_health, hash_distance, phash

__all__ = [
    "AUGMENT_VERSION", "PRESETS", "AugmentConfig", "apply_params", "augment", "augmentation_id", "draw_params",
    "get_preset", "preview_grid", "AugmentedCopy", "BalanceReport", "class_weights", "copies_report",
    "copy_groups", "plan_augmented_copies", "weights_report", "Finding", "HealthSample", "check_health",
    "hash_distance", "phash",
]
