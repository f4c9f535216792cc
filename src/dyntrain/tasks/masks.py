"""Semantic segmentation: the masks target and the photo modality it takes.

A label is a mask: one class per pixel of the photo. Clients send it as a JSON object
``{"mask": "<base64 PNG or data: URL>", "classes": ["background", "cup", …]}`` for an indexed
PNG (pixel value = index in ``classes``, 255 = unlabelled) or ``{"mask": …, "colors": {"cup":
[r, g, b], …}}`` for an RGB PNG (:data:`~dyntrain.codecs.masks.UNLABELLED_COLOR` and alpha 0 =
unlabelled), checked against the photo's size. "background" is the class every project has
(id 0); a colour table without it gives it black.

The mask itself is never inlined in the annotation (dataset versions copy annotations, and a
mask is tens of kilobytes): its canonical indexed PNG goes into the blob store beside the
images, and the annotation keeps ``{"mask": <sha256 of that PNG>, "classes": [names by id],
"digest": <codecs.masks.digest>}`` — classes are "background" then the painted ones in order,
so the same painting is the same JSON (a re-saved mask is no new version; one repainted pixel
is). The sample's key is its painted classes other than background joined by "/", like boxes.

The model is one ONNX file that takes a letterboxed uint8 photo and answers ``mask`` (class ids)
and ``probabilities``; serving undoes the letterbox with NumPy (``codecs.masks.served_mask``) and
answers ``{"mask": <base64 indexed PNG>, "classes": […], "areas": {class: fraction}}`` (with
``?probabilities=true`` also a greyscale PNG per class of its probability per pixel). The
prediction record's JSON keeps the classes and areas (the mask PNG would make every record tens
of kilobytes); where the project keeps prediction inputs, the mask PNG goes into the blob store
beside the photo (``Answer.files``), named in ``output["files"]["mask"]``, kept and forgotten with
the photo, served at ``…/predictions/{id}/files/mask`` (the answer's ``urls``) and shown over the
photo on the prediction's page.

Class colours are the project's (setting ``class_colors``): a class is given the next free colour
of the Pascal VOC map (:func:`~dyntrain.codecs.masks.pin_new_colors`) when it first appears and
keeps it as others come and go; its owner may change it. Every page draws masks in them
(:func:`~dyntrain.codecs.masks.class_colors`); a served mask's PNG palette and the run's saved
pictures still use the VOC colours of the classes' order.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from typing import Any

import numpy as np

from .base import Answer, Target
from .boxes import PhotoModality

__all__ = ["MaskTarget", "MaskPhotoModality", "BACKGROUND", "SEPARATOR", "mask_classes", "class_table", "MIN_IMAGES"]

#: The class every segmentation project has, id 0.
BACKGROUND = "background"
#: Joins a sample's painted classes into its key; never part of a class name.
SEPARATOR = "/"
#: Fewest images a segmentation run trains on (three folds of at least one image, plus one).
MIN_IMAGES = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_FORMAT = ('a semantic-segmentation label is a JSON object {"mask": "<base64 PNG>", "classes": ["background", '
           '"cup"]} (an indexed PNG: pixel value = class index, 255 = unlabelled) or {"mask": "<base64 PNG>", '
           '"colors": {"cup": [128, 0, 0]}} (an RGB PNG painted in those colours)')


def mask_classes(key: str) -> list[str]:
    """The painted classes (besides background) a sample's key names.

    >>> mask_classes("cup/plate"), mask_classes("")
    (['cup', 'plate'], [])
    """
    return [c for c in key.split(SEPARATOR) if c]


def class_table(classes: list[str | None]) -> list[str]:
    """A stored annotation's class table as names to decode its PNG with: the id of a deleted class
    (null) gets a name no class can have (it holds "/"), so its pixels belong to no class.

    >>> class_table(["background", None, "cup"])
    ['background', 'deleted/1', 'cup']
    """
    return [c if c is not None else f"deleted{SEPARATOR}{i}" for i, c in enumerate(classes)]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"


def _tenths(x: float | None) -> str:
    """A fraction as people say it of a share: "9/10" (or "less than 1/10")."""
    if x is None:
        return "—"
    tenths = round(float(x) * 10)
    return "less than 1/10" if tenths == 0 and x > 0 else ("none" if tenths == 0 else f"{tenths}/10")


def png_bytes(value: Any) -> bytes:
    """The bytes of a mask sent as base64 or a ``data:`` URL."""
    from ..kernel.errors import Invalid

    if not isinstance(value, str) or not value.strip():
        raise Invalid(f'"mask" must be a base64-encoded PNG (or a data: URL of one); {_FORMAT}')
    text = _DATA_URL.sub("", value.strip(), count=1)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid('"mask" is not valid base64: send the PNG file\'s bytes base64-encoded '
                      '(or a data:image/png;base64,… URL)') from None


class MaskTarget(Target):
    name = "masks"
    contract = "segmenter"
    has_classes = True
    output = "mask"
    output_names = ("mask", "probabilities")
    output_files = ("mask",)
    prediction_template = "_prediction_masks.html"
    prediction_scripts = ("masks.js",)
    gate_metrics = ("miou", "pixel_accuracy")
    headline = "miou"
    run_template = "_run_masks.html"
    goal = "paint which pixels belong to what"

    # -- labels ----------------------------------------------------------------------------
    def validate_label(self, label: Any) -> str:
        """A class name (the class list, a mask's class table)."""
        from ..codecs.archive import validate_label

        return validate_label(label)

    def read_label(self, raw: Any, meta: dict[str, Any]) -> tuple[str, Any]:
        """(painted classes joined by "/", the annotation) of a mask as sent, checked against the
        photo's size in ``meta``; the annotation names the canonical PNG by its sha256 without
        storing it (see :meth:`stored_label`, which does)."""
        key, annotation, _ = self._parse(raw, meta, None)
        return key, annotation

    def stored_label(self, raw: Any, meta: dict[str, Any], blobs) -> tuple[str, Any]:
        """:meth:`read_label`, with the mask's canonical PNG put into ``blobs``; a mask sent as the
        sha256 of a stored one (a correction added to training, a stored annotation sent back)
        is read from there."""
        key, annotation, png = self._parse(raw, meta, blobs)
        if png is not None:
            annotation["mask"] = blobs.put(png)
        return key, annotation

    def _parse(self, raw: Any, meta: dict[str, Any], blobs) -> tuple[str, dict, bytes | None]:
        from ..codecs import masks as mk
        from ..kernel.errors import Invalid
        from ..storage.blobs import sha256_hex

        if isinstance(raw, str):
            text = raw.strip()
            if not text.startswith("{"):
                raise Invalid(_FORMAT)
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Invalid(f"the mask label is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(raw, dict) or "mask" not in raw:
            raise Invalid(_FORMAT)
        classes, colors = raw.get("classes"), raw.get("colors")
        if classes is None and colors is None:
            raise Invalid('say which class each pixel value or colour is: "classes" (names by index, for an indexed '
                          'PNG) or "colors" ({name: [r, g, b]}, for an RGB PNG)')
        if colors is not None and not isinstance(colors, dict):
            raise Invalid('"colors" must be an object {"class name": [r, g, b]}')
        if classes is not None and (not isinstance(classes, list) or not classes):
            raise Invalid('"classes" must be a non-empty list of class names, the class of pixel value 0 first')
        stored = raw["mask"]
        kept = isinstance(stored, str) and _SHA256.match(stored)
        # a stored annotation sent back names a deleted class null: its pixels stay unlabelled
        names = [c if c is None and kept else self._class_name(c)
                 for c in (classes if classes is not None else list(colors))]
        if classes is None and BACKGROUND not in names:
            names = [BACKGROUND, *names]  # a colour table without it: background is black
        colors = {self._class_name(k): v for k, v in (colors or {}).items()}
        if classes is None and BACKGROUND not in colors:
            colors[BACKGROUND] = [0, 0, 0]
        if kept:
            if blobs is None or not blobs.exists(stored):
                raise Invalid(f"mask {stored[:12]}… is not a stored mask of this installation; send the PNG itself "
                              "(base64)")
            data = blobs.get(stored)
        else:
            data = png_bytes(stored)
        size = (int(meta["width"]), int(meta["height"])) if meta.get("width") and meta.get("height") else None
        ids = mk.decode_png(data, class_table(names), colors or None, image_size=size, name="the mask")
        present = [int(v) for v in np.unique(ids) if v != mk.UNLABELLED and names[v] is not None]
        if not present:
            raise Invalid("the mask has no labelled pixel: paint at least the things you want found (and some "
                          "background) in their classes")
        if kept:  # stored canonical once; its class table may have changed since (renames, deletions)
            return _key([names[i] for i in present]), {"mask": stored, "classes": names,
                                                       "digest": mk.digest(ids)}, None
        # canonical: background, then the painted classes in name order (ids renumbered to match)
        painted = sorted({names[i] for i in present} - {BACKGROUND})
        order = [BACKGROUND, *painted]
        lut = np.full(256, mk.UNLABELLED, np.uint8)
        for i in present:
            lut[i] = order.index(names[i])
        ids = lut[ids]
        png = mk.encode_png(ids, order)
        annotation = {"mask": sha256_hex(png), "classes": order, "digest": mk.digest(ids)}
        return SEPARATOR.join(painted)[:200], annotation, png

    def _class_name(self, name: Any) -> str:
        from ..kernel.errors import Invalid

        if not isinstance(name, str):
            raise Invalid(f"a class name must be a string, got {name!r}")
        return self.validate_label(name)

    def label_classes(self, key: str, annotation: Any) -> set[str]:
        return {c for c in (annotation or {}).get("classes") or () if c is not None} | {BACKGROUND}

    def renamed(self, key: str, annotation: Any, old: str, new: str) -> tuple[str, Any]:
        """The class renamed in the annotation's class table (the pixels keep their ids, so the
        stored PNG stays as it is)."""
        from ..kernel.errors import Invalid

        if old == BACKGROUND:
            raise Invalid(f"{BACKGROUND!r} is the class every segmentation project has (class 0); it cannot be "
                          "renamed")
        classes = [new if c == old else c for c in (annotation or {}).get("classes") or ()]
        return _key(classes), {**annotation, "classes": classes}

    def without_class(self, key: str, annotation: Any, label: str) -> tuple[str, Any]:
        """The photo stays and the class's pixels become unlabelled (neither learnt nor scored: they
        are not background either); its id is null in the class table, so the stored PNG stays as it
        is. A photo left with background only still teaches what background looks like."""
        from ..kernel.errors import Invalid

        if label == BACKGROUND:
            raise Invalid(f"{BACKGROUND!r} is the class every segmentation project has (class 0); it cannot be "
                          "deleted")
        classes = [None if c == label else c for c in (annotation or {}).get("classes") or ()]
        return _key(classes), {**annotation, "classes": classes}

    def pin_colors(self, pinned: dict[str, list[int]] | None, existing: set[str],
                   new: set[str]) -> dict[str, list[int]] | None:
        """Every class keeps the colour it shows (see :func:`display_order`); a new one takes the
        next free colour of the VOC map, so adding "bowl" does not recolour "plate"."""
        from ..codecs.masks import pin_new_colors

        return pin_new_colors(pinned, display_order(existing | {BACKGROUND}), sorted(new - existing))

    def blob_refs(self, annotation: Any) -> list[str]:
        mask = (annotation or {}).get("mask") if isinstance(annotation, dict) else None
        return [mask] if isinstance(mask, str) and _SHA256.match(mask) else []

    # -- files -----------------------------------------------------------------------------
    file_formats = ("png", "coco")

    def read_files(self, path, *, max_bytes: int | None = None, format: str | None = None):
        """Photos and their masks: ``images/`` + ``masks/`` PNGs of the same stem (indexed, or RGB
        with a ``classes.json`` / ``labelmap.txt`` class table), or COCO polygons / RLE; every
        mask is checked (size, classes, colours) and a bad one is named with its file."""
        from ..codecs.mask_formats import read_masks

        for label, name, data in read_masks(path, format=format, max_bytes=max_bytes):
            yield json.dumps(label), name, data

    def write_files(self, out, samples: list[dict], content, *, format: str | None = None) -> int:
        """The photos and their masks as ``images/`` + ``masks/`` indexed PNGs with ``classes.json``
        (default), or COCO RLE (``annotations.json``); ``content(sample, blob)`` fetches a blob the
        sample's annotation names."""
        from ..codecs.mask_formats import write_masks

        return write_masks(out, samples, content, format=format or "png")

    def training_stages(self):
        from ..training.masks import MASK_STAGES

        return MASK_STAGES

    def counts(self, labels: list[str]) -> dict[str, int]:
        """Images showing each class; background counts every image (it is every mask's class 0)."""
        counts = Counter(c for key in labels for c in mask_classes(key))
        return dict(sorted(counts.items())) | ({BACKGROUND: len(labels)} if labels else {})

    def waiting(self, counts: dict[str, int]) -> dict[str, int]:
        from ..datasets.versions import waiting_classes

        return waiting_classes({k: v for k, v in counts.items() if k != BACKGROUND})

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..datasets.versions import MIN_EXAMPLES_PER_CLASS
        from ..kernel.errors import Invalid

        images = counts.get(BACKGROUND, 0)
        classes = {k: v for k, v in counts.items() if k != BACKGROUND}
        if not classes:
            raise Invalid("no mask shows anything but background yet: paint the things to find on at least "
                          f"{MIN_IMAGES} photos")
        if images < MIN_IMAGES:
            raise Invalid(f"training needs at least {MIN_IMAGES} photos with masks; there are {images}. Add photos.")
        if len(classes) == len(self.waiting(counts)):
            raise Invalid(f"every class needs painting on at least {MIN_EXAMPLES_PER_CLASS} photos: "
                          + ", ".join(f"{k!r} has {v}" for k, v in classes.items()))

    # -- gate --------------------------------------------------------------------------------
    def comparable(self, unseen: list[dict], served_labels: list[str]) -> list[dict]:
        known = set(served_labels)  # pixels of a class the served model does not know cannot be scored
        return [p for p in unseen if {c for c in p["true"]["classes"] if c is not None} <= known]

    def attach_blobs(self, samples: list[dict], load) -> list[dict]:
        """The samples with their true masks (ids into ``true.classes``) loaded from the blob store."""
        from ..codecs.masks import decode_png

        return [{**p, "true_mask": decode_png(load(p["true"]["mask"]), class_table(p["true"]["classes"]))}
                for p in samples]

    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        """mIoU and per-class IoU of the served file's masks, in the classes of the new run."""
        from ..learners.segmentation_metrics import confusion

        names = samples[0]["predicted"]["classes"]
        n = len(names)
        total = np.zeros((n, n + 1), np.int64)
        for p, said in zip(samples, output):
            truth = _renumber(p["true_mask"], class_table(p["true"]["classes"]), names)
            # a class the new run does not have is the extra column: wrong wherever it is painted
            pred = _renumber(said["mask"], served_labels, names, missing=n)
            total += confusion(truth, pred, n + 1)[:n]
        return scores_of(total, names, [p["true"]["classes"] for p in samples])

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        names = samples[0]["predicted"]["classes"]
        total = sum(np.asarray(p["predicted"]["confusion"], np.int64) for p in samples)
        return scores_of(total, names, [p["true"]["classes"] for p in samples])

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        floor = float(floor or 0.0)
        if score > floor:
            return True, f"first model: {metric} {score:.3f} (calling every pixel background scores {floor:.3f})"
        return False, (f"{metric} {score:.3f}: no better than calling every pixel background; paint more photos")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        return (self.dropped(new, old, metric, settings.gate_tolerance)
                or self.class_drops(new, old, "iou", "n", settings.gate_class_recall_tolerance, min_support, "IoU"))

    def promoted_tail(self) -> list[str]:
        return ["no class's IoU got worse beyond tolerance"]

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        return (f"On {n} photos it had never seen, the model in service overlapped the true areas by "
                f"{_pct(old.get('miou'))} (mIoU); the new one by {_pct(new.get('miou'))}: {outcome}.")

    def show_score(self, x: float | None) -> str:
        return _pct(x)

    def estimate_words(self) -> tuple[str, str]:
        return "mIoU ", "images"

    def run_view(self, result: dict, metrics: dict) -> dict | None:
        """Per class in words ("covers 9/10 of each cup, spills onto background 1/10"), the table of
        IoU, coverage, spill and boundary F, and the photos it did worst on (truth, prediction,
        difference) as the run saved them."""
        per_class = metrics.get("per_class") or {}
        names = list(per_class)
        cm = np.asarray(metrics.get("confusion") or np.zeros((len(names), len(names))), np.float64)
        sentences = []
        for k, (name, c) in enumerate(per_class.items()):
            if name == BACKGROUND or not c.get("pixels"):
                continue
            covered = c.get("covered") or 0.0
            level = "ok" if (c.get("iou") or 0) >= 0.7 else "warn" if (c.get("iou") or 0) >= 0.4 else "bad"
            column = cm[:, k].copy() if cm.shape == (len(names), len(names)) else np.zeros(len(names))
            if len(column):
                column[k] = 0
            onto = names[int(column.argmax())] if column.sum() else None
            spill = c.get("spill")
            sentence = f"Covers {_tenths(covered)} of each {name}"
            sentence += (f", spills onto {onto} {_tenths(spill)}" if onto and spill and spill >= 0.05
                         else "; what it paints as it is almost always right")
            sentences.append({"level": level, "sentence": sentence})
        return {"sentences": sentences, "mask_rows": list(per_class.items()), "worst": metrics.get("worst") or [],
                "miou": metrics.get("miou"), "interval": (metrics.get("interval") or {}).get("miou")}

    # -- predictions -------------------------------------------------------------------------
    def split(self, raw, items: list, model) -> list[dict]:
        """Per photo: its mask in its own pixels (letterbox undone) and how sure the model is."""
        from ..codecs import letterbox as lb
        from ..codecs.masks import served_mask

        size = model.schema["size"]
        out = []
        for i, image in enumerate(items):
            h, w = image.shape[:2]
            _, scale, pad_x, pad_y = lb.letterbox_geometry(w, h, size)
            mask, confidence, probs = served_mask(raw[0][i], raw[1][i] if len(raw) > 1 else None, scale, pad_x,
                                                  pad_y, w, h)
            # the probabilities ride along as bytes at the model's resolution: only an answer that
            # asks for them (detail) makes pictures of them
            out.append({"mask": mask, "confidence": confidence, "probabilities": probs})
        return out

    def detail(self, output, labels: tuple[str, ...]) -> dict[str, Any]:
        """Each class's probability per pixel of the photo, as a base64 greyscale PNG (255 = sure)."""
        from ..codecs.masks import probability_pngs

        if output.get("probabilities") is None:
            return {}
        h, w = output["mask"].shape
        pngs = probability_pngs(output["probabilities"], w, h, list(labels))
        return {"probabilities": {k: base64.b64encode(v).decode("ascii") for k, v in pngs.items()}}

    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        """The mask as a base64 indexed PNG (palette: the class colours), the classes by id and the
        share of the photo each covers; the record's class is the largest painted one."""
        from ..codecs.masks import class_areas, encode_png

        names = list(labels)
        mask = output["mask"]
        areas = {k: round(v["fraction"], 4) for k, v in class_areas(mask, names).items()}
        painted = {k: v for k, v in areas.items() if k != BACKGROUND and v > 0}
        top = max(painted, key=painted.get) if painted else (names[0] if names else None)
        confidence = round(float(output["confidence"]), 4)
        png = encode_png(mask, names)
        public = {"mask": base64.b64encode(png).decode("ascii"), "classes": names, "areas": areas}
        return Answer(public, top if confidence >= threshold else None, confidence,
                      stored={"classes": names, "areas": areas}, files={"mask": png})

    def cli_columns(self) -> list[str]:
        return ["areas", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        areas = sorted((prediction.get("areas") or {}).items(), key=lambda kv: -kv[1])
        said = ", ".join(f"{k} {v:.0%}" for k, v in areas if v > 0) or "(nothing)"
        return [said, f"v{prediction['model_version']}"]

    def prediction_files(self, prediction: dict) -> dict[str, bytes]:
        return {".png": base64.b64decode(prediction["mask"])} if prediction.get("mask") else {}


def display_order(classes) -> list[str]:
    """The order every view lists a project's classes in: background, then the others by name."""
    return [BACKGROUND, *sorted(c for c in classes if c != BACKGROUND)]


def _key(classes: list[str | None]) -> str:
    """A sample's key: its classes but background (and deleted ones) joined by "/"."""
    return SEPARATOR.join(sorted(c for c in classes if c is not None and c != BACKGROUND))[:200]


def _renumber(mask: np.ndarray, names: list[str], into: list[str], missing: int | None = None) -> np.ndarray:
    """A mask's ids (into ``names``) as ids into ``into``; a name ``into`` lacks becomes
    ``missing`` (unlabelled when None)."""
    from ..codecs.masks import UNLABELLED

    lut = np.full(256, UNLABELLED, np.int64)
    for i, name in enumerate(names):
        lut[i] = into.index(name) if name in into else (UNLABELLED if missing is None else missing)
    return lut[np.asarray(mask)]


def scores_of(cm: np.ndarray, names: list[str], truths: list[list[str]] | None = None) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU (with ``n``: images showing the class) of a pooled
    confusion matrix (rows truth, columns prediction; an extra last column counts pixels called
    a class outside ``names``)."""
    cm = np.asarray(cm, np.float64)
    n = len(names)
    tp = np.diag(cm[:n, :n])
    # rows: every true pixel of the class (an (n, n+1) matrix's last column: called something unknown)
    true_px, pred_px = cm[:n].sum(axis=1), cm[:n, :n].sum(axis=0)
    union = true_px + pred_px - tp
    shown = Counter(c for t in truths or () for c in t)
    per_class, ious = {}, []
    for k, name in enumerate(names):
        iou = float(tp[k] / union[k]) if union[k] else None
        if iou is not None:
            ious.append(iou)
        per_class[name] = {"iou": iou, "covered": float(tp[k] / true_px[k]) if true_px[k] else None,
                           "pixels": int(true_px[k]), "n": int(shown.get(name, 0))}
    return {"miou": float(np.mean(ious)) if ious else None,
            "pixel_accuracy": float(tp.sum() / true_px.sum()) if true_px.sum() else None, "per_class": per_class,
            "n_images": len(truths or ())}


class MaskPhotoModality(PhotoModality):
    """Photos at their own size (a mask has exactly their pixels); the model letterboxes them."""

    data_template = "_data_masks.html"
    add_template = "_add_masks.html"
    help_template = "_help_masks.html"
    data_scripts = ("masks.js",)
    try_template = "_try_masks.html"
    try_script = "masks.js"

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        from ..learners.candidates import Candidate

        # the decoder over the frozen backbone at output stride 8, and 4 (the finest map too: thin
        # parts and outlines), as the segmentation benchmark measured them
        return [Candidate("image.segmenter", {"stride": 8}), Candidate("image.segmenter", {"stride": 4})]

    def input_contract(self, onnx_path) -> dict[str, Any]:
        contract = super().input_contract(onnx_path)
        return {**contract, "outputs": {"mask": "int64 [N, S, S] class ids (argmax)",
                                        "probabilities": "float32 [N, C, S, S]"}}
