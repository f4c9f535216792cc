"""The demo project seeded on first start: real handwritten digits from scikit-learn."""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from ..kernel.core import Core
from ..datasets.changes import Upload, add_samples
from ..kernel.errors import Conflict
from ..kernel.projects import create_project

__all__ = ["seed_demo", "digit_images"]

log = logging.getLogger(__name__)
DEMO_NAME = "digits-demo"


def digit_images(digits=(0, 1, 7), per_class: int = 15, size: int = 64, offset: int = 0) -> list[tuple[str, bytes]]:
    """(label, PNG bytes) pairs from scikit-learn's bundled 8x8 digits, upscaled to ``size``.

    >>> len(digit_images(per_class=2))
    6
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    out = []
    for digit in digits:
        idx = np.flatnonzero(data.target == digit)[offset:offset + per_class]
        for i in idx:
            pixels = (255 - data.images[i] * (255 / 16)).astype(np.uint8)  # dark ink on white paper
            buf = io.BytesIO()
            Image.fromarray(pixels, "L").resize((size, size), Image.NEAREST).save(buf, "PNG")
            out.append((f"digit-{digit}", buf.getvalue()))
    return out


def seed_demo(core: Core) -> bool:
    """Create the demo project once per data dir (a marker keeps a deleted demo deleted)."""
    marker = core.settings.data_dir / ".demo-seeded"
    if marker.exists():
        return False
    try:
        create_project(core, DEMO_NAME, description="Handwritten digits 0, 1 and 7 (scikit-learn's bundled "
                       "digits). Add, relabel or delete images and watch it retrain.")
    except Conflict:  # a project of that name exists already: leave it alone
        marker.write_text("exists\n")
        return False
    images = digit_images()
    add_samples(core, DEMO_NAME, [Upload(f"{label}-{i:03d}.png", data) for i, (label, data) in enumerate(images)],
                [label for label, _ in images], source="demo")
    marker.write_text("seeded\n")
    log.info("seeded demo project %r with %d images", DEMO_NAME, len(images))
    return True
