"""Object detection from a few images: a CenterNet-style head on frozen Lite0 feature maps.

Projects train detectors one way: the learner ``image.centernet`` (:mod:`dyntrain.learners.detector`)
driven by the run's stages (:mod:`dyntrain.training.boxes`: folds, selection by mAP50:95 under the
one-standard-error rule, the estimate). This module is what training and serving share:

* :func:`export_detector` — ONE ONNX file: ``image`` uint8 [N,S,S,3] (letterboxed, see
  :func:`dyntrain.codecs.letterbox.letterbox`) -> ``boxes`` [N,K,4] (x, y, w, h in model-input
  pixels), ``scores`` [N,K], ``labels`` [N,K] int64; peaks and top-K inside the graph.
* :func:`decode` — numpy only: threshold, per-class NMS, back to original pixels.
* :class:`Detector` — serving helper (ONNX Runtime + numpy, no torch): image -> boxes.
* :func:`detection_metrics` — mAP50, mAP50:95 (pycocotools), per class AP, recall, false boxes.

Export imports torch lazily; :func:`decode`, :class:`Detector` and the metrics do not.

>>> learner = learners.get("image.centernet")(size=320).fit(photos, y, n_classes=2, class_names=["mug", "pen"])  # doctest: +SKIP
>>> learner.export_onnx("shelf.onnx", backbone_dir=cache)  # doctest: +SKIP
>>> Detector("shelf.onnx").predict(photo)  # doctest: +SKIP
[{'label': 'mug', 'label_index': 0, 'confidence': 0.93, 'x': 12.0, 'y': 40.5, 'w': 88.0, 'h': 95.2}]
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..kernel.errors import Invalid
from ..codecs import letterbox as lb
from ..codecs.detections import decode
from .detection_metrics import detection_metrics

__all__ = ["export_detector", "Detector", "decode", "detection_metrics", "DetectorModel"]


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
    # The export lives in detection_fit (imports torch); resolved on first use so that serving
    # code importing this module never loads torch.
    if name in ("export_detector", "DetectorModel"):
        from . import detection_fit

        return getattr(detection_fit, name)
    raise AttributeError(name)

