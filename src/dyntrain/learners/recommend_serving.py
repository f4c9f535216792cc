"""The served recommender: a versioned ``.npz`` artefact scored with NumPy only.

Serving imports neither torch nor a training library (``implicit``, ``surprise``): a fitted
recommender is reduced to plain arrays, and :class:`Recommender` scores them. The same class is
the in-memory model a training run returns, so what was measured is what is served.

Why ``.npz`` and not ONNX: every request excludes that user's own history and may restrict the
answer to a set of allowed items, which an ONNX graph would need as extra per-request inputs of
catalogue size; in NumPy the whole answer (scores for 10^5 items, masks, top-k by
``argpartition``) takes about a millisecond (``benchmarks/recommendation.py``), and the file
loads without any runtime beyond NumPy.

Kinds of scorer (``Recommender.kind``):

* ``popularity`` — the same list for everyone: how many users interacted with each item.
* ``item_knn`` — sum of the item-item cosine similarities (top-K neighbours per item) of the
  items in the user's history, weighted by the interaction weight.
* ``factors`` — ``user_factors[u] · item_factors[i] + item_bias[i]`` (ALS for implicit
  feedback, biased MF for ratings); an unknown user with a ``history`` is folded in by ridge
  least squares on the item factors of that history.
* ``content`` — cosine between each item's feature vector and the user's profile (the weighted
  mean of the normalised feature vectors of the items in their history).

Items without evidence for a user (kNN/content score exactly 0, or factor-model items that
never had an interaction and have no features) fall back to popularity order, below every
item with evidence. Unknown users without a history get the popular list; ``similar`` for an
unknown item uses its feature vector (content neighbours) when given, else the popular list.

Artefact format ``dyntrain.recommender/1``: ``np.savez`` of named arrays, no pickles
(``allow_pickle=False`` on load); ``meta`` is a JSON string (kind, parameters, id types). Not
compressed: an item-kNN model of 10^6 interactions over 10^5 items took 36 s to deflate on the
project's busy 2 cores (34 MB) and 0.55 s to write as it is (75 MB), and reads as fast either way
(about 1.1 s) — the export is on every training run's path, the disk is not the constraint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..kernel.errors import Invalid

__all__ = ["FORMAT", "Recommender", "load_recommender", "save_recommender", "top_k"]

FORMAT = "dyntrain.recommender/1"
KINDS = ("popularity", "item_knn", "factors", "content")
# Scores given to items a scorer has no evidence for, before adding their popularity in [0, 1):
# below every item with evidence, above nothing that was excluded (-inf).
_NO_EVIDENCE = -2.0
#: The longest list a batch of scores is ranked for (serving's MAX_N): see score_batch.
MAX_LIST = 1000
_COLD_FACTOR = -1e6


def top_k(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest finite scores of a 1-d array, best first (equal scores in
    index order among those chosen)."""
    m = scores.shape[0]
    n = min(n, m)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    # argpartition on the scores themselves (no negated copy): the n largest end up last.
    part = np.argpartition(scores, m - n)[m - n:] if n < m else np.arange(m)
    best = part[np.lexsort((part, -scores[part]))]
    return best[np.isfinite(scores[best])]


def _ids_array(ids: Sequence[Any]) -> tuple[np.ndarray, str]:
    """Ids as a unicode array plus the type to give back (``int`` when every id was an int)."""
    ids = list(ids)
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        return np.asarray([str(int(i)) for i in ids], dtype=np.str_), "int"
    return np.asarray([str(i) for i in ids], dtype=np.str_), "str"


class Recommender:
    """A fitted recommender as arrays; answers ``recommend`` and ``similar`` with NumPy only.

    Build it with :func:`dyntrain.learners.recommend.fit_recommender` or
    :func:`load_recommender`; ``arrays`` holds the scorer's arrays (see the module doc).
    """

    def __init__(self, kind: str, *, user_ids: Sequence[Any], item_ids: Sequence[Any],
                 seen_indptr: np.ndarray, seen_indices: np.ndarray, seen_weights: np.ndarray,
                 popularity: np.ndarray, arrays: dict[str, np.ndarray] | None = None,
                 item_features: np.ndarray | None = None, meta: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise Invalid(f"unknown recommender kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = kind
        self._user_ids, self.user_id_type = _ids_array(user_ids)
        self._item_ids, self.item_id_type = _ids_array(item_ids)
        self._user_index = {u: i for i, u in enumerate(self._user_ids.tolist())}
        self._item_index = {t: i for i, t in enumerate(self._item_ids.tolist())}
        if len(self._user_index) != len(self._user_ids) or len(self._item_index) != len(self._item_ids):
            # Ids are matched as text (requests arrive as text): 7 and "7" would be one id.
            raise Invalid("two user or item ids read the same as text (e.g. 7 and '7'): use one type of id")
        self.seen_indptr = np.asarray(seen_indptr, dtype=np.int64)
        self.seen_indices = np.asarray(seen_indices, dtype=np.int32)
        self.seen_weights = np.asarray(seen_weights, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        self.item_features = None if item_features is None else _normalise_rows(item_features)
        self.meta = dict(meta or {})
        n_items = len(self._item_ids)
        if self.popularity.shape != (n_items,) or self.seen_indptr.shape != (len(self._user_ids) + 1,):
            raise Invalid("recommender arrays do not match its user and item id lists")
        # Popularity as a tie-breaker in [0, 1): rank order, so it never outweighs real evidence.
        ranks = np.empty(n_items, dtype=np.float64)
        ranks[np.argsort(self.popularity, kind="stable")] = np.arange(n_items)
        self._pop_tiebreak = (ranks / max(n_items, 1)).astype(np.float32)
        self._popular_order = np.argsort(-self.popularity, kind="stable")
        if kind == "factors":
            V = self.arrays["item_factors"].astype(np.float32)
            self.arrays["item_factors"] = V
            self.arrays["user_factors"] = self.arrays["user_factors"].astype(np.float32)
            self.arrays["item_bias"] = self.arrays.get("item_bias", np.zeros(n_items, np.float32)).astype(np.float32)
            self._item_norm_factors = _normalise_rows(V)
        if kind == "item_knn":
            self._sim = (self.arrays["sim_indptr"].astype(np.int64), self.arrays["sim_indices"].astype(np.int32),
                         self.arrays["sim_data"].astype(np.float32))

    # ------------------------------------------------------------------ sizes and ids
    @property
    def n_users(self) -> int:
        return len(self._user_ids)

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    def user_ids(self) -> list:
        return self._give_back(self._user_ids, self.user_id_type)

    def item_ids(self) -> list:
        return self._give_back(self._item_ids, self.item_id_type)

    def user_index(self, user_id: Any) -> int | None:
        return self._user_index.get(str(user_id))

    def item_index(self, item_id: Any) -> int | None:
        return self._item_index.get(str(item_id))

    @staticmethod
    def _give_back(ids: np.ndarray, kind: str) -> list:
        return [int(i) for i in ids.tolist()] if kind == "int" else ids.tolist()

    def _items_out(self, idx: np.ndarray) -> list:
        return self._give_back(self._item_ids[idx], self.item_id_type)

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.seen_indptr[user_idx], self.seen_indptr[user_idx + 1]
        return self.seen_indices[a:b], self.seen_weights[a:b]

    # ------------------------------------------------------------------ scoring
    def score(self, user_idx: int | None, history: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Scores of every item (float32, higher is better) for a known user index, or for a
        history of (item indices, weights) — a known user's own history is used when None."""
        if history is None:
            history = self.history(user_idx) if user_idx is not None else (np.zeros(0, np.int32), np.zeros(0, np.float32))
        items, weights = history
        if self.kind == "popularity":
            return self.popularity.copy()  # a copy: callers mask it in place
        if self.kind == "factors":
            if user_idx is not None:
                u = self.arrays["user_factors"][user_idx]
            else:
                u = self._fold_in(items, weights)
            s = _matvec(self.arrays["item_factors"], u) + self.arrays["item_bias"]
            cold = self.arrays.get("cold_items")
            if cold is not None and cold.any():
                s[cold.astype(bool)] = _COLD_FACTOR + self._pop_tiebreak[cold.astype(bool)]
            return s.astype(np.float32)
        if self.kind == "item_knn":
            return self._fill_no_evidence(self._knn(items, weights), items, weights)
        # content
        F = self.item_features
        if F is None or len(items) == 0:
            return self._fill_no_evidence(np.zeros(self.n_items, np.float32))
        profile = _normalise_rows((weights[:, None] * F[items]).sum(0, keepdims=True))[0]
        return self._fill_no_evidence(_matvec(F, profile))

    def _knn(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Item-kNN evidence: the summed similarities of the history's neighbours (0: none)."""
        indptr, indices, data = self._sim
        if len(items) == 0:
            return np.zeros(self.n_items, np.float32)
        starts, ends = indptr[items], indptr[items + 1]
        lens = ends - starts
        pos = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        return np.bincount(indices[pos], weights=data[pos] * np.repeat(weights, lens),
                           minlength=self.n_items).astype(np.float32)

    def _profiles(self, user_idx: np.ndarray) -> np.ndarray:
        """Each user's profile in item-feature space (the normalised weighted sum of their items')."""
        F = self.item_features
        P = np.zeros((len(user_idx), F.shape[1]), np.float32)
        for row, u in enumerate(user_idx):
            items, weights = self.history(int(u))
            if len(items):
                P[row] = (weights[:, None] * F[items]).sum(0)
        return _normalise_rows(P)

    def score_batch(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores (n_users_in_batch, n_items) for known user indices, the same as :meth:`score`
        row by row (factor and popularity models compute them as one matrix product) — for item-kNN
        with item vectors, the same top lists of up to :data:`MAX_LIST` items over the whole
        catalogue: use :meth:`score` for a list restricted to some items, as ``recommend`` does."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if self.kind == "factors":
            s = self.arrays["user_factors"][user_idx] @ self.arrays["item_factors"].T + self.arrays["item_bias"]
            cold = self.arrays.get("cold_items")
            if cold is not None and cold.any():
                c = cold.astype(bool)
                s[:, c] = _COLD_FACTOR + self._pop_tiebreak[c]
            return s.astype(np.float32)
        if self.kind == "popularity":
            return np.broadcast_to(self.popularity, (len(user_idx), self.n_items)).copy()
        if self.kind == "content" and self.item_features is not None:
            # Profiles for the whole batch, then one matrix product (what score() does per user).
            s = (self._profiles(user_idx) @ self.item_features.T).astype(np.float32)
            empty = s == 0
            s[empty] = _NO_EVIDENCE + np.broadcast_to(self._pop_tiebreak, s.shape)[empty]
            return s
        if self.kind == "item_knn" and self.item_features is not None and len(user_idx):
            # What score() does per user, the content likeness of the batch as one matrix product
            # (a matrix-vector product per user cost the evaluation of 5,000 people ~10 s at 10^5
            # items), and only for people whose evidence may run out before MAX_LIST items beyond
            # their history: for the others no list that long reaches the items it orders.
            s = np.stack([self._knn(*self.history(int(u))) for u in user_idx])
            n_seen = self.seen_indptr[user_idx + 1] - self.seen_indptr[user_idx]
            need = np.flatnonzero((n_seen > 0) & ((s > 0).sum(1) < n_seen + MAX_LIST))
            empty = s == 0
            s[empty] = _NO_EVIDENCE + np.broadcast_to(self._pop_tiebreak, s.shape)[empty]
            if len(need):
                like = self._profiles(user_idx[need]) @ self.item_features.T
                tiebreak = (0.45 * (like + 1.0) + 0.1 * self._pop_tiebreak).astype(np.float32)
                rows = s[need]
                e = empty[need]
                rows[e] = _NO_EVIDENCE + tiebreak[e]
                s[need] = rows
            return s
        return np.stack([self.score(int(u)) for u in user_idx]) if len(user_idx) else np.zeros((0, self.n_items), np.float32)

    def _fill_no_evidence(self, s: np.ndarray, items: np.ndarray | None = None,
                          weights: np.ndarray | None = None) -> np.ndarray:
        """Items without evidence go below every item with some, in popularity order — or, for a
        neighbour model with item vectors and a history (``items``), in order of likeness to the
        person's profile (the content fallback: items nobody has touched yet have no neighbours,
        and a person with few interactions has few neighbours to fill a list)."""
        s = s.astype(np.float32, copy=False)
        empty = s == 0
        tiebreak = self._pop_tiebreak
        if items is not None and len(items) and self.item_features is not None and empty.any():
            F = self.item_features
            profile = _normalise_rows((weights[:, None] * F[items]).sum(0, keepdims=True))[0]
            like = _matvec(F, profile)
            # likeness first (scaled into [0, 0.9]), popularity breaking ties among equals
            tiebreak = (0.45 * (like + 1.0) + 0.1 * self._pop_tiebreak).astype(np.float32)
        s[empty] = _NO_EVIDENCE + tiebreak[empty]
        return s

    def _fold_in(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A user vector for a history the model never trained on: ridge least squares on
        the item factors (what ALS itself does for a user, with confidence weights)."""
        V = self.arrays["item_factors"]
        if len(items) == 0:
            return np.zeros(V.shape[1], np.float32)
        Vh = V[items].astype(np.float64)
        w = np.maximum(np.asarray(weights, np.float64), 1e-6)
        reg = float(self.meta.get("params", {}).get("regularization", 0.05)) + 1e-6
        A = (Vh * w[:, None]).T @ Vh + reg * np.eye(V.shape[1])
        b = (Vh * w[:, None]).sum(0)
        return np.linalg.solve(A, b).astype(np.float32)

    def predict_rating(self, user_id: Any, item_ids: Sequence[Any]) -> list[float | None]:
        """Predicted ratings (a model fitted on ratings, i.e. ``svd``): global mean + user bias +
        item bias + u·v, clipped to the rating scale; None for an unknown item. An unknown user
        gets the item's average (global mean + item bias)."""
        if "global_mean" not in self.arrays:
            raise Invalid("this model was not fitted on ratings, so it ranks items but predicts no ratings")
        lo, hi = self.meta.get("rating_scale", [-np.inf, np.inf])
        u = self.user_index(user_id)
        out: list[float | None] = []
        for t in item_ids:
            i = self.item_index(t)
            if i is None:
                out.append(None)
                continue
            r = float(self.arrays["global_mean"][0] + self.arrays["item_bias"][i])
            if u is not None:
                r += float(self.arrays["user_bias"][u] + self.arrays["user_factors"][u] @ self.arrays["item_factors"][i])
            out.append(float(np.clip(r, lo, hi)))
        return out

    # ------------------------------------------------------------------ answers
    def recommend(self, user_id: Any, n: int = 10, exclude_seen: bool = True,
                  allowed_items: Iterable[Any] | None = None,
                  history: Iterable[Any] | None = None) -> dict[str, Any]:
        """Top ``n`` items for a user: ``{"items", "scores", "source"}``.

        ``source`` is ``"model"`` for a known user (or an unknown one with a ``history`` of item
        ids, e.g. clicks since the last retrain, added to a known user's history otherwise),
        ``"popular"`` for an unknown user with no history. ``exclude_seen`` drops items in the
        user's history; ``allowed_items`` (item ids; unknown ids are ignored) restricts the answer
        to those items (e.g. in stock, of a category).
        """
        if n <= 0:
            raise Invalid("n must be at least 1")
        u = self.user_index(user_id)
        extra_items = np.asarray([i for i in (self.item_index(t) for t in (history or ())) if i is not None], np.int32)
        if u is not None:
            items, weights = self.history(u)
            if extra_items.size:
                # New interactions since the model was fitted: score the whole history (a factor
                # model folds it in), so they count before the next retrain.
                items = np.concatenate([items, extra_items])
                weights = np.concatenate([weights, np.ones(extra_items.size, np.float32)])
                scores = self.score(None, (items, weights))
            else:
                scores = self.score(u)
            source = "model"
        elif extra_items.size:
            items, weights = extra_items, np.ones(extra_items.size, np.float32)
            scores = self.score(None, (items, weights))
            source = "model"
        else:
            items = np.zeros(0, np.int32)
            scores = self.popularity.astype(np.float32).copy()
            source = "popular"
        if exclude_seen and items.size:
            scores[items] = -np.inf
        if allowed_items is not None:
            allowed = np.asarray([i for i in (self.item_index(t) for t in allowed_items) if i is not None], np.int64)
            mask = np.full(self.n_items, -np.inf, np.float32)
            mask[allowed] = 0.0
            scores = scores + mask
        best = top_k(scores, n)
        return {"items": self._items_out(best), "scores": [float(x) for x in scores[best]], "source": source}

    def similar(self, item_id: Any, n: int = 10, features: np.ndarray | None = None) -> dict[str, Any]:
        """Items most like ``item_id``: ``{"items", "scores", "source"}``.

        Known items: the model's own item similarity (factor cosine, kNN neighbours, or feature
        cosine; ``source`` ``"model"``), content neighbours for an item with no interactions when
        features exist (``"content"``). An unknown item: content neighbours of ``features``
        (its feature vector, same space as the training features) when given, else the popular
        list (``"popular"``).
        """
        if n <= 0:
            raise Invalid("n must be at least 1")
        i = self.item_index(item_id)
        scores, source = None, "model"
        warm = i is not None and self.popularity[i] > 0
        if i is not None and self.kind == "factors" and (warm or self.item_features is not None):
            scores = _matvec(self._item_norm_factors, self._item_norm_factors[i])
        elif i is not None and self.kind == "item_knn" and warm:
            # The stored neighbours are the answer (best first); popular items fill any gap.
            indptr, indices, data = self._sim
            a, b = indptr[i], indptr[i + 1]
            nb, sim = indices[a:b], data[a:b]
            keep = nb != i
            nb, sim = nb[keep], sim[keep]
            order = np.lexsort((nb, -sim))[:n]
            items, vals = list(nb[order]), [float(x) for x in sim[order]]
            if len(items) < n:
                taken = set(items) | {i}
                for j in self._popular_order:
                    if len(items) >= n:
                        break
                    if int(j) not in taken:
                        items.append(int(j))
                        vals.append(_NO_EVIDENCE + float(self._pop_tiebreak[j]))
            return {"items": self._items_out(np.asarray(items, np.int64)), "scores": vals, "source": "model"}
        elif i is not None and self.item_features is not None and self.item_features[i].any():
            scores = _matvec(self.item_features, self.item_features[i])
            source = "model" if self.kind == "content" else "content"
        elif i is None and features is not None and self.item_features is not None:
            f = np.asarray(features, np.float32).reshape(1, -1)
            proj = self.arrays.get("feature_projection")
            width = self.item_features.shape[1] if proj is None else proj.shape[0]
            if f.shape[1] != width:
                raise Invalid(f"the item's feature vector has {f.shape[1]} values; this model's items have {width}")
            if proj is not None:  # the same projection the training features went through
                f = _normalise_rows(f) @ proj
            scores = _matvec(self.item_features, _normalise_rows(f)[0])
            source = "content"
        if scores is None:
            scores = self.popularity.astype(np.float32).copy()
            source = "popular"
        scores = np.asarray(scores, np.float32).copy()
        if i is not None:
            scores[i] = -np.inf
        best = top_k(scores, n)
        return {"items": self._items_out(best), "scores": [float(x) for x in scores[best]], "source": source}

    # ------------------------------------------------------------------ files
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f"a_{k}": v for k, v in self.arrays.items()}
        out.update(user_ids=self._user_ids, item_ids=self._item_ids, seen_indptr=self.seen_indptr,
                   seen_indices=self.seen_indices, seen_weights=self.seen_weights,
                   popularity=self.popularity)
        if self.item_features is not None:
            out["item_features"] = self.item_features.astype(np.float32)
        meta = dict(self.meta, format=FORMAT, kind=self.kind, user_id_type=self.user_id_type,
                    item_id_type=self.item_id_type)
        out["meta"] = np.asarray(json.dumps(meta, sort_keys=True, default=_json_default))
        return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _matvec(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``M @ v`` without BLAS threads: a threaded BLAS matrix-vector product waits for its
    second thread whenever the cores are busy (measured 1 ms idle, 10+ ms under load for
    10^5 × 64); einsum's single-threaded loop stays near 1-2 ms."""
    return np.einsum("ij,j->i", M, v)


def _normalise_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def save_recommender(model: Recommender, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` (``.npz``) under a temporary name, then rename it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **model.to_arrays())
    os.replace(tmp, path)
    return path


def load_recommender(path: str | os.PathLike) -> Recommender:
    """Open an artefact written by :func:`save_recommender` (NumPy only, no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise Invalid(f"{path} is not a recommender artefact ({exc}); export one with export_recommender") from exc
    if "meta" not in data:
        raise Invalid(f"{path} is not a recommender artefact (no 'meta'); export one with export_recommender")
    meta = json.loads(str(data.pop("meta")))
    if meta.get("format") != FORMAT:
        raise Invalid(f"{path} has format {meta.get('format')!r}; this version reads {FORMAT!r}")
    kind = meta.pop("kind")
    user_type, item_type = meta.pop("user_id_type"), meta.pop("item_id_type")
    user_ids = data.pop("user_ids").tolist()
    item_ids = data.pop("item_ids").tolist()
    if user_type == "int":
        user_ids = [int(u) for u in user_ids]
    if item_type == "int":
        item_ids = [int(i) for i in item_ids]
    arrays = {k[2:]: v for k, v in data.items() if k.startswith("a_")}
    return Recommender(kind, user_ids=user_ids, item_ids=item_ids, seen_indptr=data["seen_indptr"],
                       seen_indices=data["seen_indices"], seen_weights=data["seen_weights"],
                       popularity=data["popularity"], arrays=arrays,
                       item_features=data.get("item_features"), meta=meta)
