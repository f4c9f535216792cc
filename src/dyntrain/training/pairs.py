"""The output-image target's training stages (learned image filters): output images per photo,
photo-level folds, selection by PSNR under the one-standard-error rule, the grey-photo baseline.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through :data:`PAIR_STAGES`.

* **Labels**: each item's annotation names its output PNG in the blob store;
  :meth:`PairStages.load_labels` reads them, in the mode (greyscale or RGB) of the first pair.
* **Time**: every fit of a run takes the same number of optimiser steps, planned once from the
  candidates' step times measured now and the budget's share for selection and the final fit.
* **Evaluation**: a holdout of photos (by content hash) once it holds ``2 × min_holdout_per_class``
  photos, else cross-validation over photos. PSNR of a set of photos is that of their mean squared
  error (a mean of per-photo PSNRs is ruled by the photos answered perfectly, 100 dB each). Where several candidates ran, the chosen one's
  selection folds are the estimate and it says that the choice was made on them (choosing again
  in outer folds would take about twice the run's budget). Measures per photo: PSNR, SSIM and the
  mean absolute error per pixel; a 95% bootstrap interval over photos of PSNR and SSIM; the three
  worst photos by PSNR kept as small pictures (input, truth, output). Where every output is
  a black-and-white map (an edge detector's), also the edge F-score (``codecs.pairs.edge_counts``:
  answered and true edge pixels matched one to one within 1.5 px) with its precision and recall.
* **Selection**: every candidate cross-validated on the same photo folds; the cheapest within one
  standard error of the best mean PSNR wins.
* **Baseline**: the photo itself in grey (or colour, for RGB outputs) as the output.
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
from ..tasks.pairs import MIN_PAIRS
from .spec import Prepared, TrainingSpec
from .split import plan_unclassed

__all__ = ["PAIR_STAGES", "PairStages", "Output"]

FOLDS = 3
BOOTSTRAP = 200
WORST, THUMB = 3, 160
#: Share of what is left of the budget that the planned fits may take (export and the check need the rest;
#: at 0.7 the benchmark's runs of 10 and 20 pairs ended at half of a 60 s budget).
PLANNED_SHARE = 0.85


@dataclass(eq=False)
class Output:
    """One photo's true output image: its blob, its mode as stored and (once loaded) its pixels in
    the run's mode."""

    sha: str
    mode: str
    pixels: np.ndarray | None = None


def _folds(n: int, seed: int, k: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    k = max(2, min(k, n))
    return [(tr, te) for tr, te in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]


def _black_and_white(pixels: np.ndarray) -> bool:
    """A greyscale output of black and white only (an edge detector's map; a blank one too)."""
    a = np.asarray(pixels)
    return a.ndim == 2 and bool(((a == 0) | (a == 255)).all())


def _as_output(photo: np.ndarray, mode: str) -> np.ndarray:
    from ..codecs.pairs import as_mode

    return as_mode(photo, mode)


class PairStages:
    """What a run of the output-image target does differently (see the pipeline's module docstring)."""

    recipes = False  # crops are the augmentation; flips would change a direction-sensitive filter

    def encode(self, items: list[VersionItem], spec: TrainingSpec):
        target = tasks.get(spec.task).target
        target.check_trainable(target.counts([i.label for i in items]))
        if len(items) < MIN_PAIRS:
            raise Invalid(f"training needs at least {MIN_PAIRS} photos with output images; this dataset has "
                          f"{len(items)}")
        y = np.empty(len(items), object)
        for k, i in enumerate(items):
            y[k] = Output(i.annotation["image"], i.annotation.get("mode", "L"))
        return items, [], y, {}

    def load_labels(self, y: np.ndarray, labels: list[str], load: Callable[[str], bytes]) -> np.ndarray:
        """Each output image from the blob store, in the first pair's mode."""
        from ..codecs.pairs import as_mode, read_output

        mode = y[0].mode
        for t in y:
            t.pixels = as_mode(read_output(load(t.sha), name=f"output {t.sha[:12]}"), mode)
        return y

    def plan(self, items: list[VersionItem], spec: TrainingSpec) -> dict[str, Any]:
        return plan_unclassed([i.content_hash for i in items], fraction=spec.holdout_fraction,
                              min_per_class=spec.min_holdout_per_class, noun="photos")

    def describe(self, data: Prepared) -> str:
        return f"{len(data.y)} photos with {data.y[0].mode} output images"

    def _mode(self, data: Prepared) -> str:
        return data.y[0].mode

    # -- time ----------------------------------------------------------------------------------
    def _steps(self, data: Prepared, candidates: list[selection.Candidate], budget: float | None) -> int:
        """Steps of every fit of this run, planned once: each candidate over the folds, then the final fit."""
        from ..learners.filter import DEFAULT_STEPS, seconds_per_step, steps_for

        if "steps" in data.plan:
            return data.plan["steps"]
        started = data.plan.setdefault("started", time.perf_counter())
        if budget is None:
            data.plan["steps"] = DEFAULT_STEPS
            return DEFAULT_STEPS
        photos, outputs = list(data.X[candidates[0].kind]), [t.pixels for t in data.y]
        per = [seconds_per_step(c.params, photos, outputs) for c in candidates]
        left = budget - (time.perf_counter() - started)
        data.plan["steps"] = steps_for(PLANNED_SHARE * left / (FOLDS * sum(per) + max(per)), 1.0)
        data.plan["seconds_per_step"] = [round(p, 5) for p in per]
        return data.plan["steps"]

    # -- selection and evaluation --------------------------------------------------------------
    def _oof(self, cand: selection.Candidate, data: Prepared, folds, seed: int, steps: int,
             progress=None) -> list[tuple[int, np.ndarray]]:
        """Out-of-fold output images of each tested photo, as (index, image)."""
        learner_cls = cand.learner_class
        photos, outputs, out = data.X[cand.kind], [t.pixels for t in data.y], []
        for k, (tr, te) in enumerate(folds):
            learner = learner_cls(**{**cand.params, "steps": steps})
            learner.fit([photos[i] for i in tr], [outputs[i] for i in tr], seed=seed + k)
            out += list(zip((int(t) for t in te), learner.predict([photos[i] for i in te])))
            if progress is not None:
                progress((k + 1) / len(folds))
        return out

    def _psnr_by_fold(self, data: Prepared, folds, oof: dict[int, np.ndarray]) -> list[float]:
        from ..codecs.pairs import mse, psnr_pooled

        return [psnr_pooled([mse(data.y[int(t)].pixels, oof[int(t)]) for t in te]) for _, te in folds]

    def select(self, candidates: list[selection.Candidate], data: Prepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        start = time.perf_counter()
        data.plan.setdefault("started", start)
        steps = self._steps(data, candidates, budget)
        folds = [(train_idx[tr], train_idx[te]) for tr, te in _folds(len(train_idx), spec.seed)]
        scores = []
        for i, cand in enumerate(candidates):
            mark = time.perf_counter()
            oof = dict(self._oof(cand, data, folds, spec.seed, steps,
                                 progress=lambda f, i=i, c=cand: report((i + f) / len(candidates), c.label)))
            if len(train_idx) == len(data.y):
                data.plan.setdefault("selection_oof", {})[cand.label] = oof
            by_fold = self._psnr_by_fold(data, folds, oof)
            scores.append({"index": i, "candidate": cand.to_dict(), "label": cand.label,
                           "psnr": round(float(np.mean(by_fold)), 4),
                           "sd": round(float(np.std(by_fold, ddof=1)) if len(by_fold) > 1 else 0.0, 4),
                           "folds": len(folds), "seconds": round(time.perf_counter() - mark, 3), "error": None})
        best = max(scores, key=lambda s: s["psnr"])
        se = best["sd"] / np.sqrt(max(1, best["folds"]))
        chosen = next(s for s in scores if s["psnr"] >= best["psnr"] - se)  # one-standard-error rule
        record = {"metric": "psnr", "scores": scores, "chosen_index": chosen["index"], "cut_at": None,
                  "rule": "one standard error", "steps": steps, "seconds": round(time.perf_counter() - start, 3)}
        return candidates[chosen["index"]], candidates, record, record

    def select_recipe(self, *args, **kwargs):
        from .augmentation import NO_RECIPE

        return NO_RECIPE, None

    def evaluate(self, candidate: selection.Candidate, data: Prepared, spec: TrainingSpec,
                 progress: Callable[[float], None] | None = None, **_class_only) -> dict[str, Any]:
        """One configuration scored the run's way: on the holdout, or out of fold over photos."""
        steps = self._steps(data, [candidate], spec.time_budget_s)
        if data.plan["mode"] == "holdout":
            test = np.array(data.plan["holdout"])
            folds = [(np.flatnonzero(~test), np.flatnonzero(test))]
            how = f"holdout: {int(test.sum())} photos chosen by content hash, never used to fit or to choose the model"
        else:
            folds = _folds(len(data.y), spec.seed + 1)
            how = (f"cross-validation of this one configuration over {len(folds)} folds of photos (no choice was "
                   "made on these folds)")
        oof = self._oof(candidate, data, folds, spec.seed, steps, progress)
        return self._finish(data, oof, {"method": data.plan["mode"], "description": how})

    def nested(self, ran: list[selection.Candidate], data: Prepared, spec: TrainingSpec, *, chosen, budget_s=None,
               progress=None, **_class_only) -> dict[str, Any]:
        """The chosen configuration's selection folds as the estimate (saying the choice was made on
        them), or a plain cross-validation when it is a fixed configuration (a refit to compare)."""
        reused = data.plan.get("selection_oof", {}).get(chosen.label) if len(ran) > 1 else None
        if reused is None:
            steps = self._steps(data, [chosen], budget_s)
            oof = self._oof(chosen, data, _folds(len(data.y), spec.seed), spec.seed, steps, progress)
            how = f"cross-validation over {FOLDS} folds of photos (no choice was made on these folds)"
            return self._finish(data, oof, {"method": "cv", "description": how})
        how = (f"cross-validation over {FOLDS} folds of photos of the chosen model; its choice among {len(ran)} "
               "candidates was made on the same folds, so the estimate may flatter it a little")
        return self._finish(data, sorted(reused.items()), {"method": "cv", "description": how,
                                                           "chosen_per_fold": [chosen.label] * FOLDS})

    def _finish(self, data: Prepared, oof, estimate: dict[str, Any]) -> dict[str, Any]:
        from ..codecs.pairs import mse, psnr, psnr_pooled, ssim

        oof = sorted(oof, key=lambda o: o[0])
        mode = self._mode(data)
        per = []
        for i, said in oof:
            truth = data.y[i].pixels
            per.append({"psnr": round(psnr(truth, said), 4), "ssim": round(ssim(truth, said), 4),
                        "mse": round(mse(truth, said), 4),
                        "mae": float(np.mean(np.abs(truth.astype(np.int16) - said.astype(np.int16)))) / 255})
        metrics: dict[str, Any] = {
            "psnr": psnr_pooled([p["mse"] for p in per]), "ssim": float(np.mean([p["ssim"] for p in per])),
            "mean_abs_error": float(np.mean([p["mae"] for p in per])), "n_images": len(per), "mode": mode}
        metrics["predictions"] = [
            {"sample_id": data.sample_ids[i], "content_hash": data.hashes[i],
             "true": {"image": data.y[i].sha, "mode": data.y[i].mode},
             "predicted": {"mse": p["mse"], "ssim": p["ssim"], "mode": mode}}
            for (i, _), p in zip(oof, per)]
        metrics["evaluated_on"] = len(oof)
        truths = [data.y[i].pixels for i, _ in oof]
        if all(_black_and_white(t) for t in truths) and any((t == 255).any() for t in truths):
            # a binary map (an edge detector's): PSNR counts an edge one pixel off as two wrong
            # pixels, so also say how many edges it finds and how many it draws are real
            from ..codecs.pairs import edge_counts, edge_f

            metrics["edge"] = edge_f(sum(edge_counts(data.y[i].pixels, said) for i, said in oof))
        metrics["interval"] = _interval(per)
        metrics["estimate"] = {**estimate, "level": INTERVAL_LEVEL,
                               "interval": {"psnr": "percentile bootstrap over photos",
                                            "ssim": "percentile bootstrap over photos"}}
        metrics["worst"] = self._worst(data, oof, per)
        return metrics

    def _worst(self, data: Prepared, oof, per: list[dict]) -> list[dict[str, Any]]:
        from PIL import Image

        from ..learners.filter import FILTER_KIND

        photos = data.X[FILTER_KIND]
        out = []
        for k in sorted(range(len(per)), key=lambda k: per[k]["psnr"])[:WORST]:
            i, said = oof[k]
            pictures = {"input": photos[i], "truth": data.y[i].pixels, "predicted": said}
            out.append({"sample_id": data.sample_ids[i], "content_hash": data.hashes[i],
                        "psnr": per[k]["psnr"], "ssim": per[k]["ssim"],
                        **{name: _data_url(Image.fromarray(p)) for name, p in pictures.items()}})
        return out

    def baseline(self, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """The photo itself (in the output's mode) as the output."""
        from ..codecs.pairs import mse, psnr_pooled, ssim
        from ..learners.filter import FILTER_KIND

        photos, mode = data.X[FILTER_KIND], self._mode(data)
        said = [(data.y[i].pixels, _as_output(photos[i], mode)) for i in train_idx]
        return {"psnr": psnr_pooled([mse(t, s) for t, s in said]),
                "ssim": float(np.mean([ssim(t, s) for t, s in said]))}

    def fit(self, learner, X, y, weights, data: Prepared, progress: Callable[[float], None]) -> None:
        if getattr(learner, "steps", None) is None and "steps" in data.plan:
            learner.steps = data.plan["steps"]  # the run's plan (a replay without one uses the default)
        learner.fit(list(X), [t.pixels for t in y], progress=progress, seed=0)

    def outputs(self, learner, X) -> list[np.ndarray]:
        return learner.predict(list(X))

    def agrees(self, served: list[dict], trained: list[np.ndarray]) -> float | None:
        """The largest mean difference per pixel (0..255) between the file's output and the trained
        model's, if over 1; else None (both round the same arithmetic: only float rounding may
        move a pixel by one level)."""
        worst = 0.0
        for file_out, own in zip(served, trained):
            worst = max(worst, float(np.mean(np.abs(file_out["image"].astype(np.int16) - own.astype(np.int16)))))
        return worst if worst > 1.0 else None

    def result_fields(self, data: Prepared, spec: TrainingSpec) -> dict[str, Any]:
        return {"labels": [], "counts": {"pair": int(len(data.y))}, "images": int(len(data.y)),
                "mode": self._mode(data), "waiting_classes": {}, "steps": data.plan.get("steps"),
                "seconds_per_step": data.plan.get("seconds_per_step")}

    def card_fields(self, data: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": [], "output": {"name": "output", "mode": self._mode(data),
                                         "shape": [None, "H", "W", 1 if self._mode(data) == "L" else 3]},
                "metrics": {k: metrics.get(k) for k in ("psnr", "ssim", "mean_abs_error", "interval")}}


def _interval(per: list[dict]) -> dict[str, list[float]]:
    """95% percentile bootstrap over photos: of the pooled PSNR and of the mean SSIM."""
    from ..codecs.pairs import psnr_of

    if len(per) < 3:
        return {}
    rng = np.random.default_rng(0)
    out = {}
    for key, of in (("mse", psnr_of), ("ssim", float)):
        values = np.array([p[key] for p in per])
        stats = [of(values[rng.integers(0, len(values), len(values))].mean()) for _ in range(BOOTSTRAP)]
        lo, hi = np.percentile(stats, [100 * (1 - INTERVAL_LEVEL) / 2, 100 * (1 + INTERVAL_LEVEL) / 2])
        out["psnr" if key == "mse" else key] = [round(float(lo), 4), round(float(hi), 4)]
    return out


def _data_url(image) -> str:
    """A report picture as a small PNG data: URL (an edge map's sharp lines do not survive JPEG)."""
    image = image.copy()
    image.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


PAIR_STAGES = PairStages()
