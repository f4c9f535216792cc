"""Picture-to-picture pairs (learned image filters): the output image, its measures and its files.

An output image is a PNG of exactly the input photo's size, greyscale ("L") or colour ("RGB"). PNG
only: a JPEG output's block artefacts would be learnt as part of the filter (and an edge map is
mostly sharp steps, which JPEG smears). An RGB PNG whose three channels are equal everywhere is
greyscale; alpha is dropped (an output is what the filter paints, not how it is composited).

**Measures.** PSNR in dB of 8-bit images, ``10·log10(255² / MSE)`` (identical images:
:data:`PSNR_CAP`), of a set of images from their mean MSE (:func:`psnr_pooled`); SSIM by Wang et al. (2004) with the usual constants (Gaussian window σ = 1.5
truncated at 3.5σ, K1 = 0.01, K2 = 0.03, L = 255, population covariances, the mean over pixels
at least the window's radius from the border, channels averaged) — the same as scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``, which the tests check it against; scikit-image itself is not a dependency.

**Files** (a folder or a zip): ``inputs/<name>`` photos and ``outputs/<stem>.png`` of the same
stem; every output is checked against its photo before anything is sent or stored.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..kernel.errors import Invalid

__all__ = ["MODES", "PSNR_CAP", "read_output", "encode_png", "digest", "as_mode", "mse", "psnr", "psnr_of",
           "psnr_pooled", "ssim",
           "read_pairs", "write_pairs", "png_from_text"]

MODES = ("L", "RGB")
#: PSNR of identical images (MSE 0): a finite number that sorts above any real one.
PSNR_CAP = 100.0
_PNG = b"\x89PNG\r\n\x1a\n"
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_INPUTS, _OUTPUTS = "inputs", "outputs"
FORMAT = ('an image-to-image label is a JSON object {"image": "<base64 PNG>"}: the output image (PNG, greyscale '
          'or RGB) of exactly the photo\'s size')


def png_from_text(value: Any) -> bytes:
    """The bytes of an image sent as base64 or a ``data:`` URL."""
    import binascii

    if not isinstance(value, str) or not value.strip():
        raise Invalid(f'"image" must be a base64-encoded PNG (or a data: URL of one); {FORMAT}')
    try:
        return base64.b64decode(_DATA_URL.sub("", value.strip(), count=1), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid('"image" is not valid base64: send the PNG file\'s bytes base64-encoded '
                      "(or a data:image/png;base64,… URL)") from None


def read_output(data: bytes, image_size: tuple[int, int] | None = None, *, name: str = "the output image",
                max_pixels: int = 40_000_000) -> np.ndarray:
    """An output image's pixels: uint8 [H, W] (greyscale) or [H, W, 3], checked against the photo's
    (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if data[:3] == b"\xff\xd8\xff":
        raise Invalid(f"{name} is a JPEG: send outputs as PNG (lossless) — JPEG's compression artefacts "
                      "would be learnt as part of the filter")
    if data[:8] != _PNG:
        raise Invalid(f"{name} is not a PNG file: send the output image as a PNG (greyscale or RGB)")
    try:
        img = Image.open(io.BytesIO(data))
        if img.size[0] * img.size[1] > max_pixels:
            raise Invalid(f"{name} is {img.size[0]}x{img.size[1]}, more than {max_pixels} pixels")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Invalid(f"{name} is not a readable PNG ({exc})") from None
    if image_size is not None and tuple(img.size) != tuple(image_size):
        raise Invalid(f"{name} is {img.size[0]}x{img.size[1]} but the photo is {image_size[0]}x{image_size[1]}: "
                      "an output must have exactly the photo's size")
    if img.mode.startswith("I"):  # 16-bit greyscale: its 8 high bits
        return (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
    grey = img.mode in ("1", "L", "LA") or (img.mode == "P" and _grey_palette(img))
    pixels = np.asarray(img.convert("L" if grey else "RGB"), np.uint8)
    if pixels.ndim == 3 and (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all():
        return np.ascontiguousarray(pixels[..., 0])  # saved as RGB, painted in greys: greyscale
    return pixels


def _grey_palette(img) -> bool:
    palette = np.asarray(img.getpalette() or [], np.uint8).reshape(-1, 3)
    return bool(len(palette)) and bool((palette[:, 0] == palette[:, 1]).all() and (palette[:, 1] == palette[:, 2]).all())


def mode_of(pixels: np.ndarray) -> str:
    return "L" if np.asarray(pixels).ndim == 2 else "RGB"


def as_mode(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Pixels in ``mode``: greyscale repeated into RGB, or RGB's luma (ITU-R 601, as Pillow's "L")."""
    pixels = np.asarray(pixels, np.uint8)
    if mode_of(pixels) == mode:
        return pixels
    if mode == "RGB":
        return np.repeat(pixels[..., None], 3, axis=2)
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).convert("L"), np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """The canonical PNG of an output (no metadata; the same pixels give the same bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode_of(pixels)).save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def digest(pixels: np.ndarray) -> str:
    """A hash of the pixels and their shape (not of the PNG bytes: a re-encoded PNG is the same output)."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    head = f"{mode_of(pixels)}:{pixels.shape[1]}x{pixels.shape[0]}:".encode()
    return hashlib.sha256(head + pixels.tobytes()).hexdigest()[:32]


# -- measures --------------------------------------------------------------------------------------


def mse(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean squared error per pixel (0..255 levels)."""
    return float(np.mean((np.asarray(truth, np.float64) - np.asarray(predicted, np.float64)) ** 2))


def psnr_of(mse_value: float) -> float:
    """PSNR (dB) of a mean squared error of 8-bit images (0: :data:`PSNR_CAP`).

    >>> round(psnr_of(255.0 ** 2 / 100), 2), psnr_of(0.0)
    (20.0, 100.0)
    """
    return PSNR_CAP if mse_value <= 0 else min(PSNR_CAP, float(10 * np.log10(255.0 ** 2 / mse_value)))


def psnr(truth: np.ndarray, predicted: np.ndarray) -> float:
    """PSNR (dB) of an 8-bit image against the truth.

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 255
    >>> round(psnr(a, b), 2), psnr(a, a)
    (12.04, 100.0)
    """
    return psnr_of(mse(truth, predicted))


def psnr_pooled(mses) -> float:
    """PSNR of a set of images: of their mean squared error, so a photo answered perfectly (an
    empty edge map of a blank sky: PSNR 100 on its own) does not outweigh the others."""
    mses = list(mses)
    return psnr_of(float(np.mean(mses))) if mses else PSNR_CAP


def ssim(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean structural similarity (see the module doc for the exact definition).

    >>> a = (np.arange(64 * 64) % 251).reshape(64, 64).astype(np.uint8)
    >>> ssim(a, a)
    1.0
    """
    from scipy.ndimage import gaussian_filter

    x, y = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    sigma, truncate = 1.5, 3.5
    radius = int(truncate * sigma + 0.5)
    values = []
    for k in range(x.shape[2]):
        a, b = x[..., k], y[..., k]
        blur = lambda m: gaussian_filter(m, sigma, truncate=truncate, mode="reflect")  # noqa: E731
        ma, mb = blur(a), blur(b)
        va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
        s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
        inner = s[radius:s.shape[0] - radius, radius:s.shape[1] - radius]
        values.append(float((inner if inner.size else s).mean()))
    return round(float(np.mean(values)), 12)


#: Distance (px) within which an answered edge pixel may stand for a true one: a one-pixel shift
#: of a thin edge, straight or diagonal, is the same edge to a person (as boundary F treats outlines).
EDGE_TOLERANCE = 1.5


def edge_counts(truth: np.ndarray, predicted: np.ndarray, tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """``[matched, answered, matched, true]`` edge pixel counts of an edge map (pixels above
    half-scale are edges; colour maps by their luma). Answered and true edge pixels are matched one
    to one (a maximum bipartite matching between pixels within ``tolerance`` px), as the BSDS edge
    benchmark does: an edge found one pixel off counts, an edge drawn three pixels thick finds one
    true pixel per true pixel and the rest are wrong. Counts of several maps add up (:func:`edge_f`)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    t, p = (as_mode(np.asarray(a, np.uint8), "L") > 127 for a in (truth, predicted))
    n_t, n_p = int(t.sum()), int(p.sum())
    if not n_t or not n_p:
        return np.array([0, n_p, 0, n_t], np.int64)
    h, w = t.shape
    true_id = np.full(t.shape, -1, np.int64)
    true_id[t] = np.arange(n_t)
    py, px = np.nonzero(p)
    rows, cols = [], []
    reach = int(np.floor(tolerance))
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx > tolerance * tolerance:
                continue
            y, x = py + dy, px + dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            ids = np.full(n_p, -1, np.int64)
            ids[inside] = true_id[y[inside], x[inside]]
            hit = ids >= 0
            rows.append(np.nonzero(hit)[0])
            cols.append(ids[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = csr_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n_p, n_t))
    matched = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    return np.array([matched, n_p, matched, n_t], np.int64)


def edge_f(counts) -> dict[str, float | None]:
    """Precision, recall and their harmonic mean F of summed :func:`edge_counts` (None where a side
    has no edge pixel; F is 1 when neither has any).

    >>> a = np.zeros((9, 9), np.uint8); a[4] = 255
    >>> b = np.zeros_like(a); b[5] = 255                 # the same line, one pixel lower
    >>> thick = a.copy(); thick[3:6] = 255               # the line, three pixels thick
    >>> [round(edge_f(edge_counts(a, x))["f"], 3) for x in (b, np.roll(b, 2, axis=0), thick)]
    [1.0, 0.0, 0.5]
    """
    mp, n_p, mt, n_t = (int(x) for x in np.asarray(counts).reshape(-1, 4).sum(axis=0))
    precision = mp / n_p if n_p else None
    recall = mt / n_t if n_t else None
    if not n_p and not n_t:
        return {"precision": None, "recall": None, "f": 1.0}
    p, r = precision or 0.0, recall or 0.0
    return {"precision": precision, "recall": recall, "f": 2 * p * r / (p + r) if p + r else 0.0}


# -- files -----------------------------------------------------------------------------------------


def _stem(name: str) -> str:
    return str(PurePosixPath(*PurePosixPath(name).parts[1:]).with_suffix(""))


def read_pairs(path: Path, *, max_bytes: int | None = None) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    """(label as a client sends it, photo file name, photo bytes) of each pair under ``path``."""
    from .archive import IMAGE_SUFFIXES
    from .box_formats import MAX_FILES, MAX_TOTAL_BYTES, _Source, image_size

    source = _Source(Path(path), max_bytes=max_bytes, max_files=MAX_FILES, max_total_bytes=MAX_TOTAL_BYTES)
    try:
        names = source.names()
        folder = lambda n: PurePosixPath(n).parts[0].lower() if "/" in n else ""  # noqa: E731
        inputs = sorted(n for n in names if folder(n) == _INPUTS and PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
        outputs = {_stem(n): n for n in names if folder(n) == _OUTPUTS}
        if not inputs or not outputs:
            raise Invalid("no image pairs found: expected an inputs/ folder of photos and an outputs/ folder of "
                          "PNG output images with the same file names (stems)")
        missing = [n for n in inputs if _stem(n) not in outputs]
        if missing:
            raise Invalid(f"{len(missing)} photos have no output (outputs/<same name>.png): {', '.join(missing[:5])}",
                          details=[{"file": n, "reason": "no output image"} for n in missing[:100]])
        for name in inputs:
            data, out_name = source.read(name), outputs[_stem(name)]
            try:
                size = image_size(data)
            except Invalid as exc:
                raise Invalid(f"{name}: {exc.message}") from None
            output = source.read(out_name)
            read_output(output, size, name=out_name)  # refuse a bad output here, named
            yield {"image": base64.b64encode(output).decode("ascii")}, PurePosixPath(name).name, data
    finally:
        source.close()


def write_pairs(out: Path, samples: list[dict], content: Callable[..., bytes]) -> int:
    """Samples (the API's records) as ``inputs/`` + ``outputs/`` (what :func:`read_pairs` reads back);
    ``content(sample)`` gives the photo, ``content(sample, sha)`` the output PNG its annotation names."""
    from .archive import _export_name, _fit_name

    out = Path(out)
    (out / _INPUTS).mkdir(parents=True, exist_ok=True)
    (out / _OUTPUTS).mkdir(parents=True, exist_ok=True)
    taken, written = set(), 0
    for s in samples:
        ann = s.get("annotation") or {}
        if not ann.get("image"):
            continue
        name = _export_name(s["id"], s["meta"].get("filename") or "")
        name = _fit_name(f"{s['id']}-{name}") if PurePosixPath(name).stem in taken else name
        taken.add(PurePosixPath(name).stem)
        (out / _INPUTS / name).write_bytes(content(s))
        (out / _OUTPUTS / f"{PurePosixPath(name).stem}.png").write_bytes(content(s, ann["image"]))
        written += 1
    return written
