"""What makes a detection run fast without changing what it measures: fold heads kept with the bank
(the estimate and the gate's refit score the selection's folds again for free), the final head
trained in the folds' spare slot, and a bootstrap of mAP50 that agrees with pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from dyntrain.learners import detector
from dyntrain.learners.detection_metrics import Map50, detection_metrics
from dyntrain.ops import scenes


@pytest.fixture(scope="module")
def photos_and_boxes(cache_dir):
    train = scenes.scenes_per_class(3, classes=2, size=192, seed=4)
    names = train[0].class_names
    photos = [detector.Photo.of(s.image, 640, cache_dir) for s in train]
    y = [(np.array([[b[k] for k in ("x", "y", "w", "h")] for b in s.boxes], float).reshape(-1, 4),
          np.array([names.index(b["label"]) for b in s.boxes], np.int64)) for s in train]
    return photos, y, names


@pytest.mark.slow
def test_folds_train_once_and_the_spare_slot_trains_the_final_head(photos_and_boxes):
    photos, y, names = photos_and_boxes
    n = len(photos)
    folds = [(np.setdiff1d(np.arange(n), te), te) for te in np.array_split(np.arange(n), 3)]
    params = {"size": 192, "copies": 2, "passes": 200}
    first = detector.cross_validate(params, photos, y, len(names), folds, seed=7)
    bank = detector.bank_for(photos, y, 192, 2, 0)
    kept, heads = dict(bank.extra["folds"]), dict(bank.extra["heads"])
    assert len(kept) == 3 and len(heads) == 4  # three folds and, in the spare slot, the head on all photos
    again = detector.cross_validate(params, photos, y, len(names), folds, seed=7)
    assert again == first and bank.extra["folds"] == kept and bank.extra["heads"] == heads  # nothing trained twice
    other = detector.cross_validate(params, photos, y, len(names), folds, seed=8)
    assert len(bank.extra["folds"]) == 6 and other != first  # another seed is another head

    spare = heads[(200, len(names), detector.FIT_SEED, tuple(range(n)))][1]
    fitted = detector.CenterNetDetector(**params).fit(photos, y, n_classes=len(names))
    assert fitted.head_ is spare  # the final fit took the head the folds' spare slot trained
    # …which is the head a fit trains on its own (same bank, seed and passes)
    alone = detector.head_for(detector.bank_for(photos, y, 192, 2, 0, cache=False), np.arange(n), len(names),
                              detector.FIT_SEED, 200)
    for a, b in zip(spare.state_dict().values(), alone.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())

    # a holdout run: its one fold trains on the photos the final fit gets, so the served head is the
    # evaluated one (the final fit finds them in the run's bank)
    train, test = np.arange(n - 3), np.arange(n - 3, n)
    detector.cross_validate(params, photos, y, len(names), [(train, test)], seed=detector.FIT_SEED)
    evaluated = bank.extra["heads"][(200, len(names), detector.FIT_SEED, tuple(train.tolist()))][1]
    part = detector.CenterNetDetector(**params).fit([photos[i] for i in train], [y[i] for i in train],
                                                    n_classes=len(names))
    assert part.head_ is evaluated


def test_the_bootstrap_map50_is_pycocotools_on_every_resample():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c"]
    truth, said = [], []
    for _ in range(25):
        t = [{"label": names[rng.integers(3)], "x": float(rng.uniform(0, 200)), "y": float(rng.uniform(0, 200)),
              "w": float(rng.uniform(10, 60)), "h": float(rng.uniform(10, 60))} for _ in range(rng.integers(0, 4))]
        p = [{**b, "x": b["x"] + rng.normal(0, 6), "confidence": float(rng.random())} for b in t if rng.random() < 0.8]
        p += [{"label": names[rng.integers(3)], "x": float(rng.uniform(0, 200)), "y": 5.0, "w": 30.0, "h": 30.0,
               "confidence": float(rng.random())} for _ in range(rng.integers(0, 3))]
        truth.append(t)
        said.append(p)
    ap = Map50(truth, said, names)
    assert ap.of(np.arange(25)) == pytest.approx(detection_metrics(truth, said, names)["map50"], abs=1e-6)
    for _ in range(5):
        pick = rng.integers(0, 25, 25)
        reference = detection_metrics([truth[i] for i in pick], [said[i] for i in pick], names)["map50"]
        assert ap.of(pick) == pytest.approx(reference, abs=1e-6)
    assert Map50([[]], [[]], names).of([0]) is None  # no object: no AP (COCO's rule)
