"""Semantic segmentation from a few photos: accuracy, training time and latency of the run a project does.

    python benchmarks/segmentation.py [--quick]

Data: synthetic scenes from real photos (``dyntrain.ops.scenes``: scikit-learn's sample photos
and handwritten digits cut out and pasted, 320x320; classes background and 3 objects). No
segmentation data set with masks ships in an installed wheel, so none is used. Training sets are
the first 10 / 20 / 30 scenes, stored as a dataset version (PNG photos, masks through the masks
target into the blob store); every arm is scored on the same 20 held-out scenes by the exported
ONNX file as serving runs it (``serving.live.load_model``: letterbox, ONNX Runtime with 2
threads, the mask mapped back onto the photo).

Each arm is the training run of a semantic-segmentation project (``dyntrain.training.pipeline.train``
with the masks stages of ``training/masks.py``, learner ``image.segmenter``) at the default
settings: features, selection, the estimate, the final fit, export and its check, each with a
cold feature cache (the backbone graph exported once beforehand, as a data dir has it). Arms:
**selected** = the default candidates (decoder at output stride 8 and 4) within the 60 s budget;
**stride 8 alone** / **stride 4 alone** = the run with ``candidates`` fixed to that one.

Target (issue 17): mIoU >= 0.80 at 20 images in < 60 s of training on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402
from _scenes import as_version  # noqa: E402

from dyntrain import learners  # noqa: E402
from dyntrain.codecs.masks import encode_png  # noqa: E402
from dyntrain.learners import feature_maps as fm  # noqa: E402
from dyntrain.learners.segmentation import DEFAULT_SIZE  # noqa: E402
from dyntrain.learners.segmentation_metrics import segmentation_metrics  # noqa: E402
from dyntrain.ops.scenes import make_scenes  # noqa: E402
from dyntrain.serving.live import load_model  # noqa: E402
from dyntrain.training.pipeline import train as run_training  # noqa: E402
from dyntrain.training.spec import TrainingSpec  # noqa: E402

TASK = "semantic-segmentation"
CLASSES = 3  # objects, plus background
TARGET_MIOU, TARGET_IMAGES, TARGET_SECONDS = 0.80, 20, 60.0
SINGLES = {f"stride {s} alone": {"learner": "image.segmenter", "params": {"stride": s}} for s in (8, 4)}


def label(scene) -> dict:
    """A scene's mask as a client sends it: an indexed PNG and its class table."""
    classes = ["background", *scene.class_names]
    return {"mask": base64.b64encode(encode_png(scene.mask, classes)).decode("ascii"), "classes": classes}


def in_scene_ids(mask: np.ndarray, labels: list[str], names: list[str]) -> np.ndarray:
    """A served mask (ids of the model's classes ``labels``: background, then by name) renumbered into
    the scenes' ``names``; a scene class the run left out (too few photos) stays in the score at IoU 0."""
    return np.array([names.index(n) for n in labels], np.uint8)[mask]


def fresh_cache(root: Path, shared: Path, name: str) -> Path:
    """A feature cache with no features, only the already exported backbone (once per data dir)."""
    cache = root / name
    cache.mkdir(parents=True)
    os.symlink(shared / "backbones", cache / "backbones")
    return cache


def arm(name: str, train, test, root: Path, shared: Path, budget: float, fixed: dict | None) -> dict:
    items, blobs = as_version(TASK, [(s.image, label(s)) for s in train])
    spec = TrainingSpec(1, task=TASK, time_budget_s=budget, candidates=(fixed,) if fixed else None)
    extractor = learners.FeatureExtractor(fresh_cache(root, shared, f"cache-{name}"), threads=2)
    t, cpu = time.perf_counter(), time.process_time()
    outcome = run_training(items, spec, load_image=blobs.get, extractor=extractor, work_dir=root / name)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    result, labels = outcome.result, list(outcome.card["labels"])
    served = load_model(Path(outcome.onnx_path), 0, 1, labels, 2, task=TASK)
    said, lat = [], []
    for s in test:  # one photo a request, as serving answers it: letterbox + ONNX Runtime + mask onto the photo
        t0 = time.perf_counter()
        said.append(served.predict_items([s.image])[0]["mask"])
        lat.append((time.perf_counter() - t0) * 1000)
    names = ["background", *test[0].class_names]
    m = segmentation_metrics([s.mask for s in test], [in_scene_ids(p, labels, names) for p in said], names)
    est = result["metrics"]
    sel = result["selection"] or {}
    return {"arm": name, "seconds": seconds, "cpu": cpu,
            "miou": m["miou"], "pixel_accuracy": m["pixel_accuracy"], "boundary_f": m["boundary_f"],
            "per_class": m["per_class"], "labels": names, "timings": result["timings"],
            "latency_ms": statistics.median(lat), "latency_p90": sorted(lat)[int(0.9 * (len(lat) - 1))],
            "mb": Path(outcome.onnx_path).stat().st_size / 1e6, "chosen": f"stride {result['chosen']['params']['stride']}",
            "scores": sel.get("scores", []), "cut_at": sel.get("cut_at"), "epochs": sel.get("epochs"),
            "cv_miou": est["miou"], "interval": (est.get("interval") or {}).get("miou"),
            "method": est["estimate"]["method"], "how": est["estimate"].get("description")}


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure, or a dash where it is undefined (a class never predicted has no spill)."""
    return "–" if value is None else f"{value:.{digits}f}"


def verdict(rows: list[dict]) -> list[str]:
    """Sentences computed from the rows: the target, what selection did, and the run's own estimate."""
    out = []
    at = [r for r in rows if r["n"] == TARGET_IMAGES and r["arm"] == "selected"]
    if at:
        r = at[0]
        ok_miou, ok_time = r["miou"] >= TARGET_MIOU, r["seconds"] < TARGET_SECONDS
        out.append(f"Target at {TARGET_IMAGES} images (mIoU >= {TARGET_MIOU:.2f} in < {TARGET_SECONDS:.0f} s of "
                   f"training, selection and estimate included): mIoU {r['miou']:.3f} on the held-out scenes "
                   f"({'met' if ok_miou else 'NOT met'}) in {r['seconds']:.1f} s wall time "
                   f"({'met' if ok_time else 'NOT met'}) -> **{'met' if ok_miou and ok_time else 'NOT met'}**. The run "
                   f"used {r['cpu']:.1f} s of CPU time, so on {os.cpu_count()} idle cores it takes at least "
                   f"{r['cpu'] / (os.cpu_count() or 1):.1f} s (the load average in the header says how much other "
                   "work shared the cores).")
    else:
        out.append(f"Target at {TARGET_IMAGES} images: not measured in this run.")
    for n in sorted({r["n"] for r in rows}):
        arms = {r["arm"]: r for r in rows if r["n"] == n}
        s = arms.get("selected")
        singles = [arms[k] for k in SINGLES if k in arms]
        if s is None or not singles:
            continue
        best = max(singles, key=lambda r: r["miou"])
        d = round(s["miou"] - best["miou"], 3) + 0.0  # no "-0.000"
        word = "better than" if d > 0.01 else "worse than" if d < -0.01 else "the same as (within 0.01)"
        why = (f"the budget let it score {len(s['scores'])} of 2 candidates" if s["cut_at"] is not None
               else f"it scored {len(s['scores'])} candidate(s)")
        out.append(f"{n} images: selection chose {s['chosen']} ({why}); held-out mIoU {s['miou']:.3f}, {d:+.3f} "
                   f"against the best single candidate run ({best['arm']}, {best['miou']:.3f}): {word} it; training "
                   f"{s['seconds']:.1f} s vs " + ", ".join(f"{r['seconds']:.1f} s ({r['arm']})" for r in singles) + ".")
    for r in rows:
        lo_hi = r["interval"]
        if r["arm"] == "selected" and lo_hi:
            where = "inside" if lo_hi[0] <= r["miou"] <= lo_hi[1] else "above" if r["miou"] > lo_hi[1] else "below"
            out.append(f"{r['n']} images: the run's own estimate ({r['method']}, no held-out scene seen) said mIoU "
                       f"{r['cv_miou']:.3f} [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}] (95%); the held-out scenes gave "
                       f"{r['miou']:.3f} ({where} the range). How it was measured: {r['how']}.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one tiny size and a short budget, for CI")
    args = parser.parse_args()
    sizes, n_test, budget = ((6,), 4, 10.0) if args.quick else ((10, 20, 30), 20, TrainingSpec(1).time_budget_s)
    scenes = make_scenes(max(sizes) + n_test, classes=CLASSES, size=320, seed=0)
    pool, test = scenes[:max(sizes)], scenes[max(sizes):]

    root = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    shared = root / "shared"
    t = time.perf_counter()
    fm.export_feature_maps(shared, DEFAULT_SIZE)  # once per data dir, not part of any training
    import torch  # noqa: F401  (imported once, as a running server has it)

    export_s = time.perf_counter() - t
    rows = []
    for n in sizes:
        for name, fixed in [("selected", None), *SINGLES.items()]:
            r = arm(f"{name.replace(' ', '-')}-{n}", pool[:n], test, root, shared, budget, fixed)
            r.update(n=n, arm=name)
            rows.append(r)
            print(f"n={n:3d} {name:16s} mIoU {r['miou']:.3f} (estimate {r['cv_miou']:.3f} {r['interval']}) "
                  f"train {r['seconds']:.1f} s cpu {r['cpu']:.1f} s {r['timings']} latency {r['latency_ms']:.0f} ms "
                  f"chosen {r['chosen']} cut {r['cut_at']}", flush=True)

    def stages(r: dict) -> str:
        t = r["timings"]
        return (f"{r['seconds']:.1f} ({t['features']:.1f} / {t['selection']:.1f} / {t['evaluation']:.1f} / "
                f"{t['fit']:.1f} / {t['export']:.1f})")

    body = [f"Synthetic scenes from real photos ({CLASSES} object classes + background, 320x320), scored on "
            f"{len(test)} held-out scenes by the exported file through serving's `load_model`; time budget "
            f"{budget:.0f} s (the project setting `time_budget_s`"
            f"{', its default' if budget == TrainingSpec(1).time_budget_s else ''}) for every arm; torch/ORT on "
            f"{os.cpu_count()} cores. Each arm is a project's whole training run (features, selection, estimate, "
            f"final fit, export and its check) with a cold feature cache; the backbone graph was exported and torch "
            f"imported once beforehand ({export_s:.1f} s, as a running server has them). The backbone runs on the "
            "photos' views when the first fit needs them, so its time is inside selection (or the estimate, for a "
            "fixed candidate), not in the features stage. Training s is wall time; "
            "CPU s is the process's CPU time (all threads): on a machine shared with other work, wall time well "
            "above CPU time / 2 means the run waited for the cores.", ""]
    body.append(table(
        ["images", "arm", "mIoU", "pixel acc.", "boundary F", "run's estimate [95%]",
         "training s (features / selection / estimate / fit / export)", "CPU s", "latency ms (p50 / p90, 1 photo)",
         "model", "MB"],
        [[r["n"], r["arm"], f"{r['miou']:.3f}", f"{r['pixel_accuracy']:.3f}", f"{fmt(r['boundary_f'], 3)}",
          f"{r['method']}: {r['cv_miou']:.3f}" + (f" [{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]"
                                                  if r["interval"] else ""),
          stages(r), f"{r['cpu']:.1f}", f"{r['latency_ms']:.0f} / {r['latency_p90']:.0f}", r["chosen"],
          f"{r['mb']:.1f}"] for r in rows]))
    body += ["", "Selection (cross-validated mIoU per candidate over 3 folds of photos, ± sd over folds):", ""]
    for r in rows:
        if r["arm"] == "selected":
            scores = "; ".join(f"{s['label']} {s['miou']:.3f} ± {s['sd']:.3f} ({s['seconds']:.1f} s)"
                               for s in r["scores"])
            cut = (f"; the budget stopped before candidate {r['cut_at'] + 1} (its run would not fit)"
                   if r["cut_at"] is not None else "")
            body.append(f"- {r['n']} images: {scores}{cut}; {r['epochs']} epochs a fit; chose {r['chosen']}.")
    labels = rows[0]["labels"]
    body += ["", "Per class on the held-out scenes, selected arm: IoU (covered / spill).", ""]
    body.append(table(["images", *labels], [
        [r["n"], *(f"{fmt(r['per_class'][c]['iou'], 3)} ({fmt(r['per_class'][c]['covered'])} / "
                   f"{fmt(r['per_class'][c]['spill'])})" for c in labels)] for r in rows if r["arm"] == "selected"]))
    body.append("")
    body += [f"- {line}" for line in verdict(rows)]
    text = "\n".join(body)
    print(text)
    write_section("segmentation", "Semantic segmentation (issue 17)", text, quick=args.quick)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
