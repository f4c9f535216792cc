"""Segmentation metrics on class-id masks (torch-free: the gate scores served files with them).

All figures are accumulated over every pixel of every image (the usual "dataset" mIoU, not a
mean of per-image scores, which would let a tiny object in one image weigh as much as a whole
scene). Pixels whose truth is :data:`dyntrain.codecs.masks.UNLABELLED` count nowhere.

* ``iou`` of a class: true positives / (true positives + false positives + false negatives);
  ``None`` when the class is neither in the truth nor predicted (it says nothing then), and
  ``miou`` is the mean over the classes that have one.
* ``covered``: the fraction of the class's true pixels predicted as it (recall);
  ``spill``: the fraction of the pixels predicted as it that are something else (1 - precision).
  Together they read "covers 9/10 of each cup, spills onto the table 1/10".
* ``boundary_f``: the boundary F-score (Csurka et al. 2013, as in DAVIS): a predicted boundary
  pixel counts as right if a true boundary pixel of the class is within ``tolerance`` pixels
  (0.75% of the image diagonal, at least 1), and vice versa; F of the two fractions. IoU barely
  moves when outlines are sloppy; this does.

>>> import numpy as np
>>> t = np.zeros((4, 4), np.uint8); t[1:3, 1:3] = 1
>>> p = t.copy(); p[0, 0] = 1
>>> m = segmentation_metrics([t], [p], ["background", "cup"])
>>> round(m["per_class"]["cup"]["iou"], 2), m["per_class"]["cup"]["covered"], m["per_class"]["cup"]["spill"]
(0.8, 1.0, 0.2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..kernel.errors import Invalid
from ..codecs.masks import UNLABELLED

__all__ = ["confusion", "segmentation_metrics", "boundary_counts", "BOUNDARY_TOLERANCE"]

# DAVIS' tolerance: 0.75% of the image diagonal.
BOUNDARY_TOLERANCE = 0.0075


def confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``n x n`` pixel counts, rows = truth, columns = prediction; unlabelled truth is skipped.

    Predicted ids outside ``0..n-1`` (a served model with other classes) fall in no column;
    :func:`segmentation_metrics` still counts them as misses of their true class.
    """
    return _confusion(np.asarray(truth), np.asarray(predicted), int(n_classes))[0]


def boundary_counts(truth: np.ndarray, predicted: np.ndarray, n_classes: int,
                    tolerance: float = BOUNDARY_TOLERANCE) -> np.ndarray:
    """Per class ``[matched predicted, predicted, matched true, true]`` boundary pixel counts."""
    from scipy import ndimage

    t = np.asarray(truth)
    p = np.asarray(predicted)
    h, w = t.shape
    d = max(1.0, tolerance * float(np.hypot(h, w)))
    ignored = t == UNLABELLED
    # Edges next to unlabelled pixels are nobody's boundary: drop them from both sides.
    valid = ~ndimage.binary_dilation(ignored) if ignored.any() else np.ones_like(ignored)
    out = np.zeros((n_classes, 4), np.int64)
    for c in range(n_classes):
        tb = _boundary(t == c) & valid
        pb = _boundary(p == c) & valid
        n_t, n_p = int(tb.sum()), int(pb.sum())
        if n_t == 0 and n_p == 0:
            continue
        # Distance from every pixel to the nearest boundary pixel of the other side.
        near_t = ndimage.distance_transform_edt(~tb) <= d if n_t else np.zeros_like(tb)
        near_p = ndimage.distance_transform_edt(~pb) <= d if n_p else np.zeros_like(pb)
        out[c] = (int((pb & near_t).sum()), n_p, int((tb & near_p).sum()), n_t)
    return out


def _boundary(region: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    if not region.any():
        return region
    # border_value=1: the photo's frame is not an outline (a region touching it ends there).
    return region & ~ndimage.binary_erosion(region, border_value=1)


def segmentation_metrics(truth_masks: Sequence[np.ndarray], predicted_masks: Sequence[np.ndarray],
                         class_names: Sequence[str], *, boundary: bool = True) -> dict:
    """mIoU, pixel accuracy, boundary F and per-class figures (see the module doc).

    Also returns ``confusion`` (rows truth, columns prediction, pixel counts), ``images`` and
    ``per_image_miou`` (each image's own mIoU, to find the worst examples to show).
    """
    names = [str(n) for n in class_names]
    n = len(names)
    if len(truth_masks) != len(predicted_masks):
        raise Invalid(f"{len(truth_masks)} true masks but {len(predicted_masks)} predicted ones")
    cm = np.zeros((n, n), np.int64)
    missed = np.zeros(n, np.int64)  # true pixels predicted as an id outside the classes
    bcounts = np.zeros((n, 4), np.int64)
    per_image: list[float | None] = []
    for i, (t, p) in enumerate(zip(truth_masks, predicted_masks)):
        t, p = np.asarray(t), np.asarray(p)
        if t.shape != p.shape:
            raise Invalid(f"image {i}: the true mask is {t.shape[1]}x{t.shape[0]} but the prediction "
                          f"{p.shape[1]}x{p.shape[0]}")
        one, miss = _confusion(t, p, n)
        cm += one
        missed += miss
        per_image.append(_miou(one, miss))
        if boundary:
            bcounts += boundary_counts(t, p, n)
    tp = np.diag(cm).astype(np.float64)
    true_px = cm.sum(axis=1) + missed
    pred_px = cm.sum(axis=0)
    union = true_px + pred_px - tp
    per_class = {}
    ious = []
    bfs = []
    for c, name in enumerate(names):
        iou = float(tp[c] / union[c]) if union[c] else None
        bf = _boundary_f(bcounts[c]) if boundary else None
        if iou is not None:
            ious.append(iou)
        if bf is not None:
            bfs.append(bf)
        per_class[name] = {
            "iou": iou,
            "boundary_f": bf,
            "covered": float(tp[c] / true_px[c]) if true_px[c] else None,
            "spill": float((pred_px[c] - tp[c]) / pred_px[c]) if pred_px[c] else None,
            "pixels": int(true_px[c]),
            "predicted_pixels": int(pred_px[c]),
        }
    total = int(true_px.sum())
    return {
        "miou": float(np.mean(ious)) if ious else None,
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "boundary_f": float(np.mean(bfs)) if bfs else None,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "images": len(truth_masks),
        "per_image_miou": per_image,
    }


def _confusion(t: np.ndarray, p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = t.reshape(-1).astype(np.int64)
    p = p.reshape(-1).astype(np.int64)
    keep = (t != UNLABELLED) & (t < n)
    t, p = t[keep], p[keep]
    inside = (p >= 0) & (p < n)
    cm = np.bincount(t[inside] * n + p[inside], minlength=n * n).reshape(n, n)
    return cm, np.bincount(t[~inside], minlength=n)


def _miou(cm: np.ndarray, missed: np.ndarray) -> float | None:
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=1) + missed + cm.sum(axis=0) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else None


def _boundary_f(counts: np.ndarray) -> float | None:
    matched_p, n_p, matched_t, n_t = (int(v) for v in counts)
    if n_p == 0 and n_t == 0:
        return None
    precision = matched_p / n_p if n_p else 0.0
    recall = matched_t / n_t if n_t else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
