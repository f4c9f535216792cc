"""A detector's raw outputs as boxes in the photo's own pixels (NumPy only: serving uses it, and
training checks its exported files with it): threshold, per-class overlap merging (NMS), the
letterbox undone; and the IoU of boxes, which metrics share.
"""

from __future__ import annotations

import numpy as np

from .letterbox import boxes_to_original

__all__ = ["NMS_IOU", "decode", "iou_xywh"]

NMS_IOU = 0.6  # same-class boxes overlapping more than this are one object (keep the surer one)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of boxes given as (x, y, w, h)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
                 - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
                 - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def decode(outputs, scale: float, pads, threshold: float, *, size: tuple[int, int] | None = None,
           class_names: list[str] | None = None, nms_iou: float = NMS_IOU) -> list[dict]:
    """One image's graph outputs -> ``[{label_index, confidence, x, y, w, h}]`` in original pixels.

    ``outputs`` is ``(boxes, scores, labels)`` as the session returns them for a batch of one
    (or already indexed to one image); ``scale`` and ``pads`` = (pad_x, pad_y) come from
    :func:`~dyntrain.learners.lb.letterbox`; ``size`` = (width, height) of the original
    clips the boxes to it. Boxes scoring below ``threshold`` are dropped, then same-class boxes
    overlapping more than ``nms_iou`` (keeping the surer one). Sorted by confidence.
    """
    boxes, scores, labels = (np.asarray(o) for o in outputs[:3])
    if scores.ndim == 2:
        if scores.shape[0] != 1:
            raise ValueError(f"decode takes one image's outputs; got a batch of {scores.shape[0]}")
        boxes, scores, labels = boxes[0], scores[0], labels[0]
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    width, height = size if size is not None else (None, None)
    orig = boxes_to_original(boxes[keep], scale, pads[0], pads[1], width, height)
    out: list[dict] = []
    chosen: list[int] = []
    for n, j in enumerate(keep):
        if orig[n, 2] <= 0 or orig[n, 3] <= 0:
            continue  # entirely in the letterbox padding
        same = [m for m in chosen if labels[keep[m]] == labels[j]]
        if same and iou_xywh(orig[n], orig[same]).max() > nms_iou:
            continue
        chosen.append(n)
        d = {"label_index": int(labels[j]), "confidence": float(scores[j]),
             "x": float(orig[n, 0]), "y": float(orig[n, 1]), "w": float(orig[n, 2]), "h": float(orig[n, 3])}
        if class_names is not None:
            d = {"label": class_names[int(labels[j])], **d}
        out.append(d)
    return out
