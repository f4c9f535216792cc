"""Synthetic annotated scenes built from real images that ship in installed wheels.

Tests, the demo and the detection/segmentation benchmarks need images with boxes *and* pixel
masks, offline. Every object and background here is a real photo or scan bundled with
scikit-learn (a runtime dependency), cut out and pasted with a seeded generator:

* ``dahlia``: the flower of ``flower.jpg``, cut along its petals (colour + connected region);
* ``pagoda``: the Tower of Buddhist Incense of ``china.jpg``, cut along a traced outline minus sky;
* ``digit 0`` ... ``digit 9``: handwritten digits of ``load_digits()`` (real scans, 8x8),
  upscaled and inked in a colour that contrasts with the background under them.

Backgrounds are crops of the parts of both photos that hold none of these objects (sky, lake,
trees; the blurred leaves around the dahlia). Each object is scaled (a few % to half of the
scene), stretched a little, flipped, rotated up to 12 degrees and photometrically jittered;
scenes hold 0 to 4 objects that overlap by at most 15% of the smaller one.

Scene ``i`` of a seed is the same whatever ``n`` is, so ``make_scenes(20)`` is a prefix of
``make_scenes(50)``.

>>> from dyntrain.ops.scenes import make_scenes
>>> s = make_scenes(2, classes=3, size=320, seed=0)[1]
>>> s.image.shape, s.mask.shape, s.class_names
((320, 320, 3), (320, 320), ['dahlia', 'pagoda', 'digit 0'])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Scene", "CLASS_NAMES", "MAX_CLASSES", "class_names", "make_scene", "make_scenes", "scenes_per_class"]

CLASS_NAMES = ("dahlia", "pagoda", *(f"digit {d}" for d in range(10)))
MAX_CLASSES = len(CLASS_NAMES)

# Outline of the pagoda in china.jpg (640x427), traced by hand; sky inside it is removed by colour.
_PAGODA = [(200, 27), (214, 27), (217, 55), (240, 75), (290, 105), (322, 118), (300, 135), (296, 160),
           (332, 175), (318, 190), (320, 238), (353, 246), (346, 272), (345, 318), (375, 333), (355, 362),
           (305, 386), (212, 392), (205, 345), (62, 340), (78, 322), (80, 285), (60, 272), (98, 245),
           (98, 195), (82, 170), (118, 155), (118, 135), (93, 110), (140, 85), (192, 55)]
# Regions (x0, y0, x1, y1) of each photo that contain none of the objects above.
_BACKGROUNDS = {"china": [(380, 0, 640, 427), (325, 0, 640, 105)],
                "flower": [(0, 0, 165, 427), (470, 0, 640, 380), (0, 0, 640, 80)]}
_N_OBJECTS_P = (0.1, 0.35, 0.3, 0.15, 0.1)  # P(0..4 objects in a scene)
_MAX_OVERLAP = 0.15


@dataclass
class Scene:
    """One annotated image: ``boxes`` in pixels of ``image``; ``mask`` holds class ids (1-based,
    0 = background; ``class_names[id - 1]``); ``instances`` holds ``index + 1`` of the box each
    pixel belongs to (0 = background)."""

    image: np.ndarray
    boxes: list[dict]
    mask: np.ndarray
    class_names: list[str]
    instances: np.ndarray = field(repr=False, default=None)

    @property
    def labels(self) -> list[str]:
        return [b["label"] for b in self.boxes]


def class_names(classes: int) -> list[str]:
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be between 1 and {MAX_CLASSES} (got {classes})")
    return list(CLASS_NAMES[:classes])


@functools.lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    return {"china": china, "flower": flower}


@functools.lru_cache(maxsize=1)
def _cutouts() -> dict[str, np.ndarray]:
    """RGBA crops of the two photographed objects (alpha 0/255 = their pixel masks)."""
    from scipy import ndimage

    photos = _photos()
    out = {}
    # Dahlia: orange petals inside a circle around the flower, largest connected region, holes filled.
    a = photos["flower"].astype(np.int32)
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    m = ((xx - 308) ** 2 + (yy - 222) ** 2 < 150**2) & (a[..., 0] > 110) & (a[..., 0] > a[..., 2] + 30)
    m = ndimage.binary_fill_holes(ndimage.binary_opening(m, iterations=2))
    lab, n = ndimage.label(m)
    m = lab == 1 + int(np.argmax(ndimage.sum(m, lab, range(1, n + 1))))
    out["dahlia"] = _rgba_crop(photos["flower"], m)
    # Pagoda: the traced outline minus bright, unsaturated, bluish (sky) pixels.
    a = photos["china"].astype(np.int32)
    poly = Image.new("L", (a.shape[1], a.shape[0]), 0)
    ImageDraw.Draw(poly).polygon(_PAGODA, fill=255)
    sky = (a.min(2) > 140) & (a.max(2) - a.min(2) < 60) & (a[..., 2] >= a[..., 0])
    m = ndimage.binary_fill_holes(ndimage.binary_opening((np.asarray(poly) > 0) & ~sky))
    out["pagoda"] = _rgba_crop(photos["china"], m)
    return out


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target


def _rgba_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = (mask[y0:y1, x0:x1] * 255).astype(np.uint8)
    return np.dstack([image[y0:y1, x0:x1], alpha])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    photos = _photos()
    name = ("china", "flower")[rng.integers(2)]
    regions = _BACKGROUNDS[name]
    x0, y0, x1, y1 = regions[rng.integers(len(regions))]
    rw, rh = x1 - x0, y1 - y0
    # A crop with the scene's aspect ratio, 40-100% of what fits in the region.
    fit = min(rw / width, rh / height)
    f = fit * rng.uniform(0.4, 1.0)
    cw, ch = max(8, int(width * f)), max(8, int(height * f))
    cx, cy = x0 + rng.integers(0, rw - cw + 1), y0 + rng.integers(0, rh - ch + 1)
    crop = Image.fromarray(photos[name][cy : cy + ch, cx : cx + cw]).resize((width, height), Image.BILINEAR)
    arr = np.asarray(crop).astype(np.float32)
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    arr = arr * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
    return np.clip(arr, 0, 255)


def _object(rng: np.random.Generator, label: str, target: float, background_luma: float) -> np.ndarray:
    """RGBA float32 cut-out of ``label`` whose longest side is about ``target`` pixels."""
    if label.startswith("digit"):
        images, targets = _digits()
        choices = np.flatnonzero(targets == int(label.split()[1]))
        glyph = images[choices[rng.integers(len(choices))]]
        side = max(8, int(target))
        w = max(6, int(side * rng.uniform(0.6, 0.85)))  # digits are taller than wide
        ink = np.asarray(Image.fromarray(glyph, "F").resize((w, side), Image.BICUBIC))
        alpha = np.clip((ink - 0.15) * 1.6, 0, 1)
        # Light ink on dark backgrounds, dark ink on light ones, so every digit is visible.
        base = rng.uniform(190, 255, 3) if background_luma < 110 else rng.uniform(0, 70, 3)
        rgb = np.broadcast_to(base, (side, w, 3)) + rng.normal(0, 6, (side, w, 3))
        rgba = np.dstack([rgb, alpha * 255])
    else:
        src = _cutouts()[label]
        h, w = src.shape[:2]
        stretch = rng.uniform(0.85, 1.15)
        s = target / max(h, w)
        nw, nh = max(4, int(w * s * stretch)), max(4, int(h * s / stretch))
        img = Image.fromarray(src, "RGBA").resize((nw, nh), Image.BILINEAR)
        angle = rng.uniform(-12, 12)
        img = img.rotate(angle, resample=Image.BILINEAR, expand=True)
        rgba = np.asarray(img).astype(np.float32)
        rgba[..., :3] = rgba[..., :3] * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
    if rng.random() < 0.5 and not label.startswith("digit"):  # a mirrored digit is another glyph
        rgba = rgba[:, ::-1]
    return rgba


def make_scene(index: int, classes: int = 3, size: int | tuple[int, int] = 320, seed: int = 0) -> Scene:
    """Scene number ``index`` of ``seed``: ``size`` is a side (square) or (width, height)."""
    names = class_names(classes)
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    rng = np.random.default_rng([seed, index, classes])
    canvas = _background(rng, width, height)
    mask = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint16)
    boxes: list[dict] = []
    short = min(width, height)
    # Labels rotate through the classes (offset by the scene index) so classes stay balanced.
    n_objects = int(rng.choice(len(_N_OBJECTS_P), p=_N_OBJECTS_P))
    start = int(rng.integers(len(names)))
    for k in range(n_objects):
        label = names[(start + k * (1 + int(rng.integers(max(1, len(names) - 1))))) % len(names)]
        lo, hi = (0.15, 0.4) if label.startswith("digit") else (0.18, 0.55)
        target = short * rng.uniform(lo, hi)
        rgba = _object(rng, label, target, float(canvas.mean()))
        alpha = rgba[..., 3] / 255.0
        ys, xs = np.nonzero(alpha > 0.5)
        if len(ys) == 0:
            continue
        oh, ow = alpha.shape
        if ow > width or oh > height:
            continue
        for _attempt in range(20):
            ox, oy = int(rng.integers(0, width - ow + 1)), int(rng.integers(0, height - oh + 1))
            box = (ox + int(xs.min()), oy + int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
            if all(_overlap(box, (b["x"], b["y"], b["w"], b["h"])) <= _MAX_OVERLAP for b in boxes):
                break
        else:
            continue
        region = canvas[oy : oy + oh, ox : ox + ow]
        a = alpha[..., None]
        canvas[oy : oy + oh, ox : ox + ow] = region * (1 - a) + np.clip(rgba[..., :3], 0, 255) * a
        solid = alpha > 0.5
        mask[oy : oy + oh, ox : ox + ow][solid] = names.index(label) + 1
        instances[oy : oy + oh, ox : ox + ow][solid] = len(boxes) + 1
        boxes.append({"label": label, "x": box[0], "y": box[1], "w": box[2], "h": box[3]})
    image = np.clip(canvas + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8)
    return Scene(image=image, boxes=boxes, mask=mask, class_names=names, instances=instances)


def make_scenes(n: int, classes: int = 3, size: int | tuple[int, int] = 320, seed: int = 0) -> list[Scene]:
    """``n`` scenes (deterministic for a seed; scene ``i`` does not depend on ``n``)."""
    return [make_scene(i, classes, size, seed) for i in range(n)]


def scenes_per_class(k: int, classes: int = 3, size: int | tuple[int, int] = 320, seed: int = 0,
                     *, start: int = 0) -> list[Scene]:
    """The fewest consecutive scenes (from ``start``) in which every class appears in ``k`` images.

    "``k`` images per class" as people count them when they annotate: images showing the class.
    """
    counts = dict.fromkeys(class_names(classes), 0)
    out = []
    i = start
    while min(counts.values()) < k:
        scene = make_scene(i, classes, size, seed)
        for label in set(scene.labels):
            counts[label] += 1
        out.append(scene)
        i += 1
    return out


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))
