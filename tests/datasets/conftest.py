"""Real images for the dataset tests: scikit-learn's bundled sample photos and digits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """The two bundled 640x427 photos: 'china' (a temple) and 'flower' (a dahlia)."""
    china, flower = load_sample_images().images
    return {"china": Image.fromarray(china), "flower": Image.fromarray(flower)}


@pytest.fixture(scope="session")
def photo224(photos) -> np.ndarray:
    """The flower photo as the model sees it: uint8 224x224x3."""
    return np.asarray(photos["flower"].resize((224, 224), Image.BILINEAR))


@pytest.fixture(scope="session")
def digits() -> list[tuple[int, Image.Image]]:
    """The first 60 scikit-learn digits, upscaled from 8x8 to 64x64 RGB."""
    d = load_digits()
    return [
        (int(d.target[i]),
         Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).resize((64, 64), Image.BILINEAR).convert("RGB"))
        for i in range(60)
    ]
