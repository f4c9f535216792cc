"""The soft vote: one ONNX file that serves the mean of its members, and selection choosing it
by its rule, scored on the same folds from the members' out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from learner_data import FAST_PARAMS

from dyntrain import tasks
from dyntrain.kernel.errors import Invalid
from dyntrain.learners import selection
from dyntrain.learners.candidates import Candidate
from dyntrain.learners.ensemble import soft_vote_candidate
from dyntrain.learners.features import FeatureSet
from dyntrain.serving import explain
from dyntrain.serving.inputs import model_feed
from dyntrain.serving.live import load_model
from dyntrain.serving.trunks import split_composed

PROBE, PIXELS = Candidate("image.linear_probe", {"C": 1.0}), Candidate("image.pixel_logreg", {"C": 0.1})
IMAGE_VOTE = soft_vote_candidate([Candidate("image.linear_probe", {"C": 10.0}), Candidate("image.linear_probe", {"C": 100.0}),
                                  PIXELS, Candidate("image.small_cnn", FAST_PARAMS["image.small_cnn"])])


@pytest.fixture(scope="module")
def image_vote(digits_small, cache_dir, tmp_path_factory):
    X = FeatureSet(digits_small["X"])
    model = IMAGE_VOTE.build().fit(X[IMAGE_VOTE.kind], digits_small["y"], n_classes=digits_small["n_classes"])
    return model, model.export_onnx(tmp_path_factory.mktemp("vote") / "vote.onnx", backbone_dir=cache_dir), X


def test_the_vote_is_named_by_its_members_and_reads_their_kinds_side_by_side():
    assert IMAGE_VOTE.label == ("soft vote of linear_probe(C=10.0), linear_probe(C=100.0), pixel_logreg(C=0.1), "
                                "small_cnn(epochs=8, width=8)")
    assert IMAGE_VOTE.kind == "lite0.pooled+pixels.gray32"
    assert IMAGE_VOTE.learners == ("image.linear_probe", "image.pixel_logreg", "image.small_cnn")
    assert selection.required_kinds([IMAGE_VOTE, PROBE]) == ["lite0.pooled", "pixels.gray32"]
    with pytest.raises(Invalid, match="at least two members"):
        soft_vote_candidate([PROBE]).build().fit(np.zeros((4, 1280)), np.array([0, 1, 0, 1]), n_classes=2)
    with pytest.raises(Invalid, match="not another soft vote"):
        soft_vote_candidate([PROBE, IMAGE_VOTE]).kind


def test_image_vote_file_serves_the_mean_of_its_members(image_vote, digits_small, cache_dir):
    model, path, X = image_vote
    own = [m.predict_proba(X[m.input_kind]) for m in model.fitted_]
    proba = model.predict_proba(X[IMAGE_VOTE.kind])
    np.testing.assert_allclose(proba, np.mean(own, axis=0), atol=1e-6)
    assert not np.allclose(own[0], own[2], atol=0.05)  # members that disagree: the mean is not one of them
    served = load_model(path, 0, 0, list("abcde"), task="image-classification")
    assert served.input_names == ["image"]
    # no "head/" cut: the file is served whole (shared-trunk serving would need one cut for all members)
    assert served.head is None and split_composed(path.read_bytes()) is None
    np.testing.assert_allclose(served.predict_items(list(digits_small["images"])), proba, atol=1e-5)
    # the Lite0 trunk both probes sit on is in the file, and runs, once
    single = model.fitted_[0].export_onnx(path.parent / "probe.onnx", backbone_dir=cache_dir)
    assert path.stat().st_size < 1.05 * single.stat().st_size


def test_cam_refuses_a_vote_cleanly(image_vote):
    with pytest.raises(explain.NotExplainable, match="occlusion"):
        explain.CamExplainer.from_bytes(image_vote[1].read_bytes())


@pytest.mark.slow
def test_text_vote_takes_the_strings_and_their_chunks(extractor, tmp_path):
    rng = np.random.default_rng(0)
    words = [["great", "lovely", "superb"], ["awful", "dull", "boring"]]
    y = np.arange(16) % 2
    texts = [" ".join(rng.choice(words[c], 3)) + f" item{i}" for i, c in enumerate(y)]
    blobs = {f"t{i}": t.encode() for i, t in enumerate(texts)}
    vote = soft_vote_candidate([Candidate("text.tfidf_logreg", {"C": 10.0}), Candidate("text.embedding_logreg", {"C": 1.0}),
                                Candidate("text.embedding_logreg", {"C": 10.0})])
    task = tasks.get("text-classification")
    X = FeatureSet(task.modality.features(selection.required_kinds([vote]), list(blobs), blobs.get, extractor))
    model = vote.build().fit(X[vote.kind], y, n_classes=2)
    path = model.export_onnx(tmp_path / "vote.onnx", backbone_dir=extractor.cache_dir)
    served = load_model(path, 0, 0, ["a", "b"], task="text-classification")
    assert sorted(served.input_names) == ["chunk_token_mask", "chunk_tokens", "text"]
    # the model card describes both formats the file takes, each with its own type
    contract = task.modality.input_contract(path)
    assert [(f["name"], f["dtype"]) for f in contract["input"]["formats"]] == [
        ("text", "string"), (["chunk_tokens", "chunk_token_mask"], "int64")]
    assert "TF-IDF" in contract["preprocessing"] and "chunk" in contract["preprocessing"]
    np.testing.assert_allclose(served.predict_items(texts), model.predict_proba(X[vote.kind]), atol=1e-5)


def test_model_feed_feeds_every_format_the_graph_names():
    feed = model_feed(["text", "chunk_tokens", "chunk_token_mask"], ["a long review", "short"])
    assert set(feed) == {"text", "chunk_tokens", "chunk_token_mask"} and feed["text"].shape == (2, 1)
    assert set(model_feed(["input_ids", "attention_mask"], ["x"])) == {"input_ids", "attention_mask"}
    with pytest.raises(Invalid, match="token_type_ids"):
        model_feed(["input_ids", "attention_mask", "token_type_ids"], ["x"])


# -- selection ------------------------------------------------------------------------------------------


def _two_views(seed: int, n: int = 60, signal: tuple[float, float] = (3.5, 4.0)) -> tuple[dict, np.ndarray]:
    """Three classes seen through two independent noisy views (Lite0-sized and pixel-sized
    features): each view alone is often wrong, their votes are wrong less often."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    a, b = rng.normal(size=(n, 1280)), rng.normal(size=(n, 32, 32))
    a[np.arange(n), y] += signal[0]
    b[np.arange(n), 0, y] += signal[1]
    return {"lite0.pooled": a.astype(np.float32), "pixels.gray32": b.astype(np.float32)}, y


def test_selection_chooses_the_vote_scored_exactly_as_refitting_it_on_each_fold_would():
    X, y = _two_views(0)
    sel = selection.select([PROBE, PIXELS], X, y, n_classes=3, seed=0)
    vote = sel.ensemble
    assert sel.chosen == vote.candidate and set(sel.chosen.learners) == {"image.linear_probe", "image.pixel_logreg"}
    assert sel.chosen_score is vote and "one-standard-error pick" in sel.reason
    one_se = sel.scores[sel.one_se_index]
    assert vote.macro_f1_mean > one_se.macro_f1_mean  # two views beat either one
    # no refitting: the out-of-fold mean is what the vote itself gets, fold by fold
    folds, _ = selection.make_folds(y, n_splits=5, seed=0)
    refit = selection.cross_validate(vote.candidate, FeatureSet(X)[vote.candidate.kind], y, n_classes=3, folds=folds)
    np.testing.assert_allclose(refit.fold_macro_f1, vote.fold_macro_f1, atol=1e-4)
    record = sel.to_dict()
    assert record["scores"][-1]["label"].startswith("soft vote of") and record["ensemble_index"] == len(sel.scores)
    assert record["chosen_index"] == record["ensemble_index"] and "oof" not in record["scores"][0]
    assert selection.select([PROBE, PIXELS], X, y, n_classes=3, seed=0, rule="one_se").chosen == one_se.candidate


def test_selection_keeps_one_model_when_a_vote_adds_nothing():
    X, y = _two_views(1, signal=(20.0, 20.0))  # every candidate right everywhere: the vote predicts the same
    sel = selection.select([PROBE, PIXELS], X, y, n_classes=3, seed=0)
    assert sel.ensemble is not None and sel.chosen == PROBE and "predicts what" in sel.reason
    # the members are distinct learners (each one's best strength): two strengths of one do not vote
    only = selection.select([PROBE, Candidate("image.linear_probe", {"C": 10.0})], X, y, n_classes=3, seed=0)
    assert only.ensemble is None and only.chosen == PROBE and "only one learner" in only.reason


def test_a_vote_clearly_below_the_one_se_pick_is_not_chosen():
    def score(index, f1s, pred):
        oof = np.eye(2, dtype=np.float32)[pred]
        return selection.CandidateScore(index, PROBE, float(np.mean(f1s)), 0.0, 0.0, 0.0, f1s, f1s, 0.0, oof=oof)

    single = score(0, [0.8, 0.9, 0.85], [0, 1, 0, 1])
    assert selection.prefers_soft_vote(score(1, [0.8, 0.85, 0.85], [0, 1, 1, 1]), single)[0]  # within one SE
    use, why = selection.prefers_soft_vote(score(1, [0.6, 0.7, 0.65], [0, 1, 1, 1]), single)
    assert not use and "more than one standard error below" in why
