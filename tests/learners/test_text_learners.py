"""The learner contract for the text learners: fit, probabilities, params, one ONNX file that
reproduces them from raw strings through the shared serving input path."""

from __future__ import annotations

import numpy as np
import pytest

from dyntrain import learners
from dyntrain.errors import Invalid
from dyntrain.learners.text import TEXT_EMBED, TEXT_RAW, TextEncoder
from dyntrain.serving.live import load_model

DOCS = ["a wonderful, moving film", "great acting and a clever plot", "I loved every minute!",
        "dull and boring...", "a terrible waste of time", "awful script, bad acting; it's 2 bad"]
Y = np.array([1, 1, 1, 0, 0, 0])


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    cache = tmp_path_factory.mktemp("text-cache")
    enc = TextEncoder(cache)
    X = enc.features([f"doc{i}" for i in range(len(DOCS))], lambda k: DOCS[int(k[3:])])
    again = TextEncoder(cache)
    again.features([f"doc{i}" for i in range(len(DOCS))], lambda k: DOCS[int(k[3:])])
    assert again.computed == 0  # the second pass is served from the cache
    return cache, {TEXT_EMBED: X, TEXT_RAW: np.array(DOCS, dtype=object)}


@pytest.mark.parametrize("name", learners.names("text."))
def test_text_learner_contract(name, features, tmp_path):
    cache, X = features
    cls = learners.get(name)
    learner = cls(C=5.0)
    assert cls(**learner.get_params()).get_params() == learner.get_params()
    learner.fit(X[cls.input_kind], Y, n_classes=3)  # class 2 never seen: still a column
    p = learner.predict_proba(X[cls.input_kind])
    assert p.shape == (6, 3) and np.allclose(p.sum(1), 1, atol=1e-5) and (p.argmax(1) == Y).all()
    model = load_model(learner.export_onnx(tmp_path / "m.onnx", backbone_dir=cache), 0, 0, ["a", "b", "c"])
    assert np.abs(model.predict_items(DOCS) - p).max() < 1e-4
    with pytest.raises(Invalid):
        cls(C=-1).fit(X[cls.input_kind], Y, n_classes=2)
