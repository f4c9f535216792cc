"""Feature extraction with an on-disk cache, so a retrain only embeds what is new.

A *kind* names what a learner consumes:

* ``"lite0.pooled"`` — float32 [1280], Lite0's pooled features (linear probe),
* ``"lite0.block15_in"`` — float32 [192,7,7], activation entering Lite0's last block
  (fine-tuning),
* ``"pixels.gray32"`` — float32 [32,32] in 0..1, greyscale box-downsampled pixels (small
  CNN, pixel logistic regression); pure numpy, no backbone.

A *composite* kind (``"lite0.pooled+pixels.gray32"``, :func:`composite_kind`) is several kinds side
by side, for a learner made of several (the soft-vote ensemble): one structured array with a field
per kind, so rows are still indexed, sliced and concatenated like any feature array.
:class:`FeatureSet` holds features by kind and builds a composite kind when asked for it.

Features are cached per (key, kind, backbone id, :data:`dyntrain.codecs.imaging.PREPROCESSING`) as
one ``.npy`` file. ``key`` is opaque to us: the caller passes a blob sha256, or
``sha256 + augmentation id`` for an augmented copy. A cache file that cannot be read or has
the wrong shape/dtype/non-finite values is recomputed and overwritten, never returned.

>>> fx = FeatureExtractor("/tmp/dyntrain-cache")  # doctest: +SKIP
>>> X = fx.features("lite0.pooled", ["ab12...", "cd34..."], load=lambda key: images[key])  # doctest: +SKIP
>>> X.shape  # doctest: +SKIP
(2, 1280)
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..codecs import imaging
from ..kernel.errors import Invalid
from ..storage.files import atomic_write
from . import backbone as bb

__all__ = [
    "KindSpec",
    "KINDS",
    "POOLED",
    "ACTIVATION",
    "GRAY32",
    "FeatureExtractor",
    "gray32",
    "l2_normalize",
    "composite_kind",
    "base_kinds",
    "FeatureSet",
]

POOLED = "lite0.pooled"
ACTIVATION = f"lite0.{bb.ACTIVATION}"
GRAY32 = "pixels.gray32"

# Same luma weights and exact 7x7 box as the in-graph twin (_nets.Gray32).
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_GRAY_POOL = imaging.INPUT_SIZE // 32


@dataclass(frozen=True)
class KindSpec:
    """What a feature kind is: its per-sample shape, and which backbone output (if any)."""

    shape: tuple[int, ...]
    backbone_output: str | None  # name of the backbone ONNX output, None = computed in numpy
    version: str  # part of the cache path; bump when the computation changes


KINDS: dict[str, KindSpec] = {
    POOLED: KindSpec((bb.POOLED_DIM,), "pooled", "v1"),
    ACTIVATION: KindSpec(bb.ACTIVATION_SHAPE, bb.ACTIVATION, "v1"),
    GRAY32: KindSpec((32, 32), None, "gray32-box7-v1"),
}

#: Joins the kinds of a composite kind (no feature kind name contains it).
KIND_SEPARATOR = "+"


def composite_kind(kinds: Iterable[str]) -> str:
    """The kind of features several kinds side by side (one kind stays itself).

    >>> composite_kind(["pixels.gray32", "lite0.pooled", "pixels.gray32"])
    'lite0.pooled+pixels.gray32'
    >>> composite_kind(["lite0.pooled"])
    'lite0.pooled'
    """
    return KIND_SEPARATOR.join(sorted(set(kinds)))


def base_kinds(kinds: Iterable[str]) -> list[str]:
    """The plain kinds that ``kinds`` (composite or not) are made of, in first-use order.

    >>> base_kinds(["lite0.pooled+pixels.gray32", "pixels.gray32", "text.raw"])
    ['lite0.pooled', 'pixels.gray32', 'text.raw']
    """
    return list(dict.fromkeys(k for kind in kinds for k in kind.split(KIND_SEPARATOR)))


class FeatureSet(dict):
    """Features by kind (a dict) that also answers composite kinds, built once from their parts.

    >>> fs = FeatureSet({"a.x": np.zeros((2, 3), np.float32), "b.y": np.array(["s", "t"], dtype=object)})
    >>> both = fs["a.x+b.y"]
    >>> both.shape, both["a.x"].shape, list(both[[1]]["b.y"])
    ((2,), (2, 3), ['t'])
    """

    def __missing__(self, kind: str) -> np.ndarray:
        parts = kind.split(KIND_SEPARATOR)
        if len(parts) < 2:
            raise KeyError(kind)
        arrays = {k: self[k] for k in parts}
        n = {len(v) for v in arrays.values()}
        if len(n) != 1:
            raise Invalid(f"features of kinds {parts} have different numbers of rows ({sorted(n)})")
        # strings (text.raw) stay Python objects: a fixed-width field would pad every row to the longest text
        dtype = np.dtype([(k, object if v.dtype.kind in "OUS" else v.dtype, v.shape[1:])
                          for k, v in arrays.items()])
        out = np.empty(n.pop(), dtype)
        for k, v in arrays.items():
            out[k] = v
        self[kind] = out
        return out


_SAFE_KEY = re.compile(r"^[A-Za-z0-9._+-]{1,128}$")
LoadFn = Callable[[str], np.ndarray]
ProgressFn = Callable[[float], None]


def gray32(images: np.ndarray) -> np.ndarray:
    """uint8 [N,224,224,3] -> float32 [N,32,32] in 0..1 (luma, exact 7x7 box average).

    >>> gray32(np.full((1, 224, 224, 3), 255, np.uint8)).max().round(4)
    np.float32(1.0)
    """
    images = _check_images(images)
    n, k = len(images), _GRAY_POOL
    # Sum each 7x7 box per channel in integers first (exact), then weight once per box: the same
    # values as weighting every pixel in float (within 3e-7), measured x7 faster. The sums are 2x7
    # whole-array adds (a box row fits uint16: 7 x 255), measured x5 faster than numpy's sum over
    # the two box axes, which reduces element by element.
    pixels = images.reshape(n, 32, k, 32, k, 3)
    rows = pixels[:, :, :, :, 0].astype(np.uint16)
    for j in range(1, k):
        rows += pixels[:, :, :, :, j]
    boxes = rows[:, :, 0].astype(np.int32)
    for i in range(1, k):
        boxes += rows[:, :, i]
    return (boxes.astype(np.float32) @ _GRAY_WEIGHTS) / np.float32(255.0 * k * k)


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); matches the ONNX head's epsilon."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.sqrt((X * X).sum(axis=1, keepdims=True))
    return X / np.maximum(norms, np.float32(1e-12))


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    size = imaging.INPUT_SIZE
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise Invalid(f"expected uint8 images [N,{size},{size},3] from imaging.model_input, got {images.dtype} {images.shape}")
    return images


class FeatureExtractor:
    """Computes and caches features of images identified by content keys.

    ``cache_dir`` holds the exported backbone (``backbones/``) and the feature cache
    (``features/``); it is safe to share between processes (atomic writes).
    ``threads`` sets ONNX Runtime's intra-op threads. :attr:`computed` counts images
    embedded (not served from cache) by this instance, per kind.
    """

    def __init__(self, cache_dir: str | os.PathLike, threads: int = 2, batch_size: int = 16) -> None:
        self.cache_dir = Path(cache_dir)
        self.threads = int(threads)
        self.batch_size = int(batch_size)
        self.computed: dict[str, int] = {}

    # -- public API --------------------------------------------------------------------
    def features(
        self,
        kind: str,
        keys: list[str],
        load: LoadFn,
        *,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Features of ``kind`` for ``keys`` in order, shape (len(keys), *shape), float32.

        ``load(key)`` returns the uint8 [224,224,3] image; it is called only for keys not
        in the cache, once per distinct key. ``progress(fraction)`` reports the fraction of
        uncached images done (it may raise ``Cancelled``).
        """
        return self.features_by_kind([kind], keys, load, progress=progress)[kind]

    def features_by_kind(
        self,
        kinds: Iterable[str],
        keys: list[str],
        load: LoadFn,
        *,
        progress: ProgressFn | None = None,
    ) -> dict[str, np.ndarray]:
        """Several kinds at once: each image is loaded once and the backbone runs once.

        >>> fx.features_by_kind(["lite0.pooled", "pixels.gray32"], keys, load)  # doctest: +SKIP
        {'lite0.pooled': array(...), 'pixels.gray32': array(...)}
        """
        kinds = list(dict.fromkeys(kinds))
        for kind in kinds:
            if kind not in KINDS:
                raise Invalid(f"unknown feature kind {kind!r}; known: {', '.join(KINDS)}")
        keys = [str(k) for k in keys]
        unique = list(dict.fromkeys(keys))
        values: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in kinds}
        missing: dict[str, list[str]] = {}  # key -> kinds to compute
        for kind in kinds:
            for key in unique:
                arr = self._read(kind, key)
                if arr is None:
                    missing.setdefault(key, []).append(kind)
                else:
                    values[kind][key] = arr

        todo = list(missing)
        if progress is not None:
            progress(0.0)
        for start in range(0, len(todo), self.batch_size):
            batch_keys = todo[start : start + self.batch_size]
            images = _check_images(np.stack([np.asarray(load(k)) for k in batch_keys]))
            batch_kinds = sorted({kind for k in batch_keys for kind in missing[k]}, key=kinds.index)
            computed = self._compute(batch_kinds, images)
            for i, key in enumerate(batch_keys):
                for kind in missing[key]:
                    arr = computed[kind][i]
                    self._write(kind, key, arr)
                    values[kind][key] = arr
                    self.computed[kind] = self.computed.get(kind, 0) + 1
            if progress is not None:
                progress(min(1.0, (start + len(batch_keys)) / len(todo)))
        if progress is not None and todo:
            progress(1.0)

        out = {}
        for kind in kinds:
            shape = KINDS[kind].shape
            if keys:
                out[kind] = np.stack([values[kind][k] for k in keys]).astype(np.float32, copy=False)
            else:
                out[kind] = np.zeros((0, *shape), np.float32)
        return out

    def compute(self, kind: str, images: np.ndarray) -> np.ndarray:
        """Features of a uint8 [N,224,224,3] batch without touching the cache."""
        if kind not in KINDS:
            raise Invalid(f"unknown feature kind {kind!r}; known: {', '.join(KINDS)}")
        images = _check_images(images)
        parts = [self._compute([kind], images[i : i + self.batch_size])[kind] for i in range(0, len(images), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *KINDS[kind].shape), np.float32)

    def cache_path(self, kind: str, key: str) -> Path:
        """The ``.npy`` file caching ``kind`` for ``key`` (it may not exist)."""
        spec = KINDS[kind]
        # The directory names the full provenance: a new backbone, preprocessing or kind
        # version simply lands in a new directory, old entries are never reinterpreted.
        source = bb.backbone_id() if spec.backbone_output else "numpy"
        name = key if _SAFE_KEY.match(key) else hashlib.sha256(key.encode()).hexdigest()
        return (
            self.cache_dir / "features" / kind / f"{source}-{spec.version}" / imaging.PREPROCESSING
            / name[:2] / f"{name}.npy"
        )

    # -- internals ---------------------------------------------------------------------
    def _compute(self, kinds: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        outputs = [KINDS[k].backbone_output for k in kinds if KINDS[k].backbone_output]
        if outputs:
            sess = bb.session(bb.export_backbone(self.cache_dir), threads=self.threads)
            results = sess.run(outputs, {"image": images})
            by_output = dict(zip(outputs, results))
        for kind in kinds:
            spec = KINDS[kind]
            if spec.backbone_output:
                out[kind] = np.asarray(by_output[spec.backbone_output], dtype=np.float32)
            elif kind == GRAY32:
                out[kind] = gray32(images)
            else:  # pragma: no cover - KINDS and this function must stay in step
                raise Invalid(f"no extractor for kind {kind!r}")
        return out

    def _read(self, kind: str, key: str) -> np.ndarray | None:
        shape = KINDS[kind].shape
        try:
            data = self.cache_path(kind, key).read_bytes()
        except OSError:  # not cached yet (or unreadable): computed and written again
            return None
        header = _npy_header(shape)
        if len(data) == len(header) + 4 * int(np.prod(shape)) and data.startswith(header):
            # What _write wrote, read without np.load's header parsing: 13 instead of 55-70 µs a
            # file, 0.05 s of a retrain that reads 1,000 cached vectors.
            arr = np.frombuffer(data, np.float32, offset=len(header)).reshape(shape)
        else:
            try:  # another NumPy's header, or a truncated / garbage file: recompute and overwrite
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception:
                return None
        if arr.dtype != np.float32 or arr.shape != shape or not np.all(np.isfinite(arr)):
            return None
        return arr

    def _write(self, kind: str, key: str, arr: np.ndarray) -> None:
        atomic_write(self.cache_path(kind, key),
                     lambda f: np.save(f, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False),
                     fsync=False)  # a cache: a file lost in a crash is recomputed


@functools.cache
def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The header ``np.save`` writes before a C-ordered float32 array of ``shape``."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, np.float32), allow_pickle=False)
    written = buf.getvalue()
    return written[: len(written) - 4 * int(np.prod(shape))]
