"""Synthetic interactions from a known latent-factor model, for tests and scale benchmarks.

Each user and item gets a hidden vector; a user picks items with probability proportional to
``exp(sharpness · u·v / sqrt(dim) + popularity_i)`` without replacement (Gumbel top-k) among
the items it looked at (all of them in a small catalogue; in a large one, the ``exposure`` items
of the item clusters nearest its taste plus some at random), so a
learner that recovers the vectors beats the popularity list, and the popularity term makes the
popularity list beat random. Timestamps are uniform over a period, so "latest" choices come
from the same tastes as earlier ones. ``item_features`` are a noisy linear view of the hidden
item vectors (what a text or image embedding of the item would be to a real recommender).
"""

from __future__ import annotations

import numpy as np

from .recommend import Interactions

__all__ = ["synthetic_interactions"]


def synthetic_interactions(n_users: int, n_items: int, n_interactions: int, *, dim: int = 16,
                           sharpness: float = 3.0, popularity_spread: float = 1.0, ratings: bool = False,
                           feature_dim: int = 32, feature_noise: float = 0.3, seed: int = 0,
                           exposure: int = 3000) -> tuple[Interactions, np.ndarray, dict[str, np.ndarray]]:
    """Returns (interactions, item_features (n_items, feature_dim), truth {"users", "items",
    "popularity"}). Per-user counts vary (a lognormal around the mean, at least 2)."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n_users, dim)).astype(np.float32)
    V = rng.standard_normal((n_items, dim)).astype(np.float32)
    pop = (popularity_spread * rng.standard_normal(n_items)).astype(np.float32)
    mean = n_interactions / n_users
    counts = np.maximum(2, np.round(rng.lognormal(np.log(mean) - 0.32, 0.8, n_users))).astype(np.int64)
    # Rescale so the total is close to what was asked for.
    counts = np.maximum(2, np.round(counts * n_interactions / counts.sum())).astype(np.int64)
    users, items, rates = [], [], []
    scale = sharpness / np.sqrt(dim)
    full = n_items <= exposure
    if not full:
        # Items fall into clusters (nearest of random directions in taste space, ~400 items
        # each); a user looks at the clusters nearest their taste, covering 3/4 of ``exposure``,
        # plus random items for the other quarter. Picking from what was looked at costs the
        # same whatever the catalogue size, and tastes still decide what is seen at all.
        n_clusters = max(2, n_items // 400)
        C = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        cluster = np.argmax(V @ C.T, axis=1)
        order = np.argsort(cluster, kind="stable")
        bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
        members = [order[bounds[c]:bounds[c + 1]] for c in range(n_clusters)]
        n_near = max(1, min(n_clusters, round(0.75 * exposure * n_clusters / n_items)))
        affinity_c = U @ C.T
    for user in range(n_users):
        u_vec = U[user]
        if full:
            shown = np.arange(n_items)
        else:
            near = np.argpartition(-affinity_c[user], n_near - 1)[:n_near]
            shown = np.unique(np.concatenate([members[c] for c in near]
                                             + [rng.integers(0, n_items, exposure // 4)]))
        # Gumbel top-k = sampling without replacement by taste and popularity.
        logits = scale * np.einsum("pd,d->p", V[shown], u_vec) + pop[shown]
        noise = np.maximum(rng.random(len(shown), dtype=np.float32), 1e-12)
        keys = logits - np.log(-np.log(noise))
        c = int(min(counts[user], len(shown) // 2))
        chosen = np.sort(shown[np.argpartition(-keys, c - 1)[:c]])
        users.append(np.full(len(chosen), user, np.int64))
        items.append(chosen)
        if ratings:
            rates.append(scale * np.einsum("pd,d->p", V[chosen], u_vec))
    u = np.concatenate(users)
    i = np.concatenate(items)
    t = rng.uniform(0, 1e7, len(u)).round()
    R = rng.standard_normal((dim, feature_dim)).astype(np.float32) / np.sqrt(dim)
    features = V @ R + feature_noise * rng.standard_normal((n_items, feature_dim)).astype(np.float32)
    stars = None
    if ratings:
        # Stars from the hidden affinity, standardised over everything chosen (people mostly
        # pick what they like, so raw affinities would crowd at the top of the scale).
        a = np.concatenate(rates)
        z = (a - a.mean()) / (a.std() + 1e-9)
        stars = np.clip(np.round(3.0 + 1.2 * z + 0.4 * rng.standard_normal(len(a))), 1, 5)
    data = Interactions.from_columns(u.tolist(), i.tolist(), ratings=stars,
                                     timestamps=t, item_ids=list(range(n_items)), user_ids=list(range(n_users)))
    return data, features.astype(np.float32), {"users": U, "items": V, "popularity": pop}
