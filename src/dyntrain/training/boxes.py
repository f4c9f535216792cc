"""The boxes target's training stages (object detection): boxes per image, image-level folds,
selection by COCO mAP50:95 under the one-standard-error rule, no-box baseline.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through :data:`BOX_STAGES`.

* **Labels**: each item's annotation (boxes in original pixels) as (boxes [k,4], class indices);
  a class on too few images waits, and the images showing it wait with it (training them as
  "nothing here" would teach the model that the object is background).
* **Evaluation**: a holdout of images (by content hash) once it holds ``2 × min_holdout_per_class``
  images, else K-fold cross-validation over images with the model chosen again inside each
  outer fold's training part while the time budget allows (nested; the estimate says when it
  could not). Metrics: mAP50, mAP50:95 (pycocotools), per class AP and recall, with a 95%
  bootstrap interval over images.
* **Selection**: every candidate cross-validated on the same image folds; the cheapest within one
  standard error of the best mean mAP50:95 wins. A next candidate is scored only when the whole
  run it implies (the nested re-selection included: :func:`_units`) fits the time budget. The
  backbone maps of every augmented copy are computed once per candidate input size and shared by
  all folds; fold heads are kept with them, and the final head trains in the folds' spare slot
  (see learners.detector), so one candidate's run costs its cross-validation and little more.
* **Baseline**: drawing no box (mAP 0): the first model must find something.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import tasks
from ..kernel.entities import VersionItem
from ..kernel.errors import Invalid
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL
from .spec import Prepared, TrainingSpec
from .split import plan_unclassed
from ..tasks.boxes import MIN_IMAGES

__all__ = ["BOX_STAGES", "BoxStages"]

#: Image folds for selection and evaluation: few images make more folds too small to score.
FOLDS = 3
#: Bootstrap resamples of images for the interval of mAP50.
BOOTSTRAP = 200


def _boxes(predicted: list[dict], labels: list[str]) -> list[dict]:
    return [{"label": labels[b["label_index"]], "confidence": round(float(b["confidence"]), 4),
             **{k: round(float(b[k]), 1) for k in ("x", "y", "w", "h")}} for b in predicted]


def _truth(y_item, labels: list[str]) -> list[dict]:
    boxes, idx = y_item
    return [{"label": labels[int(c)], "x": float(b[0]), "y": float(b[1]), "w": float(b[2]), "h": float(b[3])}
            for b, c in zip(boxes, idx)]


def _folds(n: int, seed: int, k: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    k = max(2, min(k, n))
    return [(tr, te) for tr, te in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]


def _units(m: int, k: int) -> float:
    """What a run with ``m`` candidates costs, in units of one candidate's cross-validation: its
    bank (the backbone on every augmented copy, about as long as its ``k`` fold heads) and its
    ``k`` heads, so a head is about ``1 / 2k`` of a unit. Selection scores each candidate once;
    with more than one, the nested estimate chooses again in each of ``k`` outer folds (``m × k``
    heads, the banks reused) and fits that fold's winner; the final fit is about 1.5 heads. With
    one, its folds are the estimate (see :meth:`BoxStages.nested`). So a second candidate about
    quintuples the run (5.75 units against 1.25 at 3 folds), and is scored only when the budget
    holds all of that (benchmarks/detection.py measures both)."""
    head = 1 / (2 * k)
    if m <= 1:
        return 1 + 1.5 * head
    return m + (k * (m * k + 1) + 1.5) * head


def _metrics(truth: list[list[dict]], said: list[list[dict]], labels: list[str]) -> dict[str, Any]:
    from ..learners.detection_metrics import detection_metrics

    return detection_metrics(truth, said, labels)


class BoxStages:
    """What a run of the boxes target does differently (see the pipeline's module docstring)."""

    recipes = False  # the detector augments inside its own training (boxes move with the pixels)

    def encode(self, items: list[VersionItem], spec: TrainingSpec):
        """(items trained on, classes, (boxes, class indices) per item, classes waiting)."""
        target = tasks.get(spec.task).target
        counts = target.counts([i.label for i in items])
        target.check_trainable(counts)  # the scheduler's own rule: a job it queued is a job that can train
        waiting = target.waiting(counts)
        items = [i for i in items if not ({b["label"] for b in i.annotation or ()} & set(waiting))]
        if len(items) < MIN_IMAGES:
            raise Invalid(f"training needs at least {MIN_IMAGES} images with boxes (images showing a class that "
                          f"still waits for examples are left out); this dataset has {len(items)}. Add images.")
        labels = sorted({b["label"] for i in items for b in i.annotation or ()})
        index = {lab: k for k, lab in enumerate(labels)}
        y = np.empty(len(items), object)
        for k, i in enumerate(items):
            boxes = i.annotation or []
            y[k] = (np.array([[b["x"], b["y"], b["w"], b["h"]] for b in boxes], np.float64).reshape(-1, 4),
                    np.array([index[b["label"]] for b in boxes], np.int64))
        return items, labels, y, waiting

    def plan(self, items: list[VersionItem], spec: TrainingSpec) -> dict[str, Any]:
        return plan_unclassed([i.content_hash for i in items], fraction=spec.holdout_fraction,
                              min_per_class=spec.min_holdout_per_class, noun="images")

    def describe(self, data: Prepared) -> str:
        boxes = sum(len(c) for _, c in data.y)
        return f"{len(data.y)} images, {boxes} boxes, {len(data.labels)} classes"

    # -- selection and evaluation --------------------------------------------------------------
    def _oof(self, cand: selection.Candidate, data: Prepared, folds, seed: int,
             progress=None) -> list[tuple[int, list[dict]]]:
        """Out-of-fold boxes (original pixels) of each tested image, as (index, boxes); ``folds``
        index the run's images, so every fold of a run shares one bank of backbone maps."""
        from ..learners.detector import cross_validate

        said = cross_validate(cand.params, data.X[cand.kind], data.y, len(data.labels), folds, seed=seed,
                              progress=progress)
        return [(int(t), boxes) for (_, te), fold in zip(folds, said) for t, boxes in zip(te, fold)]

    def _score(self, data: Prepared, oof: list[tuple[int, list[dict]]]) -> dict[str, Any]:
        truth = [_truth(data.y[i], data.labels) for i, _ in oof]
        return _metrics(truth, [_boxes(b, data.labels) for _, b in oof], data.labels)

    def select(self, candidates: list[selection.Candidate], data: Prepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        """(chosen, candidates that ran, the record for result["selection"], the record again)."""
        start = time.perf_counter()
        folds = [(train_idx[tr], train_idx[te]) for tr, te in _folds(len(train_idx), spec.seed)]
        scores, cut_at = [], None
        for i, cand in enumerate(candidates):
            spent = time.perf_counter() - start
            if i > 0 and budget is not None and spent / i * _units(i + 1, len(folds)) > budget:
                cut_at = i  # the next one would not fit in the budget at the pace so far
                break
            mark = time.perf_counter()
            oof = self._oof(cand, data, folds, spec.seed,
                            progress=lambda f, i=i, c=cand: report((i + f) / len(candidates), c.label))
            by_fold = []
            for _, te in folds:
                part = [o for o in oof if o[0] in set(te.tolist())]
                by_fold.append(self._score(data, part).get("map50_95") or 0.0)
            m = self._score(data, oof)
            scores.append({"index": i, "candidate": cand.to_dict(), "label": cand.label,
                           "map50_95": m["map50_95"], "map50": m["map50"],
                           "sd": round(float(np.std(by_fold, ddof=1)) if len(by_fold) > 1 else 0.0, 6),
                           "folds": len(folds), "seconds": round(time.perf_counter() - mark, 3), "error": None})
        best = max(scores, key=lambda s: s["map50_95"] or 0.0)
        se = best["sd"] / np.sqrt(max(1, best["folds"]))
        # one-standard-error rule: the first (cheapest) candidate within one SE of the best
        chosen = next(s for s in scores if (s["map50_95"] or 0.0) >= (best["map50_95"] or 0.0) - se)
        record = {"metric": "map50_95", "scores": scores, "chosen_index": chosen["index"], "cut_at": cut_at,
                  "rule": "one standard error", "seconds": round(time.perf_counter() - start, 3)}
        ran = [candidates[s["index"]] for s in scores]
        return candidates[chosen["index"]], ran, record, record

    def select_recipe(self, *args, **kwargs):
        from .augmentation import NO_RECIPE

        return NO_RECIPE, None

    def evaluate(self, candidate: selection.Candidate, data: Prepared, spec: TrainingSpec,
                 progress: Callable[[float], None] | None = None, **_class_only) -> dict[str, Any]:
        """One configuration scored the run's way: on the holdout, or out of fold over images."""
        n = len(data.y)
        if data.plan["mode"] == "holdout":
            test = np.array(data.plan["holdout"])
            folds = [(np.flatnonzero(~test), np.flatnonzero(test))]
            how = f"holdout: {int(test.sum())} images chosen by content hash, never used to fit or to choose the model"
        else:
            folds = _folds(n, spec.seed + 1)
            how = (f"cross-validation of this one configuration over {len(folds)} folds of images (no choice was "
                   "made on these folds)")
        oof = self._oof(candidate, data, folds, spec.seed, progress)
        return self._finish(data, oof, {"method": data.plan["mode"], "description": how})

    def nested(self, ran: list[selection.Candidate], data: Prepared, spec: TrainingSpec, *, chosen, budget_s=None,
               progress=None, **_class_only) -> dict[str, Any]:
        """Outer folds over images; inside each, the candidates are chosen again on its training
        part alone while the budget allows (else the run's choice is scored, and the estimate says so).

        The outer folds are selection's own: with one candidate scored no choice was made on them,
        so its out-of-fold boxes are the estimate as they are (learners.detector keeps them with the
        bank: no head trains twice); with several, each outer fold chooses again on its training part."""
        n, start = len(data.y), time.perf_counter()
        if len(ran) == 1:
            oof = self._oof(chosen, data, _folds(n, spec.seed), spec.seed, progress)
            k = len(_folds(n, spec.seed))
            return self._finish(data, oof, {
                "method": "cv", "outer_folds": k, "chosen_per_fold": [chosen.label] * k,
                "description": f"cross-validation over {k} folds of images of the one configuration scored (no "
                               "choice was made on these folds, so they also measure it)",
                "seconds": round(time.perf_counter() - start, 3)})
        outer = _folds(n, spec.seed)
        oof, winners, reselected = [], [], True
        for k, (tr, te) in enumerate(outer):
            cand = chosen
            left = None if budget_s is None else budget_s - (time.perf_counter() - start)
            if len(ran) > 1 and (left is None or left > 0):
                cand, *_ = self.select(ran, data, tr, spec, None if left is None else left / (len(outer) - k),
                                       lambda f, c=None: None)
            elif len(ran) > 1:
                reselected = False
            oof += self._oof(cand, data, [(tr, te)], spec.seed + k)
            winners.append(cand.label)
            if progress is not None:
                progress((k + 1) / len(outer))
        how = (f"nested cross-validation: {len(outer)} outer folds of images; the model was chosen again inside each "
               "fold's training part, so no scored image was used to choose or fit it") if reselected else (
               f"cross-validation over {len(outer)} folds of images of the chosen model; the time budget did not "
               f"allow choosing again inside each fold, so the choice among {len(ran)} candidates may flatter it")
        return self._finish(data, oof, {"method": "nested_cv" if reselected else "cv", "description": how,
                                        "outer_folds": len(outer), "chosen_per_fold": winners,
                                        "seconds": round(time.perf_counter() - start, 3)})

    def _finish(self, data: Prepared, oof, estimate: dict[str, Any]) -> dict[str, Any]:
        from ..learners.detector import PHOTO_KIND

        oof = sorted(oof, key=lambda o: o[0])
        metrics = self._score(data, oof)
        photos = data.X[PHOTO_KIND]
        metrics["predictions"] = [
            {"sample_id": data.sample_ids[i], "content_hash": data.hashes[i], "true": _truth(data.y[i], data.labels),
             "predicted": _boxes(b, data.labels), "size": photos[i].original_size} for i, b in oof]
        metrics["evaluated_on"] = len(oof)
        metrics["interval"] = self._interval(metrics["predictions"], data.labels)
        metrics["estimate"] = {**estimate, "level": INTERVAL_LEVEL,
                               "interval": {"map50": "percentile bootstrap over images"}}
        return metrics

    def _interval(self, predictions: list[dict], labels: list[str]) -> dict[str, list[float]]:
        from ..learners.detection_metrics import Map50

        if len(predictions) < 3:
            return {}
        rng = np.random.default_rng(0)
        # each image's boxes matched once; a resample only re-counts them (200 pycocotools runs took 9 s)
        ap = Map50([p["true"] for p in predictions], [p["predicted"] for p in predictions], labels)
        values = [ap.of(rng.integers(0, len(predictions), len(predictions))) or 0.0 for _ in range(BOOTSTRAP)]
        lo, hi = np.percentile(values, [100 * (1 - INTERVAL_LEVEL) / 2, 100 * (1 + INTERVAL_LEVEL) / 2])
        return {"map50": [round(float(lo), 4), round(float(hi), 4)]}

    def baseline(self, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """Drawing no box at all: every AP is 0."""
        return {"map50": 0.0, "map50_95": 0.0}

    def fit(self, learner, X, y, weights, data: Prepared, progress: Callable[[float], None]) -> None:
        learner.fit(X, y, n_classes=len(data.labels), progress=progress, class_names=data.labels)

    def outputs(self, learner, X) -> list[list[dict]]:
        return learner.predict(X)

    def agrees(self, served: list[list[dict]], trained: list[list[dict]]) -> float | None:
        """1 − the worst IoU between the file's boxes and the trained model's (same class, sure
        boxes), if some image's boxes disagree; else None. The file letterboxes the original where
        training used the ≤640 px photo, so boxes may move by a pixel, never more."""
        from ..codecs.detections import iou_xywh

        worst = 1.0
        for file_boxes, own in zip(served, trained):
            sure = [b for b in own if b["confidence"] >= 0.5]
            for b in sure:
                same = [c for c in file_boxes if c["label_index"] == b["label_index"]]
                if not same:
                    return 1.0
                box = np.array([b[k] for k in ("x", "y", "w", "h")])
                worst = min(worst, float(iou_xywh(box, np.array([[c[k] for k in ("x", "y", "w", "h")]
                                                                  for c in same])).max()))
        return 1.0 - worst if worst < 0.8 else None

    def result_fields(self, data: Prepared, spec: TrainingSpec) -> dict[str, Any]:
        counts = {lab: int(sum(int((c == k).sum()) for _, c in data.y)) for k, lab in enumerate(data.labels)}
        return {"labels": data.labels, "counts": counts, "images": int(len(data.y)), "waiting_classes": data.waiting}

    def card_fields(self, data: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": data.labels, "output": {"name": "boxes", "shape": [None, "K", 4],
                                                  "also": ["scores [N,K]", "labels [N,K]"]},
                "metrics": {k: metrics.get(k) for k in ("map50", "map50_95", "per_class", "interval",
                                                        "recall_at_threshold", "false_box_rate")}}


BOX_STAGES = BoxStages()
