"""Helpers shared by the dataset tests."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image


def crops(image: Image.Image, n: int, seed: int, size: int = 96) -> list[Image.Image]:
    """n random square crops (160..300 px) of a photo, resized to size x size."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    out = []
    for _ in range(n):
        s = int(rng.integers(160, 300))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        out.append(image.crop((x, y, x + s, y + s)).resize((size, size), Image.BILINEAR))
    return out


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def reencoded(image: Image.Image, quality: int = 60) -> Image.Image:
    """The same picture saved again as a JPEG: different bytes, same content."""
    return Image.open(io.BytesIO(jpeg_bytes(image, quality))).convert("RGB")


def sha(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


def colour_histogram(image: Image.Image) -> np.ndarray:
    """A simple real-image feature (64-bin RGB histogram, square-rooted) standing in for
    backbone features, which the platform takes from EfficientNet-Lite0."""
    a = np.asarray(image.convert("RGB")) // 64
    idx = a[..., 0] * 16 + a[..., 1] * 4 + a[..., 2]
    return np.sqrt(np.bincount(idx.ravel(), minlength=64).astype(float))
