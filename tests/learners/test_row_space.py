"""Fitting a wide logistic regression in its rows' span is the same problem, only smaller."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dyntrain.learners.linear import SOLVER, TOL, RowSpace, fit_logreg


def _wide(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows of d features with real structure (3 classes, class means apart)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = rng.normal(size=(3, d))
    return (centres[y] * 0.3 + rng.normal(size=(n, d))).astype(np.float32), y


def test_same_predictions_on_every_row_and_same_penalty():
    Z, _ = _wide(40, 200)
    space = RowSpace.of(Z)
    assert space is not None and space.coords.shape == (40, 40)
    coef = np.random.default_rng(1).normal(size=(3, 40))
    W = space.weights(coef)
    assert W.shape == (3, 200)
    np.testing.assert_allclose(Z.astype(np.float64) @ W.T, space.coords.astype(np.float64) @ coef.T, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(W), np.linalg.norm(coef), rtol=1e-5)


def test_rank_deficient_rows_keep_only_directions_with_data():
    Z, _ = _wide(30, 200)
    Z = np.concatenate([Z, Z[:10]])  # duplicates
    Z = Z - Z.mean(axis=0)  # centred, as pixel_logreg's pixels are: one more direction lost
    space = RowSpace.of(Z)
    assert space.coords.shape == (40, 29)
    coef = np.random.default_rng(2).normal(size=(3, 29))
    np.testing.assert_allclose(Z.astype(np.float64) @ space.weights(coef).T,
                               space.coords.astype(np.float64) @ coef.T, atol=1e-4)


def test_used_only_where_it_pays():
    assert RowSpace.of(np.ones((60, 100), np.float32)) is None  # not wide enough
    assert RowSpace.of(np.zeros((10, 100), np.float32)) is None  # no span at all
    from scipy import sparse

    assert RowSpace.of(sparse.random(10, 100, density=0.1, format="csr")) is None


def _tight(Z, y, C, weights=None, tol=1e-10, solver="lbfgs"):
    return LogisticRegression(C=C, tol=tol, max_iter=20000, solver=solver).fit(Z, y, sample_weight=weights)


@pytest.mark.parametrize("C", [0.05, 10.0])
def test_solved_to_the_end_both_give_the_same_model(C):
    """A strong penalty (small C) makes a wrong basis scaling show: the penalty would differ."""
    Z, y = _wide(90, 400)
    test, _ = _wide(60, 400, seed=5)
    space = RowSpace.of(Z)
    inside = _tight(space.coords, y, C)
    ours = _softmax(test @ space.weights(inside.coef_).T + inside.intercept_)
    np.testing.assert_allclose(ours, _tight(Z, y, C).predict_proba(test), atol=2e-3)


@pytest.mark.parametrize("C,binary", [(0.05, False), (10.0, False), (0.5, True)])
def test_fit_logreg_is_as_close_to_the_optimum_as_a_direct_fit(C, binary):
    """fit_logreg stops at its solver's tolerance like a direct fit on all the columns would: its
    answers are no farther from the exact optimum's than that fit's are."""
    Z, y = _wide(90, 400)
    test, _ = _wide(60, 400, seed=5)
    weights = None
    if binary:
        y = (y == 0).astype(int)
        weights = np.where(y == 1, 3.0, 1.0)
    n = int(y.max()) + 1
    W, b = fit_logreg(Z, y, n, C=C, class_weight=None, sample_weight=weights)
    best = _tight(Z, y, C, weights).predict_proba(test)
    direct = _tight(Z, y, C, weights, tol=TOL, solver=SOLVER).predict_proba(test)
    ours = _softmax(test @ W.T + b)
    assert np.abs(ours - best).max() <= np.abs(direct - best).max() + 0.01


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
