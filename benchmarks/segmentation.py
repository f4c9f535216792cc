"""Semantic segmentation (issue 17): mIoU, per-class IoU, training time and latency vs images.

    python benchmarks/segmentation.py [--quick]

Data: synthetic scenes from real photos (``dyntrain.ops.scenes``: scikit-learn's sample photos
and handwritten digits cut out and pasted, 320x320, classes background, dahlia, pagoda,
digit 0). No segmentation data set with masks ships in an installed wheel, so none is used.
Training sets are the first 10 / 20 / 30 scenes; every model is scored on the same held-out
scenes. For each size: the selected model (both candidates, repeated K-fold CV within the time
budget, a cold feature cache) and each candidate trained alone (no CV), all at the default
settings. Latency: the exported ONNX file of the selected model on one image, letterbox
and decoding included, ONNX Runtime with 2 threads.

Target (issue 17): mIoU >= 0.80 at 20 images with < 60 s of training on 2 cores.
"""

from __future__ import annotations

import argparse
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

from dyntrain.learners import feature_maps as fm  # noqa: E402
from dyntrain.learners import segmentation as seg  # noqa: E402
from dyntrain.learners.segmentation_metrics import segmentation_metrics  # noqa: E402
from dyntrain.ops.scenes import make_scenes  # noqa: E402

CLASSES = 3  # objects, plus background
TARGET_MIOU, TARGET_IMAGES, TARGET_SECONDS = 0.80, 20, 60.0


def fresh_cache(root: Path, shared: Path, name: str) -> Path:
    """A cache with no features but the already exported backbone (one-time, not training)."""
    cache = root / name
    (cache / "backbones").parent.mkdir(parents=True, exist_ok=True)
    os.symlink(shared / "backbones", cache / "backbones")
    return cache


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure, or a dash where it is undefined (a class never predicted has no spill)."""
    return "–" if value is None else f"{value:.{digits}f}"


def latency_ms(model_path: Path, images: list[np.ndarray], size: int, runs: int) -> tuple[float, float]:
    """Median and 90th percentile of one image: letterbox + ONNX Runtime + decode to the photo."""
    import onnxruntime as ort

    from dyntrain.kernel.onnx_session import session_options

    sess = ort.InferenceSession(str(model_path), sess_options=session_options(2), providers=["CPUExecutionProvider"])
    batch, info = seg.preprocess(images[0], size)
    sess.run(["mask"], {"image": batch})  # warm-up
    times = []
    for k in range(runs):
        im = images[k % len(images)]
        t = time.perf_counter()
        batch, info = seg.preprocess(im, size)
        out = sess.run(["mask"], {"image": batch})
        seg.decode(out, info, (im.shape[1], im.shape[0]))
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def verdict(rows: list[dict]) -> list[str]:
    """Sentences computed from the measured rows (each: n, selected_miou, selected_s, singles)."""
    out = []
    at = [r for r in rows if r["n"] == TARGET_IMAGES]
    if at:
        r = at[0]
        met = r["selected_miou"] >= TARGET_MIOU and r["selected_s"] < TARGET_SECONDS
        out.append(f"Target (mIoU >= {TARGET_MIOU:.2f} at {TARGET_IMAGES} images in < {TARGET_SECONDS:.0f} s of "
                   f"training): mIoU {r['selected_miou']:.3f} in {r['selected_s']:.1f} s: "
                   f"**{'met' if met else 'NOT met'}**.")
    else:
        out.append(f"Target (mIoU >= {TARGET_MIOU:.2f} at {TARGET_IMAGES} images): not measured in this run.")
    for r in rows:
        best_name, best = max(r["singles"].items(), key=lambda kv: kv[1])
        gap = r["selected_miou"] - best
        out.append(f"{r['n']} images: selection chose {r['selected']}; its mIoU is {gap:+.3f} against the best "
                   f"single candidate ({best_name}, {best:.3f})"
                   + (" — selection cost accuracy here." if gap < -0.02 else "."))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one small size, for CI (well under 2 minutes)")
    args = parser.parse_args()
    if args.quick:
        sizes, n_test, budget, runs = [8], 4, 25.0, 10
        opts = {"epochs": 6, "augment_views": 1, "folds": 2, "max_repeats": 1}
    else:
        sizes, n_test, budget, runs = [10, 20, 30], 20, 55.0, 50
        opts = {}
    scenes = make_scenes(max(sizes) + n_test, classes=CLASSES, size=320, seed=0)
    names = ["background", *scenes[0].class_names]
    train_pool, test = scenes[:max(sizes)], scenes[max(sizes):]
    truth = [s.mask for s in test]

    root = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    shared = root / "shared"
    t = time.perf_counter()
    fm.export_feature_maps(shared, seg.DEFAULT_SIZE)
    export_s = time.perf_counter() - t

    rows, table_rows, class_rows = [], [], []
    for n in sizes:
        train = train_pool[:n]
        imgs, masks = [s.image for s in train], [s.mask for s in train]
        t = time.perf_counter()
        model, report = seg.fit_segmenter(imgs, masks, names, cache_dir=fresh_cache(root, shared, f"sel-{n}"),
                                          time_budget_s=budget, seed=0, **opts)
        selected_s = time.perf_counter() - t
        m = segmentation_metrics(truth, model.predict([s.image for s in test]), names)
        path = seg.export_segmenter(model, root / f"seg-{n}.onnx")
        lat, lat90 = latency_ms(path, [s.image for s in test], model.size, runs)
        cv = report["cv"]
        cv_text = ", ".join(f"{c} {v['miou_mean']:.3f}" for c, v in report["candidates"].items()
                            if v["miou_mean"] is not None) or "none"
        singles = {}
        single_s = {}
        for cand in seg.CANDIDATES:
            t = time.perf_counter()
            alone, _ = seg.fit_segmenter(imgs, masks, names, cache_dir=fresh_cache(root, shared, f"{cand[-1]}-{n}"),
                                         time_budget_s=budget, candidates=[cand], seed=0, **opts)
            single_s[cand] = time.perf_counter() - t
            singles[cand] = segmentation_metrics(truth, alone.predict([s.image for s in test]), names,
                                                 boundary=False)["miou"]
        rows.append({"n": n, "selected": report["selected"], "selected_miou": m["miou"], "selected_s": selected_s,
                     "singles": singles})
        table_rows.append([n, report["selected"], f"{m['miou']:.3f}", f"{m['pixel_accuracy']:.3f}",
                           f"{m['boundary_f']:.3f}",
                           *(f"{singles[c]:.3f} ({single_s[c]:.0f} s)" for c in seg.CANDIDATES),
                           f"{selected_s:.1f} (features {report['seconds']['features']:.1f}, CV "
                           f"{report['seconds']['cross_validation']:.1f}, fit {report['seconds']['fit']:.1f})",
                           f"{cv['fold_rounds']} of {cv['folds']}-fold" + (" (budget cut)" if cv["cut_by_budget"] else "")
                           + f"; epochs {report['epochs']} / {report['final_epochs']} (default {report['epochs_default']})",
                           cv_text, f"{lat:.0f} / {lat90:.0f}", f"{path.stat().st_size / 1e6:.1f}"])
        class_rows.append([n, *(f"{fmt(m['per_class'][c]['iou'], 3)} ({fmt(m['per_class'][c]['covered'])} / "
                                f"{fmt(m['per_class'][c]['spill'])})" for c in names)])
        print(f"n={n}: selected {report['selected']} mIoU {m['miou']:.3f} in {selected_s:.1f} s; singles {singles}",
              flush=True)

    body = table(["images", "selected", "mIoU", "pixel acc.", "boundary F",
                  *(f"{c} alone: mIoU (train s)" for c in seg.CANDIDATES),
                  "selected: training s (stages)", "CV folds run; epochs CV / final", "CV mIoU", "latency ms (median / p90)", "ONNX MB"],
                 table_rows)
    body += "\n\nPer class on the held-out scenes: IoU (covered / spill) of the selected model.\n\n"
    body += table(["images", *names], class_rows)
    body += (f"\n\n{len(test)} held-out scenes, {CLASSES} object classes + background, time budget {budget:.0f} s "
             f"per selected run; feature-map backbone export (once per data dir, not in the figures): {export_s:.1f} s. "
             f"Settings: {opts or 'the defaults'}.\n\n")
    body += "\n".join(f"- {line}" for line in verdict(rows))
    print(body)
    write_section("segmentation", "Semantic segmentation (issue 17)", body, quick=args.quick)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
