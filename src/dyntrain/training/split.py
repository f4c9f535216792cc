"""Holdout membership as a pure function of content: adding data never reshuffles it."""

from __future__ import annotations

from collections import Counter

__all__ = ["is_holdout", "plan_evaluation", "plan_unclassed"]


def is_holdout(content_hash: str, fraction: float = 0.2) -> bool:
    """About ``fraction`` of all contents, chosen by their sha256 alone.

    Identical images share a hash, so a duplicate can never sit on both sides.

    >>> is_holdout("00" * 32), is_holdout("ff" * 32)
    (True, False)
    """
    return int(content_hash[:8], 16) / 0x1_0000_0000 < fraction


def plan_evaluation(hashes: list[str], labels: list[str], *, fraction: float, min_per_class: int) -> dict:
    """Decide how a run is measured.

    ``holdout`` when every class has at least ``min_per_class`` holdout samples: models
    train on the rest and are scored on the holdout. Otherwise ``cv``: repeated stratified
    cross-validation on the whole version, and the final model trains on everything.
    """
    holdout = [is_holdout(h, fraction) for h in hashes]
    per_class = Counter(lab for lab, h in zip(labels, holdout) if h)
    short = {lab: per_class.get(lab, 0) for lab in sorted(set(labels)) if per_class.get(lab, 0) < min_per_class}
    if short:
        return {"mode": "cv", "holdout": [False] * len(hashes),
                "reason": f"too few holdout samples for a reliable holdout score (need {min_per_class} per class; "
                          + ", ".join(f"{k}: {v}" for k, v in short.items())
                          + "): measured by repeated cross-validation on all samples, final model trained on all"}
    return {"mode": "holdout", "holdout": holdout,
            "reason": f"{sum(holdout)} holdout samples (about {fraction:.0%}, chosen by content hash) never seen "
                      "in training"}


def plan_unclassed(hashes: list[str], *, fraction: float, min_per_class: int, noun: str) -> dict:
    """How a run is measured when a sample has no one class (boxes, masks, output images).

    ``holdout`` when the holdout and the training part each hold at least twice ``min_per_class``
    samples (no class to count, so twice a class's minimum); otherwise ``cv`` over whole samples.
    ``noun`` names them in the reason ("photos", "images").

    >>> plan_unclassed(["00" * 32, "ff" * 32], fraction=0.2, min_per_class=10, noun="photos")["mode"]
    'cv'
    """
    holdout = [is_holdout(h, fraction) for h in hashes]
    need, n_out = 2 * min_per_class, sum(holdout)
    if n_out >= need and len(hashes) - n_out >= need:
        return {"mode": "holdout", "holdout": holdout,
                "reason": f"{n_out} holdout {noun} (about {fraction:.0%}, chosen by content hash) never seen in training"}
    return {"mode": "cv", "holdout": [False] * len(hashes),
            "reason": f"too few holdout {noun} for a reliable holdout score ({n_out}; need {need}): measured by "
                      f"cross-validation over {noun}, final model trained on all"}
