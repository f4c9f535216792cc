"""Augmentation and balancing inside a run: selection decides, holdout never augmented, folds respected."""

from __future__ import annotations

import numpy as np

from dyntrain.datasets.augment import get_preset
from dyntrain.learners.features import FeatureExtractor
from dyntrain.training.augmentation import Recipe
from dyntrain.training.pipeline import TrainingSpec, train
from dyntrain.training.split import is_holdout
from tests.training.test_pipeline import CHEAP, _dataset


class RecordingExtractor(FeatureExtractor):
    """A real extractor that remembers every key it was asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.keys: list[str] = []

    def features_by_kind(self, kinds, keys, load, **kw):
        self.keys += list(keys)
        return super().features_by_kind(kinds, keys, load, **kw)


def test_recipes_are_candidates_and_holdout_is_never_augmented(tmp_path):
    blobs, items = _dataset(tmp_path, digits=(0, 1), per_class=60)
    fx = RecordingExtractor(tmp_path / "cache")
    spec = TrainingSpec(dataset_version=1, candidates=CHEAP[:2], min_holdout_per_class=5, augmentation="light",
                        augmentation_copies=1)
    out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=tmp_path / "w")
    rec = out.result["data_recipe"]
    tried = [t["recipe"]["name"] for t in rec["selection"]["tried"]]
    assert tried == ["none", "augment:light"]
    assert all(t["macro_f1_mean"] is not None for t in rec["selection"]["tried"])
    holdout = {i.content_hash for i in items if is_holdout(i.content_hash)}
    copy_sources = {k.split(".")[0] for k in fx.keys if "." in k}
    assert copy_sources and not copy_sources & holdout  # copies only of training samples
    assert out.result["evaluation"]["mode"] == "holdout"

    # forcing the recipe: the final model trains on originals + one copy each, of the training part only
    forced = TrainingSpec(**{**spec.to_dict(), "candidates": CHEAP[:1],
                             "recipe": Recipe("augment:light", get_preset("light").to_dict(), 1).to_dict()})
    out = train(items, forced, load_image=blobs.get, extractor=fx, work_dir=tmp_path / "w2")
    train_size = out.result["evaluation"]["train_size"]
    assert out.result["data_recipe"]["augmented_copies"] == train_size
    assert out.result["data_recipe"]["training_rows"] == 2 * train_size
    assert out.card["recipe"]["name"] == "augment:light"


def test_imbalanced_data_tries_balancing_and_copies_stay_in_their_fold(tmp_path, monkeypatch):
    from dyntrain.learners import selection

    blobs, items = _dataset(tmp_path, digits=(0, 1, 7), per_class=12)
    items = [i for i in items if i.label != "digit-7"] + [i for i in items if i.label == "digit-7"][:4]  # 3x fewer
    seen_folds = []
    real = selection.cross_validate

    def spy(candidate, X, y, **kw):
        if kw.get("folds") is not None and len(X) > len(items):
            seen_folds.append((len(items), kw["folds"]))
        return real(candidate, X, y, **kw)

    monkeypatch.setattr(selection, "cross_validate", spy)
    spec = TrainingSpec(dataset_version=1, candidates=CHEAP, augmentation="light", augmentation_copies=1,
                        balance_target_ratio=1.0)
    fx = FeatureExtractor(tmp_path / "cache")
    out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=tmp_path / "w")
    tried = [t["recipe"]["name"] for t in out.result["data_recipe"]["selection"]["tried"]]
    assert tried == ["none", "augment:light", "balance:class_weights", "balance:copies(light)"]
    # "off" never makes augmented copies: only class weights are tried for the imbalance
    off = train(items, TrainingSpec(**{**spec.to_dict(), "augmentation": "off"}), load_image=blobs.get,
                extractor=fx, work_dir=tmp_path / "w2")
    assert [t["recipe"]["name"] for t in off.result["data_recipe"]["selection"]["tried"]] == [
        "none", "balance:class_weights"]
    assert seen_folds, "balancing copies were never cross-validated"
    for n_orig, folds in seen_folds:
        for tr, va in folds:
            assert va.max() < n_orig  # copies are never validated on
    assert out.result["data_recipe"]["chosen"]["name"] in tried
    counts = np.array(list(out.result["counts"].values()))
    assert counts.min() == 4


def test_extended_folds_keep_copies_with_their_source():
    from dyntrain.learners.selection import make_folds
    from dyntrain.training.augmentation import extend_folds

    y = np.array([0] * 6 + [1] * 6)
    source = np.repeat(np.arange(12), 3)  # three copies of every original
    for tr, va in extend_folds(make_folds(y, n_splits=3, seed=1)[0], source, 12):
        copies = tr[tr >= 12] - 12
        assert set(source[copies]) == set(tr[tr < 12])  # every training original brings its copies, no other
        assert va.max() < 12 and not set(source[copies]) & set(va)
