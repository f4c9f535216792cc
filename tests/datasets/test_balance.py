"""Planning augmented copies and class weights."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold
from sklearn.utils.class_weight import compute_class_weight

from dyntrain.datasets.balance import (
    AugmentedCopy,
    class_weights,
    copies_report,
    copy_groups,
    plan_augmented_copies,
    weights_report,
)
from dyntrain.kernel.errors import Invalid

LABELS = [0] * 10 + [1] * 3 + [2] * 1  # 10 / 3 / 1 examples


def totals(labels, plan):
    c = Counter(labels)
    for copy in plan:
        c[labels[copy.source_index]] += 1
    return c


def test_copies_per_sample_without_balancing():
    plan = plan_augmented_copies(LABELS, copies_per_sample=2, balance_target_ratio=None, seed=0)
    assert len(plan) == 2 * len(LABELS)
    assert Counter(c.source_index for c in plan) == {i: 2 for i in range(len(LABELS))}
    assert plan_augmented_copies(LABELS, copies_per_sample=0, balance_target_ratio=None, seed=0) == []


@pytest.mark.parametrize("copies", [0, 1, 3])
@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.3, 0.75])
def test_balancing_reaches_the_target_ratio_exactly(copies, ratio):
    plan = plan_augmented_copies(LABELS, copies_per_sample=copies, balance_target_ratio=ratio, seed=7)
    after = totals(LABELS, plan)
    largest = 10 * (1 + copies)
    assert after[0] == largest  # the largest class gets no extra copies
    target = math.ceil(round(ratio * largest, 9))
    for y, n in Counter(LABELS).items():
        # each smaller class reaches the target exactly, never more (no wasted copies)
        assert after[y] == max(target, n * (1 + copies)), (y, after)
    assert min(after.values()) / max(after.values()) >= ratio - 1e-12


def test_ratio_that_is_inexact_in_floating_point():
    # 0.3 * 10 == 3.0000000000000004: the target must be 3, not 4.
    plan = plan_augmented_copies([0] * 10 + [1], copies_per_sample=0, balance_target_ratio=0.3, seed=0)
    assert totals([0] * 10 + [1], plan)[1] == 3


def test_extra_copies_are_spread_round_robin():
    labels = [0] * 20 + [1] * 6
    plan = plan_augmented_copies(labels, copies_per_sample=0, balance_target_ratio=1.0, seed=3)
    per_source = Counter(c.source_index for c in plan)
    assert set(per_source) == set(range(20, 26))  # only the minority class gets copies
    assert sorted(per_source.values()) == [2, 2, 2, 2, 3, 3]  # 14 extra over 6 samples
    # which samples get the extra one depends on the seed, deterministically
    other = Counter(c.source_index for c in plan_augmented_copies(labels, copies_per_sample=0, balance_target_ratio=1.0, seed=4))
    assert per_source == Counter(c.source_index for c in plan_augmented_copies(labels, copies_per_sample=0, balance_target_ratio=1.0, seed=3))
    assert sum(other.values()) == 14


def test_copies_only_reference_given_indices_and_seeds_are_unique():
    plan = plan_augmented_copies(LABELS, copies_per_sample=2, balance_target_ratio=1.0, seed=11)
    assert all(0 <= c.source_index < len(LABELS) for c in plan)
    assert len({c.copy_seed for c in plan}) == len(plan)
    assert all(0 <= c.copy_seed < 2**63 for c in plan)
    assert [c.source_index for c in plan] == sorted(c.source_index for c in plan)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=1.0, seed=5)
    assert a == plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=1.0, seed=5)
    b = plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=1.0, seed=6)
    assert {c.copy_seed for c in a}.isdisjoint({c.copy_seed for c in b})


def test_sample_keys_keep_copy_seeds_stable_when_the_dataset_changes():
    keys = ["sha-a", "sha-b", "sha-c"]
    before = plan_augmented_copies([0, 0, 1], copies_per_sample=1, balance_target_ratio=None, seed=1, sample_keys=keys)
    after = plan_augmented_copies(
        [0, 0, 0, 1], copies_per_sample=1, balance_target_ratio=None, seed=1, sample_keys=["sha-new"] + keys
    )
    seeds_before = {keys[c.source_index]: c.copy_seed for c in before}
    seeds_after = {(["sha-new"] + keys)[c.source_index]: c.copy_seed for c in after}
    assert all(seeds_after[k] == seeds_before[k] for k in keys)
    with pytest.raises(Invalid):
        plan_augmented_copies([0, 1], copies_per_sample=1, balance_target_ratio=None, seed=1, sample_keys=["x", "x"])


def test_invalid_arguments():
    with pytest.raises(Invalid):
        plan_augmented_copies(LABELS, copies_per_sample=-1, balance_target_ratio=None, seed=0)
    with pytest.raises(Invalid):
        plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=1.5, seed=0)
    with pytest.raises(Invalid):
        plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=0.0, seed=0)
    with pytest.raises(Invalid):
        plan_augmented_copies(["a", "b"], copies_per_sample=1, balance_target_ratio=None, seed=0)
    assert plan_augmented_copies([], copies_per_sample=2, balance_target_ratio=1.0, seed=0) == []


def test_class_weights_match_scikit_learn_balanced():
    w = class_weights(LABELS, 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(LABELS))
    np.testing.assert_allclose(w, expected)
    assert class_weights([0, 0, 2], 4).tolist()[1] == 0.0  # absent class
    with pytest.raises(Invalid):
        class_weights([0, 3], 3)


def test_copy_groups_keep_copies_in_their_source_fold():
    labels = [0] * 6 + [1] * 3
    plan = plan_augmented_copies(labels, copies_per_sample=1, balance_target_ratio=1.0, seed=2)
    groups = copy_groups(len(labels), plan)
    assert len(groups) == len(labels) + len(plan)
    for train, test in GroupKFold(n_splits=3).split(np.zeros(len(groups)), groups=groups):
        assert set(groups[train]).isdisjoint(groups[test])
    with pytest.raises(Invalid):
        copy_groups(2, [AugmentedCopy(5, 1)])


def test_reports_are_json_and_describe_what_was_done():
    plan = plan_augmented_copies(LABELS, copies_per_sample=1, balance_target_ratio=1.0, seed=0)
    report = copies_report(LABELS, plan, copies_per_sample=1, balance_target_ratio=1.0)
    d = json.loads(json.dumps(report.to_dict(class_names=["cat", "dog", "owl"])))
    assert d["strategy"] == "augmented_copies"
    assert d["counts_before"] == {"cat": 10, "dog": 3, "owl": 1}
    assert d["counts_after"] == {"cat": 20.0, "dog": 20.0, "owl": 20.0}
    assert d["n_copies"] == len(plan)
    assert any("only 1 original" in note for note in d["notes"])  # owl: 19 copies of one photo

    w = weights_report(LABELS, 3).to_dict()
    assert w["strategy"] == "class_weights"
    assert w["counts_after"]["0"] == pytest.approx(w["counts_after"]["2"])  # effective counts equal
    assert copies_report(LABELS, [], copies_per_sample=0, balance_target_ratio=None).strategy == "none"
