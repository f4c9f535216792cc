"""Recommendation: interactions in, a ranked-list model out, chosen on a temporal split.

Pure ML like the rest of :mod:`dyntrain.learners`: arrays in, an artefact out; no database.

* :class:`Interactions` — who interacted with what (user and item indices into id lists, a
  rating or a weight, a timestamp); :meth:`Interactions.from_columns` builds one from raw ids.
* :func:`temporal_split` — each user's latest interactions are held out ("what did they choose
  next?"), the rest trains.
* :func:`ranking_metrics` — NDCG, precision, recall, MAP and hit rate at k, catalogue coverage,
  novelty and popularity bias of the top-k lists.
* :func:`fit_recommender` — cross-checks the learners of :mod:`.recommend_models` (popularity,
  item-kNN, ALS, biased MF for ratings, content when item features are given) on the split
  within a time budget, keeps the simplest learner whose NDCG@10 is within one standard error
  (of the per-user differences) of the best, refits it on everything.
* :func:`retrain_recommender` — the quick retrain: the served model's learner and parameters,
  warm-started from its factors.
* :func:`export_recommender` / :func:`load_recommender` — the served ``.npz`` artefact
  (:mod:`.recommend_serving`, NumPy only).

>>> data = Interactions.from_columns(users, items, timestamps=ts)  # doctest: +SKIP
>>> model, report = fit_recommender(data, time_budget_s=60)  # doctest: +SKIP
>>> report["summary"]  # doctest: +SKIP
"for 6 in 10 people, something they chose next was in their top 10; ..."
>>> export_recommender(model, "model.npz"); load_recommender("model.npz").recommend(42)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..kernel.errors import Invalid
from .recommend_models import COMPLEXITY, LEARNERS, fit_learner
from .recommend_serving import FORMAT, Recommender, load_recommender, save_recommender, top_k

__all__ = [
    "Interactions",
    "Split",
    "RecCandidate",
    "Recommender",
    "FORMAT",
    "temporal_split",
    "ranking_metrics",
    "default_rec_candidates",
    "fit_recommender",
    "retrain_recommender",
    "export_recommender",
    "load_recommender",
    "describe",
    "choose_one_se",
]

RecProgress = Callable[[float, str], None]


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions as parallel arrays over ``n`` rows.

    ``users``/``items`` index ``user_ids``/``item_ids`` (the id lists may hold ids without any
    interaction, e.g. the whole catalogue, so item feature rows line up with ``item_ids``).
    ``ratings`` (float, explicit feedback) is None for implicit feedback; ``weights`` is the
    strength of each interaction (1 by default); ``times`` orders them (arrival order when no
    timestamps were given).
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    user_ids: list
    item_ids: list
    ratings: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_columns(cls, users: Sequence[Any], items: Sequence[Any], *, ratings: Sequence[float] | None = None,
                     weights: Sequence[float] | None = None, timestamps: Sequence[Any] | None = None,
                     item_ids: Sequence[Any] | None = None, user_ids: Sequence[Any] | None = None) -> "Interactions":
        """From raw ids (ints or strings). ``timestamps`` may be numbers or datetimes;
        ``item_ids``/``user_ids`` fix the id lists (and their order), e.g. the whole catalogue
        for items; ids not in them are appended."""
        users, items = list(users), list(items)
        n = len(users)
        if len(items) != n:
            raise Invalid(f"{n} user ids but {len(items)} item ids: give one user and one item per interaction")
        u_ids, u_idx = _index(users, user_ids)
        i_ids, i_idx = _index(items, item_ids)
        r = None
        if ratings is not None:
            r = np.asarray(ratings, dtype=np.float64)
            if r.shape != (n,) or not np.isfinite(r).all():
                raise Invalid("ratings must be one finite number per interaction (leave ratings out for clicks/purchases)")
            r = r.astype(np.float32)
        w = np.ones(n, np.float32) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w <= 0).any():
            raise Invalid("weights must be one positive finite number per interaction")
        if timestamps is None:
            t = np.arange(n, dtype=np.float64)
        else:
            t = np.asarray(timestamps)
            if t.shape != (n,):
                raise Invalid("give one timestamp per interaction (or none at all)")
            if np.issubdtype(t.dtype, np.datetime64):
                t = t.astype("datetime64[ms]").astype(np.int64).astype(np.float64) / 1000.0
            else:
                try:
                    t = t.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise Invalid("timestamps must be numbers (e.g. Unix seconds) or datetimes") from exc
        return cls(u_idx, i_idx, w.astype(np.float32), t, u_ids, i_ids, r)

    @property
    def n(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def explicit(self) -> bool:
        return self.ratings is not None

    def strength(self) -> np.ndarray:
        """What an implicit-feedback learner weighs an interaction by: the rating when there
        are ratings (times the weight), else the weight."""
        return self.weights * self.ratings if self.explicit else self.weights

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The same id lists, only the rows where ``mask`` is true."""
        return Interactions(self.users[mask], self.items[mask], self.weights[mask], self.times[mask],
                            self.user_ids, self.item_ids, None if self.ratings is None else self.ratings[mask])

    def matrix(self, transform: str | None = None):
        """users × items ``scipy.sparse.csr_matrix`` (float32) of summed strengths;
        ``transform="log1p"`` gives ``1 + log(strength)``."""
        import scipy.sparse as sp

        key = ("matrix", transform)
        if key not in self._cache:
            m = sp.csr_matrix((self.strength().astype(np.float64), (self.users, self.items)),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.sort_indices()
            if transform == "log1p":
                m.data = 1.0 + np.log(np.maximum(m.data, 1e-6))
                m.data = np.maximum(m.data, 1e-3)
            self._cache[key] = m.astype(np.float32)
        return self._cache[key]

    def history_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.matrix()
        return m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32)

    def item_user_counts(self) -> np.ndarray:
        """How many distinct users interacted with each item."""
        if "counts" not in self._cache:
            m = self.matrix()
            self._cache["counts"] = np.bincount(m.indices, minlength=self.n_items).astype(np.float32)
        return self._cache["counts"]

    def latest_ratings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, rating) with one row per pair: its latest rating."""
        order = np.lexsort((self.times, self.items, self.users))
        u, i = self.users[order], self.items[order]
        last = np.ones(len(order), bool)
        last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        return u[last], i[last], self.ratings[order][last]

    def validate(self) -> None:
        """Raise :class:`Invalid` saying what to add when there is too little to learn from."""
        if self.n == 0:
            raise Invalid("there are no interactions yet: add interactions (user, item[, rating, time]) "
                          "from at least 2 users and 2 items")
        users = np.unique(self.users)
        items = np.unique(self.items)
        if len(users) < 2:
            raise Invalid(f"all interactions come from one user ({self.user_ids[users[0]]!r}): add interactions "
                          "of at least one more user so there is something to learn from others")
        if len(items) < 2:
            raise Invalid(f"all interactions are with one item ({self.item_ids[items[0]]!r}): add interactions "
                          "with at least one more item so there is something to rank")


def _index(values: list, fixed: Sequence[Any] | None) -> tuple[list, np.ndarray]:
    ids = list(fixed) if fixed is not None else []
    index = {v: k for k, v in enumerate(ids)}
    if len(index) != len(ids):
        raise Invalid("the given id list has duplicates")
    out = np.empty(len(values), np.int32)
    for k, v in enumerate(values):
        j = index.get(v)
        if j is None:
            if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
                raise Invalid(f"interaction {k + 1} has no user or item id")
            j = index[v] = len(ids)
            ids.append(v)
        out[k] = j
    return ids, out


@dataclass(frozen=True, eq=False)
class Split:
    """Train interactions plus, for each evaluated user, the items they chose next.

    ``test_users`` index ``train.user_ids``; the relevant items of ``test_users[k]`` are
    ``test_items[test_indptr[k]:test_indptr[k + 1]]`` (held-out items not already in that user's
    training history, since answers exclude what a user has seen).
    """

    train: Interactions
    test_users: np.ndarray
    test_indptr: np.ndarray
    test_items: np.ndarray
    held_out: int

    def relevant(self, k: int) -> np.ndarray:
        return self.test_items[self.test_indptr[k]:self.test_indptr[k + 1]]

    def sample(self, max_users: int, seed: int = 0) -> "Split":
        """At most ``max_users`` evaluated users (a random subset; the same for every learner)."""
        if len(self.test_users) <= max_users:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.test_users), max_users, replace=False))
        items = [self.relevant(k) for k in keep]
        indptr = np.concatenate([[0], np.cumsum([len(x) for x in items])]).astype(np.int64)
        return Split(self.train, self.test_users[keep], indptr, np.concatenate(items).astype(np.int32),
                     self.held_out)


def temporal_split(data: Interactions, *, holdout_fraction: float = 0.2, max_holdout: int = 10) -> Split:
    """Hold out each user's latest interactions: ``holdout_fraction`` of them (at least one,
    at most ``max_holdout``) for users with 2 or more; the earlier ones train."""
    data.validate()
    order = np.lexsort((np.arange(data.n), data.times, data.users))
    users_sorted = data.users[order]
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(data.n) - starts[users_sorted]          # 0 = the user's oldest
    n_u = counts[users_sorted]
    n_test = np.clip(np.round(n_u * holdout_fraction), 1, max_holdout).astype(np.int64)
    n_test = np.where(n_u >= 2, np.minimum(n_test, n_u - 1), 0)
    is_test_sorted = rank >= n_u - n_test
    is_test = np.zeros(data.n, bool)
    is_test[order] = is_test_sorted
    if not is_test.any():
        raise Invalid("to test a model, at least one user needs 2 or more interactions (the latest is held "
                      "out): add more interactions per user")
    train = data.subset(~is_test)
    seen = train.matrix()
    tu, ti = data.users[is_test], data.items[is_test]
    pairs = np.unique(np.stack([tu, ti], 1), axis=0)
    in_train = np.asarray(seen[pairs[:, 0], pairs[:, 1]]).ravel() > 0
    pairs = pairs[~in_train]
    if len(pairs) == 0:
        raise Invalid("every held-out interaction repeats an item the user already had: add interactions "
                      "with items users have not seen before")
    test_users, first = np.unique(pairs[:, 0], return_index=True)
    indptr = np.concatenate([first, [len(pairs)]]).astype(np.int64)
    return Split(train, test_users.astype(np.int64), indptr, pairs[:, 1].astype(np.int32), int(is_test.sum()))


# ---------------------------------------------------------------------------- metrics
def _same_ids(model: Recommender, data: Interactions) -> bool:
    return (model.n_users == data.n_users and model.n_items == data.n_items
            and model.user_ids() == list(data.user_ids) and model.item_ids() == list(data.item_ids))


def _scores_for(model: Recommender, split: Split, batch: np.ndarray, same: bool) -> np.ndarray:
    """Scores in the split's item space for a batch of the split's test-user positions; a model
    trained on other id lists (the one in service) is mapped by id, unknown users get its
    cold-start answer (popular), unknown items rank last."""
    train = split.train
    users = split.test_users[batch]
    if same:
        return model.score_batch(users)
    item_pos = np.asarray([(-1 if (j := model.item_index(t)) is None else j) for t in train.item_ids], np.int64)
    known_item = item_pos >= 0
    seen = train.matrix()
    out = np.full((len(users), train.n_items), -1e9, np.float32)
    for row, u in enumerate(users):
        mu = model.user_index(train.user_ids[u])
        a, b = seen.indptr[u], seen.indptr[u + 1]
        hist_items = item_pos[seen.indices[a:b]]
        ok = hist_items >= 0
        if mu is not None and model.kind == "factors":
            s = model.score(mu)
        elif ok.any():
            s = model.score(None, (hist_items[ok].astype(np.int32), seen.data[a:b][ok].astype(np.float32)))
        else:
            s = model.popularity.astype(np.float32)
        out[row, known_item] = s[item_pos[known_item]]
    return out


def _topk_lists(model_or_scores, split: Split, k: int, batch_size: int = 256) -> np.ndarray:
    """(n_test_users, k) item indices, -1 padded; training history excluded."""
    seen = split.train.matrix()
    n = len(split.test_users)
    out = np.full((n, k), -1, np.int64)
    same = isinstance(model_or_scores, Recommender) and _same_ids(model_or_scores, split.train)
    for start in range(0, n, batch_size):
        batch = np.arange(start, min(n, start + batch_size))
        if isinstance(model_or_scores, Recommender):
            S = _scores_for(model_or_scores, split, batch, same)
        else:
            S = np.array(model_or_scores[batch], dtype=np.float32)
            if S.shape[1] != split.train.n_items:
                raise Invalid(f"scores have {S.shape[1]} columns; the split has {split.train.n_items} items")
        for row, u in enumerate(split.test_users[batch]):
            s = S[row]
            s[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = -np.inf
            best = top_k(s, k)
            out[start + row, :len(best)] = best
    return out


def _per_user(lists: np.ndarray, split: Split, k: int) -> dict[str, np.ndarray]:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    n = len(lists)
    res = {m: np.zeros(n) for m in ("ndcg", "precision", "recall", "map", "hit_rate")}
    for row in range(n):
        rel = split.relevant(row)
        hits = np.isin(lists[row], rel) & (lists[row] >= 0)
        n_rel = len(rel)
        ideal = discounts[:min(k, n_rel)].sum()
        res["ndcg"][row] = (discounts * hits).sum() / ideal
        n_hits = hits.sum()
        res["precision"][row] = n_hits / k
        res["recall"][row] = n_hits / n_rel
        res["hit_rate"][row] = float(n_hits > 0)
        if n_hits:
            prec_at = np.cumsum(hits) / np.arange(1, k + 1)
            res["map"][row] = (prec_at * hits).sum() / min(k, n_rel)
    return res


def _summaries(lists: np.ndarray, per_user: dict[str, np.ndarray], split: Split) -> dict[str, float]:
    train = split.train
    counts = train.item_user_counts()
    n_train_users = max(int((np.diff(train.matrix().indptr) > 0).sum()), 1)
    rec = lists[lists >= 0]
    out = {m: float(v.mean()) if len(v) else 0.0 for m, v in per_user.items()}
    out["coverage"] = float(len(np.unique(rec)) / max(train.n_items, 1))
    # Novelty: mean self-information -log2 p(item) of what is recommended, p = share of users
    # who interacted with it (add-one smoothed so unseen items are finite).
    p = (counts[rec] + 1.0) / (n_train_users + 1.0)
    out["novelty"] = float((-np.log2(p)).mean()) if rec.size else 0.0
    # Popularity bias: how popular the recommended items are (share of users who had them)
    # relative to the items people actually chose next; 1 = as popular as real choices.
    share = counts / n_train_users
    chosen = share[split.test_items].mean() if split.test_items.size else 0.0
    out["popularity_bias"] = float(share[rec].mean() / chosen) if rec.size and chosen > 0 else 0.0
    return out


def ranking_metrics(model_or_scores, split: Split, k: int = 10, *, per_user: bool = False,
                    lists: bool = False) -> dict[str, Any]:
    """Top-``k`` metrics on ``split``: a :class:`Recommender` or a score matrix
    (len(split.test_users), n_items), each user's training history excluded.

    ``ndcg``, ``precision``, ``recall``, ``map``, ``hit_rate`` (share of users with at least one
    held-out item in their top k) are means over the evaluated users (binary relevance: the
    held-out items). ``coverage``: share of the catalogue recommended to anyone. ``novelty``:
    mean -log2 of the share of users who had each recommended item. ``popularity_bias``: mean
    popularity (share of training users who had it) of the recommended items divided by that of
    the items users actually chose next (1 = as popular as real choices; above 1 = leaning to
    the popular). ``per_user=True`` adds ``"per_user"`` (arrays per metric) and ``"users"``;
    ``lists=True`` adds ``"lists"``: each evaluated user's top ``k`` item indices (-1 padded).
    """
    if k < 1:
        raise Invalid("k must be at least 1")
    top = _topk_lists(model_or_scores, split, k)
    pu = _per_user(top, split, k)
    out: dict[str, Any] = _summaries(top, pu, split)
    if per_user:
        out["per_user"] = pu
        out["users"] = len(top)
    if lists:
        out["lists"] = top
    return out


def describe(metrics: dict[str, float], baseline: dict[str, float] | None, k: int = 10) -> str:
    """The hit rate in plain words ("for 6 in 10 people, something they chose next was in
    their top 10; the simple 'most popular' list manages 3 in 10")."""
    def words(h: float) -> str:
        return f"{round(h * 10)} in 10" if round(h * 10) >= 1 else f"{round(h * 100)} in 100"

    text = f"for {words(metrics['hit_rate'])} people, something they chose next was in their top {k}"
    if baseline is not None:
        text += f"; the simple 'most popular' list manages {words(baseline['hit_rate'])}"
    return text


# ---------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class RecCandidate:
    learner: str
    params: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        p = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.learner}({p})" if p else self.learner


def default_rec_candidates(data: Interactions, item_features: np.ndarray | None = None) -> list[RecCandidate]:
    """Cheapest first: popularity, content (with item features), item-kNN, ALS, then biased
    MF when there are ratings."""
    cands = [RecCandidate("popularity")]
    if item_features is not None:
        cands.append(RecCandidate("content"))
    cands.append(RecCandidate("item_knn", {"K": 100}))
    # 32 factors: on MovieLens (dslabs) and the synthetic sets as good as 64 or better
    # (NDCG@10 0.076 vs 0.074) at half the cost.
    cands.append(RecCandidate("als", {"factors": 32}))
    if data.explicit:
        cands.append(RecCandidate("svd", {"factors": 50}))
    return cands


def _check_features(data: Interactions, item_features) -> np.ndarray | None:
    if item_features is None:
        return None
    F = np.asarray(item_features, dtype=np.float32)
    if F.ndim != 2 or F.shape[0] != data.n_items:
        raise Invalid(f"item_features must have one row per item id ({data.n_items} rows); got shape {F.shape}")
    if not np.isfinite(F).all():
        raise Invalid("item_features contain NaN or infinite values")
    return F


def _choose(scored: list[dict]) -> tuple[int, float]:
    """The one-standard-error rule over users: the simplest candidate whose mean NDCG is within
    one standard error of the per-user difference to the best one (paired: same users)."""
    ok = [s for s in scored if s.get("error") is None]
    best = max(ok, key=lambda s: s["metrics"]["ndcg"])
    b = best["_ndcg"]
    eligible = []
    for s in ok:
        d = b - s["_ndcg"]
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        s["se_vs_best"] = se
        if d.mean() <= se:
            eligible.append(s)
    chosen = min(eligible, key=lambda s: (COMPLEXITY[s["learner"]], -s["metrics"]["ndcg"], s["index"]))
    return chosen["index"], chosen.get("se_vs_best", 0.0)


#: The selection rule, for callers that score candidates themselves (the training run's stages).
choose_one_se = _choose


def _public(s: dict) -> dict:
    return {k: v for k, v in s.items() if not k.startswith("_")}


def fit_recommender(interactions: Interactions, *, item_features: np.ndarray | None = None,
                    time_budget_s: float = 300.0, progress: RecProgress | None = None, seed: int = 0,
                    candidates: Sequence[RecCandidate] | None = None, k: int = 10,
                    max_eval_users: int = 5000) -> tuple[Recommender, dict[str, Any]]:
    """Choose a learner by NDCG@k on a temporal split, refit it on all interactions.

    Candidates run cheapest first; after the first two, the list is cut when the time budget
    is spent (recorded in ``report["cut_at"]``). ``progress(fraction, message)`` may raise
    :class:`~dyntrain.kernel.errors.Cancelled`. Returns the fitted :class:`Recommender` and a report:
    ``candidates`` (each with ``metrics`` on the split and ``fit_s``), ``chosen``, ``metrics``
    and ``baseline`` (popularity) on the split, ``summary`` in plain words.
    """
    t0 = time.perf_counter()
    F = _check_features(interactions, item_features)
    cands = list(candidates) if candidates is not None else default_rec_candidates(interactions, F)
    for c in cands:
        if c.learner not in LEARNERS:
            raise Invalid(f"unknown recommendation learner {c.learner!r}")
        if c.learner == "content" and F is None:
            raise Invalid("the content learner needs item_features")
        if c.learner == "svd" and not interactions.explicit:
            raise Invalid("the svd learner needs ratings")
    split = temporal_split(interactions).sample(max_eval_users, seed)
    report_progress = progress or (lambda f, m: None)
    scored: list[dict] = []
    cut_at = None
    for idx, cand in enumerate(cands):
        elapsed = time.perf_counter() - t0
        if idx >= 2 and elapsed > time_budget_s:
            cut_at = idx
            break
        report_progress(0.9 * idx / len(cands), f"testing {cand.name}")
        entry: dict[str, Any] = {"index": idx, "name": cand.name, "learner": cand.learner, "params": dict(cand.params)}
        t1 = time.perf_counter()
        try:
            m = fit_learner(cand.learner, split.train, cand.params, item_features=F, seed=seed)
            entry["fit_s"] = round(time.perf_counter() - t1, 3)
            res = ranking_metrics(m, split, k, per_user=True)
            entry["_ndcg"] = res.pop("per_user")["ndcg"]
            res.pop("users")
            entry["metrics"] = res
            entry["error"] = None
        except Invalid as exc:
            entry["error"] = exc.message
        scored.append(entry)
    if not any(s.get("error") is None for s in scored):
        raise Invalid("no recommendation learner could be fitted: " + "; ".join(f"{s['name']}: {s['error']}" for s in scored))
    chosen_idx, _ = _choose(scored)
    chosen = cands[chosen_idx]
    report_progress(0.9, f"fitting {chosen.name} on all interactions")
    t2 = time.perf_counter()
    model = fit_learner(chosen.learner, interactions, chosen.params, item_features=F, seed=seed)
    final_s = time.perf_counter() - t2
    baseline = next((s["metrics"] for s in scored if s["learner"] == "popularity" and s.get("error") is None), None)
    chosen_metrics = scored[chosen_idx]["metrics"]
    report = {
        "k": k,
        "interactions": interactions.n, "users": interactions.n_users, "items": interactions.n_items,
        "explicit": interactions.explicit,
        "split": {"evaluated_users": len(split.test_users), "held_out_interactions": split.held_out},
        "candidates": [_public(s) for s in scored],
        "cut_at": cut_at,
        "chosen": {"index": chosen_idx, "name": chosen.name, "learner": chosen.learner, "params": dict(chosen.params)},
        "metrics": chosen_metrics,
        "baseline": baseline,
        "summary": describe(chosen_metrics, baseline, k),
        "final_fit_s": round(final_s, 3),
        "total_s": round(time.perf_counter() - t0, 3),
    }
    model.meta.update(split_metrics=chosen_metrics, interactions=interactions.n)
    report_progress(1.0, f"chose {chosen.name}")
    return model, report


def retrain_recommender(previous: Recommender, interactions: Interactions, *,
                        item_features: np.ndarray | None = None, progress: RecProgress | None = None,
                        seed: int = 0, evaluate: bool = True, k: int = 10,
                        max_eval_users: int = 5000) -> tuple[Recommender, dict[str, Any]]:
    """The quick retrain after interactions grew: ``previous``'s learner and parameters, factor
    models warm-started from ``previous``'s factors (matched by user and item id; new ids start
    small and random).

    With ``evaluate``, the learner is first fitted on the temporal split's training part and
    scored on its held-out part, so the report carries split metrics (and the popularity
    baseline) for the gate. That fit starts cold: ``previous`` was trained on interactions the
    split now holds out, and starting from its factors would score the model on what it has
    already seen."""
    t0 = time.perf_counter()
    learner = previous.meta.get("learner")
    if learner not in LEARNERS:
        raise Invalid("the previous model does not say which learner made it: run fit_recommender instead")
    params = dict(previous.meta.get("params", {}))
    F = _check_features(interactions, item_features)
    if learner == "content" and F is None:
        raise Invalid("the model in service is content-based: pass item_features")
    interactions.validate()
    report_progress = progress or (lambda f, m: None)
    report: dict[str, Any] = {"k": k, "learner": learner, "params": params, "interactions": interactions.n,
                              "users": interactions.n_users, "items": interactions.n_items, "warm_start": True}
    if evaluate:
        report_progress(0.0, f"testing {learner} on the temporal split")
        split = temporal_split(interactions).sample(max_eval_users, seed)
        t1 = time.perf_counter()
        m = fit_learner(learner, split.train, params, item_features=F, seed=seed)
        report["split_fit_s"] = round(time.perf_counter() - t1, 3)
        report["metrics"] = ranking_metrics(m, split, k)
        report["baseline"] = ranking_metrics(fit_learner("popularity", split.train), split, k)
        report["summary"] = describe(report["metrics"], report["baseline"], k)
    report_progress(0.5, f"fitting {learner} on all interactions")
    t2 = time.perf_counter()
    model = fit_learner(learner, interactions, params, item_features=F, seed=seed, warm=previous)
    report["final_fit_s"] = round(time.perf_counter() - t2, 3)
    report["total_s"] = round(time.perf_counter() - t0, 3)
    model.meta.update(interactions=interactions.n, split_metrics=report.get("metrics"))
    report_progress(1.0, "done")
    return model, report


def export_recommender(model: Recommender, path) -> Any:
    """Write the served artefact (``.npz``, format :data:`FORMAT`); load it with
    :func:`load_recommender` (NumPy only)."""
    return save_recommender(model, path)
