"""Recommendation learners: interactions in, a :class:`~.recommend_serving.Recommender` out.

Each learner is a function ``fit(data, params, *, item_features, seed, warm) -> Recommender``
over an :class:`~.recommend.Interactions` value. The libraries do the learning:

* ``popularity`` — counts (NumPy).
* ``item_knn`` — ``implicit``'s :class:`CosineRecommender`: cosine similarity of item columns of
  the binary user × item matrix (co-occurrence), top ``K`` neighbours per item, shrunk towards 0
  where few users share the pair.
* ``als`` — ``implicit``'s :class:`AlternatingLeastSquares` on the implicit-feedback matrix
  (weights, or ratings as confidence); warm-startable from a previous model's factors.
* ``svd`` — ``surprise``'s biased matrix factorisation (``SVD``) on explicit ratings.
* ``content`` — the user's profile in item-feature space (precomputed item embeddings).

With item features, a factor model also gives items that never had an interaction factors:
a ridge map from features to factors learned on the items that had some (the content-aware
fallback for new items). Training libraries are imported inside the functions, so the module
itself is cheap to import.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..kernel.errors import Invalid, MissingExtra
from .recommend_serving import Recommender
from .threads import one_thread

if TYPE_CHECKING:  # pragma: no cover
    from .recommend import Interactions

__all__ = ["LEARNERS", "COMPLEXITY", "fit_learner"]

#: Simplest first: the one-standard-error rule prefers the lower number. Content comes after
#: item-kNN: when the two are within a standard error, the list learned from what people did is
#: kept (its file carries the catalogue's vectors all the same, for cold-start answers), and the
#: gate, which compares with the served configuration re-trained, does not then refuse a catalogue
#: change's model for trading a few hundredths of NDCG for simplicity.
COMPLEXITY = {"popularity": 0, "item_knn": 1, "content": 2, "als": 3, "svd": 4}


#: Item features wider than this are projected to it for serving (see _served_features).
SERVED_FEATURE_DIM = 64


def _served_features(item_features: np.ndarray | None) -> tuple[np.ndarray | None, dict]:
    """Item features as the served model keeps them: wide embeddings (MiniLM's 384 values)
    projected onto their top ``SERVED_FEATURE_DIM`` right singular vectors, which keep the dot
    products (cosines) as well as any linear map of that size can. Scoring 10^5 items reads
    every feature value per request: 384 values took ~40 ms on the project's machine, 64
    about 3 ms; the file shrinks by the same factor."""
    if item_features is None:
        return None, {}
    F = np.asarray(item_features, np.float32)
    if F.shape[1] <= SERVED_FEATURE_DIM:
        return F, {}
    norms = np.linalg.norm(F, axis=1, keepdims=True)
    Fn = np.divide(F, norms, out=np.zeros_like(F), where=norms > 0).astype(np.float64)
    _, vecs = np.linalg.eigh(Fn.T @ Fn)
    P = vecs[:, ::-1][:, :SERVED_FEATURE_DIM].astype(np.float32)
    return Fn.astype(np.float32) @ P, {"feature_projection": P}


def _base(data: "Interactions", kind: str, *, arrays: dict | None = None,
          item_features: np.ndarray | None = None, meta: dict | None = None) -> Recommender:
    indptr, indices, weights = data.history_csr()
    served, extra = _served_features(item_features)
    arrays = dict(arrays or {}, **extra)
    return Recommender(kind, user_ids=data.user_ids, item_ids=data.item_ids, seen_indptr=indptr,
                       seen_indices=indices, seen_weights=weights, popularity=data.item_user_counts(),
                       arrays=arrays, item_features=served, meta=meta)


def fit_popularity(data, params, *, item_features=None, seed=0, warm=None) -> Recommender:
    return _base(data, "popularity", item_features=item_features,
                 meta={"learner": "popularity", "params": dict(params)})


def fit_content(data, params, *, item_features=None, seed=0, warm=None) -> Recommender:
    if item_features is None:
        raise Invalid("the content learner needs item features: pass item_features (one row per item)")
    return _base(data, "content", item_features=item_features,
                 meta={"learner": "content", "params": dict(params)})


def _implicit() -> None:
    try:
        import implicit  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the train extra installs it
        raise MissingExtra("training a recommender", "train") from exc


def fit_item_knn(data, params, *, item_features=None, seed=0, warm=None) -> Recommender:
    _implicit()
    from implicit.nearest_neighbours import CosineRecommender

    import scipy.sparse as sp

    K = int(params.get("K", 100))
    shrink = float(params.get("shrink", 20.0))
    # Co-occurrence: who had both items, however strongly (strengths weigh the user's history
    # when scoring, not the similarity).
    X = data.matrix().copy()
    X.data[:] = 1.0
    model = CosineRecommender(K=K)
    # implicit runs its own threads; BLAS threads on top of them only contend. It converts its
    # own normalised matrix back to CSR and warns about that, which says nothing about ours.
    with one_thread("blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model.fit(X, show_progress=False)
    S = model.similarity.tocoo()
    # Shrink similarities resting on few shared users: two items seen by one user each have
    # cosine 1. On binary data cosine = co / sqrt(n_i n_j), so the co-count comes back from it;
    # cos · co / (co + shrink) lifted NDCG@10 on the sparse synthetic set from 0.2 to 1.4 (and
    # left MovieLens unchanged at 6.3).
    n = np.asarray(X.sum(0), dtype=np.float64).ravel()
    co = S.data * np.sqrt(n[S.row] * n[S.col])
    S = sp.csr_matrix((S.data * co / (co + shrink), (S.row, S.col)), shape=S.shape)
    S.sort_indices()
    arrays = {"sim_indptr": S.indptr.astype(np.int64), "sim_indices": S.indices.astype(np.int32),
              "sim_data": S.data.astype(np.float32)}
    return _base(data, "item_knn", arrays=arrays, item_features=item_features,
                 meta={"learner": "item_knn", "params": {"K": K, "shrink": shrink}})


def _warm_factors(warm: Recommender | None, ids: list, side: str, n_factors: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Factors for ``ids`` copied from ``warm`` where it knew the id, small random ones
    elsewhere; also returns how many were copied."""
    out = (rng.random((len(ids), n_factors), dtype=np.float32) * 0.01)
    if warm is None or warm.kind != "factors":
        return out, 0
    prev = warm.arrays[f"{side}_factors"]
    if prev.shape[1] != n_factors:
        return out, 0
    index = warm.user_index if side == "user" else warm.item_index
    pos = np.asarray([(-1 if (j := index(i)) is None else j) for i in ids], dtype=np.int64)
    known = pos >= 0
    out[known] = prev[pos[known]]
    return out, int(known.sum())


def fit_als(data, params, *, item_features=None, seed=0, warm=None) -> Recommender:
    _implicit()
    from implicit.cpu.als import AlternatingLeastSquares

    p = {"factors": 32, "regularization": 0.05, "alpha": 2.0, "iterations": 15, "warm_iterations": 2}
    p.update(params)
    # A warm start continues from the previous factors: a few sweeps reach what a cold start
    # needs ``iterations`` for, since only ~1% of the data is new.
    rng = np.random.default_rng(seed)
    U, n_u = _warm_factors(warm, data.user_ids, "user", int(p["factors"]), rng)
    V, n_i = _warm_factors(warm, data.item_ids, "item", int(p["factors"]), rng)
    warm_used = n_i > 0
    with one_thread("blas"):
        # Built inside the limit: implicit checks the BLAS threads when the model is made.
        model = AlternatingLeastSquares(factors=int(p["factors"]), regularization=float(p["regularization"]),
                                        alpha=float(p["alpha"]),
                                        iterations=int(p["warm_iterations"] if warm_used else p["iterations"]),
                                        random_state=seed)
        if warm_used:
            model.user_factors, model.item_factors = U, V
        # Confidence grows with the log of the strength (counts, weights or ratings), so one
        # heavy user-item pair cannot dominate its row.
        model.fit(data.matrix(transform="log1p"), show_progress=False)
    U = np.asarray(model.user_factors, np.float32)
    V = np.asarray(model.item_factors, np.float32)
    arrays = {"user_factors": U, "item_factors": V, "item_bias": np.zeros(V.shape[0], np.float32)}
    arrays.update(_cold_items(data, arrays, item_features))
    return _base(data, "factors", arrays=arrays, item_features=item_features,
                 meta={"learner": "als", "params": {k: p[k] for k in ("factors", "regularization", "alpha",
                                                                       "iterations", "warm_iterations")},
                       "warm_start": {"users": n_u, "items": n_i} if warm_used else None})


def fit_svd(data, params, *, item_features=None, seed=0, warm=None) -> Recommender:
    if not data.explicit:
        raise Invalid("the svd learner needs explicit ratings; these interactions have none")
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader
    except ImportError as exc:  # pragma: no cover - the train extra installs it
        raise MissingExtra("training a rating model", "train") from exc
    p = {"factors": 50, "epochs": 20, "lr": 0.005, "reg": 0.02}
    p.update(params)
    u, i, r = data.latest_ratings()
    lo, hi = float(r.min()), float(r.max())
    frame = pd.DataFrame({"u": u, "i": i, "r": r})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(lo, hi if hi > lo else lo + 1))).build_full_trainset()
    algo = SVD(n_factors=int(p["factors"]), n_epochs=int(p["epochs"]), lr_all=float(p["lr"]),
               reg_all=float(p["reg"]), biased=True, random_state=seed)
    algo.fit(trainset)
    U = np.zeros((data.n_users, int(p["factors"])), np.float32)
    V = np.zeros((data.n_items, int(p["factors"])), np.float32)
    bias = np.zeros(data.n_items, np.float32)
    inner_u = np.fromiter((trainset.to_raw_uid(k) for k in trainset.all_users()), np.int64)
    inner_i = np.fromiter((trainset.to_raw_iid(k) for k in trainset.all_items()), np.int64)
    user_bias = np.zeros(data.n_users, np.float32)
    U[inner_u] = algo.pu
    V[inner_i] = algo.qi
    bias[inner_i] = algo.bi
    user_bias[inner_u] = algo.bu
    # Ranking needs only item bias + u·v; the rest makes predict_rating answer in stars.
    arrays = {"user_factors": U, "item_factors": V, "item_bias": bias, "user_bias": user_bias,
              "global_mean": np.asarray([trainset.global_mean], np.float32)}
    arrays.update(_cold_items(data, arrays, item_features))
    return _base(data, "factors", arrays=arrays, item_features=item_features,
                 meta={"learner": "svd", "params": dict(p), "rating_scale": [lo, hi]})


def _cold_items(data, arrays: dict, item_features: np.ndarray | None) -> dict:
    """Items without a training interaction: factors from their features (ridge map learned
    on the others) when features exist, else flagged ``cold_items`` (ranked after the rest)."""
    cold = data.item_user_counts() == 0
    if not cold.any():
        return {}
    if item_features is None:
        return {"cold_items": cold}
    F = np.asarray(item_features, np.float64)
    has_feat = np.abs(F).sum(1) > 0
    train = ~cold & has_feat
    mapped = cold & has_feat
    if train.sum() >= 2 and mapped.any():
        Fw = F[train]
        lam = 1.0
        W = np.linalg.solve(Fw.T @ Fw + lam * np.eye(F.shape[1]), Fw.T @ arrays["item_factors"][train])
        arrays["item_factors"][mapped] = (F[mapped] @ W).astype(np.float32)
        if "item_bias" in arrays and train.any():
            b = np.linalg.solve(Fw.T @ Fw + lam * np.eye(F.shape[1]), Fw.T @ arrays["item_bias"][train])
            arrays["item_bias"][mapped] = (F[mapped] @ b).astype(np.float32)
    still = cold & ~mapped if train.sum() >= 2 else cold
    return {"cold_items": still} if still.any() else {}


LEARNERS: dict[str, Callable[..., Recommender]] = {
    "popularity": fit_popularity,
    "content": fit_content,
    "item_knn": fit_item_knn,
    "als": fit_als,
    "svd": fit_svd,
}


def fit_learner(learner: str, data, params: dict[str, Any] | None = None, *, item_features=None,
                seed: int = 0, warm: Recommender | None = None) -> Recommender:
    """Fit one learner by name (see :data:`LEARNERS`)."""
    if learner not in LEARNERS:
        raise Invalid(f"unknown recommendation learner {learner!r}: expected one of {', '.join(LEARNERS)}")
    return LEARNERS[learner](data, dict(params or {}), item_features=item_features, seed=seed, warm=warm)
