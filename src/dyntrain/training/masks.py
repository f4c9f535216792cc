"""The masks target's training stages (semantic segmentation): masks per photo, photo-level folds,
selection by mIoU under the one-standard-error rule, the all-background baseline.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through :data:`MASK_STAGES`.

* **Labels**: each item's annotation names its mask PNG in the blob store; :meth:`MaskStages.load_labels`
  reads them and renumbers every mask into the run's classes ("background" first, then the
  others by name). A class painted on too few photos waits: its pixels count as unlabelled
  (never learnt, never scored) — the photo still teaches the other classes.
* **Time**: one fit's epochs are planned from the decoder's speed measured on this run's views
  and the time budget, so selection, evaluation and the final fit fit in it (at least 4 epochs:
  a tight budget is overrun rather than learning nothing); the plan is in the result.
* **Evaluation**: a holdout of photos (by content hash) once it holds ``2 × min_holdout_per_class``
  photos, else K-fold cross-validation over photos, nested (the model chosen again inside each
  outer fold) while the budget allows. Metrics over every pixel of the evaluated photos: mIoU,
  pixel accuracy, boundary F, per class IoU, coverage and spill, with a 95% bootstrap interval of
  mIoU over photos; the three worst photos are saved with the run as small pictures (the truth and
  the prediction over the photo, and where they differ; small JPEGs in the run record).
* **Selection**: every candidate cross-validated on the same photo folds (one bank of backbone
  maps for all); the cheapest within one standard error of the best mean mIoU wins.
* **Baseline**: calling every pixel background.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tasks
from ..kernel.entities import VersionItem
from ..kernel.errors import Invalid
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL
from ..tasks.masks import BACKGROUND, MIN_IMAGES
from .spec import Prepared, TrainingSpec
from .split import plan_unclassed

__all__ = ["MASK_STAGES", "MaskStages", "Truth"]

#: Photo folds for selection and evaluation: few photos make more folds too small to score.
FOLDS = 3
#: Bootstrap resamples of photos for the interval of mIoU.
BOOTSTRAP = 200
#: Worst photos the run report shows, and the side of their pictures (px).
WORST, THUMB = 3, 160
#: Share of the time budget the planned fits may take (export and the check need the rest).
PLANNED_SHARE = 0.8
#: A finer decoder's fits cost about this many times the previous candidate's (stride 4 vs 8, measured).
NEXT_COST = 1.5


@dataclass(eq=False)
class Truth:
    """One photo's true mask: its blob, its own class table (a deleted class: null), and (once
    loaded) the ids in the run's classes."""

    sha: str
    classes: list[str]
    mask: np.ndarray | None = None


def _resized(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape == tuple(shape):
        return mask
    ys = np.minimum((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0], mask.shape[0] - 1).astype(int)
    xs = np.minimum((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1], mask.shape[1] - 1).astype(int)
    return mask[ys][:, xs]


def _folds(n: int, seed: int, k: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    k = max(2, min(k, n))
    return [(tr, te) for tr, te in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]


def _miou(truths: list[np.ndarray], predicted: list[np.ndarray], labels: list[str]) -> float:
    from ..learners.segmentation_metrics import segmentation_metrics

    return segmentation_metrics(truths, predicted, labels, boundary=False)["miou"] or 0.0


class MaskStages:
    """What a run of the masks target does differently (see the pipeline's module docstring)."""

    recipes = False  # the segmenter augments its own views (the mask moves with the pixels)

    def encode(self, items: list[VersionItem], spec: TrainingSpec):
        """(items trained on, classes, a :class:`Truth` per item, classes waiting)."""
        target = tasks.get(spec.task).target
        counts = target.counts([i.label for i in items])
        target.check_trainable(counts)  # the scheduler's own rule: a job it queued is a job that can train
        waiting = target.waiting(counts)
        if len(items) < MIN_IMAGES:
            raise Invalid(f"training needs at least {MIN_IMAGES} photos with masks; this dataset has {len(items)}")
        labels = [BACKGROUND, *sorted(k for k in counts if k != BACKGROUND and k not in waiting)]
        y = np.empty(len(items), object)
        for k, i in enumerate(items):
            y[k] = Truth(i.annotation["mask"], list(i.annotation["classes"]))
        return items, labels, y, waiting

    def load_labels(self, y: np.ndarray, labels: list[str], load: Callable[[str], bytes]) -> np.ndarray:
        """Read each mask from the blob store, renumbered into the run's classes ``labels`` (a
        waiting class: unlabelled)."""
        from ..codecs.masks import UNLABELLED, decode_png
        from ..tasks.masks import class_table

        for t in y:
            lut = np.full(256, UNLABELLED, np.uint8)
            for i, name in enumerate(t.classes):
                if name in labels:
                    lut[i] = labels.index(name)
            t.mask = lut[decode_png(load(t.sha), class_table(t.classes), name=f"mask {t.sha[:12]}")]
        return y

    def plan(self, items: list[VersionItem], spec: TrainingSpec) -> dict[str, Any]:
        return plan_unclassed([i.content_hash for i in items], fraction=spec.holdout_fraction,
                              min_per_class=spec.min_holdout_per_class, noun="photos")

    def describe(self, data: Prepared) -> str:
        return f"{len(data.y)} photos, {len(data.labels)} classes ({', '.join(data.labels)})"

    # -- time ----------------------------------------------------------------------------------
    def _epochs(self, data: Prepared, spec: TrainingSpec, cand: selection.Candidate, n_candidates: int,
                budget: float | None) -> int:
        """Epochs of every fit in this run, planned once: selection (each candidate over the folds),
        evaluation and the final fit at the speed measured now, within the budget's share."""
        from ..learners.segmenter import VIEWS, epochs_for, seconds_per_view

        if "epochs" in data.plan:
            return data.plan["epochs"]
        started = data.plan.setdefault("started", time.perf_counter())
        n = len(data.y)
        views = int(cand.params.get("views", VIEWS))
        rule = epochs_for(n, views)
        if budget is None:
            data.plan["epochs"] = rule
            return rule
        per_view = seconds_per_view(cand.params, data.X[cand.kind], [t.mask for t in data.y], len(data.labels))
        # fold fits train on (k-1)/k of the photos, k of them: (k-1) photo-sets per candidate, then
        # the final fit (the estimate reuses the selection's folds unless the budget allows more);
        # what the backbone's views and the measurement took is gone from the budget already
        photo_sets = (FOLDS - 1) * n_candidates + 1
        left = budget - (time.perf_counter() - started)
        planned = PLANNED_SHARE * left / max(1e-6, per_view * views * n * photo_sets)
        data.plan["epochs"] = int(np.clip(int(planned), 4, rule))
        data.plan["seconds_per_view"] = round(per_view, 5)
        return data.plan["epochs"]

    # -- selection and evaluation --------------------------------------------------------------
    def _oof(self, cand: selection.Candidate, data: Prepared, folds, seed: int, epochs: int,
             progress=None) -> list[tuple[int, np.ndarray]]:
        """Out-of-fold masks of each tested photo, as (index, mask at the truth's size)."""
        from ..learners.segmenter import cross_validate

        said = cross_validate(cand.params, data.X[cand.kind], [t.mask for t in data.y], len(data.labels), folds,
                              seed=seed, epochs=epochs, progress=progress)
        return [(int(t), _resized(m, data.y[int(t)].mask.shape)) for (_, te), fold in zip(folds, said)
                for t, m in zip(te, fold)]

    def select(self, candidates: list[selection.Candidate], data: Prepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        """(chosen, candidates that ran, the record for result["selection"], the record again)."""
        start = time.perf_counter()
        data.plan.setdefault("started", start)
        epochs = self._epochs(data, spec, candidates[0], len(candidates), budget)
        folds = [(train_idx[tr], train_idx[te]) for tr, te in _folds(len(train_idx), spec.seed)]
        scores, cut_at = [], None
        for i, cand in enumerate(candidates):
            spent = time.perf_counter() - start
            # the next candidate would not fit: its folds at the last one's pace, then the final fit
            if i > 0 and budget is not None and \
                    spent + scores[-1]["seconds"] * NEXT_COST * (1 + 1 / (FOLDS - 1)) > budget:
                cut_at = i
                break
            mark = time.perf_counter()
            oof = dict(self._oof(cand, data, folds, spec.seed, epochs,
                                 progress=lambda f, i=i, c=cand: report((i + f) / len(candidates), c.label)))
            if len(train_idx) == len(data.y):  # every photo scored out of fold: nested() may reuse it
                data.plan.setdefault("selection_oof", {})[cand.label] = oof
            by_fold = [_miou([data.y[t].mask for t in te], [oof[int(t)] for t in te], data.labels) for _, te in folds]
            scores.append({"index": i, "candidate": cand.to_dict(), "label": cand.label,
                           "miou": round(float(np.mean(by_fold)), 6),
                           "sd": round(float(np.std(by_fold, ddof=1)) if len(by_fold) > 1 else 0.0, 6),
                           "folds": len(folds), "seconds": round(time.perf_counter() - mark, 3), "error": None})
        best = max(scores, key=lambda s: s["miou"])
        se = best["sd"] / np.sqrt(max(1, best["folds"]))
        # one-standard-error rule: the first (cheapest) candidate within one SE of the best
        chosen = next(s for s in scores if s["miou"] >= best["miou"] - se)
        record = {"metric": "miou", "scores": scores, "chosen_index": chosen["index"], "cut_at": cut_at,
                  "rule": "one standard error", "epochs": epochs, "seconds": round(time.perf_counter() - start, 3)}
        ran = [candidates[s["index"]] for s in scores]
        data.plan.setdefault("selection_seconds", record["seconds"])  # the run's own (not a nested fold's)
        return candidates[chosen["index"]], ran, record, record

    def select_recipe(self, *args, **kwargs):
        from .augmentation import NO_RECIPE

        return NO_RECIPE, None

    def evaluate(self, candidate: selection.Candidate, data: Prepared, spec: TrainingSpec,
                 progress: Callable[[float], None] | None = None, **_class_only) -> dict[str, Any]:
        """One configuration scored the run's way: on the holdout, or out of fold over photos."""
        n = len(data.y)
        epochs = self._epochs(data, spec, candidate, 1, spec.time_budget_s)
        if data.plan["mode"] == "holdout":
            test = np.array(data.plan["holdout"])
            folds = [(np.flatnonzero(~test), np.flatnonzero(test))]
            how = f"holdout: {int(test.sum())} photos chosen by content hash, never used to fit or to choose the model"
        else:
            folds = _folds(n, spec.seed + 1)
            how = (f"cross-validation of this one configuration over {len(folds)} folds of photos (no choice was "
                   "made on these folds)")
        oof = self._oof(candidate, data, folds, spec.seed, epochs, progress)
        return self._finish(data, oof, {"method": data.plan["mode"], "description": how})

    def nested(self, ran: list[selection.Candidate], data: Prepared, spec: TrainingSpec, *, chosen, budget_s=None,
               progress=None, **_class_only) -> dict[str, Any]:
        """Outer folds over photos; inside each, the candidates are chosen again on its training
        part alone while the budget allows (else the run's choice is scored, and the estimate says so)."""
        n, start = len(data.y), time.perf_counter()
        epochs = self._epochs(data, spec, chosen, len(ran), budget_s)
        # choosing again costs about two selections (three outer folds on two thirds of the photos
        # each): only when what is left of the run's budget holds them
        left = None if budget_s is None else budget_s - (start - data.plan.get("started", start))
        reselected = len(ran) > 1 and (left is None or left > 2 * data.plan.get("selection_seconds", np.inf))
        if len(ran) == 1:  # nothing was chosen on these photos: a plain cross-validation score is honest
            how = (f"cross-validation over {FOLDS} folds of photos of the one candidate that ran within the time "
                   "budget (no choice was made on these folds)")
        elif reselected:
            how = (f"nested cross-validation: {FOLDS} outer folds of photos; the model was chosen again inside "
                   "each fold's training part, so no scored photo was used to choose or fit it")
        else:
            how = (f"cross-validation over {FOLDS} folds of photos of the chosen model; the time budget did not "
                   f"allow choosing again inside each fold, so the choice among {len(ran)} candidates may flatter it")
        reused = data.plan.get("selection_oof", {}).get(chosen.label)
        if not reselected and reused is not None:
            # its selection folds score it as well as three more fits would (the same caveat applies)
            return self._finish(data, sorted(reused.items()), {
                "method": "cv", "description": how, "outer_folds": FOLDS, "chosen_per_fold": [chosen.label] * FOLDS,
                "seconds": round(time.perf_counter() - start, 3)})
        outer = _folds(n, spec.seed + 1)
        oof, winners = [], []
        for k, (tr, te) in enumerate(outer):
            cand = chosen
            if reselected:
                inner = None if left is None else (left - (time.perf_counter() - start)) / (len(outer) - k)
                cand, *_ = self.select(ran, data, tr, spec, inner, lambda f, c=None: None)
            oof += self._oof(cand, data, [(tr, te)], spec.seed + k, epochs)
            winners.append(cand.label)
            if progress is not None:
                progress((k + 1) / len(outer))
        method = "nested_cv" if reselected and len(ran) > 1 else "cv"
        return self._finish(data, oof, {"method": method, "description": how,
                                        "outer_folds": len(outer), "chosen_per_fold": winners,
                                        "seconds": round(time.perf_counter() - start, 3)})

    def _finish(self, data: Prepared, oof, estimate: dict[str, Any]) -> dict[str, Any]:
        from ..learners.segmentation_metrics import confusion, segmentation_metrics

        oof = sorted(oof, key=lambda o: o[0])
        truths = [data.y[i].mask for i, _ in oof]
        said = [m for _, m in oof]
        metrics = segmentation_metrics(truths, said, data.labels)
        shown = {name: sum(1 for t in truths if (t == k).any()) for k, name in enumerate(data.labels)}
        for name, c in metrics["per_class"].items():
            c["n"] = shown[name]
        per_image = metrics.pop("per_image_miou")
        n_classes = len(data.labels)
        metrics["predictions"] = [
            {"sample_id": data.sample_ids[i], "content_hash": data.hashes[i],
             "true": {"mask": data.y[i].sha, "classes": data.y[i].classes},
             "predicted": {"classes": data.labels, "confusion": confusion(t, m, n_classes).tolist()},
             "miou": None if s is None else round(float(s), 4)}
            for (i, m), t, s in zip(oof, truths, per_image)]
        metrics["evaluated_on"] = len(oof)
        metrics["interval"] = self._interval(metrics["predictions"], data.labels)
        metrics["estimate"] = {**estimate, "level": INTERVAL_LEVEL,
                               "interval": {"miou": "percentile bootstrap over photos"}}
        metrics["worst"] = self._worst(data, oof, per_image)
        return metrics

    def _interval(self, predictions: list[dict], labels: list[str]) -> dict[str, list[float]]:
        from ..tasks.masks import scores_of

        if len(predictions) < 3:
            return {}
        cms = np.stack([np.asarray(p["predicted"]["confusion"], np.int64) for p in predictions])
        rng = np.random.default_rng(0)
        values = [scores_of(cms[rng.integers(0, len(cms), len(cms))].sum(axis=0), labels)["miou"] or 0.0
                  for _ in range(BOOTSTRAP)]
        lo, hi = np.percentile(values, [100 * (1 - INTERVAL_LEVEL) / 2, 100 * (1 + INTERVAL_LEVEL) / 2])
        return {"miou": [round(float(lo), 4), round(float(hi), 4)]}

    def _worst(self, data: Prepared, oof, per_image: list) -> list[dict[str, Any]]:
        """The photos scored worst, as small pictures (data: URLs): the truth and the prediction over
        the photo, and the wrong pixels (what the run page shows)."""
        from PIL import Image

        from ..codecs.masks import difference, overlay
        from ..learners.segmenter import SEGMENT_KIND

        photos = data.X[SEGMENT_KIND]
        ranked = sorted((s, k) for k, s in enumerate(per_image) if s is not None)[:WORST]
        out = []
        for score, k in ranked:
            i, predicted = oof[k]
            photo = photos[i]
            image = Image.fromarray(photo.pixels)
            image.thumbnail((THUMB, THUMB))
            shape = (image.height, image.width)
            truth, said = _resized(data.y[i].mask, shape), _resized(predicted, shape)
            pictures = {"truth": overlay(image, truth, data.labels), "predicted": overlay(image, said, data.labels),
                        "difference": difference(image, truth, said)}
            out.append({"sample_id": data.sample_ids[i], "content_hash": data.hashes[i],
                        "miou": round(float(score), 4), **{k_: _data_url(p) for k_, p in pictures.items()}})
        return out

    def baseline(self, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """Calling every pixel background."""
        from ..learners.segmentation_metrics import segmentation_metrics

        truths = [data.y[i].mask for i in train_idx]
        m = segmentation_metrics(truths, [np.zeros_like(t) for t in truths], data.labels, boundary=False)
        return {"miou": m["miou"] or 0.0, "pixel_accuracy": m["pixel_accuracy"] or 0.0}

    def fit(self, learner, X, y, weights, data: Prepared, progress: Callable[[float], None]) -> None:
        if getattr(learner, "epochs", None) is None and "epochs" in data.plan:
            learner.epochs = data.plan["epochs"]  # the run's plan (a replay without one uses the rule)
        learner.fit(X, [t.mask for t in y], n_classes=len(data.labels),
                    progress=progress, class_names=data.labels)

    def outputs(self, learner, X) -> list[np.ndarray]:
        return learner.predict(X)

    def agrees(self, served: list[dict], trained: list[np.ndarray]) -> float | None:
        """The largest share of a photo's pixels where the file's mask and the trained model's differ,
        if over 5%; else None. The file letterboxes the original where training used the ≤640 px
        photo, so outlines may move by a pixel, never more."""
        worst = 0.0
        for file_out, own in zip(served, trained):
            mask = file_out["mask"]
            worst = max(worst, float(np.mean(_resized(own, mask.shape) != mask)))
        return worst if worst > 0.05 else None

    def result_fields(self, data: Prepared, spec: TrainingSpec) -> dict[str, Any]:
        counts = {name: int(sum(1 for t in data.y if (t.mask == k).any())) for k, name in enumerate(data.labels)}
        return {"labels": data.labels, "counts": counts, "images": int(len(data.y)), "waiting_classes": data.waiting,
                "epochs": data.plan.get("epochs"), "seconds_per_view": data.plan.get("seconds_per_view")}

    def card_fields(self, data: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": data.labels,
                "output": {"name": "mask", "shape": [None, "S", "S"], "also": ["probabilities [N,C,S,S]"]},
                "metrics": {k: metrics.get(k) for k in ("miou", "pixel_accuracy", "boundary_f", "per_class",
                                                        "interval")}}


def _data_url(image) -> str:
    """A report picture as a data: URL: JPEG, not PNG — a 160 px photo is ~2 KB as JPEG and ~10 KB as
    a 64-colour PNG, and the run record keeps nine of them."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


MASK_STAGES = MaskStages()
