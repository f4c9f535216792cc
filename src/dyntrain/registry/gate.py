"""The promotion gate: a new model replaces the one in service only if it is not worse."""

from __future__ import annotations

from typing import Any

from ..project_settings import ProjectSettings

__all__ = ["decide"]


def decide(new: dict[str, Any], production: dict[str, Any] | None, baseline: dict[str, Any],
           settings: ProjectSettings) -> tuple[bool, str]:
    """(promote?, why). ``new`` and ``production`` are metrics measured on the same data.

    Classification metrics carry ``macro_f1``; regression metrics carry ``r2`` and ``mae``
    (then ``gate_metric`` is r2 or mae, and the baseline is always predicting the training
    mean).

    >>> s = ProjectSettings()
    >>> decide({"macro_f1": .9, "per_class": {}}, None, {"macro_f1": .3}, s)[0]
    True
    >>> decide({"r2": .6, "mae": 3.0}, {"r2": .7, "mae": 2.5}, {}, ProjectSettings(gate_metric="r2"))[0]
    False
    """
    if "r2" in new and "macro_f1" not in new:
        return _decide_regression(new, production, baseline, settings)
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


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _decide_regression(new: dict[str, Any], production: dict[str, Any] | None, baseline: dict[str, Any],
                       settings: ProjectSettings) -> tuple[bool, str]:
    """R²: higher is better, ``gate_tolerance`` absolute. MAE: lower is better, the new error
    may exceed the old by ``gate_tolerance`` × the old error (MAE is in the target's unit)."""
    metric = settings.gate_metric if settings.gate_metric in ("r2", "mae") else "r2"
    score = new.get(metric)
    if score is None:
        return False, f"{metric} could not be measured (too few examples); the model in service stays"
    score = float(score)
    if production is None:
        floor = baseline.get(metric)
        if floor is None:
            return True, f"first model: {metric} {_fmt(score)}"
        floor = float(floor)
        better = score > floor if metric == "r2" else score < floor
        if better:
            return True, (f"first model: {metric} {_fmt(score)} beats always predicting the average "
                          f"({_fmt(floor)})")
        return False, (f"{metric} {_fmt(score)} is no better than always predicting the average ({_fmt(floor)}); "
                       "add more rows or more informative columns")
    old = production.get(metric)
    if old is None:
        return True, f"{metric} {_fmt(score)}; the model in service has no {metric} to compare with"
    old = float(old)
    if metric == "r2" and score < old - settings.gate_tolerance:
        return False, (f"r2 would drop from {_fmt(old)} to {_fmt(score)} (more than the allowed "
                       f"{settings.gate_tolerance:.3f}); the model in service stays")
    if metric == "mae" and score > old * (1 + settings.gate_tolerance):
        return False, (f"mae would rise from {_fmt(old)} to {_fmt(score)} (more than the allowed "
                       f"{settings.gate_tolerance:.1%}); the model in service stays")
    return True, f"{metric} {_fmt(old)} → {_fmt(score)} on the same data"
