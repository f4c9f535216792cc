"""Selection is real: different data, different winner (the measured finding in docs/architecture.md).

Photos of natural content -> the Lite0 linear probe; tiny grey digits -> raw pixels or a
small CNN. Both use the platform's own default candidate list (without fine-tuning, and
with 3 folds, to keep CI time reasonable).
"""

from __future__ import annotations

import learner_data as data
import numpy as np
import pytest

from dyntrain import learners


def _select(extractor, images, y, n_classes, prefix, budget):
    keys = [f"{prefix}-{i}" for i in range(len(y))]
    cands = learners.default_candidates(len(y), n_classes, time_budget_s=0)  # no fine-tuning
    X = extractor.features_by_kind(learners.required_kinds(cands), keys, lambda k: images[keys.index(k)])
    # which single learner the data favours: the one-SE pick, without the soft vote over the top ones
    result = learners.select(cands, X, y, n_classes=n_classes, seed=0, time_budget_s=budget, n_splits=3, rule="one_se")
    best = {}
    for s in result.scores:
        best[s.candidate.learner] = max(best.get(s.candidate.learner, 0.0), s.macro_f1_mean)
    return result, best


@pytest.mark.slow
def test_scene_photos_select_the_linear_probe(extractor):
    images, y = data.scenes(per_class=8, seed=0)
    # Zero budget: only the always-run three (two linear probes, pixel logistic regression).
    result, by_learner = _select(extractor, images, y, len(data.SCENE_CLASSES), "scenes-8-0", budget=0)
    assert result.cut_at == 3
    assert result.chosen.learner == "image.linear_probe", result.to_dict()
    assert by_learner["image.linear_probe"] >= 0.9
    assert by_learner["image.linear_probe"] > by_learner["image.pixel_logreg"] + 0.05


@pytest.mark.slow
def test_tiny_grey_digits_select_something_else(extractor):
    labels = data.digits_labels()
    idx = np.concatenate([np.flatnonzero(labels == c)[10:16] for c in range(10)])
    images, y = data.digits(idx)
    result, by_learner = _select(extractor, images, y, 10, "digits-6pc", budget=None)  # CNN included
    assert "image.small_cnn" in by_learner
    assert result.chosen.learner in ("image.pixel_logreg", "image.small_cnn"), result.to_dict()
    assert max(by_learner["image.pixel_logreg"], by_learner["image.small_cnn"]) > by_learner["image.linear_probe"] + 0.05
