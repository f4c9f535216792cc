"""Synthetic scenes (dyntrain.ops.scenes): deterministic, consistent boxes and masks, varied."""

from __future__ import annotations

import numpy as np
import pytest

from dyntrain.ops import scenes


@pytest.fixture(scope="module")
def many() -> list[scenes.Scene]:
    return scenes.make_scenes(40, classes=4, size=(320, 240), seed=3)


def test_deterministic_and_prefix_stable(many):
    again = scenes.make_scenes(5, classes=4, size=(320, 240), seed=3)
    for a, b in zip(again, many):
        assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and np.array_equal(a.mask, b.mask)
    other = scenes.make_scenes(5, classes=4, size=(320, 240), seed=4)
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(again, other))


def test_boxes_and_masks_agree(many):
    for s in many:
        assert s.image.shape == (240, 320, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (240, 320) and s.mask.dtype == np.uint8
        assert s.class_names == ["dahlia", "pagoda", "digit 0", "digit 1"]
        for i, b in enumerate(s.boxes):
            assert b["w"] > 0 and b["h"] > 0
            assert 0 <= b["x"] and b["x"] + b["w"] <= 320 and 0 <= b["y"] and b["y"] + b["h"] <= 240
            ys, xs = np.nonzero(s.instances == i + 1)
            assert len(ys), "an object with a box has pixels"
            # The visible pixels lie inside the box (a later object may hide some of them).
            assert xs.min() >= b["x"] and xs.max() < b["x"] + b["w"]
            assert ys.min() >= b["y"] and ys.max() < b["y"] + b["h"]
            class_id = s.class_names.index(b["label"]) + 1
            assert (s.mask[ys, xs] == class_id).all()
        assert ((s.mask > 0) == (s.instances > 0)).all()


def test_varied_counts_classes_and_scales(many):
    counts = [len(s.boxes) for s in many]
    assert 0 in counts and max(counts) >= 3
    labels = [b["label"] for s in many for b in s.boxes]
    assert set(labels) == set(many[0].class_names)
    sides = [max(b["w"], b["h"]) for s in many for b in s.boxes]
    assert min(sides) < 60 and max(sides) > 110
    xs = [b["x"] + b["w"] / 2 for s in many for b in s.boxes]
    assert min(xs) < 100 and max(xs) > 220


def test_classes_look_different(many):
    # Mean colour inside each class's mask: the photographed objects differ clearly.
    means = {}
    for name in ("dahlia", "pagoda"):
        cid = many[0].class_names.index(name) + 1
        px = np.concatenate([s.image[s.mask == cid] for s in many])
        means[name] = px.mean(axis=0)
    assert np.abs(means["dahlia"] - means["pagoda"]).max() > 25


def test_scenes_per_class_and_bad_arguments():
    got = scenes.scenes_per_class(3, classes=3, size=160, seed=1)
    for name in scenes.class_names(3):
        assert sum(name in s.labels for s in got) >= 3
    with pytest.raises(ValueError, match="between 1 and"):
        scenes.make_scenes(1, classes=scenes.MAX_CLASSES + 1)
