"""The promotion gate: a new model replaces the one in service only if it is not worse."""

from __future__ import annotations

from typing import Any

from ..project_settings import ProjectSettings

__all__ = ["decide"]


def decide(new: dict[str, Any], production: dict[str, Any] | None, baseline: dict[str, Any],
           settings: ProjectSettings) -> tuple[bool, str]:
    """(promote?, why). ``new`` and ``production`` are metrics measured on the same data.

    >>> s = ProjectSettings()
    >>> decide({"macro_f1": .9, "per_class": {}}, None, {"macro_f1": .3}, s)[0]
    True
    """
    metric = settings.gate_metric
    score = float(new[metric])
    if production is None:
        floor = float(baseline.get(metric, 0.0))
        if score > floor:
            return True, f"first model: {metric} {score:.3f} beats always guessing the largest class ({floor:.3f})"
        return False, (f"{metric} {score:.3f} is no better than always guessing the largest class ({floor:.3f}); "
                       "add more or clearer examples")
    old = float(production[metric])
    if score < old - settings.gate_tolerance:
        return False, (f"{metric} would drop from {old:.3f} to {score:.3f} (more than the allowed "
                       f"{settings.gate_tolerance:.3f}); the model in service stays")
    drops = []
    for label, stats in production.get("per_class", {}).items():
        if label in new.get("per_class", {}):
            before, after = float(stats["recall"]), float(new["per_class"][label]["recall"])
            if after < before - settings.gate_class_recall_tolerance:
                drops.append(f"{label} {before:.2f}→{after:.2f}")
    if drops:
        return False, (f"recall would drop too much for: {', '.join(drops)} (allowed "
                       f"{settings.gate_class_recall_tolerance:.2f}); the model in service stays")
    return True, f"{metric} {old:.3f} → {score:.3f} on the same data; no class got worse beyond tolerance"
