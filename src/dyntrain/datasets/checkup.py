"""Data health of a project's current samples, with Lite0 features for the mislabelling check."""

from __future__ import annotations

import io
import logging
from typing import Any

from PIL import Image

from ..kernel.core import Core
from ..kernel.errors import DyntrainError, Invalid
from ..codecs.imaging import decode_image, model_input, thumbnail_bytes
from .. import tasks
from .changes import list_samples, project_task
from .health import HealthSample, check_health

__all__ = ["data_health"]

log = logging.getLogger(__name__)


def _load(core: Core, content_hash: str) -> tuple[Image.Image | None, str | None]:
    try:
        img = decode_image(core.blobs.get(content_hash), max_pixels=core.settings.max_image_pixels)
        return Image.open(io.BytesIO(thumbnail_bytes(img, 160))), None
    except DyntrainError as exc:
        return None, exc.message


def data_health(core: Core, project: str, *, with_features: bool = True) -> dict[str, Any]:
    """Findings about the project's data, each naming the samples and what to do.

    >>> data_health(core, "products")["findings"][0]["kind"]  # doctest: +SKIP
    'near_duplicate'
    """
    if not tasks.get(project_task(core, project)).modality.health_checks:
        raise Invalid("data-health checks cover image projects so far; for texts, check the class counts "
                      "on the project page")
    samples, total = list_samples(core, project, limit=100_000)
    health = []
    for s in samples:
        image, error = _load(core, s.content_hash)
        health.append(HealthSample(id=s.id, label=s.label, sha256=s.content_hash, image=image,
                                   width=s.meta.get("width", image.width if image else 0),
                                   height=s.meta.get("height", image.height if image else 0),
                                   error=error, phash=s.meta.get("phash")))
    features = None
    if with_features and samples and all(h.error is None for h in health):
        try:
            from ..scheduler.jobs import extractor

            def load(key: str):
                return model_input(decode_image(core.blobs.get(key), max_pixels=core.settings.max_image_pixels))

            features = extractor(core).features("lite0.pooled", [s.content_hash for s in samples], load)
        except Exception:  # the training extra may be missing on an inference-only install
            log.exception("no backbone features for the health check; skipping the mislabelling check")
    findings = check_health(health, features=features)
    return {"samples": total, "checked_mislabelling": features is not None,
            "findings": [f.to_dict() for f in findings]}
