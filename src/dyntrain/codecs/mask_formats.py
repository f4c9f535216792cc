"""Segmentation data sets on disk: photos with PNG masks, or COCO polygons / RLE.

**png** (a folder or a zip): ``images/<name>`` and ``masks/<stem>.png`` (``SegmentationClass/``,
the Pascal VOC name, works too) paired by the file stem, and a class table at the top:

* ``classes.json``: a list of names by id (``["background", "cup"]``) for indexed masks, or an
  object ``{"background": [0, 0, 0], "cup": [128, 0, 0]}`` (ids in that order, each with its
  colour) for RGB masks (and indexed ones);
* ``labelmap.txt`` (Pascal VOC / CVAT): ``name:r,g,b::`` per line, ids in line order;
* ``classes.txt``: one name per line, ids in line order.

Indexed masks hold class ids (255 = unlabelled); RGB masks the table's colours (the unlabelled
colour or alpha 0 for unlabelled pixels). **coco**: an ``annotations.json`` (or any ``*.json``
with ``images``, ``annotations`` and ``categories``) whose segmentations are polygons or RLE;
pixels no annotation covers are background.

Every mask is decoded and checked against its photo's size before it is yielded, and a bad one
is named with its file (the CLI sends nothing of a data set with a bad mask).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..kernel.errors import Invalid
from . import masks as mk
from .archive import IMAGE_SUFFIXES

__all__ = ["FORMATS", "read_masks", "write_masks", "read_class_table"]

FORMATS = ("png", "coco")
_MASK_FOLDERS = ("masks", "segmentationclass")
_TABLES = ("classes.json", "labelmap.txt", "classes.txt")
BACKGROUND = "background"


def read_class_table(name: str, data: bytes) -> tuple[list[str], dict[str, list[int]] | None]:
    """(class names by id, their colours or None) from a class table file (see the module doc).

    >>> read_class_table("labelmap.txt", b"# label:color_rgb:parts:actions\\nbackground:0,0,0::\\ncup:128,0,0::\\n")
    (['background', 'cup'], {'background': [0, 0, 0], 'cup': [128, 0, 0]})
    """
    text = data.decode("utf-8-sig", "replace")
    base = PurePosixPath(name).name.lower()
    if base.endswith(".json"):
        try:
            table = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(f"{name}: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if isinstance(table, list) and all(isinstance(n, str) for n in table):
            return table, None
        if isinstance(table, dict):
            return [str(k) for k in table], {str(k): v for k, v in table.items()}
        raise Invalid(f'{name}: a class table is a list of names by id ["background", "cup"] or an object '
                      '{"background": [0, 0, 0], "cup": [128, 0, 0]}')
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if base == "labelmap.txt":
        names, colors = [], {}
        for n, line in enumerate(lines, 1):
            parts = line.split(":")
            try:
                rgb = [int(v) for v in parts[1].split(",")] if len(parts) > 1 and parts[1] else None
            except ValueError:
                raise Invalid(f"{name}, line {n}: the colour must be r,g,b (numbers), got {parts[1]!r}") from None
            names.append(parts[0].strip())
            if rgb is not None:
                colors[parts[0].strip()] = rgb
        return names, colors or None
    return lines, None


def _encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def read_masks(path: Path, *, format: str | None = None, max_bytes: int | None = None
               ) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    """(label as a client sends it, image file name, image bytes) of each photo under ``path``."""
    from .box_formats import MAX_FILES, MAX_TOTAL_BYTES, _Source

    if format is not None and format not in FORMATS:
        raise Invalid(f"unknown segmentation format {format!r}; choose {' or '.join(FORMATS)}")
    source = _Source(Path(path), max_bytes=max_bytes, max_files=MAX_FILES, max_total_bytes=MAX_TOTAL_BYTES)
    try:
        names = source.names()
        fmt = format or _detect(names, source.read)
        reader = _read_coco if fmt == "coco" else _read_png
        yield from reader(source, names)
    finally:
        source.close()


def _coco_file(names: list[str], read: Callable[[str], bytes]) -> str | None:
    for n in sorted(names, key=lambda n: (PurePosixPath(n).name != "annotations.json", n)):
        if n.lower().endswith(".json") and PurePosixPath(n).name.lower() not in _TABLES:
            head = read(n)[:1_000_000]
            if b'"annotations"' in head and b'"categories"' in head:
                return n
    return None


def _detect(names: list[str], read: Callable[[str], bytes]) -> str:
    if any(PurePosixPath(n).parts[0].lower() in _MASK_FOLDERS for n in names if "/" in n):
        return "png"
    if _coco_file(names, read):
        return "coco"
    raise Invalid("no segmentation data found: expected images/ and masks/ folders (PNG masks of the same "
                  "file stem, with classes.json or labelmap.txt) or a COCO annotations.json")


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _read_png(source, names: list[str]) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    from .box_formats import image_size

    table = next((n for t in _TABLES for n in names if n.lower() == t), None)
    if table is None:
        raise Invalid("the masks need a class table beside images/ and masks/: classes.json (names by id, or "
                      "{name: [r, g, b]}), labelmap.txt or classes.txt")
    classes, colors = read_class_table(table, source.read(table))
    mk.check_class_table(classes, colors)
    masks = {str(PurePosixPath(*PurePosixPath(n).parts[1:]).with_suffix("")): n for n in names
             if "/" in n and PurePosixPath(n).parts[0].lower() in _MASK_FOLDERS}
    images = [n for n in names if _is_image(n) and "/" in n and PurePosixPath(n).parts[0].lower() == "images"]
    if not images:
        raise Invalid("no photos found: put them in an images/ folder beside masks/")
    missing = [n for n in images if str(PurePosixPath(*PurePosixPath(n).parts[1:]).with_suffix("")) not in masks]
    if missing:
        raise Invalid(f"{len(missing)} photos have no mask (masks/<same name>.png): {', '.join(missing[:5])}",
                      details=[{"file": n, "reason": "no mask"} for n in missing[:100]])
    for image in images:
        mask_name = masks[str(PurePosixPath(*PurePosixPath(image).parts[1:]).with_suffix(""))]
        data, mask = source.read(image), source.read(mask_name)
        try:
            size = image_size(data)
        except Invalid as exc:
            raise Invalid(f"{image}: {exc.message}") from None
        mk.decode_png(mask, classes, colors, image_size=size, name=mask_name)  # refuse a bad mask here, named
        label: dict[str, Any] = {"mask": _encoded(mask), "classes": classes}
        if colors:
            label["colors"] = colors
        yield label, PurePosixPath(image).name, data


def _read_coco(source, names: list[str]) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    from .box_formats import image_size

    file = _coco_file(names, source.read)
    if file is None:
        raise Invalid("no COCO annotations file (a .json with images, annotations and categories) found")
    try:
        doc = json.loads(source.read(file))
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        images, annotations = doc["images"], doc["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise Invalid(f"{file}: not a COCO annotations file ({exc})") from None
    classes = [BACKGROUND] + [str(c["name"]) for c in categories if str(c["name"]) != BACKGROUND]
    to_class = {c["id"]: classes.index(str(c["name"])) for c in categories}
    by_image: dict[Any, list] = {}
    for a in annotations:
        by_image.setdefault(a.get("image_id"), []).append(a)
    by_base = {}
    for n in names:
        if _is_image(n):
            by_base.setdefault(PurePosixPath(n).name, n)
    for img in images:
        name = str(img.get("file_name", ""))
        found = name if name in source.members else f"images/{name}" if f"images/{name}" in source.members \
            else by_base.get(PurePosixPath(name).name)
        if found is None:
            raise Invalid(f"{file}: image {name!r} is not in the data set")
        data = source.read(found)
        width, height = image_size(data)
        if (img.get("width"), img.get("height")) not in ((width, height), (None, None)):
            raise Invalid(f"{file}: image {name!r} is {width}x{height} but the file says "
                          f"{img.get('width')}x{img.get('height')}")
        ids = mk.decode_coco(by_image.get(img.get("id"), []), height=height, width=width, category_to_class=to_class,
                             name=f"{file} ({name})")
        yield {"mask": _encoded(mk.encode_png(ids, classes)), "classes": classes}, PurePosixPath(found).name, data


def write_masks(out: Path, samples: list[dict], content: Callable[..., bytes], *, format: str = "png") -> int:
    """Write samples (the API's records) as a data set :func:`read_masks` reads back; returns how many.

    One class table for all: background, then every other class by name; each mask is
    renumbered into it. ``content(sample)`` gives a photo, ``content(sample, sha)`` a blob its
    annotation names (the mask PNG).
    """
    from .archive import _export_name, _fit_name

    if format not in FORMATS:
        raise Invalid(f"unknown segmentation format {format!r}; choose {' or '.join(FORMATS)}")
    out = Path(out)
    classes = [BACKGROUND, *sorted({c for s in samples for c in (s.get("annotation") or {}).get("classes", ())
                                    if c is not None} - {BACKGROUND})]
    names, taken = {}, set()
    for s in samples:  # safe, unique file names (a clash gets the sample id in front)
        name = _export_name(s["id"], s["meta"].get("filename") or "")
        name = _fit_name(f"{s['id']}-{name}") if PurePosixPath(name).stem in taken else name
        names[s["id"]] = name
        taken.add(PurePosixPath(name).stem)
    (out / "images").mkdir(parents=True, exist_ok=True)
    coco_images, coco_annotations = [], []
    for n, s in enumerate(samples, 1):
        ann = s.get("annotation") or {}
        if not ann.get("mask"):
            continue
        own = list(ann["classes"])  # a deleted class is null: its pixels leave as unlabelled
        table = [c if c is not None else f"deleted/{i}" for i, c in enumerate(own)]
        ids = mk.decode_png(content(s, ann["mask"]), table, name=f"the mask of sample {s['id']}")
        lut = np.full(256, mk.UNLABELLED, np.uint8)
        for i, c in enumerate(own):
            if c is not None:
                lut[i] = classes.index(c)
        ids = lut[ids]
        image = content(s)
        (out / "images" / names[s["id"]]).write_bytes(image)
        if format == "png":
            (out / "masks").mkdir(exist_ok=True)
            (out / "masks" / f"{PurePosixPath(names[s['id']]).stem}.png").write_bytes(mk.encode_png(ids, classes))
        else:
            coco_images.append({"id": n, "file_name": names[s["id"]], "width": int(ids.shape[1]),
                                "height": int(ids.shape[0])})
            coco_annotations += mk.encode_coco(ids, {k: k for k in range(1, len(classes))}, image_id=n,
                                               first_id=len(coco_annotations) + 1)
    if format == "png":
        (out / "classes.json").write_text(json.dumps(mk.default_colors(classes), indent=1))
    else:
        doc = {"images": coco_images, "annotations": coco_annotations,
               "categories": [{"id": k, "name": c} for k, c in enumerate(classes) if k]}
        (out / "annotations.json").write_text(json.dumps(doc))
    return sum(1 for s in samples if (s.get("annotation") or {}).get("mask"))
