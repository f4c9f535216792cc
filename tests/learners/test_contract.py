"""One contract suite, run over every registered learner."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from learner_data import FAST_PARAMS

from dyntrain.codecs import imaging
from dyntrain import learners
from dyntrain.kernel.errors import Cancelled, Invalid, NotFound, NotReady

# Every registered *image* learner (their inputs come from FeatureExtractor kinds). Text
# learners consume text features and are covered by tests/test_text.py.
NAMES = learners.names("image.", contract="classifier")  # image classifiers


def test_registry_lists_image_learners_cheapest_first():
    assert NAMES == ["image.linear_probe", "image.pixel_logreg", "image.small_cnn", "image.finetune"]
    assert set(NAMES) <= set(learners.names())
    for name in learners.names():
        cls = learners.get(name)
        assert cls.name == name and cls.input_kind
        if name in NAMES:  # image classifiers take FeatureExtractor kinds; the detector takes photos
            assert cls.input_kind in learners.KINDS


def test_unknown_learner_is_a_clear_error():
    with pytest.raises(NotFound, match="no learner"):
        learners.get("image.nope")


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_proba_shapes_and_sums(name, fitted, digits_small):
    learner = fitted[name]
    X = digits_small["X"][learner.input_kind]
    proba = learner.predict_proba(X)
    assert proba.shape == (len(X), 5)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(proba >= 0)
    # It learnt something: far better than chance (0.2) on its own training data.
    assert (proba.argmax(1) == digits_small["y"]).mean() > 0.5
    assert learner.predict_proba(X[:0]).shape == (0, 5)


@pytest.mark.parametrize("name", NAMES)
def test_get_params_round_trip(name):
    cls = learners.get(name)
    learner = cls(**FAST_PARAMS[name])
    params = learner.get_params()
    assert set(params) == set(cls.param_names())
    for key, value in FAST_PARAMS[name].items():
        assert params[key] == value  # stored unchanged
    assert cls(**params).get_params() == params
    assert learner.clone().get_params() == params
    json.dumps(params)  # run records store them as JSON


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name, fitted, digits_small):
    cls = learners.get(name)
    X, y = digits_small["X"][cls.input_kind], digits_small["y"]
    again = cls(**FAST_PARAMS[name]).fit(X, y, n_classes=5)
    np.testing.assert_array_equal(again.predict_proba(X), fitted[name].predict_proba(X))
    assert [round(c["loss"], 6) for c in again.curves] == [round(c["loss"], 6) for c in fitted[name].curves]


@pytest.mark.parametrize("name", NAMES)
def test_class_missing_from_y_still_gets_a_column(name, digits_small):
    cls = learners.get(name)
    X, y = digits_small["X"][cls.input_kind], digits_small["y"]
    keep = y != 2  # class 2 never seen; class 5 does not exist in the data at all
    learner = cls(**FAST_PARAMS[name]).fit(X[keep], y[keep], n_classes=6)
    proba = learner.predict_proba(X)
    assert proba.shape == (len(X), 6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert proba[:, [2, 5]].max() < 1e-6  # nothing learnt about them: never predicted


@pytest.mark.parametrize("name", NAMES)
def test_curves_recorded_per_epoch(name, fitted):
    learner = fitted[name]
    if learner.epochs_based:
        assert len(learner.curves) == learner.epochs
        assert {"epoch", "loss", "accuracy", "lr", "seconds"} <= set(learner.curves[0])
        json.dumps(learner.curves)
    else:
        assert learner.curves == []


@pytest.mark.parametrize("name", NAMES)
def test_onnx_file_reproduces_predict_proba(name, fitted, digits_small, cache_dir, tmp_path):
    """Serving contract: uint8 model_input images -> the same probabilities as training."""
    learner = fitted[name]
    path = learner.export_onnx(tmp_path / f"{name}.onnx", backbone_dir=cache_dir)
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("image", "tensor(uint8)", [imaging.INPUT_SIZE, imaging.INPUT_SIZE, 3])
    assert out.name == "probabilities" and out.shape[1] == 5
    assert isinstance(inp.shape[0], str)  # dynamic batch

    images = digits_small["images"]
    expected = learner.predict_proba(digits_small["X"][learner.input_kind])
    got = sess.run(["probabilities"], {"image": images})[0]
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)
    one = sess.run(["probabilities"], {"image": images[:1]})[0]
    np.testing.assert_allclose(one, expected[:1], atol=2e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_progress_can_cancel(name, digits_small):
    cls = learners.get(name)
    calls = []

    def progress(fraction):
        calls.append(fraction)
        if len(calls) == 2:  # let it start, then cancel
            raise Cancelled("job cancelled")

    with pytest.raises(Cancelled):
        cls(**FAST_PARAMS[name]).fit(digits_small["X"][cls.input_kind], digits_small["y"], n_classes=5, progress=progress)
    assert len(calls) == 2 and 0.0 <= calls[-1] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_is_accepted_and_matters(name, digits_small):
    cls = learners.get(name)
    X, y = digits_small["X"][cls.input_kind], digits_small["y"]
    w = np.where(y == 0, 5.0, 1.0)
    a = cls(**FAST_PARAMS[name]).fit(X, y, n_classes=5).predict_proba(X)
    b = cls(**FAST_PARAMS[name]).fit(X, y, n_classes=5, sample_weight=w).predict_proba(X)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_invalid_and_unfitted_is_not_ready(name, digits_small):
    cls = learners.get(name)
    X, y = digits_small["X"][cls.input_kind], digits_small["y"]
    with pytest.raises(NotReady):
        cls().predict_proba(X)
    with pytest.raises(Invalid):
        cls(**FAST_PARAMS[name]).fit(X, y, n_classes=3)  # labels outside 0..2
    with pytest.raises(Invalid):
        cls(**FAST_PARAMS[name]).fit(X[:, :1], y, n_classes=5)  # wrong feature shape
    with pytest.raises(Invalid):
        cls(**FAST_PARAMS[name]).fit(X, y[:-1], n_classes=5)


def test_single_class_fold_predicts_that_class(digits_small):
    X = digits_small["X"][learners.POOLED][:6]
    learner = learners.LinearProbe().fit(X, np.full(6, 3), n_classes=5)
    assert np.all(learner.predict_proba(X).argmax(1) == 3)
