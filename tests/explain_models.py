"""Small real models the explanation tests share: a linear probe on EfficientNet-Lite0 trained on
synthetic scenes (real photos pasted on real backgrounds, with boxes), and a TF-IDF text model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["dahlia", "pagoda", "digit 0"]
REVIEWS = [("great food and a lovely evening", "good"), ("lovely staff, great wine", "good"),
           ("a great place, lovely view", "good"), ("we had a great time", "good"),
           ("lovely desserts and great coffee", "good"), ("awful service and cold soup", "bad"),
           ("the soup was awful", "bad"), ("cold plates, awful noise", "bad"),
           ("an awful evening, rude staff", "bad"), ("rude waiter and cold coffee", "bad")]
REVIEW_CLASSES = ["bad", "good"]


def single_object_scenes(n: int) -> list:
    """The first ``n`` scenes of seed 0 that hold exactly one object."""
    from dyntrain.ops.scenes import make_scene

    out, i = [], 0
    while len(out) < n:
        scene = make_scene(i, 3, 320, seed=0)
        if len(scene.boxes) == 1:
            out.append(scene)
        i += 1
    return out


def scene_probe(folder: Path) -> tuple[Path, list]:
    """(model file, 15 held-out scenes): a linear probe fitted on 30 one-object scenes."""
    from dyntrain import learners
    from dyntrain.codecs.imaging import model_input
    from dyntrain.learners.linear import LinearProbe

    scenes = single_object_scenes(45)
    images = [model_input(Image.fromarray(s.image)) for s in scenes]
    keys = [f"scene-{i}" for i in range(len(scenes))]
    X = learners.FeatureExtractor(folder, threads=2).features("lite0.pooled", keys, lambda k: images[keys.index(k)])
    y = np.array([CLASSES.index(s.boxes[0]["label"]) for s in scenes])
    fitted = LinearProbe(C=10).fit(X[:30], y[:30], n_classes=3)
    return fitted.export_onnx(folder / "probe.onnx", backbone_dir=folder), scenes[30:]


def review_model(folder: Path) -> Path:
    """TF-IDF + logistic regression on ten short reviews, as one ONNX file."""
    from dyntrain.learners.text import TfidfLogReg

    texts, labels = zip(*REVIEWS)
    y = np.array([REVIEW_CLASSES.index(x) for x in labels])
    return TfidfLogReg(C=10).fit(list(texts), y, n_classes=2).export_onnx(folder / "reviews.onnx")


def serve(core, project: str, path: Path, labels: list[str], task: str) -> None:
    """Register ``path`` as the project's next version and put it in service (no training)."""
    from dyntrain.kernel.projects import create_project
    from dyntrain.registry.models import promote, register_model

    p = create_project(core, project, task=task, settings={"auto_train": False})
    v = register_model(core, p.id, path, {"labels": labels, "task": task}, run_id=None)
    promote(core, project, v.version)


def pixel_model(folder: Path) -> Path:
    """Logistic regression on 32×32 grey pixels of random images, as one ONNX file: a model with no
    class activation map, so ``auto`` explains it by occlusion (through the queue)."""
    from dyntrain.learners.linear import PixelLogReg

    rng = np.random.default_rng(0)
    X = rng.random((20, 32, 32)).astype(np.float32)
    return PixelLogReg(C=1).fit(X, np.arange(20) % 2, n_classes=2).export_onnx(folder / "pixels.onnx")
