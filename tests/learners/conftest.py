"""Shared fixtures: one backbone export and one small feature set per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ has no packages: import helpers by path

import learner_data as data  # noqa: E402
from learner_data import FAST_PARAMS  # noqa: E402

from dyntrain import learners  # noqa: E402

@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dyntrain-cache")


@pytest.fixture(scope="session")
def extractor(cache_dir) -> learners.FeatureExtractor:
    return learners.FeatureExtractor(cache_dir, threads=2)


@pytest.fixture(scope="session")
def digits_small(extractor):
    """40 digits (classes 0-4, 8 each) as images, labels and features of every kind."""
    labels = data.digits_labels()
    idx = np.concatenate([np.flatnonzero(labels == c)[:8] for c in range(5)])
    images, y = data.digits(idx)
    keys = [f"digits-{i}" for i in idx]
    X = extractor.features_by_kind(list(learners.KINDS), keys, lambda k: images[keys.index(k)])
    return {"images": images, "y": y, "keys": keys, "X": X, "n_classes": 5}


@pytest.fixture(scope="session")
def fitted(digits_small):
    """Each learner fitted once with FAST_PARAMS (shared by read-only tests)."""
    out = {}
    for name in learners.names("image.", contract="classifier"):  # the detector: test_target_contracts
        cls = learners.get(name)
        out[name] = cls(**FAST_PARAMS[name]).fit(
            digits_small["X"][cls.input_kind], digits_small["y"], n_classes=digits_small["n_classes"]
        )
    return out
