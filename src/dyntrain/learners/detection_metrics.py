"""Detection metrics: COCO mAP with pycocotools (the reference), plus recall and false boxes.

``truth`` and ``predictions`` are per image lists of boxes in the same pixels:
``{"label", "x", "y", "w", "h"}`` (+ ``"confidence"`` for predictions; ``label`` a class name or
its index in ``class_names``).

>>> truth = [[{"label": "mug", "x": 10, "y": 10, "w": 50, "h": 40}]]
>>> pred = [[{"label": "mug", "x": 10, "y": 10, "w": 50, "h": 40, "confidence": 0.9}]]
>>> detection_metrics(truth, pred, ["mug"])["map50"]
1.0
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from ..codecs.detections import iou_xywh

__all__ = ["detection_metrics", "match", "Map50"]

IOU_MATCH = 0.5  # a prediction "finds" an object at IoU >= 0.5 (mAP50's criterion)


def _label_index(label, class_names: list[str]) -> int:
    if isinstance(label, (int, np.integer)):
        if not 0 <= int(label) < len(class_names):
            raise ValueError(f"label index {label} is not one of the {len(class_names)} classes")
        return int(label)
    try:
        return class_names.index(label)
    except ValueError:
        raise ValueError(f"unknown class {label!r}: expected one of {class_names}") from None


def match(truth: list[dict], predictions: list[dict], class_names: list[str], threshold: float) -> dict:
    """Greedy same-class matching at IoU >= 0.5 of the predictions scoring >= ``threshold``.

    Returns per-class arrays: ``found`` (objects matched), ``n`` (objects), ``drawn`` (boxes
    drawn) and ``false`` (boxes matching no object), plus the indices of ``missed`` objects and
    ``false_boxes`` (for the report's examples).
    """
    c = len(class_names)
    out = {"found": np.zeros(c, int), "n": np.zeros(c, int), "drawn": np.zeros(c, int), "false": np.zeros(c, int),
           "missed": [], "false_boxes": []}
    kept = [(j, p) for j, p in enumerate(predictions) if float(p["confidence"]) >= threshold]
    kept.sort(key=lambda jp: -float(jp[1]["confidence"]))
    t_lab = np.array([_label_index(t["label"], class_names) for t in truth], int)
    t_box = np.array([[t["x"], t["y"], t["w"], t["h"]] for t in truth], np.float64).reshape(-1, 4)
    used = np.zeros(len(truth), bool)
    np.add.at(out["n"], t_lab, 1)
    for j, p in kept:
        lab = _label_index(p["label"], class_names)
        out["drawn"][lab] += 1
        cand = np.flatnonzero((t_lab == lab) & ~used)
        if len(cand):
            ious = iou_xywh([[p["x"], p["y"], p["w"], p["h"]]], t_box[cand])[0]
            best = int(np.argmax(ious))
            if ious[best] >= IOU_MATCH:
                used[cand[best]] = True
                out["found"][lab] += 1
                continue
        out["false"][lab] += 1
        out["false_boxes"].append(j)
    out["missed"] = [i for i in range(len(truth)) if not used[i]]
    return out


def _coco(truth: list[list[dict]], predictions: list[list[dict]], class_names: list[str]):
    """pycocotools' evaluation (its printing silenced), or None when nothing was predicted."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (boxes, preds) in enumerate(zip(truth, predictions)):
        images.append({"id": i + 1})
        for b in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": _label_index(b["label"], class_names) + 1,
                         "bbox": [float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"])],
                         "area": float(b["w"]) * float(b["h"]), "iscrowd": 0})
        for p in preds:
            dets.append({"image_id": i + 1, "category_id": _label_index(p["label"], class_names) + 1,
                         "bbox": [float(p["x"]), float(p["y"]), float(p["w"]), float(p["h"])],
                         "score": float(p["confidence"])})
    if not dets or not anns:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    return ev


def detection_metrics(truth: list[list[dict]], predictions: list[list[dict]], class_names: list[str], *,
                      threshold: float = 0.3) -> dict:
    """mAP50 and mAP50:95 (COCO, 100 detections per image, all areas) and words-ready counts.

    Returns ``map50``, ``map50_95``, ``per_class`` ({name: ``ap50``, ``ap`` (50:95), ``recall``
    and ``precision`` at ``threshold``, ``n`` objects, ``found``, ``drawn``, ``false``}),
    ``recall_at_threshold`` (objects found / objects), ``false_box_rate`` (boxes drawn matching
    no object / boxes drawn), ``threshold``, ``n_images``, ``n_objects``. APs of a class without
    any object are ``None`` and do not count in the means (COCO's rule).
    """
    if len(truth) != len(predictions):
        raise ValueError(f"truth has {len(truth)} images but predictions {len(predictions)}")
    class_names = list(class_names)
    c = len(class_names)
    ev = _coco(truth, predictions, class_names)
    ap = np.full(c, np.nan)
    ap50 = np.full(c, np.nan)
    n_objects = np.zeros(c, int)
    for boxes in truth:
        for b in boxes:
            n_objects[_label_index(b["label"], class_names)] += 1
    if ev is not None:
        # precision[T, R, K, A, M]: IoU thresholds x recall points x classes x areas x max dets.
        prec = ev.eval["precision"][:, :, :, 0, -1]
        for k in range(c):
            if n_objects[k] == 0:
                continue
            p = prec[:, :, k]
            ap[k] = float(np.mean(np.where(p > -1, p, 0.0)))
            ap50[k] = float(np.mean(np.where(p[0] > -1, p[0], 0.0)))
    else:
        ap[n_objects > 0] = 0.0
        ap50[n_objects > 0] = 0.0
    totals = {key: np.zeros(c, int) for key in ("found", "n", "drawn", "false")}
    errors = []
    for i, (boxes, preds) in enumerate(zip(truth, predictions)):
        m = match(boxes, preds, class_names, threshold)
        for key in totals:
            totals[key] += m[key]
        if m["missed"] or m["false_boxes"]:
            errors.append({"image": i, "missed": m["missed"], "false": m["false_boxes"]})
    per_class = {}
    for k, name in enumerate(class_names):
        per_class[name] = {
            "ap50": None if np.isnan(ap50[k]) else round(float(ap50[k]), 6),
            "ap": None if np.isnan(ap[k]) else round(float(ap[k]), 6),
            "recall": float(totals["found"][k] / totals["n"][k]) if totals["n"][k] else None,
            "precision": float(1 - totals["false"][k] / totals["drawn"][k]) if totals["drawn"][k] else None,
            "n": int(totals["n"][k]), "found": int(totals["found"][k]),
            "drawn": int(totals["drawn"][k]), "false": int(totals["false"][k]),
        }
    valid = ~np.isnan(ap)
    n_all, drawn = int(totals["n"].sum()), int(totals["drawn"].sum())
    return {
        "map50": round(float(ap50[valid].mean()), 6) if valid.any() else None,
        "map50_95": round(float(ap[valid].mean()), 6) if valid.any() else None,
        "per_class": per_class,
        "recall_at_threshold": float(totals["found"].sum() / n_all) if n_all else None,
        "false_box_rate": float(totals["false"].sum() / drawn) if drawn else 0.0,
        "threshold": float(threshold),
        "n_images": len(truth),
        "n_objects": n_all,
        "errors": errors,
    }


class Map50:
    """COCO's mAP50 of any resample of the images (a bootstrap), matching each image once.

    A drawn box's match at IoU 0.5 depends on its own image only, so an image counted twice
    counts its matches twice: per class, the resample's (score, found) pairs and object count
    give the precision/recall curve, read at COCO's 101 recall points with precision made
    monotone, as pycocotools does (it agrees with :func:`detection_metrics` on the whole set;
    see the tests). Matching is greedy by score, at most 100 boxes per image and class.
    """

    RECALL_POINTS = np.linspace(0.0, 1.0, 101)

    def __init__(self, truth: list[list[dict]], predictions: list[list[dict]], class_names: list[str]) -> None:
        c = len(class_names)
        self.n = np.zeros((len(truth), c), int)  # objects per image and class
        self.hits: list[list[tuple[np.ndarray, np.ndarray]]] = []  # per image, per class: scores, found
        for boxes, preds in zip(truth, predictions):
            for b in boxes:
                self.n[len(self.hits), _label_index(b["label"], class_names)] += 1
            per_class = []
            for k in range(c):
                mine = sorted((p for p in preds if _label_index(p["label"], class_names) == k),
                              key=lambda p: -float(p["confidence"]))[:100]
                m = match([t for t in boxes if _label_index(t["label"], class_names) == k], mine, class_names, -1.0)
                found = np.ones(len(mine), bool)
                found[m["false_boxes"]] = False
                per_class.append((np.array([float(p["confidence"]) for p in mine]), found))
            self.hits.append(per_class)

    def of(self, images) -> float | None:
        """mAP50 of the images at these indices (repeats allowed); None when none holds an object."""
        aps = []
        for k in range(self.n.shape[1]):
            n = int(self.n[images, k].sum())
            if not n:
                continue
            scores = np.concatenate([self.hits[i][k][0] for i in images])
            found = np.concatenate([self.hits[i][k][1] for i in images])
            order = np.argsort(-scores, kind="mergesort")
            tp = np.cumsum(found[order])
            recall = tp / n
            precision = tp / np.arange(1, len(tp) + 1)
            precision = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at any higher recall
            at = np.searchsorted(recall, self.RECALL_POINTS, side="left")
            aps.append(float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())
                       if len(tp) else 0.0)
        return float(np.mean(aps)) if aps else None
