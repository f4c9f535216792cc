"""Segmentation masks: decode, validate, encode and hash them (torch-free; serving uses it).

A mask is a uint8 ``H x W`` array of class ids: ``0 .. n_classes-1`` (0 is conventionally the
background) and :data:`UNLABELLED` (255) for pixels nobody labelled, which training and metrics
ignore. Masks arrive in several forms, all decoded to that array:

* an **indexed PNG** (palette ``P`` or grey ``L`` mode, also 1-bit and 16-bit grey): the pixel
  value *is* the class id, 255 is unlabelled (the Pascal VOC convention);
* an **RGB colour-mapped PNG** with a class table ``{name: [r, g, b]}``: each colour is a class;
  fully transparent pixels (alpha 0) and :data:`UNLABELLED_COLOR` are unlabelled;
* **COCO** polygons or RLE (compressed or not) for one image's annotations.

Masks leave as an indexed PNG whose palette holds the class colours (:func:`encode_png`), so
any image viewer shows them in colour and :func:`decode_png` reads them back exactly.
:func:`canonical_bytes` / :func:`digest` give a byte form independent of any PNG encoder, so
the same mask always hashes the same (a repainted mask is a new version; a re-saved one is not).

>>> import numpy as np
>>> m = np.array([[0, 1], [2, 255]], np.uint8)
>>> names = ["background", "cup", "plate"]
>>> png = encode_png(m, names)
>>> bool((decode_png(png, names) == m).all())
True
>>> digest(decode_png(png, names)) == digest(m)
True
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..kernel.errors import Invalid, MissingExtra
from ..kernel.limits import exceeded

__all__ = [
    "UNLABELLED",
    "UNLABELLED_COLOR",
    "MAX_CLASSES",
    "PNG_SIGNATURE",
    "default_colors",
    "class_colors",
    "pin_new_colors",
    "check_class_table",
    "check_mask",
    "decode_png",
    "decode_coco",
    "encode_png",
    "encode_coco",
    "canonical_bytes",
    "from_canonical_bytes",
    "digest",
    "class_areas",
    "overlay",
    "difference",
    "served_mask",
    "probability_pngs",
]

UNLABELLED = 255
# Pascal VOC's "void" colour: unlabelled pixels in colour masks and in our palettes.
UNLABELLED_COLOR = (224, 224, 192)
# Class ids are uint8 and 255 is reserved for "unlabelled".
MAX_CLASSES = 255
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bump if the canonical layout changes: it is part of every mask digest.
_CANONICAL_MAGIC = b"dyntrain-mask-v1\x00"


def default_colors(class_names: Sequence[str]) -> dict[str, list[int]]:
    """Distinct colours for classes, background black: the Pascal VOC colour map.

    VOC's map spreads the bits of the class id over the three channels, so neighbouring ids get
    clearly different colours and masks look familiar to anyone who has seen VOC.

    >>> default_colors(["background", "cup", "plate"])
    {'background': [0, 0, 0], 'cup': [128, 0, 0], 'plate': [0, 128, 0]}
    """
    return {str(name): _voc(i) for i, name in enumerate(class_names)}


def _voc(i: int) -> list[int]:
    """The Pascal VOC colour of class id ``i``."""
    r = g = b = 0
    c = i
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return [r, g, b]


def class_colors(class_names: Sequence[str], pinned: Mapping[str, Sequence[int]] | None = None) -> dict[str, list[int]]:
    """The colour of every class in a project: its pinned one (the project's ``class_colors``),
    else the VOC colour of its place in ``class_names`` unless a pinned class has that colour, then
    the next VOC colour no class has. With nothing pinned this is :func:`default_colors`.

    >>> class_colors(["background", "cup", "plate"], {"plate": [128, 0, 0]})
    {'background': [0, 0, 0], 'cup': [0, 128, 0], 'plate': [128, 0, 0]}
    """
    pinned = {str(k): [int(v) for v in c] for k, c in (pinned or {}).items()}
    used = {tuple(c) for name, c in pinned.items() if name in class_names}
    out: dict[str, list[int]] = {}
    nxt = 1
    for i, name in enumerate(class_names):
        if name in pinned:
            out[name] = pinned[name]
            continue
        rgb = _voc(i)
        if tuple(rgb) in used:
            while tuple(_voc(nxt)) in used or tuple(_voc(nxt)) == UNLABELLED_COLOR:
                nxt += 1
            rgb = _voc(nxt)
        used.add(tuple(rgb))
        out[name] = rgb
    return out


def pin_new_colors(pinned: Mapping[str, Sequence[int]] | None, shown: Sequence[str],
                   new: Sequence[str]) -> dict[str, list[int]]:
    """The project's pinned colours with every class of ``shown`` (its classes in display order)
    pinned to the colour it shows now, and each of ``new`` (added classes) given the first VOC
    colour after black that no class has: a class keeps its colour as others come and go.

    >>> pin_new_colors({}, ["background", "plate"], ["cup"])
    {'background': [0, 0, 0], 'plate': [128, 0, 0], 'cup': [0, 128, 0]}
    """
    out = class_colors(list(shown), pinned)
    out.update({k: [int(v) for v in c] for k, c in (pinned or {}).items() if k not in out})
    used = {tuple(c) for c in out.values()}
    i = 1
    for name in new:
        if name in out:
            continue
        while tuple(_voc(i)) in used or tuple(_voc(i)) == UNLABELLED_COLOR:
            i += 1
        out[name] = _voc(i)
        used.add(tuple(out[name]))
    return out


def check_class_table(class_names: Sequence[str], colors: Mapping[str, Sequence[int]] | None = None) -> dict[str, tuple[int, int, int]]:
    """Validate class names (and colours); return ``{name: (r, g, b)}`` for every class.

    Missing colours are filled from :func:`default_colors`. Raises :class:`Invalid` for too many
    classes, duplicate or empty names, malformed colours, or two classes sharing a colour (a
    colour mask could not tell them apart).
    """
    names = [str(n) for n in class_names]
    if len(names) < 1:
        raise Invalid("a segmentation task needs at least one class (usually 'background' first)")
    if len(names) > MAX_CLASSES:
        raise Invalid(f"too many classes: {len(names)}; a mask holds at most {MAX_CLASSES} "
                      f"(ids 0..{MAX_CLASSES - 1}; {UNLABELLED} means unlabelled). Merge some classes.")
    if any(not n.strip() for n in names):
        raise Invalid("class names must not be empty")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise Invalid(f"class names must be unique; repeated: {', '.join(map(repr, dupes))}")
    colors = dict(colors or {})
    unknown = sorted(set(colors) - set(names))
    if unknown:
        raise Invalid(f"the class table has colours for unknown classes {', '.join(map(repr, unknown))}; "
                      f"the classes are {', '.join(map(repr, names))}")
    defaults = default_colors(names)
    table: dict[str, tuple[int, int, int]] = {}
    for name in names:
        rgb = colors.get(name, defaults[name])
        try:
            rgb_t = tuple(int(v) for v in rgb)
        except (TypeError, ValueError):
            raise Invalid(f"the colour of class {name!r} must be [r, g, b] with 0..255 each, not {rgb!r}") from None
        if len(rgb_t) != 3 or not all(0 <= v <= 255 for v in rgb_t):
            raise Invalid(f"the colour of class {name!r} must be [r, g, b] with 0..255 each, not {list(rgb)!r}")
        table[name] = rgb_t  # type: ignore[assignment]
    seen: dict[tuple[int, int, int], str] = {}
    for name, rgb_t in table.items():
        if rgb_t in seen:
            raise Invalid(f"classes {seen[rgb_t]!r} and {name!r} have the same colour {list(rgb_t)}; "
                          "give each class its own colour")
        if rgb_t == UNLABELLED_COLOR:
            raise Invalid(f"class {name!r} uses {list(UNLABELLED_COLOR)}, the colour reserved for unlabelled "
                          "pixels; pick another colour")
        seen[rgb_t] = name
    return table


def check_mask(mask: Any, n_classes: int, *, image_size: tuple[int, int] | None = None, name: str = "mask") -> np.ndarray:
    """Validate an in-memory mask (2-D integer class ids); return it as a uint8 array.

    ``image_size`` is the image's ``(width, height)``; a mask of another size is refused.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise Invalid(f"{name}: a mask must be a 2-D array of class ids (height x width), got shape {arr.shape}")
    if arr.size == 0:
        raise Invalid(f"{name}: the mask has no pixels")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise Invalid(f"{name}: class ids must be integers, got {arr.dtype}")
    _check_size(arr, image_size, name)
    bad = (arr != UNLABELLED) & ((arr < 0) | (arr >= n_classes))
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0])
        raise Invalid(f"{name}: class id {int(arr[y, x])} at (x={x}, y={y}) but there are only {n_classes} classes "
                      f"(ids 0..{n_classes - 1}; {UNLABELLED} means unlabelled)", details=_bad_count(bad))
    return arr.astype(np.uint8, copy=False)


def _check_size(arr: np.ndarray, image_size: tuple[int, int] | None, name: str) -> None:
    if image_size is None:
        return
    w, h = (int(v) for v in image_size)
    if arr.shape != (h, w):
        raise Invalid(f"{name}: the mask is {arr.shape[1]}x{arr.shape[0]} pixels but its image is {w}x{h}; "
                      "a mask must have exactly the size of its (upright) image")


def _pixels(n: int) -> str:
    return f"{n} pixel" if n == 1 else f"{n} pixels"


def _bad_count(bad: np.ndarray) -> list[dict[str, Any]]:
    return [{"bad_pixels": int(bad.sum())}]


def decode_png(
    data: bytes,
    class_names: Sequence[str],
    colors: Mapping[str, Sequence[int]] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    name: str = "mask",
    max_pixels: int = 40_000_000,
) -> np.ndarray:
    """Decode a PNG mask (indexed or colour-mapped) into uint8 class ids; see the module doc.

    ``colors`` is the class table for RGB masks (missing classes get :func:`default_colors`).
    ``image_size`` is the image's ``(width, height)``. ``name`` (e.g. the file name) starts every
    error message, so an upload of many masks says which one is wrong. ``max_pixels`` is checked
    from the header before decoding (:class:`~dyntrain.kernel.errors.TooLarge`).
    """
    table = check_class_table(class_names, colors)
    n = len(table)
    if not isinstance(data, (bytes, bytearray, memoryview)) or not bytes(data[:8]) == PNG_SIGNATURE:
        raise Invalid(f"{name}: not a PNG file; masks must be PNG (lossless): JPEG would blur class "
                      "boundaries into colours no class has")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(bytes(data)))
            # Size checks from the header, before any pixel is decompressed (PNG bombs).
            w, h = img.size
            if w * h > max_pixels:
                raise exceeded(f"{name}: the mask is {w}x{h} = {w * h} pixels", max_pixels, "max_image_pixels")
            if image_size is not None and (w, h) != tuple(int(v) for v in image_size):
                _check_size(np.empty((h, w), np.uint8), image_size, name)
            img.load()
    except Image.DecompressionBombError:
        # Pillow's own guard (when the process has not turned it off) fires in open().
        raise exceeded(f"{name}: the mask has more pixels than Pillow will decode", max_pixels,
                       "max_image_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Invalid(f"{name}: corrupt or truncated PNG: {exc}") from None
    mode = img.mode
    if mode in ("P", "L", "1", "I;16", "I;16B", "I;16L", "I"):
        # Indexed: the stored number is the class id (for P, the palette index, not its colour:
        # editors change palettes freely, the indices are what was painted).
        ids = np.asarray(img if mode != "1" else img.convert("L").point(lambda v: 1 if v else 0))
        return check_mask(ids, n, image_size=image_size, name=name)
    if mode in ("RGB", "RGBA", "LA", "PA"):
        return _decode_colors(img, table, name)
    raise Invalid(f"{name}: unsupported PNG mode {mode!r}; use an indexed (palette or greyscale) PNG where the "
                  "pixel value is the class id, or an RGB PNG with a colour per class")


def _decode_colors(img: Image.Image, table: Mapping[str, tuple[int, int, int]], name: str) -> np.ndarray:
    rgba = np.asarray(img.convert("RGBA"))
    h, w = rgba.shape[:2]
    # One integer per colour, then a lookup over the sorted known colours (vectorised).
    key = (rgba[..., 0].astype(np.int32) << 16) | (rgba[..., 1].astype(np.int32) << 8) | rgba[..., 2]
    known = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(table.values())}
    uc = UNLABELLED_COLOR
    known[(uc[0] << 16) | (uc[1] << 8) | uc[2]] = UNLABELLED
    keys = np.array(sorted(known), np.int32)
    values = np.array([known[k] for k in keys], np.uint8)
    pos = np.clip(np.searchsorted(keys, key), 0, len(keys) - 1)
    found = keys[pos] == key
    out = values[pos]
    transparent = rgba[..., 3] == 0
    out[transparent] = UNLABELLED
    bad = ~found & ~transparent
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0])
        colour = [int(c) for c in rgba[y, x, :3]]
        others = len(np.unique(key[bad]))
        listing = ", ".join(f"{k} {list(v)}" for k, v in table.items())
        more = f" ({others - 1} other unknown colour{'s' if others > 2 else ''} too)" if others > 1 else ""
        raise Invalid(f"{name}: unknown colour {colour} at (x={x}, y={y}), {_pixels(int(bad.sum()))} of unknown colour{more}; "
                      f"the class table has {listing} and unlabelled {list(UNLABELLED_COLOR)}. Add the colour to "
                      "the class table or repaint those pixels (anti-aliased brushes make in-between colours: "
                      "paint with aliasing off)", details=_bad_count(bad))
    return out.reshape(h, w)


def encode_png(mask: np.ndarray, class_names: Sequence[str], colors: Mapping[str, Sequence[int]] | None = None) -> bytes:
    """An indexed PNG of the mask: pixel = class id, palette = the class colours.

    Index 255 is painted :data:`UNLABELLED_COLOR`. Deterministic: the same mask, classes and
    colours give the same bytes (so a decoded-and-re-encoded file is byte-identical).
    """
    table = check_class_table(class_names, colors)
    mask = check_mask(mask, len(table))
    palette = np.zeros((256, 3), np.uint8)
    for i, rgb in enumerate(table.values()):
        palette[i] = rgb
    palette[UNLABELLED] = UNLABELLED_COLOR
    img = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    img.putpalette(palette.reshape(-1).tolist(), rawmode="RGB")
    out = io.BytesIO()
    # No optimize: Pillow would renumber palette entries, and the index is the class id.
    img.save(out, "PNG", optimize=False, compress_level=9)
    return out.getvalue()


def canonical_bytes(mask: np.ndarray) -> bytes:
    """The mask's canonical byte form: a magic tag, height and width, then the raw ids row by row.

    Independent of PNG encoders and compression levels, so hashing it identifies the painted
    content exactly (store the compact :func:`encode_png` file; hash this).
    """
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise Invalid(f"a canonical mask is a 2-D uint8 array, got {arr.dtype} {arr.shape}")
    return _CANONICAL_MAGIC + struct.pack("<II", arr.shape[0], arr.shape[1]) + np.ascontiguousarray(arr).tobytes()


def from_canonical_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`canonical_bytes`."""
    head = len(_CANONICAL_MAGIC) + 8
    if not data.startswith(_CANONICAL_MAGIC) or len(data) < head:
        raise Invalid("not a canonical dyntrain mask (wrong header)")
    h, w = struct.unpack("<II", data[len(_CANONICAL_MAGIC):head])
    if len(data) != head + h * w:
        raise Invalid(f"canonical mask says {w}x{h} but holds {len(data) - head} bytes of pixels")
    return np.frombuffer(data, np.uint8, offset=head).reshape(h, w).copy()


def digest(mask: np.ndarray) -> str:
    """SHA-256 (hex) of :func:`canonical_bytes`: the mask's content hash."""
    return hashlib.sha256(canonical_bytes(mask)).hexdigest()


def class_areas(mask: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{name: {"pixels", "fraction"}}`` per class; the fraction is of the labelled pixels."""
    mask = np.asarray(mask)
    counts = np.bincount(mask.reshape(-1), minlength=256)
    labelled = int(counts[:UNLABELLED].sum())
    return {str(name): {"pixels": int(counts[i]), "fraction": float(counts[i] / labelled) if labelled else 0.0}
            for i, name in enumerate(class_names)}


def overlay(image: Image.Image, mask: np.ndarray, class_names: Sequence[str],
            colors: Mapping[str, Sequence[int]] | None = None, *, opacity: float = 0.5,
            skip_background: bool = True) -> Image.Image:
    """The photo with the mask's class colours blended over it (for reports and the try page).

    Class 0 is left clear when ``skip_background`` (it is usually "background"); unlabelled
    pixels are never painted. The mask must have the image's size.
    """
    table = check_class_table(class_names, colors)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    mask = check_mask(mask, len(table), image_size=image.size)
    palette = np.zeros((256, 3), np.float32)
    for i, c in enumerate(table.values()):
        palette[i] = c
    paint = (mask != UNLABELLED) & ((mask != 0) if skip_background else True)
    alpha = float(np.clip(opacity, 0.0, 1.0))
    out = rgb.copy()
    out[paint] = (1 - alpha) * rgb[paint] + alpha * palette[mask[paint]]
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


def difference(image: Image.Image, truth: np.ndarray, predicted: np.ndarray, *,
               color: Sequence[int] = (255, 0, 64), dim: float = 0.5) -> Image.Image:
    """Where a prediction is wrong: the photo dimmed, wrong pixels in ``color``.

    For the report's worst examples (truth, prediction, difference side by side); unlabelled
    truth pixels are never wrong, so they stay dimmed like correct ones.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape or truth.shape != rgb.shape[:2]:
        raise Invalid(f"image {rgb.shape[1]}x{rgb.shape[0]}, truth {truth.shape[1]}x{truth.shape[0]} and "
                      f"prediction {predicted.shape[1]}x{predicted.shape[0]} must have the same size")
    wrong = (truth != UNLABELLED) & (truth != predicted)
    out = rgb * float(np.clip(dim, 0.0, 1.0))
    out[wrong] = np.asarray(color, np.float32)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


# --- COCO --------------------------------------------------------------------------------------


def _coco_mask_api():
    """pycocotools' mask module, or faster-coco-eval's copy of the same API."""
    try:
        from pycocotools import mask as api
    except ImportError:
        try:
            from faster_coco_eval.core import mask as api
        except ImportError:
            raise MissingExtra("COCO polygon / RLE masks", "coco") from None
    return api


def decode_coco(
    annotations: Sequence[Mapping[str, Any]],
    *,
    height: int,
    width: int,
    category_to_class: Mapping[int, int],
    unannotated: int = 0,
    name: str = "annotations",
) -> np.ndarray:
    """Paint one image's COCO annotations into a mask of class ids.

    Each annotation has ``category_id`` and ``segmentation``: a list of polygons
    (``[[x1, y1, x2, y2, ...], ...]``) or an RLE (``{"size": [h, w], "counts": ...}``, counts a
    list (uncompressed) or a string (compressed)). ``category_to_class`` maps COCO category ids to
    our class ids. Pixels no annotation covers get ``unannotated`` (0, the background, as COCO
    means it; pass :data:`UNLABELLED` for partially annotated images). Where annotations overlap,
    the smaller one is painted last, so a cup on a table stays a cup.
    """
    api = _coco_mask_api()
    h, w = int(height), int(width)
    if h < 1 or w < 1:
        raise Invalid(f"{name}: image size must be positive, got {w}x{h}")
    out = np.full((h, w), int(unannotated), np.uint8)
    painted: list[tuple[float, int, np.ndarray]] = []
    for k, ann in enumerate(annotations):
        where = f"{name}: annotation {ann.get('id', k)!r}"
        if "category_id" not in ann or "segmentation" not in ann:
            raise Invalid(f"{where} needs 'category_id' and 'segmentation'")
        cat = ann["category_id"]
        if cat not in category_to_class:
            raise Invalid(f"{where}: category_id {cat!r} is not in the category table "
                          f"(known: {sorted(category_to_class)})")
        seg = ann["segmentation"]
        try:
            if isinstance(seg, list):
                polys = [list(map(float, p)) for p in seg]
                if not polys or any(len(p) < 6 or len(p) % 2 for p in polys):
                    raise Invalid(f"{where}: a polygon is a flat list [x1, y1, x2, y2, ...] of at least 3 points")
                rle = api.merge(api.frPyObjects(polys, h, w))
            elif isinstance(seg, Mapping) and "counts" in seg and "size" in seg:
                size = [int(v) for v in seg["size"]]
                if size != [h, w]:
                    raise Invalid(f"{where}: the RLE is for a {size[1]}x{size[0]} image but the image is {w}x{h}")
                counts = seg["counts"]
                if isinstance(counts, list):
                    if sum(int(c) for c in counts) != h * w:
                        raise Invalid(f"{where}: the RLE counts add up to {sum(counts)} pixels, not {h * w}")
                    rle = api.frPyObjects(dict(seg), h, w)
                else:
                    rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else bytes(counts)}
            else:
                raise Invalid(f"{where}: 'segmentation' must be polygons (a list) or an RLE "
                              "({'size': [h, w], 'counts': ...})")
            binary = api.decode(rle)
        except Invalid:
            raise
        except Exception as exc:  # the C extension raises assorted errors on malformed input
            raise Invalid(f"{where}: unreadable segmentation: {exc}") from None
        if binary.ndim == 3:
            binary = binary.any(axis=2)
        painted.append((float(binary.sum()), k, binary.astype(bool)))
    for _area, k, binary in sorted(painted, key=lambda t: (-t[0], t[1])):
        out[binary] = int(category_to_class[annotations[k]["category_id"]])
    return out


def encode_coco(mask: np.ndarray, class_to_category: Mapping[int, int], *, image_id: int = 0,
                first_id: int = 1) -> list[dict[str, Any]]:
    """One COCO annotation per class present (compressed RLE, ``iscrowd`` 1 as COCO does for
    RLE), for the classes in ``class_to_category`` (leave the background out to skip it)."""
    api = _coco_mask_api()
    mask = np.asarray(mask)
    out: list[dict[str, Any]] = []
    for cls, cat in sorted(class_to_category.items()):
        binary = np.asfortranarray((mask == int(cls)).astype(np.uint8))
        if not binary.any():
            continue
        rle = api.encode(binary)
        bbox = [float(v) for v in api.toBbox(rle)]
        out.append({"id": first_id + len(out), "image_id": image_id, "category_id": cat, "iscrowd": 1,
                    "area": float(api.area(rle)), "bbox": bbox,
                    "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}})
    return out


# --- serving ------------------------------------------------------------------------------------


def served_mask(mask: np.ndarray, probabilities: np.ndarray | None, scale: float, pad_x: int, pad_y: int,
                width: int, height: int) -> tuple[np.ndarray, float, np.ndarray | None]:
    """One image's served outputs (``mask`` [S,S] class ids and ``probabilities`` [C,S,S] of a
    letterboxed input) as (uint8 class ids at the photo's ``height`` x ``width``, confidence, the
    probabilities of the photo's own model pixels as uint8 [C,h,w], 255 = 1).

    The confidence is the mean over the photo's own pixels (padding left out) of the winning
    class's probability: how sure the model is of the mask as a whole (1.0 without probabilities).
    The probabilities are kept small (bytes, at the model's resolution) until someone asks for them
    (:func:`probability_pngs`). NumPy only, so serving needs no learner.
    """
    from .letterbox import map_to_original

    ids = map_to_original(np.asarray(mask), scale, pad_x, pad_y, width, height, nearest=True).astype(np.uint8)
    if probabilities is None:
        return ids, 1.0, None
    x1, y1 = pad_x + max(1, round(width * scale)), pad_y + max(1, round(height * scale))
    own = np.asarray(probabilities)[:, pad_y:y1, pad_x:x1]
    confidence = float(own.max(axis=0).mean())  # the winning class's probability, on average
    return ids, confidence, np.clip(own * 255 + 0.5, 0, 255).astype(np.uint8)


def probability_pngs(probabilities: np.ndarray, width: int, height: int, class_names: Sequence[str]) -> dict[str, bytes]:
    """:func:`served_mask`'s probabilities [C,h,w] as a greyscale PNG per class at the photo's
    ``width`` x ``height`` (bilinear; 255 = certain)."""
    out = {}
    for k, name in enumerate(class_names):
        buf = io.BytesIO()
        Image.fromarray(np.asarray(probabilities[k], np.uint8), "L").resize((width, height), Image.BILINEAR).save(buf, "PNG")
        out[str(name)] = buf.getvalue()
    return out
