"""The labelling queue's teaching order on real handwritten digits (scikit-learn's, embedded by
EfficientNet-Lite0 on ONNX Runtime): k-means diversity while labels are few, then the smallest
margin within clusters, and the fallbacks when there is no model or no embedding."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dyntrain.codecs import imaging
from dyntrain.datasets.unlabelled import DIVERSITY_UNTIL, ROUND, _kmeans, teaching_order
from dyntrain.learners.features import FeatureExtractor, l2_normalize
from dyntrain.ops.demo import digit_images


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(embeddings, digit) of 20 images of each digit; the first 5 of each are labelled."""
    pairs = digit_images(digits=tuple(range(10)), per_class=20)
    fx = FeatureExtractor(tmp_path_factory.mktemp("cache"))
    X = fx.features("lite0.pooled", [str(i) for i in range(len(pairs))],
                    lambda k: imaging.model_input(imaging.decode_image(pairs[int(k)][1])))
    return l2_normalize(X), np.array([int(label.split("-")[1]) for label, _ in pairs])


def _split(y):
    labelled = np.concatenate([np.flatnonzero(y == d)[:5] for d in range(10)])
    return labelled, np.setdiff1d(np.arange(len(y)), labelled)


def test_few_labels_take_one_representative_per_cluster_first(digits):
    X, y = digits
    _, pool = _split(y)
    order, strategy = teaching_order(X[pool], None, 1.0)
    assert strategy == "diversity" and sorted(order) == list(range(len(pool)))
    clusters, distances = _kmeans(X[pool], ROUND, 0)
    first = order[:ROUND]
    assert len({clusters[i] for i in first}) == ROUND  # one pick from each cluster
    for i in first:  # each the item nearest its cluster's centre
        same = np.flatnonzero(clusters == clusters[i])
        assert distances[i] == distances[same].min()
    sizes = [int((clusters == clusters[i]).sum()) for i in first]
    assert sizes == sorted(sizes, reverse=True)  # largest cluster first
    # the second round takes each cluster's next nearest
    second = order[ROUND:2 * ROUND]
    assert {clusters[i] for i in second} <= {clusters[i] for i in first}
    # a model's confidence does not matter yet
    P = np.random.default_rng(0).dirichlet(np.ones(10), len(pool))
    assert teaching_order(X[pool], P, DIVERSITY_UNTIL - 0.1) == (order, "diversity")


def test_enough_labels_take_the_least_certain_of_each_cluster(digits):
    X, y = digits
    labelled, pool = _split(y)
    model = LogisticRegression(C=10, max_iter=2000).fit(X[labelled], y[labelled])
    P = model.predict_proba(X[pool])
    order, strategy = teaching_order(X[pool], P, float(DIVERSITY_UNTIL))
    assert strategy == "margin" and sorted(order) == list(range(len(pool)))
    top2 = -np.sort(-P, axis=1)[:, :2]
    margin = top2[:, 0] - top2[:, 1]
    clusters, _ = _kmeans(X[pool], ROUND, 0)
    assert order[0] == int(np.argmin(margin))  # the least certain item of all comes first
    first = order[:ROUND]
    assert len({clusters[i] for i in first}) == ROUND
    for i in first:
        assert margin[i] == margin[clusters == clusters[i]].min()
    for c in range(ROUND):  # within a cluster, smallest margin first
        seq = [margin[i] for i in order if clusters[i] == c]
        assert seq == sorted(seq)
    assert margin[first].mean() < np.median(margin)
    # the model is wrong more often on what comes first than on the rest
    wrong = model.predict(X[pool]) != y[pool]
    assert wrong[first].mean() >= wrong.mean()


def test_fallbacks_without_a_model_or_an_embedding():
    P = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
    assert teaching_order(None, P, 0) == ([1, 2, 0], "uncertainty")
    assert teaching_order(None, None, 0) == ([], "arrival")
    X = np.random.default_rng(1).normal(size=(30, 8))
    assert teaching_order(X, None, 50)[1] == "diversity"  # no model: nothing to be uncertain about
    assert teaching_order(X[:1], None, 0) == ([0], "arrival")
    same = np.ones((5, 4))  # identical items cannot fill ten clusters
    assert sorted(teaching_order(same, None, 0)[0]) == list(range(5))
