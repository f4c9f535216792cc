"""Cost of one augmented image, per operation and per preset, at the model's 224x224 input.

    python benchmarks/augmentation.py [--quick] [--images N]

Images: crops of scikit-learn's two bundled photos, resized to 224x224, each augmented
with its own seed (one thread, as a training worker does it). For scale, the same run
measures embedding the same images with the EfficientNet-Lite0 backbone (what every
augmented copy costs on top of its augmentation), and compares the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.datasets.augment import PRESETS, AugmentConfig, augment  # noqa: E402
from dyntrain.learners import POOLED, FeatureExtractor  # noqa: E402
from dyntrain.learners.backbone import export_backbone  # noqa: E402

# One row per operation: the strength used (the "strong" preset's, or a typical value where
# that preset leaves it off) and where its pixels come from.
STRONG = PRESETS["strong"]
OPS = [
    ("translate", STRONG.translate, "Pillow affine + numpy reflect padding"),
    ("rotate", STRONG.rotate, "Pillow affine + numpy reflect padding"),
    ("shear", STRONG.shear, "Pillow affine + numpy reflect padding"),
    ("scale", STRONG.scale, "Pillow affine + numpy reflect padding"),
    ("hflip", 0.5, "numpy slicing"),
    ("vflip", 0.5, "numpy slicing"),
    ("brightness", STRONG.brightness, "Pillow ImageEnhance"),
    ("contrast", STRONG.contrast, "Pillow ImageEnhance"),
    ("temperature", STRONG.temperature, "Pillow colour matrix"),
    ("gaussian_noise", STRONG.gaussian_noise, "numpy (hand-written)"),
    ("sensor_noise", STRONG.sensor_noise, "numpy (hand-written)"),
    ("blur", STRONG.blur, "Pillow GaussianBlur"),
    ("glare", STRONG.glare, "numpy (hand-written)"),
    ("moire", STRONG.moire, "numpy (hand-written)"),
]


def images(n: int) -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        photo = photos[i % 2]
        w, h = photo.size
        s = int(rng.integers(200, min(w, h)))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        out.append(np.asarray(photo.crop((x, y, x + s, y + s)).resize((224, 224), Image.BILINEAR)))
    return out


def timings_ms(config: AugmentConfig, imgs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(CPU ms, wall ms) per image. CPU time of this thread is the cost itself; wall time
    also counts waiting for a core, which on a shared 2-core machine can double it."""
    augment(imgs[0], config, 0)  # warm-up (lazy tables, first-call overheads)
    cpu, wall = [], []
    for seed, img in enumerate(imgs):
        t, c = time.perf_counter(), time.thread_time()
        augment(img, config, seed)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return np.array(cpu), np.array(wall)


def embedding_ms(imgs: list[np.ndarray]) -> tuple[float, float, int, int]:
    """(CPU ms, wall ms) per image of Lite0 pooled features, as training computes them
    (ONNX Runtime, the extractor's threads and batch size), plus those two settings. CPU
    time is the whole process's (all ONNX Runtime threads), so it compares with the
    one-thread augmentation cost as work done, whatever else the machine is running."""
    with tempfile.TemporaryDirectory(prefix="bench-aug-embed-") as cache:
        export_backbone(cache)
        fx = FeatureExtractor(cache)
        batch = np.stack(imgs)
        fx.compute(POOLED, batch[: fx.batch_size])  # warm-up: session creation, first-run allocations
        t, c = time.perf_counter(), time.process_time()
        fx.compute(POOLED, batch)
        cpu, wall = time.process_time() - c, time.perf_counter() - t
    return cpu * 1000 / len(imgs), wall * 1000 / len(imgs), fx.threads, fx.batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few images only (CI smoke test, seconds)")
    ap.add_argument("--images", type=int, default=None, help="images per row (default 200, --quick 10)")
    args = ap.parse_args()
    n = args.images or (10 if args.quick else 200)
    imgs = images(n)
    load_start = os.getloadavg()[0]
    embed_cpu, embed_wall, threads, batch_size = embedding_ms(imgs)

    op_rows = []
    for name, strength, source in OPS:
        cpu, wall = timings_ms(AugmentConfig(**{name: strength}), imgs)
        op_rows.append([name, f"{strength:g}", f"{np.median(cpu):.2f}", f"{np.percentile(cpu, 90):.2f}",
                        f"{np.median(wall):.2f}", source])
    preset_rows = []
    for name, config in PRESETS.items():
        cpu, wall = timings_ms(config, imgs)
        med = float(np.median(cpu))
        preset_rows.append([
            name, f"{med:.2f}", f"{np.percentile(cpu, 90):.2f}", f"{np.median(wall):.2f}",
            f"{1000 / med:.0f}" if med > 0.05 else "-", f"{med / embed_cpu:.2f}x",
        ])
    # The verdict the figures support: does making a copy cost more or less than embedding it?
    costly = [r[0] for r in preset_rows if float(r[1]) > embed_cpu]
    verdict = (f"Every preset costs less CPU per copy than embedding that copy ({embed_cpu:.1f} CPU ms), so "
               "embedding dominates the cost of an augmented copy." if not costly else
               f"{', '.join(f'`{name}`' for name in costly)} cost{'s' if len(costly) == 1 else ''} more CPU per "
               f"copy than embedding it ({embed_cpu:.1f} CPU ms): for {'that preset' if len(costly) == 1 else 'those'}"
               " making the copy, not embedding it, is the larger part of its cost.")

    ops_table = table(["operation", "strength", "CPU ms (median)", "CPU ms (p90)", "wall ms (median)",
                       "implementation"], op_rows)
    presets_table = table(["preset", "CPU ms (median)", "CPU ms (p90)", "wall ms (median)",
                           "images/s per core", "CPU vs. embedding"], preset_rows)
    print(f"Per operation ({n} images, 224x224, one thread):\n{ops_table}\n")
    print(f"Per preset:\n{presets_table}")
    body = (
        f"Median over {n} different 224x224 photo crops, one seed each, one thread. CPU ms is this "
        "thread's CPU time (the cost); wall ms also includes waiting for a core while other processes "
        f"ran (load average at the start: {load_start:.1f} on {os.cpu_count()} cores).\n\n"
        f"**Embedding, measured in this run** (the cost every augmented copy adds): Lite0 pooled features of the "
        f"same {n} images, ONNX Runtime {threads} threads, batch {batch_size}: {embed_cpu:.2f} CPU ms per image "
        f"(all threads), {embed_wall:.2f} wall ms per image.\n\n"
        f"**Per operation** (alone, at the `strong` preset's strength or a typical one):\n\n{ops_table}\n\n"
        f"**Per preset** (all of its operations on one image; *CPU vs. embedding* = its CPU ms over the "
        f"embedding's CPU ms per image):\n\n{presets_table}\n\n{verdict}\n"
    )
    write_section("augmentation", "Cost per augmented image", body, quick=args.quick)


if __name__ == "__main__":
    main()
