"""Object detection from a few images: a CenterNet-style head on frozen Lite0 feature maps.

A library API of its own: projects train through :mod:`dyntrain.learners.detector` (the learner)
and :mod:`dyntrain.training.boxes` (the run's stages), which share its heads, export and metrics;
:func:`fit_detector` is a standalone fit-and-select for scripts and tests.

* :func:`fit_detector` — validate, cross-validate the candidates (head at 256 and 320 px input)
  by COCO mAP50:95 on repeated K-fold over images within a time budget, fit the chosen one on
  everything, pick the confidence threshold; returns ``(DetectorModel, report)``.
* :func:`export_detector` — ONE ONNX file: ``image`` uint8 [N,S,S,3] (letterboxed, see
  :func:`dyntrain.learners.lb.letterbox`) -> ``boxes`` [N,K,4] (x, y, w, h in model-input
  pixels), ``scores`` [N,K], ``labels`` [N,K] int64; peaks and top-K inside the graph.
* :func:`decode` — numpy only: threshold, per-class NMS, back to original pixels.
* :class:`Detector` — serving helper (ONNX Runtime + numpy, no torch): image -> boxes.
* :func:`detection_metrics` — mAP50, mAP50:95 (pycocotools), per class AP, recall, false boxes.

Training and export import torch lazily; :func:`decode`, :class:`Detector` and the metrics do not.

>>> model, report = fit_detector(images, annotations, ["mug", "pen"], cache_dir=c, time_budget_s=30)  # doctest: +SKIP
>>> export_detector(model, "shelf.onnx")  # doctest: +SKIP
>>> Detector("shelf.onnx").predict(photo)  # doctest: +SKIP
[{'label': 'mug', 'label_index': 0, 'confidence': 0.93, 'x': 12.0, 'y': 40.5, 'w': 88.0, 'h': 95.2}]
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..kernel.errors import Invalid
from . import feature_maps as fm
from ..codecs import letterbox as lb
from ..codecs.detections import decode
from .detection_metrics import detection_metrics

__all__ = ["fit_detector", "export_detector", "Detector", "detection_metrics", "validate", "DetectorModel"]



def validate(images: list[np.ndarray], annotations: list[list[dict]], class_names: list[str]) -> tuple[list, list]:
    """Check inputs; return per image (boxes [k,4] float, labels [k] int) in original pixels.

    Empty annotation lists are fine (an image with nothing to find teaches what is not an
    object). A box outside its image, with no area, or of an unknown class is refused, naming
    the image and the box.
    """
    if len(images) != len(annotations):
        raise Invalid(f"{len(images)} images but {len(annotations)} annotation lists: give one list per image")
    if len(set(class_names)) != len(class_names) or not class_names:
        raise Invalid(f"class names must be distinct and not empty (got {class_names})")
    boxes, labels = [], []
    for i, (image, anns) in enumerate(zip(images, annotations)):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise Invalid(f"image {i}: expected uint8 RGB (height, width, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        b, lab = [], []
        for j, a in enumerate(anns):
            where = f"image {i}, box {j} ({a})"
            try:
                x, y, bw, bh = (float(a[k]) for k in ("x", "y", "w", "h"))
            except (KeyError, TypeError, ValueError):
                raise Invalid(f"{where}: a box needs numeric x, y, w, h in pixels") from None
            if a.get("label") not in class_names:
                raise Invalid(f"{where}: unknown class {a.get('label')!r}; the classes are {class_names}")
            if not (np.isfinite([x, y, bw, bh]).all() and bw > 0 and bh > 0):
                raise Invalid(f"{where}: width and height must be positive")
            # Half a pixel of slack: annotation tools round edges outwards.
            if x < -0.5 or y < -0.5 or x + bw > w + 0.5 or y + bh > h + 0.5:
                raise Invalid(f"{where}: the box lies outside the {w}x{h} image; fix or delete it")
            x0, y0 = max(x, 0.0), max(y, 0.0)
            b.append([x0, y0, min(x + bw, w) - x0, min(y + bh, h) - y0])
            lab.append(class_names.index(a["label"]))
        boxes.append(np.asarray(b, np.float64).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
    return boxes, labels


class Detector:
    """A served detector: the exported file run by ONNX Runtime, with letterbox and decode.

    Class names, input size and the chosen threshold are read from the file's metadata.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 2) -> None:
        import onnxruntime as ort

        from ..kernel.onnx_session import session_options

        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.class_names = json.loads(meta["class_names"])
            self.size = int(meta["input_size"])
            self.threshold = float(meta["threshold"])
        except KeyError as exc:
            raise Invalid(f"{path} is not a dyntrain detector (no {exc} in its metadata)") from None

    def predict(self, image: np.ndarray, threshold: float | None = None) -> list[dict]:
        return self.predict_many([image], threshold)[0]

    def predict_many(self, images: list[np.ndarray], threshold: float | None = None) -> list[list[dict]]:
        if not images:
            return []
        batch, scales, pads = lb.letterbox_many(images, self.size)
        outs = self.session.run(["boxes", "scores", "labels"], {"image": batch})
        t = self.threshold if threshold is None else float(threshold)
        return [decode([o[i] for o in outs], scales[i], pads[i], t, size=(im.shape[1], im.shape[0]),
                       class_names=self.class_names) for i, im in enumerate(images)]


def __getattr__(name: str):
    # Training-side names live in detection_fit (imports torch); resolved on first use so that
    # serving code importing this module never loads torch.
    if name in ("fit_detector", "export_detector", "DetectorModel"):
        from . import detection_fit

        return getattr(detection_fit, name)
    raise AttributeError(name)

