"""Data health: problems in a labelled image set that a user can fix, in plain words.

:func:`check_health` looks for too few examples per class, class imbalance, exact and
near duplicates, the same picture under two labels, likely mislabelled images (from
backbone features), tiny and corrupt images. Each :class:`Finding` names the samples and
says what to do.

Near duplicates are found in two steps: a 64-bit perceptual hash (:func:`phash`, the same
algorithm and hex format as the ``imagehash`` library's ``phash``, written here in ~20 lines
of numpy rather than adding imagehash + PyWavelets) proposes candidate pairs, and a
32x32 colour thumbnail comparison confirms them. The hash alone confuses simple images
(upscaled 8x8 digits, products on white) and ignores colour (a red and a blue can would
look the same); the thumbnail check does not.

>>> from PIL import Image
>>> img = Image.new("RGB", (64, 64), (200, 30, 30))
>>> s = [HealthSample(1, "red", "a", img, 64, 64, None), HealthSample(2, "blue", "a", img, 64, 64, None)]
>>> sorted({f.kind for f in check_health(s, min_per_class=1)})
['conflicting_labels']
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..kernel.errors import Invalid

__all__ = ["HealthSample", "Finding", "KINDS", "check_health", "phash", "hash_distance"]

# Kinds in the order a user should look at them (also the order of findings of one severity).
KINDS = (
    "corrupt_image",
    "conflicting_labels",
    "too_few_examples",
    "likely_mislabelled",
    "exact_duplicate",
    "near_duplicate",
    "imbalance",
    "tiny_image",
)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

# A verified near duplicate: phash within this many bits AND colour thumbnails this close
# (RMS in units of the image's own contrast). Measured on the scikit-learn sample photos:
# re-encoded JPEGs (q30-60), 50-80% resizes and 10% brightness changes score <= 0.07; a 2.5%
# crop or shift 0.23, distinct crops of one photo >= 0.45, distinct upscaled digits >= 0.15.
_NEAR_BITS = 8
_NEAR_RMS = 0.12
# Above this share of flagged examples, features do not separate the classes: flag none.
_MAX_MISLABELLED_FRACTION = 0.1


@dataclass(frozen=True)
class HealthSample:
    """One stored sample as the checks see it. ``image`` is None when it could not be decoded
    (then ``error`` says why). ``image`` may be a stored thumbnail (160 px is plenty):
    ``width`` and ``height`` must be the original's. ``phash``, if the platform stored it
    (see :func:`phash`), saves recomputing it."""

    id: int
    label: str
    sha256: str
    image: Image.Image | None
    width: int
    height: int
    error: str | None = None
    phash: str | None = None


@dataclass(frozen=True)
class Finding:
    """One problem: what (``kind``), how bad (``severity``: error | warning | info), a message
    naming what was found, the samples involved, and ``advice`` on what to do about it."""

    kind: str
    severity: str
    message: str
    sample_ids: list[int]
    advice: str
    labels: list[str] = field(default_factory=list)  # the classes concerned

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "sample_ids": list(self.sample_ids),
            "advice": self.advice,
            "labels": list(self.labels),
        }


# ------------------------------------------------------------------------ perceptual hash


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))  # scipy.fftpack.dct type II, unnormalised


def _phash_bits(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _dct_matrix(32)
    low = (d @ pixels @ d.T)[:8, :8]  # lowest 8x8 frequencies
    return (low > np.median(low)).ravel()


def phash(image: Image.Image) -> str:
    """64-bit perceptual hash as 16 hex digits (same as ``str(imagehash.phash(image))``).

    Robust to re-encoding, resizing and small brightness changes; compare two hashes with
    :func:`hash_distance` (number of differing bits, 0..64).

    >>> from PIL import Image
    >>> len(phash(Image.new("RGB", (40, 30), "white")))
    16
    """
    bits = _phash_bits(image)
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_distance(a: str, b: str) -> int:
    """Hamming distance between two :func:`phash` strings.

    >>> hash_distance("ff00000000000000", "fe00000000000000")
    1
    """
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _hash_bytes(s: HealthSample) -> np.ndarray:
    if s.phash:
        try:
            return np.frombuffer(int(s.phash, 16).to_bytes(8, "big"), np.uint8)
        except (ValueError, OverflowError):
            raise Invalid(f"sample {s.id}: phash must be 16 hex digits, got {s.phash!r}") from None
    return np.packbits(_phash_bits(s.image))


def _popcount(rows: np.ndarray) -> np.ndarray:
    """Set bits per row of a (n, bytes) uint8 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(rows).sum(axis=1, dtype=np.int64)
    return np.unpackbits(rows, axis=1).sum(axis=1, dtype=np.int64)


def _thumb(image: Image.Image) -> np.ndarray:
    a = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BOX), np.float32)
    a = a - a.mean()
    return (a / (a.std() + 1e-3)).ravel()


# ---------------------------------------------------------------------------- the checks


class _Groups:
    """Union-find over sample positions."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def _ids(samples: Sequence[HealthSample], positions) -> list[int]:
    return sorted(samples[p].id for p in positions)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_health(
    samples: Sequence[HealthSample],
    *,
    features: np.ndarray | None = None,
    min_per_class: int = 5,
    imbalance_ratio: float = 3.0,
    min_side: int = 32,
) -> list[Finding]:
    """All findings for this set of samples, most serious first.

    ``features``, if given, are backbone embeddings aligned with ``samples`` (row i is
    sample i; the platform passes EfficientNet-Lite0 features); rows of corrupt images may
    be anything (they are ignored). Without them ``likely_mislabelled`` is not checked.
    Duplicates count once towards ``min_per_class`` and ``imbalance_ratio``.

    >>> check_health([])
    []
    """
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 1:
        raise Invalid(f"min_per_class must be a positive integer, got {min_per_class!r}")
    if not imbalance_ratio >= 1.0:
        raise Invalid(f"imbalance_ratio must be at least 1, got {imbalance_ratio!r}")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise Invalid("sample ids must be unique")
    if features is not None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[0] != len(samples):
            raise Invalid(f"features must have one row per sample: shape {features.shape} for {len(samples)} samples")

    findings: list[Finding] = []
    usable = [i for i, s in enumerate(samples) if s.image is not None and s.error is None]
    usable_set = set(usable)

    for i, s in enumerate(samples):
        if i not in usable_set:
            findings.append(Finding(
                "corrupt_image", "error",
                f"Sample {s.id} ('{s.label}') cannot be opened as an image: {s.error or 'no image data'}.",
                [s.id],
                "Delete it and upload the photo again, saved as JPEG or PNG. It is left out of training.",
                [s.label],
            ))

    tiny = [i for i in usable if min(samples[i].width, samples[i].height) < min_side]
    if tiny:
        smallest = min(tiny, key=lambda i: samples[i].width * samples[i].height)
        findings.append(Finding(
            "tiny_image", "warning",
            f"{_plural(len(tiny), 'image')} {'is' if len(tiny) == 1 else 'are'} smaller than {min_side} pixels on a side "
            f"(the smallest, sample {samples[smallest].id}, is {samples[smallest].width}x{samples[smallest].height}).",
            _ids(samples, tiny),
            "Use larger photos if you have them: the model looks at 224x224 pixels, so a tiny image is "
            "blown up and blurry and shows little detail.",
            sorted({samples[i].label for i in tiny}),
        ))

    findings += _duplicates(samples, usable)
    conflicted = {sid for f in findings if f.kind == "conflicting_labels" for sid in f.sample_ids}
    findings += _counts(samples, usable, min_per_class, imbalance_ratio)
    if features is not None:
        findings += _mislabelled(samples, usable, features, exclude=conflicted)

    findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], KINDS.index(f.kind), f.sample_ids))
    return findings


def _duplicates(samples: Sequence[HealthSample], usable: list[int]) -> list[Finding]:
    n = len(samples)
    groups = _Groups(n)
    first_by_sha: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s.sha256 in first_by_sha:
            groups.union(i, first_by_sha[s.sha256])
        else:
            first_by_sha[s.sha256] = i

    # Near duplicates among one representative per distinct content.
    reps = list({samples[i].sha256: i for i in reversed(usable)}.values())  # first usable per content
    if len(reps) > 1:
        packed = np.stack([_hash_bytes(samples[i]) for i in reps])  # (n, 8) uint8
        thumbs: dict[int, np.ndarray] = {}
        for a in range(len(reps) - 1):  # row by row: memory stays O(n)
            dist = _popcount(packed[a] ^ packed[a + 1 :])
            for off in np.nonzero(dist <= _NEAR_BITS)[0]:
                b = a + 1 + int(off)
                ta = thumbs.setdefault(a, _thumb(samples[reps[a]].image))
                tb = thumbs.setdefault(b, _thumb(samples[reps[b]].image))
                if float(np.sqrt(np.mean((ta - tb) ** 2))) <= _NEAR_RMS:
                    groups.union(reps[a], reps[b])

    components: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        components[groups.find(i)].append(i)

    out: list[Finding] = []
    for members in components.values():
        if len(members) < 2:
            continue
        labels = sorted({samples[i].label for i in members})
        ids = _ids(samples, members)
        exact = len({samples[i].sha256 for i in members}) == 1
        if len(labels) > 1:
            by_label = "; ".join(
                f"'{lab}': {', '.join(str(samples[i].id) for i in sorted(members, key=lambda i: samples[i].id) if samples[i].label == lab)}"
                for lab in labels
            )
            out.append(Finding(
                "conflicting_labels", "error",
                f"The {'same' if exact else 'same (or almost the same)'} picture is labelled differently "
                f"({by_label}).",
                ids,
                "Decide which label is right, then relabel or delete the other copies. The model cannot "
                "learn two answers for one picture, and its measured accuracy will be wrong.",
                labels,
            ))
            continue
        by_sha: dict[str, list[int]] = defaultdict(list)
        for i in members:
            by_sha[samples[i].sha256].append(i)
        for same in by_sha.values():
            if len(same) > 1:
                out.append(Finding(
                    "exact_duplicate", "warning",
                    f"Samples {', '.join(map(str, _ids(samples, same)))} are the same file uploaded "
                    f"{len(same)} times (class '{labels[0]}').",
                    _ids(samples, same),
                    "Delete the extra copies. Duplicates add nothing to learn from and make the measured "
                    "accuracy look better than it is, because one copy can be trained on and another tested.",
                    labels,
                ))
        if len(by_sha) > 1:
            out.append(Finding(
                "near_duplicate", "warning",
                f"Samples {', '.join(map(str, ids))} look like the same photo (resized, recompressed or "
                f"slightly edited) in class '{labels[0]}'.",
                ids,
                "Keep one and delete the others, or replace them with genuinely different photos (another "
                "angle, background or light). Near copies make the measured accuracy look better than it is.",
                labels,
            ))
    return out


def _distinct_per_class(samples: Sequence[HealthSample], usable: list[int]) -> dict[str, int]:
    counts: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        counts.setdefault(s.label, set())
    for i in usable:
        counts[samples[i].label].add(samples[i].sha256)
    return {label: len(shas) for label, shas in counts.items()}


def _counts(samples: Sequence[HealthSample], usable: list[int], min_per_class: int, ratio: float) -> list[Finding]:
    counts = _distinct_per_class(samples, usable)
    out: list[Finding] = []
    for label, n in sorted(counts.items()):
        if n >= min_per_class:
            continue
        members = [s.id for s in samples if s.label == label]
        out.append(Finding(
            "too_few_examples", "error" if n < 2 else "warning",
            f"Class '{label}' has only {_plural(n, 'usable example')}; at least {min_per_class} are recommended"
            + (" (with fewer than 2 its accuracy cannot be measured)." if n < 2 else "."),
            sorted(members),
            f"Add {min_per_class - n} or more photos of '{label}', each a little different: other angles, "
            "backgrounds, distances and lighting, like the photos the model will see in use.",
            [label],
        ))
    present = {label: n for label, n in counts.items() if n > 0}
    if len(present) >= 2:
        largest_label, largest = max(sorted(present.items()), key=lambda kv: kv[1])
        small = sorted(label for label, n in present.items() if n * ratio < largest)
        if small:
            worst = min(small, key=lambda label: present[label])
            out.append(Finding(
                "imbalance", "warning",
                f"Classes are unbalanced: '{largest_label}' has {largest} examples but "
                f"'{worst}' only {present[worst]} ({largest / present[worst]:.1f} times fewer)"
                + (f"; also small: {', '.join(repr(s) for s in small if s != worst)}." if len(small) > 1 else "."),
                sorted(s.id for s in samples if s.label in small),
                "Add photos to the smaller classes until each has at least a third as many as the largest. "
                "Training compensates automatically, but the model learns most from real photos; "
                "otherwise it will tend to answer with the larger class.",
                small,
            ))
    return out


def _mislabelled(samples: Sequence[HealthSample], usable: list[int], features: np.ndarray,
                 exclude: set[int]) -> list[Finding]:
    """An example far from the rest of its class and closer to another class's centroid.

    Cosine similarity of each L2-normalised feature vector to the centroid of its own class
    *without itself* (leave-one-out, so an outlier cannot pull its own centroid), against
    the centroids of the other classes. Flagged when another class is closer by a margin and
    the example is also among the farthest from its own class (below the class median), so
    that classes which merely look alike do not flag every member.
    """
    feats = np.asarray(features, np.float64)
    rows = [i for i in usable if np.all(np.isfinite(feats[i])) and np.linalg.norm(feats[i]) > 0]
    if not rows:
        return []
    x = feats[rows] / np.linalg.norm(feats[rows], axis=1, keepdims=True)
    labels = [samples[i].label for i in rows]
    classes = sorted(set(labels))
    if len(classes) < 2:
        return []
    y = np.array([classes.index(lab) for lab in labels])
    sums = np.stack([x[y == c].sum(axis=0) for c in range(len(classes))])
    counts = np.bincount(y, minlength=len(classes))
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
    sim_all = x @ centroids.T  # (n, classes)

    own = np.full(len(rows), np.nan)
    for k in range(len(rows)):
        if counts[y[k]] >= 3:  # leave-one-out needs at least 2 others
            loo = sums[y[k]] - x[k]
            own[k] = x[k] @ loo / max(np.linalg.norm(loo), 1e-12)
    medians = {c: np.nanmedian(own[y == c]) for c in range(len(classes)) if counts[c] >= 3}
    margin = 0.02
    flagged: list[tuple[int, int]] = []
    for k in range(len(rows)):
        if np.isnan(own[k]) or samples[rows[k]].id in exclude:
            continue
        others = sim_all[k].copy()
        others[y[k]] = -np.inf
        best = int(np.argmax(others))
        if others[best] > own[k] + margin and own[k] < medians[y[k]]:
            flagged.append((k, best))
    # When many examples look "closer to another class", the features simply do not tell
    # these classes apart (e.g. tiny grey digits); accusing each example would be noise.
    if len(flagged) > max(1, _MAX_MISLABELLED_FRACTION * len(rows)):
        return []
    out: list[Finding] = []
    for k, best in flagged:
        s = samples[rows[k]]
        out.append(Finding(
            "likely_mislabelled", "warning",
            f"Sample {s.id} is labelled '{s.label}' but looks more like the '{classes[best]}' examples "
            f"than like the other '{s.label}' examples.",
            [s.id],
            f"Open it and check its label. If it is wrong, relabel it as '{classes[best]}' (or what it "
            f"really is); if it is right, add more photos like it to '{s.label}' so the model learns "
            "that these belong there too.",
            [s.label, classes[best]],
        ))
    return out
