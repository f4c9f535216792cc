"""Serving shares one trunk session between backbone models — and only between identical trunks.

Predictions of a model served through a shared trunk must equal, bit for bit, those of an
ONNX Runtime session of its whole file; a model whose trunk weights differ in one value must
get its own trunk session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, compose, helper, numpy_helper

from dyntrain.serving.trunks import split_composed


def _whole(path_or_bytes, feed: dict) -> np.ndarray:
    session = ort.InferenceSession(path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes),
                                   providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], feed)[0]


# A small composed model built like learners/_onnx.compose_with_backbone -------------------------
def _composed(trunk_seed: int, head_seed: int, *, head_reads_input: bool = False) -> bytes:
    t, h = np.random.default_rng(trunk_seed), np.random.default_rng(head_seed)
    w1 = numpy_helper.from_array(t.normal(size=(6, 8)).astype(np.float32), "w1")
    trunk = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["mm"], name="/MatMul"),
         helper.make_node("Relu", ["mm"], ["pooled"], name="/Relu")],
        "trunk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 8])], [w1]),
        opset_imports=[helper.make_opsetid("", 17)])
    w2 = numpy_helper.from_array(h.normal(size=(8, 3)).astype(np.float32), "w2")
    head_nodes = [helper.make_node("MatMul", ["features", "w2"], ["logits"], name="/MatMul"),
                  helper.make_node("Softmax", ["logits"], ["probabilities"], name="/Softmax", axis=1)]
    head = helper.make_model(helper.make_graph(
        head_nodes, "head", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])], [w2]),
        opset_imports=[helper.make_opsetid("", 17)])
    head = compose.add_prefix(head, "head/", rename_outputs=False)
    merged = compose.merge_models(trunk, head, io_map=[("pooled", "head/features")], outputs=["probabilities"])
    if head_reads_input:  # a head node that also reads the graph input: not a clean cut
        merged.graph.node.append(helper.make_node("Identity", ["x"], ["head/x_copy"], name="head/Identity"))
    return merged.SerializeToString()


FEED = {"x": np.random.default_rng(9).normal(size=(5, 6)).astype(np.float32)}


def _run_split(data: bytes, feed: dict) -> np.ndarray:
    split = split_composed(data)
    trunk = ort.InferenceSession(split.trunk_bytes(), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(split.head_bytes, providers=["CPUExecutionProvider"])
    return head.run(["probabilities"], {split.cut: trunk.run([split.cut], feed)[0]})[0]


def test_split_is_keyed_by_the_trunk_bytes_alone():
    a, b, c = _composed(0, 1), _composed(0, 2), _composed(3, 1)
    sa, sb, sc = split_composed(a), split_composed(b), split_composed(c)
    assert sa.cut == "pooled"
    assert sa.key == sb.key  # same trunk, different heads
    assert sa.key != sc.key  # trunk weights differ
    for data in (a, b, c):
        np.testing.assert_array_equal(_run_split(data, FEED), _whole(data, FEED))


def test_models_that_are_not_a_clean_cut_are_served_whole():
    assert split_composed(_composed(0, 1, head_reads_input=True)) is None
    twice = onnx.load_from_string(_composed(0, 1))  # a head node also writes a trunk tensor: invalid
    twice.graph.node.append(helper.make_node("Identity", ["head/logits"], ["mm"], name="head/Again"))
    assert split_composed(twice.SerializeToString()) is None
    plain = onnx.load_from_string(_composed(0, 1))
    for node in plain.graph.node:
        node.name = node.name.replace("head/", "")
    assert split_composed(plain.SerializeToString()) is None  # no head/ nodes: nothing to share
    assert split_composed(b"not an onnx file") is None
    assert split_composed(b"") is None


# Real backbone models, served by one LiveModels -------------------------------------------------
def _linear_probe(backbone_dir: Path, seed: int, path: Path) -> Path:
    from dyntrain.learners.linear import LinearProbe

    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(15, 1280)).astype(np.float32), np.arange(15) % 3
    return LinearProbe(C=1.0).fit(X, y, n_classes=3).export_onnx(path, backbone_dir=backbone_dir)


def _other_trunk_weights(source: Path, path: Path) -> Path:
    """The same model with one weight of its first convolution changed."""
    model = onnx.load(str(source))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_backbone_models_share_one_trunk_and_predict_like_their_whole_files(core, tmp_path):
    from dyntrain.kernel.projects import create_project
    from dyntrain.registry.models import promote, register_model

    backbone_dir = core.settings.data_dir / "cache"
    files = {"a": _linear_probe(backbone_dir, 0, tmp_path / "a.onnx"),
             "b": _linear_probe(backbone_dir, 1, tmp_path / "b.onnx")}
    files["c"] = _other_trunk_weights(files["a"], tmp_path / "c.onnx")
    ids = {}
    for name, path in files.items():
        ids[name] = create_project(core, name, settings={"auto_train": False}).id
        card = {"labels": ["x", "y", "z"], "task": "image-classification", "learner": "image.linear_probe"}
        promote(core, name, register_model(core, ids[name], path, card, run_id=None, source="uploaded").version)
    assert core.live.load_all() == 3
    served = {name: core.live.production(pid) for name, pid in ids.items()}

    assert served["a"].session is served["b"].session  # one trunk for two projects
    assert served["a"].head is not served["b"].head and served["a"].cut == "pooled"
    assert served["c"].session is not served["a"].session  # different weights: its own trunk

    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    answers = {name: model.predict_items(list(images)) for name, model in served.items()}
    for name, path in files.items():
        np.testing.assert_array_equal(answers[name], _whole(path, {"image": images}))
    assert not np.array_equal(answers["a"], answers["b"])
    assert not np.array_equal(answers["a"], answers["c"])
    # The pinned-version path goes through the same loader and the same shared trunk.
    assert core.live.version(ids["b"], 1) is served["b"]
