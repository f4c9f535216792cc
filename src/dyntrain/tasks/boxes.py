"""Object detection: the boxes target and the photo modality it takes.

A label is a list of boxes ``{"label", "x", "y", "w", "h"}`` in pixels of the original image
(x, y: the top-left corner), checked against the image's size. It is stored whole as the
sample's annotation (canonical: sorted, 2 decimals, so the same boxes are the same JSON and a
moved box is a new dataset version); the sample's key is its classes joined by "/" (a class name
cannot hold "/"), "" for an image with nothing to find. The model is one ONNX file that takes a
letterboxed uint8 image and answers ``boxes``, ``scores`` and ``labels``; serving letterboxes,
runs it and maps the boxes back to the original pixels with NumPy only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .base import Answer, Modality, Target
from .image import ImageModality

__all__ = ["BoxesTarget", "PhotoModality", "SEPARATOR", "box_classes"]

#: Joins a sample's classes into its key; never part of a class name (see archive.validate_label).
SEPARATOR = "/"
#: A pixel of slack at the image's edges: annotation tools round edges outwards (VOC is 1-based).
_SLACK = 1.0
#: Most boxes one image may hold (a crowd of 1,000 is a counting problem, not this one).
MAX_BOXES = 500


def box_classes(key: str) -> list[str]:
    """The classes a sample's key names.

    >>> box_classes("mug/pen"), box_classes("")
    (['mug', 'pen'], [])
    """
    return [c for c in key.split(SEPARATOR) if c]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"


class BoxesTarget(Target):
    name = "boxes"
    contract = "detector"
    has_classes = True
    output = "boxes"
    output_names = ("boxes", "scores", "labels")
    gate_metrics = ("map50_95", "map50")
    headline = "map50"
    run_template = "_run_boxes.html"
    goal = "find and outline each thing in them"

    # -- labels ----------------------------------------------------------------------------
    def validate_label(self, label: Any) -> str:
        """A class name (the boxes' labels and the class list)."""
        from ..codecs.archive import validate_label

        return validate_label(label)

    def read_label(self, raw: Any, meta: dict[str, Any]) -> tuple[str, Any]:
        """(classes joined by "/", the canonical box list), checked against the image's size in
        ``meta`` (width, height) where it is known. Every bad box is named, not only the first.

        >>> BoxesTarget().read_label('[{"label": "pen", "x": 1, "y": 2, "w": 3.333, "h": 4}]', {"width": 10, "height": 10})
        ('pen', [{'label': 'pen', 'x': 1.0, 'y': 2.0, 'w': 3.33, 'h': 4.0}])
        """
        from ..kernel.errors import Invalid

        if isinstance(raw, str):
            text = raw.strip()
            if not text.startswith("["):
                raise Invalid("an object-detection label is a JSON list of boxes "
                              '[{"label": "mug", "x": 10, "y": 20, "w": 30, "h": 40}] in pixels ([] for nothing)')
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Invalid(f"the boxes are not valid JSON ({exc.msg} at character {exc.pos})") from None
        if isinstance(raw, dict) and "boxes" in raw:
            raw = raw["boxes"]
        if not isinstance(raw, list):
            raise Invalid(f"an object-detection label is a list of boxes, got {type(raw).__name__}")
        if len(raw) > MAX_BOXES:
            raise Invalid(f"{len(raw)} boxes on one image; the limit is {MAX_BOXES}")
        width, height = meta.get("width"), meta.get("height")
        boxes, problems = [], []
        for i, box in enumerate(raw):
            try:
                boxes.append(self._box(box, width, height))
            except Invalid as exc:
                problems.append({"box": i, "reason": exc.message, "value": box if isinstance(box, dict) else str(box)})
        if problems:
            first = problems[0]
            raise Invalid(f"{len(problems)} of {len(raw)} boxes are wrong; box {first['box']}: {first['reason']}",
                          details=problems[:100])
        boxes.sort(key=lambda b: (b["label"], b["x"], b["y"], b["w"], b["h"]))
        return SEPARATOR.join(sorted({b["label"] for b in boxes}))[:200], boxes

    def _box(self, box: Any, width: int | None, height: int | None) -> dict[str, Any]:
        from ..kernel.errors import Invalid

        if not isinstance(box, dict):
            raise Invalid('a box is an object {"label", "x", "y", "w", "h"}')
        missing = [k for k in ("label", "x", "y", "w", "h") if k not in box]
        if missing:
            raise Invalid(f"the box has no {', '.join(missing)}")
        label = self.validate_label(box["label"])
        values = []
        for k in ("x", "y", "w", "h"):
            v = box[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise Invalid(f"{k} must be a number of pixels, got {v!r}")
            values.append(float(v))
        x, y, w, h = values
        if w <= 0 or h <= 0:
            raise Invalid(f"the box has no area (w={w:g}, h={h:g}); width and height must be positive")
        if x < -_SLACK or y < -_SLACK or (width is not None and x + w > width + _SLACK) or \
                (height is not None and y + h > height + _SLACK):
            size = f"the {width}x{height} image" if width is not None else "the image"
            raise Invalid(f"the box ({x:g}, {y:g}, {w:g}×{h:g}) lies outside {size}; fix or delete it")
        return {"label": label, "x": round(x, 2), "y": round(y, 2), "w": round(w, 2), "h": round(h, 2)}

    def label_classes(self, key: str, annotation: Any) -> set[str]:
        return {b["label"] for b in annotation or ()}

    def renamed(self, key: str, annotation: Any, old: str, new: str) -> tuple[str, Any]:
        boxes = sorted(({**b, "label": new if b["label"] == old else b["label"]} for b in annotation or ()),
                       key=lambda b: (b["label"], b["x"], b["y"], b["w"], b["h"]))
        return SEPARATOR.join(sorted({b["label"] for b in boxes}))[:200], boxes

    def without_class(self, key: str, annotation: Any, label: str) -> tuple[str, Any]:
        """The image stays and only the class's boxes go: an image left without boxes has nothing
        to find, which teaches the model what background looks like."""
        boxes = [b for b in annotation or () if b["label"] != label]
        return SEPARATOR.join(sorted({b["label"] for b in boxes}))[:200], boxes

    file_formats = ("coco", "voc", "yolo")

    def read_files(self, path, *, max_bytes: int | None = None, format: str | None = None):
        """Images and their boxes from COCO JSON, Pascal VOC XML or YOLO txt (a folder or a zip;
        the format is detected unless named): every bad box is named, with its file, before any
        image is yielded."""
        from ..codecs.box_formats import iter_images, read_dataset

        dataset = read_dataset(path, format=format, max_bytes=max_bytes)
        for image, data in iter_images(path, dataset, max_bytes=max_bytes):
            yield json.dumps(image.boxes), image.filename, data

    def write_files(self, out, samples: list[dict], content, *, format: str | None = None) -> int:
        """The photos and their boxes as a COCO (default), VOC or YOLO data set: a folder, or a zip
        when ``out`` ends in .zip."""
        from ..codecs.archive import _export_name, _fit_name
        from ..codecs.box_formats import AnnotatedImage, write_dataset

        names, taken = {}, set()
        for s in samples:  # safe, unique file names (a clash gets the sample id in front)
            name = _export_name(s["id"], s["meta"].get("filename") or "")
            name = _fit_name(f"{s['id']}-{name}") if name in taken else name
            names[s["id"]] = name
            taken.add(name)
        images = [AnnotatedImage(names[s["id"]], int(s["meta"].get("width") or 0), int(s["meta"].get("height") or 0),
                                 list(s.get("annotation") or [])) for s in samples]
        classes = sorted({b["label"] for s in samples for b in s.get("annotation") or ()})
        by_name = {names[s["id"]]: s for s in samples}
        write_dataset(out, images, classes, format or "coco", lambda name: content(by_name[name]))
        return len(images)

    def training_stages(self):
        from ..training.boxes import BOX_STAGES

        return BOX_STAGES

    def counts(self, labels: list[str]) -> dict[str, int]:
        """Images showing each class (an image with nothing to find counts as "(nothing)")."""
        from collections import Counter

        counts = Counter(c for key in labels for c in box_classes(key))
        empty = sum(1 for key in labels if not key)
        return dict(sorted(counts.items())) | ({NOTHING: empty} if empty else {})

    def waiting(self, counts: dict[str, int]) -> dict[str, int]:
        from ..datasets.versions import waiting_classes

        return waiting_classes({k: v for k, v in counts.items() if k != NOTHING})

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..datasets.versions import MIN_EXAMPLES_PER_CLASS
        from ..kernel.errors import Invalid

        classes = {k: v for k, v in counts.items() if k != NOTHING}
        if not classes:
            raise Invalid("no image has a box yet: draw a box around each thing to find, on at least "
                          f"{MIN_IMAGES} images")
        # (the counts are per class, so the run itself checks the number of images: see training.boxes)
        if len(classes) == len(self.waiting(counts)):
            raise Invalid(f"every class needs boxes on at least {MIN_EXAMPLES_PER_CLASS} images: "
                          + ", ".join(f"{k!r} has {v}" for k, v in classes.items()))

    # -- gate --------------------------------------------------------------------------------
    def comparable(self, unseen: list[dict], served_labels: list[str]) -> list[dict]:
        known = set(served_labels)  # boxes of a class the served model does not know cannot be scored
        return [p for p in unseen if {b["label"] for b in p["true"]} <= known]

    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        said = [[{**b, "label": served_labels[b["label_index"]]} if "label_index" in b else b for b in boxes]
                for boxes in output]
        return self._scores(samples, said)

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        return self._scores(samples, [p["predicted"] for p in samples])

    def _scores(self, samples: list[dict], said: list[list[dict]]) -> dict[str, Any]:
        from ..learners.detection_metrics import detection_metrics

        names = sorted({b["label"] for p in samples for b in p["true"]} | {b["label"] for s in said for b in s})
        m = detection_metrics([p["true"] for p in samples], said, names)
        return {k: m[k] for k in ("map50", "map50_95", "per_class", "recall_at_threshold", "false_box_rate",
                                  "n_images")}

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        floor = float(floor or 0.0)
        if score > floor:
            return True, f"first model: {metric} {score:.3f} (drawing no box scores {floor:.3f})"
        return False, (f"{metric} {score:.3f}: the model finds nothing it should; draw more boxes, on more "
                       "images")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        return (self.dropped(new, old, metric, settings.gate_tolerance)
                or self.class_drops(new, old, "ap", "n", settings.gate_class_recall_tolerance, min_support,
                                    "average precision"))

    def promoted_tail(self) -> list[str]:
        return ["no class got worse beyond tolerance"]

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        return (f"On {n} images it had never seen, the model in service found {_pct(old.get('recall_at_threshold'))} "
                f"of the objects (mAP50 {_pct(old.get('map50'))}); the new one {_pct(new.get('recall_at_threshold'))} "
                f"(mAP50 {_pct(new.get('map50'))}): {outcome}.")

    def show_score(self, x: float | None) -> str:
        return _pct(x)

    def estimate_words(self) -> tuple[str, str]:
        return "mAP50 ", "images"

    def run_view(self, result: dict, metrics: dict) -> dict | None:
        """Per class in words ("finds 9 of 10 mugs; 1 in 5 boxes it draws is wrong"), the table
        of AP and recall, and the images it did worst on with the true and the drawn boxes."""
        per_class = metrics.get("per_class") or {}
        sentences = []
        for name, c in sorted(per_class.items()):
            if not c.get("n"):
                continue
            level = "ok" if (c.get("recall") or 0) >= 0.8 else "warn" if (c.get("recall") or 0) >= 0.5 else "bad"
            wrong = c.get("false", 0) / c["drawn"] if c.get("drawn") else 0.0
            sentences.append({"level": level, "sentence": (
                f"Finds {c.get('found', 0)} of {c['n']} {name}"
                + (f"; about 1 in {max(1, round(1 / wrong))} boxes it draws as {name} is wrong" if wrong >= 0.05
                   else "; the boxes it draws are almost always right"))})
        # the boxes it answers with (at the confidence the metrics counted), not every weak peak
        threshold = float(metrics.get("threshold") or 0.3)
        answered = [{**p, "predicted": [b for b in p["predicted"] if b["confidence"] >= threshold]}
                    for p in metrics.get("predictions") or []]
        worst = sorted(answered, key=_misses, reverse=True)[:12]
        examples = [{**p, "missed": _misses(p)} for p in worst if _misses(p) > 0]
        return {"sentences": sentences, "box_rows": sorted(per_class.items()), "box_examples": examples}

    # -- predictions -------------------------------------------------------------------------
    def split(self, raw, items: list, model) -> list:
        """Per image: its boxes in original pixels (letterbox undone, per-class overlaps merged)
        at the model's own operating threshold (the project's threshold applies on top)."""
        from ..codecs import letterbox as lb
        from ..codecs.detections import decode

        size = model.schema["size"]
        floor = model.schema.get("threshold", 0.05)
        out = []
        for i, image in enumerate(items):
            h, w = image.shape[:2]
            _, scale, pad_x, pad_y = lb.letterbox_geometry(w, h, size)
            out.append(decode([o[i] for o in raw], scale, (pad_x, pad_y), floor, size=(w, h)))
        return out

    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        boxes = [{"label": labels[b["label_index"]], "confidence": round(b["confidence"], 4),
                  **{k: round(b[k], 1) for k in ("x", "y", "w", "h")}}
                 for b in output if b["confidence"] >= threshold]
        top = boxes[0] if boxes else None  # sorted by confidence
        return Answer({"boxes": boxes}, top and top["label"], top["confidence"] if top else 0.0)

    def cli_columns(self) -> list[str]:
        return ["boxes", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        boxes = prediction.get("boxes") or []
        said = "; ".join(f"{b['label']} {b['confidence']:.2f} at ({b['x']:.0f}, {b['y']:.0f}) {b['w']:.0f}×{b['h']:.0f}"
                         for b in boxes) or "(nothing found)"
        return [said, f"v{prediction['model_version']}"]


def _misses(prediction: dict) -> int:
    """Objects not found plus boxes drawn where there is none (the boxes given, IoU 0.5, same class)."""
    from ..learners.detection_metrics import match

    names = sorted({b["label"] for b in prediction["true"]} | {b["label"] for b in prediction["predicted"]})
    if not names:
        return 0
    m = match(prediction["true"], prediction["predicted"], names, 0.0)
    return int(np.sum(m["n"]) - np.sum(m["found"]) + np.sum(m["false"]))


#: The counts' name for images without any box (they teach what is not an object).
NOTHING = "(nothing)"
#: Fewest images a detection run trains on.
MIN_IMAGES = 4


class PhotoModality(ImageModality):
    """Photos at their own size (boxes are in their pixels); the model letterboxes them."""

    augmentable = False  # the detector's own augmentation moves boxes with the pixels
    health_checks = False  # the image checks compare classes of whole images; a box's class is not one
    data_template = "_data_boxes.html"
    add_template = "_add_boxes.html"
    help_template = "_help_boxes.html"
    data_scripts = ("boxes.js",)
    try_template = "_try_boxes.html"
    try_script = "boxes.js"
    training_curves = False

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000):
        from ..codecs import imaging

        return np.asarray(imaging.decode_image(data, max_pixels=max_pixels).convert("RGB"), np.uint8)

    def warmup_item(self):
        return np.zeros((64, 64, 3), np.uint8)

    def columns(self, session) -> dict[str, Any]:
        """The model's input size and its own operating threshold (from the file's metadata)."""
        shape = session.get_inputs()[0].shape
        meta = session.get_modelmeta().custom_metadata_map
        return {"size": int(shape[1]), "threshold": float(meta.get("threshold", 0.05))}

    def feed(self, input_names: list[str], columns, items: list) -> dict[str, Any]:
        from ..codecs import letterbox as lb

        batch, _, _ = lb.letterbox_many(items, columns["size"])
        return {input_names[0]: batch}

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        from ..learners.candidates import Candidate

        # The frozen-backbone head at two input sizes: small objects need the larger one. No head
        # with fine-tuned backbone blocks: the prototype measured it at 352 s for one fit
        # (mAP50 0.96 against the head's 0.94), so cross-validating it (3 folds, then the nested
        # re-selection) needs over 20 minutes, beyond any budget a retrain-on-every-change project
        # sets (60 s by default; 30 s is the target at 20 images per class), and two points of mAP50
        # are less than the fold-to-fold spread selection sees (sd of mAP50:95 0.05 over 3 folds).
        return [Candidate("image.centernet", {"size": 256}), Candidate("image.centernet", {"size": 320})]

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        """Each photo downscaled to at most :data:`PHOTO_SIDE` px on its longer side (the models take
        ≤ 320 px: nothing is lost), with its scale, so boxes in original pixels can follow."""
        from ..learners.detector import Photo

        photos = np.empty(len(hashes), object)
        for i, h in enumerate(hashes):
            photos[i] = Photo.of(self.decode(load_blob(h)), PHOTO_SIDE, extractor.cache_dir)
            if progress is not None:
                progress((i + 1) / len(hashes))
        return {kind: photos for kind in kinds}

    def external_input(self, model, task: str) -> str:  # a detector's outputs are not checked on upload yet
        return Modality.external_input(self, model, task)

    def input_contract(self, onnx_path) -> dict[str, Any]:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        size = self.columns(session)["size"]
        return {"preprocessing": f"letterbox to {size}×{size} on grey (127), uint8 RGB",
                "input": {"name": session.get_inputs()[0].name, "dtype": "uint8", "shape": [None, size, size, 3],
                          "layout": "NHWC RGB"}}


#: Longest side of the photos training keeps in memory.
PHOTO_SIDE = 640
