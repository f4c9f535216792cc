"""Box annotations in the formats people have: COCO JSON, Pascal VOC XML and YOLO txt (torch-free).

Every reader returns :class:`AnnotatedImage` records whose boxes are dyntrain's canonical boxes
``{"label", "x", "y", "w", "h"}`` in pixels of the image as it is shown upright (EXIF orientation
applied, as browsers, OpenCV and :func:`dyntrain.codecs.imaging.decode_image` show it), x/y the top-left
corner. Every writer takes the same records. Problems are collected over the whole input and
raised once as :class:`~dyntrain.kernel.errors.Invalid` (HTTP 422), each detail naming the file and the
box (its index and values): a box outside the image (up to :data:`TOLERANCE_PX` of rounding is
accepted, nothing is clipped), a box without area, an unknown class, an image listed but missing,
a malformed file.

Conventions, per format:

* **COCO**: ``bbox`` is ``[x, y, w, h]`` in pixels; ``iscrowd`` and ``segmentation`` are ignored
  (a crowd box is still a box). Written as ``annotations.json`` with the images under
  ``images/``; ids count from 1 in the order given.
* **Pascal VOC**: the VOC devkit's 1-based inclusive pixel indices: a box covering pixel columns
  0..9 (0-based) is ``xmin 1, xmax 10``. So ``x = xmin - 1``, ``w = xmax - xmin + 1`` (the
  convention Detectron2 reads VOC with); a box over the whole W×H image is ``1, 1, W, H``. A tool
  that wrote 0-based corners (``xmin 0``) lands 1 px outside the image, which the tolerance
  accepts. Written as ``Annotations/<stem>.xml`` and ``JPEGImages/<file>``.
* **YOLO**: one ``<stem>.txt`` per image, lines ``class cx cy w h`` normalised to the image's
  size; names from ``data.yaml`` (Ultralytics), ``obj.names`` (Darknet) or ``classes.txt``
  (LabelImg). Labels are found the Ultralytics way (``…/images/…/a.jpg`` → ``…/labels/…/a.txt``)
  or beside the image (Darknet, LabelImg); an image without a label file shows nothing to find.
  Written as ``images/<file>``, ``labels/<stem>.txt``, ``data.yaml`` and ``classes.txt``.

Pixel values are written with at most 2 decimals (the precision dyntrain keeps), YOLO's
normalised ones with 6, so reading what was written and writing it again gives the same bytes.

>>> img = AnnotatedImage("a.jpg", 100, 50, [{"label": "mug", "x": 0.0, "y": 0.0, "w": 100.0, "h": 50.0}])
>>> write_yolo(img, ["mug"])
b'0 0.500000 0.500000 1.000000 1.000000\\n'
>>> read_yolo({"a.jpg": "0 0.5 0.5 1 1"}, ["mug"], {"a.jpg": (100, 50)}).images[0].boxes
[{'label': 'mug', 'x': 0.0, 'y': 0.0, 'w': 100.0, 'h': 50.0}]
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from .archive import IMAGE_SUFFIXES, validate_label
from ..kernel.errors import Invalid, TooLarge

__all__ = [
    "FORMATS",
    "TOLERANCE_PX",
    "AnnotatedImage",
    "BoxDataset",
    "check_images",
    "read_coco",
    "write_coco",
    "read_voc",
    "write_voc",
    "read_yolo",
    "write_yolo",
    "read_yolo_classes",
    "write_yolo_classes",
    "write_yolo_data_yaml",
    "image_size",
    "detect_format",
    "read_dataset",
    "iter_images",
    "annotation_files",
    "write_dataset",
]

FORMATS = ("coco", "voc", "yolo")
#: A box may overshoot the image by this much (annotation tools round edges outwards; VOC's
#: 1-based indices put a 0-based file's edge boxes 1 px out). More is an error, never clipped.
TOLERANCE_PX = 1.0
#: Most problems listed in an error's details (the message gives the total).
MAX_DETAILS = 100
#: A zip member inflating to more than this many times its compressed size is refused (a zip
#: bomb), once it is over :data:`_RATIO_FLOOR` bytes: images barely compress, COCO JSON ~10×.
MAX_ZIP_RATIO = 200
_RATIO_FLOOR = 1024 * 1024
#: Defaults for a whole dataset (folder or zip): files in it, bytes they inflate to.
MAX_FILES = 100_000
MAX_TOTAL_BYTES = 20 * 1024**3
_LAYOUT_FOLDERS = {"annotations", "jpegimages", "images", "labels", "obj"}
_YOLO_NAME_FILES = ("data.yaml", "data.yml", "obj.names", "classes.txt")
# .txt files that are never YOLO labels: Darknet's image lists, notes.
_NOT_LABELS = re.compile(r"^(train|val|valid|test|classes)\.txt$|^readme.*\.txt$", re.IGNORECASE)


@dataclass
class AnnotatedImage:
    """One image and its boxes. ``filename`` is the image's name as the annotations give it (a
    relative POSIX path, e.g. ``a.jpg`` or ``train/a.jpg``)."""

    filename: str
    width: int
    height: int
    boxes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BoxDataset:
    """What a reader found: the images with their boxes and the class names in file order.

    ``paths`` (from :func:`read_dataset` only) maps each image's ``filename`` to where its bytes
    lie in the folder or zip that was read.
    """

    format: str
    images: list[AnnotatedImage]
    classes: list[str]
    paths: dict[str, str] = field(default_factory=dict)


# --- problems ---------------------------------------------------------------------------------


class _Problems:
    """Every problem found, raised at the end as one :class:`Invalid`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, file: str, reason: str, *, box: int | None = None, value: Any = None) -> None:
        item: dict[str, Any] = {"file": file}
        if box is not None:
            item["box"] = box
            item["value"] = value
        item["reason"] = reason
        self.items.append(item)

    def extend(self, other: _Problems) -> None:
        self.items.extend(other.items)

    def raise_if_any(self, what: str, hint: str = "fix them in the annotation tool or the files, then import "
                                                  "again") -> None:
        if not self.items:
            return
        first = self.items[0]
        n = len(self.items)
        shown = f" (the first {MAX_DETAILS} are listed)" if n > MAX_DETAILS else ""
        raise Invalid(f"{n} problem{'s' if n != 1 else ''} in {what}{shown}; first: {first['file']}: "
                      f"{first['reason']}. {hint[:1].upper()}{hint[1:]}",
                      details=self.items[:MAX_DETAILS])


def _num(v: float, digits: int = 2) -> str:
    """``v`` with at most ``digits`` decimals, no trailing zeros: 12, 12.5, 12.34."""
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _json_num(v: float) -> int | float:
    """A pixel value for JSON: an int when whole, else rounded to 2 decimals."""
    r = round(float(v), 2)
    return int(r) if r.is_integer() else r


def _describe(box: Mapping[str, Any]) -> str:
    try:
        return (f"{box['label']} at x={_num(box['x'])}, y={_num(box['y'])}, "
                f"w={_num(box['w'])}, h={_num(box['h'])}")
    except (KeyError, TypeError, ValueError):
        return repr(box)[:120]


def _check_box(box: dict[str, Any], width: int, height: int, classes: Sequence[str] | None) -> str | None:
    """What is wrong with one canonical box on a ``width`` × ``height`` image, or None."""
    try:
        validate_label(box["label"])
    except Invalid as exc:
        return f"class name: {exc.message}"
    if classes is not None and box["label"] not in classes:
        return f"unknown class {box['label']!r} (the classes are: {', '.join(classes)})"
    x, y, w, h = (box[k] for k in ("x", "y", "w", "h"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y, w, h)):
        return "x, y, w and h must be finite numbers of pixels"
    if w <= 0 or h <= 0:
        return f"the box has no area (width {_num(w)}, height {_num(h)}); width and height must be positive"
    out = max(-x, -y, x + w - width, y + h - height)
    if out > TOLERANCE_PX:
        return (f"the box lies {_num(out)} px outside the {width}×{height} image (up to {TOLERANCE_PX:g} px of "
                "rounding is accepted; nothing is clipped): fix or delete it")
    return None


def _check_size(width: Any, height: Any) -> str | None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        return f"the image size {width!r}×{height!r} is not two positive whole numbers of pixels"
    return None


def check_images(images: Iterable[AnnotatedImage], classes: Sequence[str] | None = None, *,
                 what: str = "the boxes", hint: str = "fix or delete those boxes") -> None:
    """Raise :class:`Invalid` listing every bad image size and box (outside the image beyond
    :data:`TOLERANCE_PX`, without area, an unknown class when ``classes`` is given).

    >>> check_images([AnnotatedImage("a.jpg", 10, 10, [{"label": "mug", "x": 5, "y": 5, "w": 9, "h": 2}])])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    dyntrain.kernel.errors.Invalid: 1 problem in the boxes; first: a.jpg: box 0 (mug at x=5, y=5, w=9, h=2): ...4 px outside...
    """
    problems = _Problems()
    for img in images:
        bad = _check_size(img.width, img.height)
        if bad:
            problems.add(img.filename, bad)
            continue
        for i, box in enumerate(img.boxes):
            reason = _check_box(box, img.width, img.height, classes)
            if reason:
                problems.add(img.filename, f"box {i} ({_describe(box)}): {reason}", box=i, value=box)
    problems.raise_if_any(what, hint)


def _safe_relative(name: Any) -> str | None:
    """``name`` as a relative POSIX path inside a dataset, or None (absolute, ``..``, empty)."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        return None
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":") or ".." in parts or not parts:
        return None
    return "/".join(p for p in parts if p != ".")


# --- COCO ---------------------------------------------------------------------------------------


def read_coco(data: bytes | str, *, source: str = "annotations.json") -> BoxDataset:
    """Images, boxes and categories (in file order) of a COCO JSON file.

    Extra keys are ignored, as are ``segmentation`` and ``iscrowd``. Problems (an annotation of
    an unknown image or category, a malformed ``bbox``, a box outside its image, an image
    without its size …) are collected and raised together, each naming ``source``, the image
    and the annotation.
    """
    return _read_coco(data, source, sizes_optional=False)


def _read_coco(data: bytes | str, source: str, *, sizes_optional: bool) -> BoxDataset:
    """:func:`read_coco`; with ``sizes_optional`` an image without width/height gets 0×0, for
    :func:`read_dataset` to take from the image file (some exporters leave sizes out)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Invalid(f"{source} is not valid JSON ({exc}); export the annotations again as COCO JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("annotations", []), list) or not isinstance(doc.get("categories", []), list):
        raise Invalid(f"{source} is not COCO: it needs lists 'images', 'annotations' and 'categories'")
    problems = _Problems()
    categories: dict[Any, str] = {}
    classes: list[str] = []
    for n, cat in enumerate(doc.get("categories", [])):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.add(source, f"categories[{n}] needs an 'id' and a 'name', got {str(cat)[:80]}")
            continue
        try:
            name = validate_label(cat["name"] if isinstance(cat["name"], str) else None)
        except Invalid as exc:
            problems.add(source, f"category {cat['id']!r}: {exc.message}")
            continue
        if _key(cat["id"]) in categories:
            problems.add(source, f"category id {cat['id']!r} is used twice")
        elif name in classes:
            problems.add(source, f"category name {name!r} is used by two ids; merge them in the annotation tool")
        else:
            categories[_key(cat["id"])] = name
            classes.append(name)
    images: dict[Any, AnnotatedImage] = {}
    seen_names: set[str] = set()
    for n, entry in enumerate(doc["images"]):
        if not isinstance(entry, dict) or "id" not in entry:
            problems.add(source, f"images[{n}] needs an 'id', got {str(entry)[:80]}")
            continue
        name = _safe_relative(entry.get("file_name"))
        if name is None:
            problems.add(source, f"image {entry['id']!r}: 'file_name' {entry.get('file_name')!r} is not a relative "
                                 "path inside the dataset")
            continue
        if _key(entry["id"]) in images:
            problems.add(source, f"image id {entry['id']!r} is used twice")
            continue
        if name in seen_names:
            problems.add(source, f"{name} is listed twice (two image ids); keep one")
            continue
        seen_names.add(name)
        width, height = _int_or(entry.get("width")), _int_or(entry.get("height"))
        if sizes_optional and width in (None, 0) and height in (None, 0):
            width = height = 0
        elif _check_size(width, height):
            problems.add(source, f"image {entry['id']!r} ({name}): {_check_size(width, height)}")
            continue
        images[_key(entry["id"])] = AnnotatedImage(name, width, height, [])
    seen_boxes: dict[str, int] = {}
    for n, ann in enumerate(doc.get("annotations", [])):
        if not isinstance(ann, dict):
            problems.add(source, f"annotations[{n}] is not an object")
            continue
        ident = ann.get("id", f"#{n}")
        image = images.get(_key(ann.get("image_id")))
        where = image.filename if image else source
        if image is None:
            problems.add(source, f"annotations[{n}] (id {ident!r}) names image_id {ann.get('image_id')!r}, which "
                                 "'images' does not list", box=n, value=ann.get("bbox"))
            continue
        # box n of an image is its n-th annotation in the file, whether or not it is valid
        index = seen_boxes[image.filename] = seen_boxes.get(image.filename, -1) + 1
        label = categories.get(_key(ann.get("category_id")))
        if label is None:
            problems.add(where, f"box {index} (annotation {ident!r}): unknown category_id {ann.get('category_id')!r}",
                         box=index, value=ann.get("bbox"))
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            problems.add(where, f"box {index} (annotation {ident!r}): 'bbox' must be [x, y, width, height] in "
                                f"pixels, got {str(bbox)[:80]}", box=index, value=bbox)
            continue
        x, y, w, h = (float(v) for v in bbox)
        box = {"label": label, "x": x, "y": y, "w": w, "h": h}
        # An image whose size is still unknown (0×0) is checked against it by read_dataset.
        reason = _check_box(box, image.width or 10**9, image.height or 10**9, None)
        if reason:
            problems.add(where, f"box {index} (annotation {ident!r}, {_describe(box)}): {reason}", box=index,
                         value=bbox)
            continue
        image.boxes.append(box)
    problems.raise_if_any(source)
    return BoxDataset("coco", list(images.values()), classes)


def _key(v: Any) -> Any:
    """An id as a dict key: 3 and 3.0 are one id; a list (unhashable) never matches."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v if isinstance(v, (int, str)) and not isinstance(v, bool) else ("unhashable", repr(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_or(v: Any) -> Any:
    """A size as an int when it is a whole number (640, 640.0, "640"), else as given (to be reported)."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def write_coco(images: Sequence[AnnotatedImage], classes: Sequence[str]) -> bytes:
    """A COCO JSON file (UTF-8, compact, a newline at the end): image and annotation ids count
    from 1 in the order given, category ids from 1 in ``classes``' order.

    >>> write_coco([AnnotatedImage("a.jpg", 4, 3, [{"label": "mug", "x": 1, "y": 0, "w": 2.5, "h": 3}])], ["mug"])[:60]
    b'{"images":[{"id":1,"file_name":"a.jpg","width":4,"height":3}'
    """
    _check_writable(images, classes, "COCO", stems=False)
    ids = {name: i for i, name in enumerate(classes, 1)}
    doc_images, annotations = [], []
    for image_id, img in enumerate(images, 1):
        doc_images.append({"id": image_id, "file_name": img.filename, "width": img.width, "height": img.height})
        for box in img.boxes:
            x, y, w, h = (_json_num(box[k]) for k in ("x", "y", "w", "h"))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": ids[box["label"]],
                                "bbox": [x, y, w, h], "area": _json_num(w * h), "iscrowd": 0, "segmentation": []})
    doc = {"images": doc_images, "annotations": annotations,
           "categories": [{"id": i, "name": name, "supercategory": ""} for name, i in ids.items()]}
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- Pascal VOC ---------------------------------------------------------------------------------


def _parse_xml(data: bytes | str, source: str):
    """The XML's root element; entity expansion and external references are refused."""
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import fromstring
    except ImportError:  # the fallback refuses every DTD, which is where entities are declared
        from xml.etree.ElementTree import fromstring

        DefusedXmlException = ValueError  # noqa: N806
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if re.search(rb"<!\s*(DOCTYPE|ENTITY)", raw, re.IGNORECASE):
            raise Invalid(f"{source}: XML with a DOCTYPE or ENTITY declaration is refused") from None
    try:
        return fromstring(data)
    except DefusedXmlException as exc:
        raise Invalid(f"{source}: refused XML ({type(exc).__name__}: entities and external references are not "
                      "allowed in annotation files)") from None
    except Exception as exc:  # ParseError, or expat's errors on broken encodings
        raise Invalid(f"{source} is not well-formed XML ({exc}); export it again as Pascal VOC") from None


def read_voc(data: bytes | str, *, source: str = "annotation.xml", classes: Sequence[str] | None = None
             ) -> AnnotatedImage:
    """One Pascal VOC XML file: ``<filename>``, ``<size>`` and each ``<object>``'s ``<name>`` and
    ``<bndbox>`` (1-based inclusive pixel indices, see the module's notes). ``classes``, if
    given, are the only names allowed. ``<difficult>``, ``<truncated>``, ``<pose>`` and parts
    are ignored. A size of 0×0 (written by some tools) is left as 0 for :func:`read_dataset` to
    fill from the image; every other problem is raised, all at once.
    """
    root = _parse_xml(data, source)
    if root.tag != "annotation":
        raise Invalid(f"{source} is not a Pascal VOC annotation (its root element is <{root.tag}>, not <annotation>)")
    problems = _Problems()
    raw_name = (root.findtext("filename") or "").strip()
    name = _safe_relative(raw_name)
    if name is None:
        raise Invalid(f"{source}: <filename> {raw_name!r} must name the image (a relative path)")
    size = root.find("size")
    width = _int_or((size.findtext("width") or "").strip()) if size is not None else None
    height = _int_or((size.findtext("height") or "").strip()) if size is not None else None
    if size is None or not isinstance(width, int) or not isinstance(height, int):
        problems.add(source, f"<size> needs whole <width> and <height> in pixels, got {width!r}×{height!r}")
        width = height = 0
    boxes = []
    for index, obj in enumerate(root.findall("object")):
        label = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        values = {k: (bnd.findtext(k) or "").strip() for k in ("xmin", "ymin", "xmax", "ymax")} if bnd is not None \
            else None
        if values is None:
            problems.add(source, f"box {index} ({label or 'no name'}): the <object> has no <bndbox>", box=index,
                         value=None)
            continue
        try:
            xmin, ymin, xmax, ymax = (float(values[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            problems.add(source, f"box {index} ({label or 'no name'}): <bndbox> needs numbers xmin, ymin, xmax, "
                                 f"ymax, got {values}", box=index, value=values)
            continue
        box = {"label": label, "x": xmin - 1, "y": ymin - 1, "w": xmax - xmin + 1, "h": ymax - ymin + 1}
        reason = _check_box(box, width, height, classes) if width and height else \
            _check_box(box, 10**9, 10**9, classes)  # checked against the real size once it is known
        if reason:
            problems.add(source, f"box {index} ({label}: xmin {values['xmin']}, ymin {values['ymin']}, "
                                 f"xmax {values['xmax']}, ymax {values['ymax']}): {reason}", box=index, value=values)
            continue
        boxes.append(box)
    problems.raise_if_any(source)
    return AnnotatedImage(name, width, height, boxes)


def write_voc(image: AnnotatedImage, *, folder: str = "JPEGImages", depth: int = 3) -> bytes:
    """One Pascal VOC XML file (the layout LabelImg and CVAT write, tab-indented, UTF-8).

    >>> xml = write_voc(AnnotatedImage("a.jpg", 4, 3, [{"label": "mug", "x": 0, "y": 0, "w": 4, "h": 3}]))
    >>> [line.strip() for line in xml.decode().splitlines() if line.strip().startswith(("<x", "<y"))]
    ['<xmin>1</xmin>', '<ymin>1</ymin>', '<xmax>4</xmax>', '<ymax>3</ymax>']
    """
    from xml.sax.saxutils import escape

    _check_writable([image], None, "Pascal VOC", stems=False)
    lines = ["<annotation>", f"\t<folder>{escape(folder)}</folder>", f"\t<filename>{escape(image.filename)}</filename>",
             "\t<size>", f"\t\t<width>{image.width}</width>", f"\t\t<height>{image.height}</height>",
             f"\t\t<depth>{depth}</depth>", "\t</size>", "\t<segmented>0</segmented>"]
    for box in image.boxes:
        corners = (box["x"] + 1, box["y"] + 1, box["x"] + box["w"], box["y"] + box["h"])
        lines += ["\t<object>", f"\t\t<name>{escape(box['label'])}</name>", "\t\t<pose>Unspecified</pose>",
                  "\t\t<truncated>0</truncated>", "\t\t<difficult>0</difficult>", "\t\t<bndbox>"]
        lines += [f"\t\t\t<{k}>{_num(v)}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), corners)]
        lines += ["\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- YOLO ---------------------------------------------------------------------------------------


def read_yolo_classes(data: bytes | str, *, source: str = "classes.txt") -> list[str]:
    """Class names by index: ``data.yaml``/``data.yml`` (``names`` as a list or ``{index: name}``)
    when ``source`` ends so, else one name per line (``classes.txt``, ``obj.names``)."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    if source.lower().endswith((".yaml", ".yml")):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise Invalid(f"{source} is not valid YAML: {str(exc)[:200]}") from None
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            if sorted(names) != list(range(len(names))):
                raise Invalid(f"{source}: 'names' must number the classes 0, 1, 2 … without gaps, "
                              f"got {list(names)[:10]}")
            names = [names[i] for i in range(len(names))]
        if not isinstance(names, list) or not names:
            raise Invalid(f"{source} needs 'names': the class names as a list, in class-index order")
        if isinstance(doc.get("nc"), int) and doc["nc"] != len(names):
            raise Invalid(f"{source}: nc is {doc['nc']} but 'names' lists {len(names)} classes")
    else:
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
    problems = _Problems()
    out = []
    for i, name in enumerate(names):
        try:
            out.append(validate_label(str(name) if isinstance(name, (str, int, float)) else None))
        except Invalid as exc:
            problems.add(source, f"class {i}: {exc.message}")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        problems.add(source, f"class names listed twice: {', '.join(dupes)}")
    problems.raise_if_any(source)
    return out


def write_yolo_classes(classes: Sequence[str]) -> bytes:
    """``classes.txt`` / ``obj.names``: one name per line, in class-index order."""
    _check_writable([], classes, "YOLO", stems=False)
    return "".join(f"{name}\n" for name in classes).encode("utf-8")


def write_yolo_data_yaml(classes: Sequence[str], *, images: str = "images") -> bytes:
    """An Ultralytics ``data.yaml``: ``names`` in index order (as JSON strings, which YAML reads
    the same), the image folder as both training and validation set."""
    _check_writable([], classes, "YOLO", stems=False)
    return (f"# class names in index order (YOLO label files number them from 0)\npath: .\ntrain: {images}\n"
            f"val: {images}\nnc: {len(classes)}\nnames: {json.dumps(list(classes), ensure_ascii=False)}\n"
            ).encode("utf-8")


SizeSource = Callable[[str], tuple[int, int]] | Mapping[str, tuple[int, int]]


def read_yolo(labels: Mapping[str, bytes | str], classes: Sequence[str], image_size: SizeSource, *,
              sources: Mapping[str, str] | None = None) -> BoxDataset:
    """Boxes of YOLO label files: ``labels`` maps each image's filename to its label file's text,
    ``image_size`` gives an image's (width, height) in pixels (a mapping or a function; a missing
    key, or a function raising KeyError/FileNotFoundError, means the image is missing).
    ``sources`` names each label file in errors (default: the image's filename).
    """
    problems = _Problems()
    images = []
    for filename, text in labels.items():
        source = (sources or {}).get(filename, filename)
        try:
            size = image_size[filename] if isinstance(image_size, Mapping) else image_size(filename)
        except (KeyError, FileNotFoundError):
            problems.add(source, f"the image {filename} is missing: the label file has no image to go with")
            continue
        width, height = size
        bad = _check_size(width, height)
        if bad:
            problems.add(source, bad)
            continue
        img = AnnotatedImage(filename, width, height, [])
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError:
                problems.add(source, "not UTF-8 text; a YOLO label file holds lines 'class cx cy w h'")
                continue
        index = -1
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            index += 1  # box n is the file's n-th non-blank line, whether or not it is valid
            where = f"box {index} (line {line_no}: {line.strip()[:80]!r})"
            fields = line.split()
            if len(fields) != 5:
                problems.add(source, f"{where}: a box line has 5 values 'class cx cy w h', this one {len(fields)}"
                                     + (" (polygons are segmentation labels, not boxes)" if len(fields) > 5 else ""),
                             box=index, value=line.strip())
                continue
            try:
                cls = int(fields[0])
                cx, cy, bw, bh = (float(v) for v in fields[1:])
            except ValueError:
                problems.add(source, f"{where}: the class must be a whole number and cx cy w h numbers",
                             box=index, value=line.strip())
                continue
            if not 0 <= cls < len(classes):
                problems.add(source, f"{where}: unknown class index {cls} (there are {len(classes)} classes, "
                                     f"0–{len(classes) - 1}: {', '.join(classes)})", box=index, value=line.strip())
                continue
            box = {"label": classes[cls], "x": (cx - bw / 2) * width, "y": (cy - bh / 2) * height,
                   "w": bw * width, "h": bh * height}
            reason = _check_box(box, width, height, None)
            if reason:
                problems.add(source, f"{where}, {_describe(box)} on the {width}×{height} image: {reason}",
                             box=index, value=line.strip())
                continue
            img.boxes.append(box)
        images.append(img)
    problems.raise_if_any("the YOLO labels")
    return BoxDataset("yolo", images, list(classes))


def write_yolo(image: AnnotatedImage, classes: Sequence[str]) -> bytes:
    """One YOLO label file: ``class cx cy w h`` per box, normalised, 6 decimals (empty for an
    image with nothing to find)."""
    _check_writable([image], classes, "YOLO", stems=False)
    index = {name: i for i, name in enumerate(classes)}
    lines = []
    for box in image.boxes:
        cx, cy = (box["x"] + box["w"] / 2) / image.width, (box["y"] + box["h"] / 2) / image.height
        bw, bh = box["w"] / image.width, box["h"] / image.height
        lines.append(f"{index[box['label']]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
    return "".join(lines).encode("utf-8")


def _check_writable(images: Sequence[AnnotatedImage], classes: Sequence[str] | None, fmt: str, *,
                    stems: bool) -> None:
    """Refuse to write what could not be read back: bad boxes, unsafe or clashing file names."""
    problems = _Problems()
    if classes is not None:
        for i, name in enumerate(classes):
            try:
                validate_label(name)
            except Invalid as exc:
                problems.add("classes", f"class {i}: {exc.message}")
        if len(set(classes)) != len(classes):
            problems.add("classes", "a class name is listed twice")
    seen: dict[str, str] = {}
    for img in images:
        if _safe_relative(img.filename) != img.filename:
            problems.add(str(img.filename), "the file name must be a relative path without '..', '.' or "
                                            "backslashes")
        key = str(PurePosixPath(img.filename).with_suffix("")) if stems else img.filename
        if key in seen:
            problems.add(img.filename, f"clashes with {seen[key]}: both would be written to the same "
                         + ("label file (same name without the extension)" if stems else "place")
                         + "; rename one")
        seen.setdefault(key, img.filename)
    hint = "fix those names or boxes before exporting"
    problems.raise_if_any(f"what is to be written as {fmt}", hint)
    check_images(images, classes, what=f"the boxes to write as {fmt}", hint=hint)


# --- image sizes --------------------------------------------------------------------------------


def image_size(file: bytes | BinaryIO) -> tuple[int, int]:
    """(width, height) of an image as shown upright (EXIF orientation applied), read from its
    header only. :class:`Invalid` if it is not an image Pillow reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(file) if isinstance(file, bytes) else file) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Invalid(f"not an image Pillow can read ({exc})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _raw_size(file: BinaryIO) -> tuple[int, int]:
    from PIL import Image

    with Image.open(file) as img:
        return img.size


# --- folders and zips ---------------------------------------------------------------------------


class _Source:
    """The files of a folder or a zip as relative POSIX paths (hidden files and ``__MACOSX``
    skipped, one common top folder dropped), read with the package's archive limits."""

    def __init__(self, path: Path, *, max_bytes: int | None, max_files: int, max_total_bytes: int):
        from .archive import _skip

        self.path, self.max_bytes = Path(path), max_bytes
        self.zip: zipfile.ZipFile | None = None
        # relative name → the zip member, or the file's path relative to the folder
        self.members: dict[str, Any] = {}
        self._cache: dict[str, bytes] = {}
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            self._open_zip(max_files, max_total_bytes)
        elif self.path.is_dir():
            for file in sorted(self.path.rglob("*")):
                rel = file.relative_to(self.path).parts
                if file.is_file():
                    self.members["/".join(rel)] = "/".join(rel)
                    if len(self.members) > max_files:
                        raise _too_many(self.path.name, max_files)
        else:
            raise Invalid(f"{self.path} is neither a folder nor a .zip file")
        self.members = {k: v for k, v in self.members.items() if not _skip(PurePosixPath(k).parts)}
        # A zip of the data set's folder has one top folder around everything: drop it (but not a
        # layout folder such as labels/ or Annotations/, which the format reader looks for).
        tops = {k.split("/", 1)[0] for k in self.members}
        if self.zip is not None and len(tops) == 1 and all("/" in k for k in self.members) \
                and next(iter(tops)).lower() not in _LAYOUT_FOLDERS:
            top = tops.pop() + "/"
            self.members = {k[len(top):]: v for k, v in self.members.items()}

    def _open_zip(self, max_files: int, max_total_bytes: int) -> None:
        try:
            self.zip = zipfile.ZipFile(self.path)
            entries = [i for i in self.zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
            raise Invalid(f"{self.path.name} cannot be read as a zip archive: {exc}") from None
        unsafe = [i.filename for i in entries if _safe_relative(i.filename) is None]
        if unsafe:
            raise Invalid(f"{self.path.name} has unsafe entries (absolute or '..' paths), so nothing was read: "
                          f"{', '.join(unsafe[:5])}")
        if len(entries) > max_files:
            raise _too_many(self.path.name, max_files)
        total = sum(i.file_size for i in entries)
        if total > max_total_bytes:
            raise TooLarge(f"{self.path.name} inflates to {total} bytes, more than {max_total_bytes} in all; split "
                           "the data set into several zips")
        bombs = [i.filename for i in entries
                 if i.file_size > _RATIO_FLOOR and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1)]
        if bombs:
            raise Invalid(f"{self.path.name} looks like a zip bomb: {', '.join(bombs[:5])} inflate(s) to more than "
                          f"{MAX_ZIP_RATIO}× their compressed size; nothing was read")
        for info in entries:
            self.members[_safe_relative(info.filename)] = info

    def names(self) -> list[str]:
        return list(self.members)

    def read(self, name: str) -> bytes:
        """A file's bytes; annotation files (not images) are kept, as detection reads them too."""
        if name in self._cache:
            return self._cache[name]
        data = self._read(name)
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            self._cache[name] = data
        return data

    def _read(self, name: str) -> bytes:
        from .archive import _check_file_size, _read_member

        member = self.members[name]
        if self.zip is None:
            from ..storage.files import path_inside

            path = path_inside(self.path, member, "file")  # a symlink leading out of the folder is refused
            size = path.stat().st_size
            _check_file_size(size, self.max_bytes, f"{name} is {size} bytes")
            return path.read_bytes()
        try:
            data = _read_member(self.zip, member, self.max_bytes)
        except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
            raise Invalid(f"{self.path.name}: {name} cannot be inflated ({exc})") from None
        if len(data) > _RATIO_FLOOR and len(data) > MAX_ZIP_RATIO * max(member.compress_size, 1):
            # the header may lie about the size: the ratio is checked again on what really came out
            raise Invalid(f"{self.path.name}: {name} inflates to more than {MAX_ZIP_RATIO}× its compressed size "
                          "(a zip bomb); nothing was read")
        return data

    def sizes(self, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """(upright size, stored size) of an image, from its header."""
        data = self.read(name)  # bounded by max_bytes; the header alone would not be checked for bombs
        try:
            return image_size(data), _raw_size(io.BytesIO(data))
        except Invalid as exc:
            raise Invalid(f"{name}: {exc.message}") from None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _too_many(name: str, limit: int) -> Invalid:
    return Invalid(f"{name} holds more than {limit} files; split the data set into several parts")


def detect_format(names: Iterable[str], read: Callable[[str], bytes] | None = None) -> str:
    """``coco``, ``voc`` or ``yolo`` from the file names of a data set (and, with ``read``,
    their contents): a JSON with ``images``, an XML whose root is ``<annotation>``, YOLO label or
    class-name files. :class:`Invalid` when none or several are there."""
    names = list(names)
    found = []
    jsons = [n for n in names if n.lower().endswith(".json")]
    if any(_is_coco(n, read) for n in jsons):
        found.append("coco")
    xmls = [n for n in names if n.lower().endswith(".xml")]
    if xmls and (read is None or any(_is_voc(n, read) for n in xmls)):
        found.append("voc")
    if any(PurePosixPath(n).name.lower() in _YOLO_NAME_FILES for n in names) or _yolo_labels(names):
        found.append("yolo")
    if not found:
        raise Invalid("no box annotations found: expected a COCO .json, Pascal VOC .xml files, or YOLO .txt labels "
                      "with classes.txt / data.yaml / obj.names")
    if len(found) > 1:
        raise Invalid(f"the data set holds annotations in several formats ({', '.join(found)}); say which to read "
                      "(--format)")
    return found[0]


def _is_coco(name: str, read: Callable[[str], bytes] | None) -> bool:
    return read is None or b'"images"' in read(name)


def _is_voc(name: str, read: Callable[[str], bytes]) -> bool:
    return re.search(rb"<annotation[\s>]", read(name)[:4096]) is not None


def _label_path(image: str) -> str:
    """Where Ultralytics looks for an image's labels: the last ``images`` folder in its path
    becomes ``labels``, the extension ``.txt``; an image outside any ``images`` folder has its
    labels beside it."""
    parts = list(PurePosixPath(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return str(PurePosixPath(*parts).with_suffix(".txt"))


def _yolo_labels(names: Iterable[str]) -> list[str]:
    """The .txt files that are YOLO labels: under a ``labels`` folder, or beside images."""
    names = list(names)
    image_dirs = {str(PurePosixPath(n).parent) for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES}
    return [n for n in names if n.lower().endswith(".txt") and not _NOT_LABELS.match(PurePosixPath(n).name)
            and ("labels" in PurePosixPath(n).parts[:-1] or str(PurePosixPath(n).parent) in image_dirs)]


def read_dataset(path: Path, *, format: str | None = None, image_size: SizeSource | None = None,
                 max_bytes: int | None = None, max_files: int = MAX_FILES,
                 max_total_bytes: int = MAX_TOTAL_BYTES) -> BoxDataset:
    """Read a folder or a .zip of box annotations and their images; the format is detected from
    what is inside unless ``format`` names it.

    Every image the annotations list must be there (COCO: beside the JSON, in ``images/`` there
    or at the top; VOC: beside the XML, in ``JPEGImages/`` or at the top; matched by file name
    anywhere when unique); sizes the annotations declare must match the image as shown upright
    (sizes missing or 0 are taken from it); YOLO sizes come from the images, or from
    ``image_size`` when given. Zip entries with absolute or ``..`` paths are refused before
    anything is read, as are more than ``max_files`` entries, more than ``max_total_bytes``
    inflated, or a member inflating over :data:`MAX_ZIP_RATIO` times its compressed size; a file
    over ``max_bytes`` (setting ``max_upload_bytes``) is a :class:`~dyntrain.kernel.errors.TooLarge`.
    Every problem is raised at once.
    """
    source = _Source(path, max_bytes=max_bytes, max_files=max_files, max_total_bytes=max_total_bytes)
    try:
        names = source.names()
        fmt = format or detect_format(names, source.read)
        if fmt not in FORMATS:
            raise Invalid(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        reader = {"coco": _dataset_coco, "voc": _dataset_voc, "yolo": _dataset_yolo}[fmt]
        return reader(source, names, images, image_size)
    finally:
        source.close()


def _find_image(filename: str, bases: Sequence[str], images: Sequence[str], by_name: Mapping[str, list[str]]
                ) -> str | None:
    image_set = set(images)
    for base in bases:
        candidate = str(PurePosixPath(base) / filename) if base not in ("", ".") else filename
        if candidate in image_set:
            return candidate
    matches = by_name.get(PurePosixPath(filename).name, [])
    return matches[0] if len(matches) == 1 else None


def _by_name(images: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in images:
        out.setdefault(PurePosixPath(n).name, []).append(n)
    return out


def _attach(dataset: BoxDataset, source: _Source, located: Mapping[str, str | None], files: Mapping[str, str],
            problems: _Problems) -> BoxDataset:
    """Check every listed image is there and its size is the declared one; fill missing sizes."""
    kept, filled = [], []
    for img in dataset.images:
        where = located.get(img.filename)
        if where is None:
            problems.add(files.get(img.filename, img.filename),
                         f"the image {img.filename} is listed but missing from the data set; add it or remove its "
                         "annotations")
            continue
        try:
            upright, raw = source.sizes(where)
        except Invalid as exc:
            problems.add(where, exc.message)
            continue
        declared = (img.width, img.height)
        if declared == (0, 0):
            img.width, img.height = upright
            filled.append(img)
        elif declared != upright:
            why = (" (the file is stored rotated and its EXIF orientation turns it: boxes must be drawn on the "
                   "upright image, as browsers show it)" if declared == raw else "")
            problems.add(files.get(img.filename, img.filename),
                         f"{img.filename}: the annotations say {declared[0]}×{declared[1]} but the image is "
                         f"{upright[0]}×{upright[1]}{why}")
            continue
        dataset.paths[img.filename] = where
        kept.append(img)
    dataset.images = kept
    # Boxes were checked against declared sizes when read; those of images sized just now, here.
    problems.extend(_box_problems(filled, files))
    problems.raise_if_any(f"{source.path.name}")
    return dataset


def _box_problems(images: Sequence[AnnotatedImage], files: Mapping[str, str]) -> _Problems:
    problems = _Problems()
    for img in images:
        for i, box in enumerate(img.boxes):
            reason = _check_box(box, img.width, img.height, None)
            if reason:
                problems.add(files.get(img.filename, img.filename), f"{img.filename} box {i} ({_describe(box)}): "
                             f"{reason}", box=i, value=box)
    return problems


def _read_deferred(fn: Callable[[], Any], problems: _Problems, file: str) -> Any:
    try:
        return fn()
    except Invalid as exc:
        if exc.details:
            problems.items.extend(exc.details)
        else:
            problems.add(file, exc.message)
        return None


def _dataset_coco(source: _Source, names, images, image_size) -> BoxDataset:
    problems = _Problems()
    merged = BoxDataset("coco", [], [])
    files: dict[str, str] = {}
    located: dict[str, str | None] = {}
    by_name = _by_name(images)
    jsons = [n for n in names if n.lower().endswith(".json") and _is_coco(n, source.read)]
    for name in jsons:
        # Box checks wait until every size is known (some exporters leave sizes out).
        part = _read_deferred(lambda n=name: _read_coco(source.read(n), n, sizes_optional=True), problems, name)
        if part is None:
            continue
        base = str(PurePosixPath(name).parent)
        for cls in part.classes:
            if cls not in merged.classes:
                merged.classes.append(cls)
        for img in part.images:
            if img.filename in files:
                problems.add(name, f"{img.filename} is also listed in {files[img.filename]}; list each image once")
                continue
            files[img.filename] = name
            located[img.filename] = _find_image(img.filename, [base, f"{base}/images", "", "images"], images, by_name)
            merged.images.append(img)
    return _attach(merged, source, located, files, problems)


def _dataset_voc(source: _Source, names, images, image_size) -> BoxDataset:
    problems = _Problems()
    out = BoxDataset("voc", [], [])
    files: dict[str, str] = {}
    located: dict[str, str | None] = {}
    by_name = _by_name(images)
    for name in sorted(n for n in names if n.lower().endswith(".xml")):
        img = _read_deferred(lambda n=name: read_voc(source.read(n), source=n), problems, name)
        if img is None:
            continue
        if img.filename in files:
            problems.add(name, f"{img.filename} is also annotated by {files[img.filename]}; keep one file per image")
            continue
        base = str(PurePosixPath(name).parent)
        parent = str(PurePosixPath(base).parent)
        files[img.filename] = name
        located[img.filename] = _find_image(img.filename, [base, f"{parent}/JPEGImages", "JPEGImages", "", "images"],
                                            images, by_name)
        for box in img.boxes:
            if box["label"] not in out.classes:
                out.classes.append(box["label"])
        out.images.append(img)
    return _attach(out, source, located, files, problems)


def _dataset_yolo(source: _Source, names, images, image_size) -> BoxDataset:
    problems = _Problems()
    name_files = {PurePosixPath(n).name.lower(): n for n in names if PurePosixPath(n).name.lower() in _YOLO_NAME_FILES
                  and "/" not in n}
    name_files = name_files or {PurePosixPath(n).name.lower(): n for n in names
                                if PurePosixPath(n).name.lower() in _YOLO_NAME_FILES}
    lists = {}
    for key in _YOLO_NAME_FILES:
        if key in name_files:
            found = _read_deferred(lambda n=name_files[key]: read_yolo_classes(source.read(n), source=n), problems,
                                   name_files[key])
            if found is not None:
                lists[name_files[key]] = found
    if not lists and not problems.items:
        raise Invalid("YOLO labels number their classes, and no classes.txt, obj.names or data.yaml names them; "
                      "add one (one class name per line, in index order)")
    distinct = {tuple(v) for v in lists.values()}
    if len(distinct) > 1:
        problems.add(", ".join(lists), "these files list different classes; keep one, or make them agree")
    problems.raise_if_any(source.path.name)
    classes = next(iter(lists.values()))
    label_files = set(_yolo_labels(names))
    # Images are named relative to their "images" folder, so write → read → write is stable.
    image_names: dict[str, str] = {}
    for path in images:
        parts = PurePosixPath(path).parts
        name = "/".join(parts[1:]) if parts[0] == "images" and len(parts) > 1 else path
        image_names[name] = path
    labels, sources, used = {}, {}, set()
    for name, path in image_names.items():
        label = _label_path(path)
        labels[name] = source.read(label) if label in label_files else b""
        sources[name] = label if label in label_files else path
        used.add(label)
    for orphan in sorted(label_files - used):
        problems.add(orphan, f"the image for {orphan} is missing: no image of that name lies where YOLO looks "
                             "(…/images/… for …/labels/…, or beside the label file)")

    sizes: dict[str, tuple[int, int]] = {}

    def size_of(name: str) -> tuple[int, int]:
        if image_size is not None:
            return image_size[name] if isinstance(image_size, Mapping) else image_size(name)
        if name not in sizes:
            sizes[name] = source.sizes(image_names[name])[0]
        return sizes[name]

    def safe_size(name: str) -> tuple[int, int]:
        try:
            return size_of(name)
        except Invalid as exc:
            problems.add(image_names[name], exc.message)
            return (0, 0)

    result = _read_deferred(lambda: read_yolo(labels, classes, safe_size, sources=sources), problems, "labels")
    problems.raise_if_any(source.path.name)
    result.paths = {img.filename: image_names[img.filename] for img in result.images}
    return result


def iter_images(path: Path, dataset: BoxDataset, *, max_bytes: int | None = None,
                max_files: int = MAX_FILES, max_total_bytes: int = MAX_TOTAL_BYTES
                ) -> Iterator[tuple[AnnotatedImage, bytes]]:
    """Each image of ``dataset`` (as :func:`read_dataset` found it in ``path``) with its bytes,
    one at a time (a zip is never inflated whole into memory), under the same limits."""
    source = _Source(path, max_bytes=max_bytes, max_files=max_files, max_total_bytes=max_total_bytes)
    try:
        for img in dataset.images:
            yield img, source.read(dataset.paths[img.filename])
    finally:
        source.close()


# --- writing a data set -------------------------------------------------------------------------


def annotation_files(images: Sequence[AnnotatedImage], classes: Sequence[str], fmt: str
                     ) -> tuple[dict[str, bytes], dict[str, str]]:
    """(annotation files: relative path → bytes, image filename → where its image goes) of a data
    set in ``fmt``; the same input always gives the same bytes.

    >>> files, places = annotation_files([AnnotatedImage("a.jpg", 4, 3, [])], ["mug"], "yolo")
    >>> sorted(files), places
    (['classes.txt', 'data.yaml', 'labels/a.txt'], {'a.jpg': 'images/a.jpg'})
    """
    if fmt not in FORMATS:
        raise Invalid(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check_writable(images, classes, fmt, stems=fmt != "coco")
    if fmt == "coco":
        return {"annotations.json": write_coco(images, classes)}, {i.filename: f"images/{i.filename}" for i in images}
    if fmt == "voc":
        files = {f"Annotations/{PurePosixPath(i.filename).with_suffix('.xml')}": write_voc(i) for i in images}
        return files, {i.filename: f"JPEGImages/{i.filename}" for i in images}
    files = {f"labels/{PurePosixPath(i.filename).with_suffix('.txt')}": write_yolo(i, classes) for i in images}
    files["classes.txt"] = write_yolo_classes(classes)
    files["data.yaml"] = write_yolo_data_yaml(classes)
    return files, {i.filename: f"images/{i.filename}" for i in images}


def write_dataset(out: Path, images: Sequence[AnnotatedImage], classes: Sequence[str], fmt: str,
                  image_bytes: Callable[[str], bytes] | Mapping[str, bytes] | None = None) -> Path:
    """Write a data set in ``fmt`` to the folder ``out``, or to a zip when ``out`` ends in
    ``.zip``: the annotation files and, when ``image_bytes`` gives them, the images. Every path
    lies inside ``out``. Returns ``out``.
    """
    from ..storage.files import path_inside

    files, places = annotation_files(images, classes, fmt)
    get = (image_bytes.__getitem__ if isinstance(image_bytes, Mapping) else image_bytes)
    out = Path(out)
    entries = list(files.items())
    if get is not None:
        entries += [(places[img.filename], get(img.filename)) for img in images]
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        # Fixed timestamps and order: the same data set gives the same zip.
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, data in entries:
        target = path_inside(out, name, "export path")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out
