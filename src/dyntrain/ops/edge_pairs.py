"""Real photo pairs for learned image filters: crops of the photos scikit-learn ships in its wheel
(``load_sample_images``: a temple in China and a flower) and their Sobel edge maps, for the tests
and the filter benchmark (which adds scikit-image's photos and Canny).

The Sobel map is the gradient magnitude of the greyscale photo (SciPy's 3x3 Sobel kernels,
reflected borders), divided by 4 (a step from black to white is 255) and clipped to 0..255.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_crops", "sobel_map"]


def sobel_map(photo: np.ndarray) -> np.ndarray:
    """The Sobel edge map (uint8 greyscale) of a uint8 RGB photo."""
    from scipy import ndimage

    grey = np.asarray(photo, np.float64) @ np.array([0.299, 0.587, 0.114])
    magnitude = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))
    # the kernels weigh 4 pixels a side: /4 makes a step from black to white 255
    return np.clip(np.round(magnitude / 4), 0, 255).astype(np.uint8)


def sample_crops(n: int, size: tuple[int, int] = (96, 80), seed: int = 0) -> list[np.ndarray]:
    """``n`` different crops (width, height) of scikit-learn's sample photos, chosen by ``seed``."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        k = int(rng.integers(len(photos)))
        h, w = photos[k].shape[:2]
        y, x = int(rng.integers(0, h - size[1])), int(rng.integers(0, w - size[0]))
        if (k, y // 8, x // 8) in seen:
            continue
        seen.add((k, y // 8, x // 8))
        out.append(np.ascontiguousarray(photos[k][y:y + size[1], x:x + size[0]]))
    return out
