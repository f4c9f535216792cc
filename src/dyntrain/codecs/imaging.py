"""Torch-free image handling shared by upload validation, training and serving.

Training features and the served ONNX model both start from :func:`model_input`, so a
model sees exactly the same pixels at training time and in production.

>>> from PIL import Image; import io
>>> buf = io.BytesIO(); Image.new("L", (10, 7)).save(buf, "PNG")
>>> model_input(decode_image(buf.getvalue())).shape
(224, 224, 3)
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..kernel.errors import Invalid
from ..kernel.limits import exceeded

__all__ = [
    "INPUT_SIZE",
    "PREPROCESSING",
    "decode_image",
    "model_input",
    "model_inputs",
    "thumbnail_bytes",
    "image_info",
]

INPUT_SIZE = 224
# Recorded in every model card and feature-cache key: change the name when the pixels change.
PREPROCESSING = "rgb-exif-squash-224-bilinear-v1"

# Pillow's own bomb check is a process-wide global; we check our configurable limit
# ourselves before decoding, and leave Pillow's as a second line of defence.
Image.MAX_IMAGE_PIXELS = None


def decode_image(data: bytes, *, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode bytes into an upright RGB image, or raise :class:`Invalid` / :class:`TooLarge`.

    Handles EXIF orientation, greyscale, palette, alpha (composited on white), CMYK and
    16-bit images. The pixel limit is checked from the header, before any decoding.
    """
    if not data:
        raise Invalid("the file is empty (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise Invalid("not an image Pillow can read (expected JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except Exception as exc:  # truncated headers raise assorted errors
        raise Invalid(f"unreadable image: {exc}") from None
    w, h = img.size
    if w * h > max_pixels:
        raise exceeded(f"image is {w}x{h} = {w * h} pixels", max_pixels, "max_image_pixels")
    if w < 1 or h < 1:
        raise Invalid("image has no pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            img = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise Invalid(f"corrupt or truncated image data: {exc}") from None
    return _to_rgb(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale the actual range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def model_input(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The model's input: uint8 RGB, HWC, ``size`` x ``size`` (whole image, squashed).

    Squashing keeps every part of the photo (a centre crop can cut off the product);
    normalisation happens inside the ONNX graph so serving needs nothing else.
    """
    return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)


def model_inputs(blobs: list[bytes], *, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode and preprocess many images into one uint8 NHWC batch."""
    if not blobs:
        return np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    return np.stack([model_input(decode_image(b, max_pixels=max_pixels)) for b in blobs])


def thumbnail_bytes(img: Image.Image, size: int = 160) -> bytes:
    """A JPEG thumbnail that fits in ``size`` x ``size``."""
    thumb = img.copy()
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85)
    return out.getvalue()


def image_info(img: Image.Image) -> dict:
    """Metadata kept with a sample (used by data-health checks and the UI)."""
    return {"width": img.width, "height": img.height}
