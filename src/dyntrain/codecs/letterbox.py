"""Letterboxing photos for square-input models, and mapping what they answer back (NumPy and
Pillow only: serving uses it, training shares it).

A photo of any shape is fitted into ``size`` x ``size`` with its aspect kept, centred on grey
(:data:`PAD_VALUE`); boxes in model pixels go back to the photo's pixels with
:func:`boxes_to_original`, per-pixel maps (segmentation) with :func:`map_to_original`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..kernel.errors import Invalid

__all__ = ["PAD_VALUE", "letterbox", "letterbox_geometry", "letterbox_many", "boxes_to_original", "boxes_to_model",
           "map_to_original"]

# Letterbox padding: 127 is what the normalisation maps to ~0, so padding looks like "nothing"
# to the backbone rather than like a black or white border.
PAD_VALUE = 127


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
