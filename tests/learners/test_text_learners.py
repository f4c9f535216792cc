"""The learner contract for the text learners: fit, probabilities, params, one ONNX file that
reproduces them from raw strings through the shared serving input path."""

from __future__ import annotations

import numpy as np
import pytest

from dyntrain import learners
from dyntrain.kernel.errors import Invalid
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
    model = load_model(learner.export_onnx(tmp_path / "m.onnx", backbone_dir=cache), 0, 0, ["a", "b", "c"],
                       task="text-classification")
    assert np.abs(model.predict_items(DOCS) - p).max() < 1e-4
    with pytest.raises(Invalid):
        cls(C=-1).fit(X[cls.input_kind], Y, n_classes=2)


FILLER = "The committee met on Tuesday and the minutes were read aloud in the hall. " * 25  # ~400 tokens
LONG = [FILLER + "In the end I loved this film: wonderful, moving, brilliant.",
        FILLER + "In the end I hated this film: awful, dull, a waste of time.",
        FILLER * 3 + "A wonderful, moving film.", FILLER * 3 + "A dull and boring film."]


def test_long_texts_are_embedded_whole_in_pooled_chunks(features):
    from dyntrain.codecs import texts

    cache, _ = features
    ids, mask = texts.tokenize_chunks(LONG[:1] + ["short"])
    assert mask[0].sum() > texts.CHUNK_TOKENS and ids.shape[1] % texts.CHUNK_TOKENS == 0
    chunks = ids[0].reshape(-1, texts.CHUNK_TOKENS)
    assert (chunks[mask[0].reshape(-1, texts.CHUNK_TOKENS).sum(1) > 0, 0] == 101).all()  # each chunk starts [CLS]
    enc = TextEncoder(cache)
    E = enc.embed(LONG[:2] + ["short"])
    # the sentiment sits after token 256: it still moves the embedding (a cut text would give the same vector)
    assert np.abs(E[0] - E[1]).max() > 1e-3
    # the all-padding chunks a short text gets in a batch with a long one change nothing
    assert np.abs(enc.embed(["short"])[0] - E[2]).max() < 1e-5
    # nor does padding every chunk to 256 tokens (the v1 format) instead of to the batch's longest chunk
    grid = texts.tokenize_chunk_grid(["short", "a dull film"])
    assert grid[0].shape == (2, 1, 5)  # [CLS] a dull film [SEP]
    full = texts.tokenize_chunk_grid(["short", "a dull film"], pad_to=texts.CHUNK_TOKENS)
    run = enc._session().run
    assert np.abs(run(None, dict(zip(["chunk_tokens", "chunk_token_mask"], grid)))[0]
                  - run(None, dict(zip(["chunk_tokens", "chunk_token_mask"], full)))[0]).max() < 1e-5


def test_served_long_text_probabilities_equal_training_ones(features, tmp_path):
    cache, _ = features
    X = TextEncoder(cache).features([f"long{i}" for i in range(len(LONG))], lambda k: LONG[int(k[4:])])
    learner = learners.get("text.embedding_logreg")(C=10.0).fit(X, np.array([1, 0, 1, 0]), n_classes=2)
    model = load_model(learner.export_onnx(tmp_path / "m.onnx", backbone_dir=cache), 0, 0, ["neg", "pos"],
                       task="text-classification")
    assert "chunk_tokens" in model.input_names
    assert np.abs(model.predict_items(LONG) - learner.predict_proba(X)).max() < 1e-4
