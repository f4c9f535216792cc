"""The target contracts, one suite over EVERY registered learner (image, text and table alike).

A learner declares the contract of the target it serves (``Learner.contract``: "classifier" or
"regressor", see :mod:`dyntrain.tasks`). Each one is fitted on a small set of its own input kind,
answers in its contract's shape, keeps its parameters, and its ONNX file — opened and fed the
stored contents exactly as serving does for a task that offers it — reproduces its answers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from learner_data import FAST_PARAMS

from dyntrain import learners, tasks
from dyntrain.serving.live import load_model
from dyntrain.codecs.tables import row_bytes

NAMES = [n for n in learners.names() if not learners.get(n).composite]  # the soft vote: test_ensemble.py
CONTRACTS = {tasks.get(n).target.contract for n in tasks.names()}


def _task_for(cls) -> tasks.Task:
    """A registered task whose modality offers the learner and whose target it serves."""
    for name in tasks.names():
        task = tasks.get(name)
        offered = {c.learner for c in task.candidates(400, 3, 3600)}
        if task.target.contract == cls.contract and cls.name in offered:
            return task
    raise AssertionError(f"no registered task offers {cls.name}")


WORDS = [["great", "lovely", "superb"], ["awful", "dull", "boring"], ["red", "green", "blue"]]


def _contents(kind: str, n: int, rng) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """(stored contents, class per content, a number per content) for a modality kind."""
    classes = np.arange(n) % 3
    if kind == "text":
        texts = [" ".join(rng.choice(WORDS[c], 3)) + f" item{i}" for i, c in enumerate(classes)]
        return [t.encode() for t in texts], classes, classes * 10.0 + rng.normal(0, 1, n)
    rows = [{"size": float(c * 5 + rng.normal()), "colour": ["red", "green", "blue"][c], "id": i}
            for i, c in enumerate(classes)]
    return [row_bytes(r) for r in rows], classes, np.array([r["size"] * 3 + 1 for r in rows])


@pytest.fixture(scope="module")
def non_image(extractor):
    """Fitted text and table learners with their task, contents, features and targets."""
    rng = np.random.default_rng(0)
    out = {}
    for name in NAMES:
        cls = learners.get(name)
        task = _task_for(cls)
        if task.modality.kind == "image" or cls.contract == "recommender":
            continue  # image learners: the digits set of conftest; recommenders: interactions below
        # trees keep 20-row leaves: a table needs a few leaves' worth of rows to learn anything
        contents, classes, values = _contents(task.modality.kind, 24 if task.modality.kind == "text" else 90, rng)
        blobs = {f"h{i}": c for i, c in enumerate(contents)}
        X = task.modality.features([cls.input_kind], list(blobs), blobs.get, extractor)[cls.input_kind]
        y = classes if cls.contract == "classifier" else values
        learner = cls(**FAST_PARAMS.get(name, {}))
        learner.fit(X, y, **({"n_classes": 3} if cls.contract == "classifier" else {}))
        out[name] = {"task": task, "learner": learner, "X": X, "y": y,
                     "items": [task.modality.decode(c) for c in contents]}
    return out


@pytest.fixture(scope="module")
def detector(extractor):
    """The detector, fitted briefly on synthetic scenes (objects cut from photos on photo backgrounds)."""
    import io

    from PIL import Image

    from dyntrain.ops.scenes import make_scenes
    from dyntrain.training.boxes import BOX_STAGES

    out = {}
    for name in NAMES:
        cls = learners.get(name)
        if cls.contract != "detector":
            continue
        task = _task_for(cls)
        scenes = make_scenes(8, classes=2, size=256, seed=3)
        blobs = {}
        for i, sc in enumerate(scenes):
            buf = io.BytesIO()
            Image.fromarray(sc.image).save(buf, "PNG")
            blobs[f"h{i}"] = buf.getvalue()
        X = task.modality.features([cls.input_kind], list(blobs), blobs.get, extractor)[cls.input_kind]
        names = scenes[0].class_names
        y = np.empty(len(scenes), object)
        for i, sc in enumerate(scenes):
            y[i] = (np.array([[b[k] for k in ("x", "y", "w", "h")] for b in sc.boxes], float).reshape(-1, 4),
                    np.array([names.index(b["label"]) for b in sc.boxes], np.int64))
        learner = cls(size=256, copies=3, passes=600).fit(X, y, n_classes=len(names))
        out[name] = {"task": task, "learner": learner, "X": X, "y": y, "stages": BOX_STAGES,
                     "items": [task.modality.decode(b) for b in blobs.values()], "classes": names}
    return out


@pytest.fixture(scope="module")
def recommender():
    """Each recommender, fitted on a small synthetic latent-factor set with ratings."""
    from dyntrain.learners.recommend_synthetic import synthetic_interactions
    from dyntrain.training.recommend import REC_STAGES

    data, features, _ = synthetic_interactions(120, 80, 2400, ratings=True, seed=2)
    users = np.array([str(u) for u in data.user_ids[:20]], dtype=object)
    out = {}
    for name in NAMES:
        cls = learners.get(name)
        if cls.contract != "recommender":
            continue
        # with item vectors, as in a project with a catalogue (the content learner needs them)
        learner = cls(**FAST_PARAMS.get(name, {})).fit_interactions(data, item_features=features)
        out[name] = {"task": _task_for(cls), "learner": learner, "X": users, "y": data, "stages": REC_STAGES,
                     "items": [{"user": u, "n": 10} for u in users]}
    return out


@pytest.fixture(scope="module")
def segmenter(extractor):
    """The segmenter, fitted briefly on synthetic scenes (objects cut from photos on photo backgrounds)."""
    import io

    from PIL import Image

    from dyntrain.ops.scenes import make_scenes
    from dyntrain.training.masks import MASK_STAGES

    out = {}
    for name in NAMES:
        cls = learners.get(name)
        if cls.contract != "segmenter":
            continue
        task = _task_for(cls)
        scenes = make_scenes(8, classes=2, size=(256, 192), seed=3)
        blobs = {}
        for i, sc in enumerate(scenes):
            buf = io.BytesIO()
            Image.fromarray(sc.image).save(buf, "PNG")
            blobs[f"h{i}"] = buf.getvalue()
        X = task.modality.features([cls.input_kind], list(blobs), blobs.get, extractor)[cls.input_kind]
        names = ["background", *scenes[0].class_names]
        y = [sc.mask for sc in scenes]
        learner = cls(epochs=8).fit(X, y, n_classes=len(names), class_names=names)
        out[name] = {"task": task, "learner": learner, "X": X, "y": y, "stages": MASK_STAGES,
                     "items": [task.modality.decode(b) for b in blobs.values()], "classes": names}
    return out


@pytest.fixture(scope="module")
def image_filter():
    """The image filter, fitted briefly on Sobel maps of photo crops of two sizes."""
    import io

    from PIL import Image

    from dyntrain.ops.edge_pairs import sample_crops, sobel_map
    from dyntrain.training.pairs import PAIR_STAGES

    out = {}
    for name in NAMES:
        cls = learners.get(name)
        if cls.contract != "filter":
            continue
        task = _task_for(cls)
        photos = sample_crops(4, seed=5) + sample_crops(2, size=(64, 100), seed=6)
        blobs = {}
        for i, p in enumerate(photos):
            buf = io.BytesIO()
            Image.fromarray(p).save(buf, "PNG")
            blobs[f"h{i}"] = buf.getvalue()
        X = task.modality.features([cls.input_kind], list(blobs), blobs.get, None)[cls.input_kind]
        y = [sobel_map(p) for p in photos]
        learner = cls(steps=300).fit(X, y)
        out[name] = {"task": task, "learner": learner, "X": X, "y": y, "stages": PAIR_STAGES,
                     "items": [task.modality.decode(b) for b in blobs.values()]}
    return out


@pytest.fixture(scope="module")
def every(non_image, fitted, digits_small, detector, segmenter, recommender, image_filter):
    image = {name: {"task": _task_for(learners.get(name)), "learner": learner, "y": digits_small["y"],
                    "X": digits_small["X"][learner.input_kind], "items": list(digits_small["images"])}
             for name, learner in fitted.items()}
    return {**image, **non_image, **detector, **segmenter, **recommender, **image_filter}


@pytest.mark.parametrize("name", NAMES)
def test_every_learner_serves_a_registered_target(name):
    cls = learners.get(name)
    assert cls.contract in CONTRACTS
    assert _task_for(cls).target.contract == cls.contract


@pytest.mark.parametrize("name", NAMES)
def test_answers_follow_the_contract(name, every):
    case = every[name]
    learner, X = case["learner"], case["X"]
    if learner.contract == "detector":
        from dyntrain.codecs.detections import iou_xywh

        said = learner.predict(X)
        assert len(said) == len(X) and all({"label_index", "confidence", "x", "y", "w", "h"} <= set(b)
                                           for boxes in said for b in boxes)
        hits = [iou_xywh(t, np.array([[b[k] for k in "xywh"] for b in boxes])).max() >= 0.5
                for (truth, _), boxes in zip(case["y"], said) if len(boxes) for t in truth]
        assert hits and np.mean(hits) > 0.3  # it learnt something: a third of the objects found on its own images
    elif learner.contract == "recommender":
        lists = case["stages"].outputs(learner, X)
        seen = {u: {str(case["y"].item_ids[i]) for i in learner.model_.history(learner.model_.user_index(u))[0]}
                for u in X}
        assert all(len(items) == 10 and not set(items) & seen[u] for u, items in zip(X, lists))
        assert learner.model_.recommend("a stranger", 10)["source"] == "popular"  # the cold-start answer
    elif learner.contract == "segmenter":
        from dyntrain.learners.segmentation_metrics import segmentation_metrics

        said = learner.predict(X)
        assert [m.shape for m in said] == [t.shape for t in case["y"]] and all(m.dtype == np.uint8 for m in said)
        m = segmentation_metrics(case["y"], said, case["classes"], boundary=False)
        assert m["miou"] > 0.5, m["per_class"]  # it learnt something: on its own photos, most pixels right
    elif learner.contract == "filter":
        from dyntrain.codecs.pairs import as_mode, psnr

        said = learner.predict(X)
        assert [m.shape for m in said] == [t.shape for t in case["y"]] and all(m.dtype == np.uint8 for m in said)
        gain = [psnr(t, m) - psnr(t, as_mode(p, "L")) for t, m, p in zip(case["y"], said, X)]
        assert min(gain) > 5, gain  # it learnt something: far closer than the photo itself
    elif learner.contract == "classifier":
        n_classes = int(np.max(case["y"])) + 1
        proba = learner.predict_proba(X)
        assert proba.shape == (len(X), n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        assert (proba >= 0).all() and (proba.argmax(1) == case["y"]).mean() > 0.5  # it learnt something
    else:
        pred = np.asarray(learner.predict(X))
        assert pred.shape == (len(X),) and np.isfinite(pred).all()
        assert np.corrcoef(pred, case["y"])[0, 1] > 0.5  # it learnt something


@pytest.mark.parametrize("name", NAMES)
def test_params_round_trip(name):
    cls = learners.get(name)
    params = cls(**FAST_PARAMS.get(name, {})).get_params()
    assert set(params) == set(cls.param_names()) and cls(**params).get_params() == params
    json.dumps(params)  # run records store them as JSON


@pytest.mark.parametrize("name", NAMES)
def test_the_served_file_reproduces_the_answers(name, every, cache_dir, tmp_path):
    """The file as serving runs it: the task's modality feeds stored contents, its target's output is read."""
    case = every[name]
    learner, task = case["learner"], case["task"]
    path = learner.export(tmp_path, backbone_dir=cache_dir)
    labels = ([str(k) for k in range(int(np.max(case["y"])) + 1)] if learner.contract == "classifier"
              else case.get("classes", []))
    served = load_model(path, 0, 0, labels, threads=1, task=task.name).predict_items(case["items"])
    if learner.contract == "recommender":  # the .npz artefact, read with NumPy: the same lists
        assert case["stages"].agrees(served, case["stages"].outputs(learner, case["X"])) is None
    elif learner.contract == "detector":  # the same boxes, within the letterbox's pixel
        assert case["stages"].agrees(served, learner.predict(case["X"])) is None
        assert sum(len(b) for b in served) > 0
    elif learner.contract == "segmenter":  # the same masks, within the letterbox's pixel at outlines
        assert case["stages"].agrees(served, learner.predict(case["X"])) is None
        assert all(s["mask"].shape == t.shape for s, t in zip(served, case["y"]))
    elif learner.contract == "filter":  # photos of two sizes in one batch: each answered as alone, exactly
        assert all((s["image"] == t).all() for s, t in zip(served, learner.predict(case["X"])))
    elif learner.contract == "classifier":
        np.testing.assert_allclose(served, learner.predict_proba(case["X"]), atol=1e-4, rtol=0)
    else:
        expected = np.asarray(learner.predict(case["X"]))
        np.testing.assert_allclose(served.reshape(-1), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
