"""Learned image filters (issue 17): how well an image-to-image project learns Sobel and Canny edge
maps from 10, 20 and 50 photo pairs.

    python benchmarks/filters.py [--quick]

Photos: 128 px crops of the real photos scikit-image ships in its wheel (``skimage.data``) and
scikit-learn's two sample photos. Training crops come from one set of photos (astronaut, coffee,
rocket, immunohistochemistry, camera, coins, brick, moon, china), the 20 held-out crops from
others (chelsea, clock, grass, flower), so no held-out crop overlaps a training photo. Outputs:
the Sobel gradient magnitude (``dyntrain.ops.edge_pairs.sobel_map``) and scikit-image's Canny
edges (σ = 1, white on black).

Each arm is the training run of an image-to-image project (``dyntrain.training.pipeline.train``:
selection, estimate, final fit, export, at the default 60 s budget), then its exported ONNX file
answers the held-out photos through ONNX Runtime. Reported: PSNR and SSIM on the held-out photos
beside the run's own estimate (cross-validated, with its 95% range), the training time, the
served file's latency per 128 px crop and per 512 px photo, against the baseline "the output is
the photo in grey" and the ceiling, the true filter itself (identical output; its own time per
crop is the latency to beat).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import table, write_section  # noqa: E402

from dyntrain import learners  # noqa: E402
from dyntrain.codecs.pairs import as_mode, encode_png, mse, psnr_pooled, ssim  # noqa: E402
from dyntrain.kernel.entities import VersionItem  # noqa: E402
from dyntrain.ops.edge_pairs import sobel_map  # noqa: E402
from dyntrain.storage.blobs import sha256_hex  # noqa: E402
from dyntrain.training.pipeline import train as run_training  # noqa: E402
from dyntrain.training.spec import TrainingSpec  # noqa: E402

TASK = "image-to-image"
CROP = 128
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "camera", "coins", "brick", "moon", "china")
TEST_PHOTOS = ("chelsea", "clock", "grass", "flower")


def _photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    a = getattr(skimage.data, name)()
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def crops(names, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = [_photo(p) for p in names]
    out = []
    for k in range(n):
        p = photos[k % len(photos)]
        y, x = int(rng.integers(0, p.shape[0] - CROP)), int(rng.integers(0, p.shape[1] - CROP))
        out.append(np.ascontiguousarray(p[y:y + CROP, x:x + CROP]))
    return out


def canny_map(photo: np.ndarray) -> np.ndarray:
    from skimage.feature import canny

    return (canny(as_mode(photo, "L") / 255.0, sigma=1.0) * 255).astype(np.uint8)


FILTERS = {"Sobel": sobel_map, "Canny": canny_map}


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def run(filter_name: str, n: int, test: list[np.ndarray], budget: float, work: Path) -> dict:
    import onnxruntime as ort

    make = FILTERS[filter_name]
    train = crops(TRAIN_PHOTOS, n, seed=n)
    blobs, items = {}, []
    for i, p in enumerate(train):
        photo, output = _png(p), encode_png(make(p))
        blobs[sha256_hex(photo)], blobs[sha256_hex(output)] = photo, output
        items.append(VersionItem(i + 1, sha256_hex(photo), "pair",
                                 {"image": sha256_hex(output), "digest": "", "mode": "L"}))
    spec = TrainingSpec(1, task=TASK, time_budget_s=budget)
    extractor = learners.FeatureExtractor(work / "cache", threads=2)
    start = time.perf_counter()
    outcome = run_training(items, spec, load_image=blobs.get, extractor=extractor, work_dir=work / f"{filter_name}{n}")
    seconds = time.perf_counter() - start
    session = ort.InferenceSession(str(outcome.onnx_path), providers=["CPUExecutionProvider"])
    truths = [make(p) for p in test]
    said, lat = [], []
    for p in test:
        t = time.perf_counter()
        said.append(session.run(None, {"image": p[None]})[0][0, ..., 0])
        lat.append(time.perf_counter() - t)
    big = _photo("chelsea")[:512, :451]
    t = time.perf_counter()
    for _ in range(3):
        session.run(None, {"image": big[None]})
    big_ms = (time.perf_counter() - t) / 3 * 1000
    t = time.perf_counter()
    for p in test:
        make(p)
    filter_ms = (time.perf_counter() - t) / len(test) * 1000
    m = outcome.result["metrics"]
    return {"filter": filter_name, "n": n, "seconds": seconds, "chosen": outcome.result["chosen"]["params"],
            "steps": outcome.result.get("steps"),
            "psnr": psnr_pooled([mse(a, b) for a, b in zip(truths, said)]),
            "ssim": float(np.mean([ssim(a, b) for a, b in zip(truths, said)])),
            "mae": float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(truths, said)])) / 255,
            "base_psnr": psnr_pooled([mse(a, as_mode(p, "L")) for a, p in zip(truths, test)]),
            "base_ssim": float(np.mean([ssim(a, as_mode(p, "L")) for a, p in zip(truths, test)])),
            "est": m["psnr"], "est_range": (m.get("interval") or {}).get("psnr"), "est_ssim": m["ssim"],
            "ms": float(np.median(lat)) * 1000, "big_ms": big_ms, "filter_ms": filter_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Sobel from 10 pairs at a 20 s budget (CI smoke test)")
    parser.add_argument("--sizes", default="10,20,50")
    args = parser.parse_args()
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",")]
    filters = ["Sobel"] if args.quick else list(FILTERS)
    budget = 20.0 if args.quick else 60.0
    test = crops(TEST_PHOTOS, 20, seed=1000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in filters:
            for n in sizes:
                r = run(f, n, test, budget, Path(tmp))
                print(r, flush=True)
                lo, hi = r["est_range"] or (float("nan"), float("nan"))
                rows.append([f, n, f"{r['psnr']:.1f} dB", f"{r['ssim']:.3f}", f"{r['mae']:.1%}",
                             f"{r['est']:.1f} ({lo:.1f}–{hi:.1f})", f"{r['base_psnr']:.1f} dB / {r['base_ssim']:.3f}",
                             f"{r['seconds']:.0f} s", f"{r['chosen'].get('layers')} × {r['chosen'].get('width')}, "
                             f"{r['steps']} steps", f"{r['ms']:.1f} ms", f"{r['big_ms']:.0f} ms",
                             f"{r['filter_ms']:.1f} ms"])
    body = (
        "Photos: 128 px crops of scikit-image's and scikit-learn's shipped photos; 20 held-out crops from photos "
        "no training crop comes from. Each arm is an image-to-image project's training run at a "
        f"{budget:.0f} s budget; its exported ONNX file answers the held-out crops.\n\n"
        + table(["filter", "pairs", "held-out PSNR", "SSIM", "mean error per pixel", "run's estimate (95%)",
                 "baseline: photo in grey (PSNR / SSIM)", "training", "chosen", "latency / 128 px crop",
                 "latency / 451x512 photo", "true filter / crop"], rows)
        + "\n\nThe ceiling is the true filter itself (identical output: PSNR ∞, SSIM 1); its own time per crop is "
        "the last column. PSNR is 10·log10(255²/MSE) of the photos' mean squared error (as the run and the gate "
        "compute it: a mean of per-photo PSNRs would be ruled by blank crops answered perfectly, 100 dB each); SSIM as scikit-image computes it "
        "(Gaussian window σ 1.5)."
    )
    write_section("filters", "Learned image filters (issue 17)", body, quick=args.quick)


if __name__ == "__main__":
    main()
