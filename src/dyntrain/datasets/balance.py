"""Class balancing: which augmented copies to make, or how to weight classes instead.

Two strategies a training run can choose between (and record in a :class:`BalanceReport`):

* **augmented copies** (:func:`plan_augmented_copies`): every training sample gets
  ``copies_per_sample`` augmented copies, and smaller classes get extra copies until each
  class has at least ``balance_target_ratio`` x the largest class's count;
* **class weights** (:func:`class_weights`): no new images, the loss counts each example of
  a small class more ("balanced" weights, as scikit-learn's ``class_weight="balanced"``).

Copies are only ever planned from **training** samples: the caller passes the labels of the
training part only, never holdout/test samples, so no augmented variant of a test image
can leak into training. Each copy carries its ``source_index``; use :func:`copy_groups` so
cross-validation keeps a copy in the same fold as its source.

>>> plan = plan_augmented_copies([0, 0, 0, 1], copies_per_sample=0, balance_target_ratio=1.0, seed=0)
>>> [c.source_index for c in plan]
[3, 3]
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import numpy as np

from ..kernel.errors import Invalid

__all__ = [
    "AugmentedCopy",
    "BalanceReport",
    "plan_augmented_copies",
    "class_weights",
    "copy_groups",
    "copies_report",
    "weights_report",
]


@dataclass(frozen=True)
class AugmentedCopy:
    """One augmented copy to make: augment sample ``source_index`` with ``copy_seed``."""

    source_index: int
    copy_seed: int


def _copy_seed(seed: int, key: Hashable, k: int) -> int:
    """A 63-bit seed for the k-th copy of a sample: stable for the same (seed, key, k), so a
    feature cache keyed by it stays valid when other samples are added or removed."""
    digest = hashlib.blake2b(f"{seed}\x1f{key!r}\x1f{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _check_labels(labels: Sequence[int]) -> list[int]:
    out = []
    for y in labels:
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
            raise Invalid(f"labels must be integers (class indices), got {y!r}")
        out.append(int(y))
    return out


def plan_augmented_copies(
    labels: Sequence[int],
    *,
    copies_per_sample: int,
    balance_target_ratio: float | None,
    seed: int,
    sample_keys: Sequence[Hashable] | None = None,
) -> list[AugmentedCopy]:
    """Plan augmented copies of the *training* samples whose class indices are ``labels``.

    Every sample gets ``copies_per_sample`` copies. Then, if ``balance_target_ratio`` is
    set, each class whose count (originals + copies) is below
    ``ceil(balance_target_ratio * largest class count)`` gets exactly enough extra copies to
    reach it, spread round-robin over its samples in a seeded random order (so with 5
    samples and 7 extra copies, two samples get 2 and three get 1). ``1.0`` means fully
    balanced; ``None`` turns balancing off.

    ``sample_keys`` (e.g. content hashes), if given, make each copy's seed depend on the
    sample rather than its position, so copies (and their cached features) survive edits
    to other samples. Copies come back ordered by source index, then copy number.

    >>> plan = plan_augmented_copies([0, 1], copies_per_sample=2, balance_target_ratio=None, seed=1)
    >>> [c.source_index for c in plan], len({c.copy_seed for c in plan})
    ([0, 0, 1, 1], 4)
    """
    ys = _check_labels(labels)
    if isinstance(copies_per_sample, bool) or not isinstance(copies_per_sample, int) or copies_per_sample < 0:
        raise Invalid(f"copies_per_sample must be a non-negative integer, got {copies_per_sample!r}")
    if balance_target_ratio is not None:
        r = balance_target_ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0.0 < r <= 1.0):
            raise Invalid(f"balance_target_ratio must be in (0, 1] or None, got {r!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise Invalid(f"seed must be an integer, got {seed!r}")
    if sample_keys is not None:
        if len(sample_keys) != len(ys):
            raise Invalid(f"sample_keys has {len(sample_keys)} entries for {len(ys)} labels")
        if len(set(sample_keys)) != len(sample_keys):
            raise Invalid("sample_keys must be unique (two samples with one key would get identical copies)")
    keys = list(sample_keys) if sample_keys is not None else list(range(len(ys)))

    n_copies = [copies_per_sample] * len(ys)
    if balance_target_ratio is not None and ys:
        by_class: dict[int, list[int]] = {}
        for i, y in enumerate(ys):
            by_class.setdefault(y, []).append(i)
        totals = {y: len(idx) * (1 + copies_per_sample) for y, idx in by_class.items()}
        # The small epsilon keeps float noise from adding a copy: ceil(0.3 * 10) must be 3, not 4.
        target = math.ceil(balance_target_ratio * max(totals.values()) - 1e-9)
        rng = np.random.default_rng([seed, 0xBA1A])
        for y in sorted(by_class):
            extra = target - totals[y]
            if extra <= 0:
                continue
            members = by_class[y]
            order = [members[j] for j in rng.permutation(len(members))]
            for j in range(extra):
                n_copies[order[j % len(order)]] += 1
    return [
        AugmentedCopy(i, _copy_seed(seed, keys[i], k))
        for i in range(len(ys))
        for k in range(n_copies[i])
    ]


def class_weights(labels: Sequence[int], n_classes: int) -> np.ndarray:
    """"Balanced" weights ``n_samples / (n_classes_present * count[c])``, as scikit-learn's
    ``class_weight="balanced"``: the mean weight over samples is 1. A class with no samples
    gets weight 0 (there is nothing to weight).

    >>> class_weights([0, 0, 0, 1], 2).tolist()
    [0.6666666666666666, 2.0]
    """
    ys = np.asarray(_check_labels(labels), dtype=np.int64)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise Invalid(f"n_classes must be a positive integer, got {n_classes!r}")
    if ys.size and (ys.min() < 0 or ys.max() >= n_classes):
        raise Invalid(f"labels must be class indices in 0..{n_classes - 1}")
    counts = np.bincount(ys, minlength=n_classes).astype(np.float64)
    present = int((counts > 0).sum())
    weights = np.zeros(n_classes, np.float64)
    if present:
        weights[counts > 0] = ys.size / (present * counts[counts > 0])
    return weights


def copy_groups(n_samples: int, copies: Sequence[AugmentedCopy]) -> np.ndarray:
    """Group ids for the rows ``[sample 0..n-1, then the copies in order]``: a copy shares
    its source's group, so ``GroupKFold(...).split(X, y, groups)`` never puts an image in
    training and its own augmented variant in validation (or the other way round).

    >>> copy_groups(2, [AugmentedCopy(1, 5), AugmentedCopy(0, 6)]).tolist()
    [0, 1, 1, 0]
    """
    for c in copies:
        if not 0 <= c.source_index < n_samples:
            raise Invalid(f"copy refers to sample {c.source_index}, outside 0..{n_samples - 1}")
    return np.array(list(range(n_samples)) + [c.source_index for c in copies], dtype=np.int64)


@dataclass(frozen=True)
class BalanceReport:
    """What balancing did, for the run record and the UI.

    ``counts_after`` are the effective counts the learner sees: originals + copies for
    ``augmented_copies``, and count x weight for ``class_weights``.
    """

    strategy: str  # "none" | "augmented_copies" | "class_weights"
    counts_before: dict[int, int]
    counts_after: dict[int, float]
    copies_per_sample: int = 0
    balance_target_ratio: float | None = None
    n_copies: int = 0
    weights: dict[int, float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-able dict; classes keyed by name when ``class_names`` is given, else by index."""

        def name(y: int) -> str:
            return class_names[y] if class_names is not None and 0 <= y < len(class_names) else str(y)

        def keyed(d: dict[int, Any] | None) -> dict[str, Any] | None:
            return None if d is None else {name(y): v for y, v in sorted(d.items())}

        return {
            "strategy": self.strategy,
            "counts_before": keyed(self.counts_before),
            "counts_after": keyed(self.counts_after),
            "copies_per_sample": self.copies_per_sample,
            "balance_target_ratio": self.balance_target_ratio,
            "n_copies": self.n_copies,
            "weights": keyed(self.weights),
            "notes": list(self.notes),
        }


def copies_report(
    labels: Sequence[int],
    copies: Sequence[AugmentedCopy],
    *,
    copies_per_sample: int,
    balance_target_ratio: float | None,
) -> BalanceReport:
    """Describe a plan from :func:`plan_augmented_copies` (strategy ``none`` if it is empty)."""
    ys = _check_labels(labels)
    before = dict(Counter(ys))
    after: dict[int, float] = {y: float(n) for y, n in before.items()}
    for c in copies:
        if not 0 <= c.source_index < len(ys):
            raise Invalid(f"copy refers to sample {c.source_index}, outside 0..{len(ys) - 1}")
        after[ys[c.source_index]] += 1
    notes = [
        f"class {y}: {int(after[y]) - n} augmented copies made from only {n} original(s); "
        "more real examples would help more than copies"
        for y, n in sorted(before.items())
        if after[y] - n > 5 * n
    ]
    return BalanceReport(
        strategy="augmented_copies" if copies else "none",
        counts_before=before,
        counts_after=after,
        copies_per_sample=copies_per_sample,
        balance_target_ratio=balance_target_ratio,
        n_copies=len(copies),
        notes=notes,
    )


def weights_report(labels: Sequence[int], n_classes: int) -> BalanceReport:
    """Describe the :func:`class_weights` strategy for these labels."""
    ys = _check_labels(labels)
    w = class_weights(ys, n_classes)
    before = dict(Counter(ys))
    return BalanceReport(
        strategy="class_weights",
        counts_before=before,
        counts_after={y: float(n * w[y]) for y, n in before.items()},
        weights={y: float(w[y]) for y in range(n_classes)},
    )
