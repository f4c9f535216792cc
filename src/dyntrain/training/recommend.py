"""The ranking target's training stages (recommendation): interactions in, a ranked-list model out.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through :data:`REC_STAGES`.

* **Data**: the version's interactions (every id up to its watermark, loaded by the modality),
  refused with a waiting message below 10 interactions of 2 people with 2 items. Explicit when
  every interaction has a rating; otherwise implicit feedback (weights), and the run says so.
* **Evaluation**: a temporal split — each person's latest interactions (20%, 1 to 10) are held
  out, the earlier ones train — scored on at most :data:`MAX_EVAL_USERS` people: NDCG, hit rate,
  precision, recall and MAP at 10, coverage, novelty and popularity bias, with a 95% bootstrap
  interval over people for NDCG@10 and the hit rate, against the 'most popular' list, in words.
* **Selection**: every candidate (popularity, item-kNN, ALS, biased MF with ratings) fitted on the
  split's training part and scored on its held-out part; the simplest within one standard error
  of the best NDCG@10 (of the per-person differences, paired) wins. The chosen model is scored on
  the same split that chose it, so its estimate may be slightly flattering; the estimate says so.
* **Fit**: on every interaction; when the learner and parameters in service are chosen again and
  the learner continues from earlier factors (ALS), it starts from the served model's factors
  (the warm incremental retrain).
* **Export check**: the saved ``.npz``, opened as serving opens it, must give the trained
  model's lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import tasks
from ..kernel.errors import Invalid
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL
from .spec import Prepared, TrainingSpec

__all__ = ["REC_STAGES", "RecStages", "RecPrepared", "MAX_EVAL_USERS"]

#: People scored per run (a random subset, the same for every learner of the run).
MAX_EVAL_USERS = 1000
#: A person's latest training-part items kept with each evaluation record (the served model gets
#: them as history in the gate, as serving would).
RECENT = 10
#: Bootstrap resamples of people for the intervals.
BOOTSTRAP = 1000
#: The list length measured.
K = 10
#: Ranking metrics kept in results and cards.
METRICS = ("ndcg", "hit_rate", "precision", "recall", "map", "coverage", "novelty", "popularity_bias")


@dataclass
class RecPrepared(Prepared):
    """The run's data: the interactions, the temporal split and the people it scores."""

    interactions: Any = None
    split: Any = None
    recent: list = field(default_factory=list)
    served: Callable[[], Any] | None = None
    served_watermark: int | None = None  # the last interaction id the model in service trained on
    first_ids: list = field(default_factory=list)
    seed: int = 0
    watermark: int = 0
    notes: list = field(default_factory=list)
    scored: dict = field(default_factory=dict)  # candidate label → its split scores (fitted once per run)
    fit_info: dict = field(default_factory=dict)
    item_features: Any = None  # one row per interactions.item_ids (the catalogue's vectors), or None
    catalogue: dict = field(default_factory=dict)  # what the vectors hold (learners.item_features)


def _interactions(log, explicit: bool):
    """The log as :class:`Interactions`, ids indexed in order of first appearance (what
    ``Interactions.from_columns`` does, by ``pandas.factorize``: its Python loop took seconds at
    10^6 interactions; the log's values were checked when they were added). Catalogue items
    nobody has touched yet follow, in id order: the model knows them (by their vectors) too."""
    import pandas as pd

    from ..learners.recommend import Interactions

    users, user_ids = pd.factorize(pd.Series(log.users, dtype=object))
    items, item_ids = pd.factorize(pd.Series(log.items, dtype=object))
    item_ids = list(item_ids)
    known = set(item_ids)
    item_ids += sorted(i for i in getattr(log, "catalogue", {}) if i not in known)
    return Interactions(users.astype(np.int32), items.astype(np.int32), log.weights.astype(np.float32),
                        log.times.astype(np.float64), list(user_ids), item_ids,
                        log.ratings.astype(np.float32) if explicit else None)


def _item_features(catalogue: dict, item_ids: list, extractor, load_image, progress=None):
    """The catalogue's item vectors (:mod:`dyntrain.learners.item_features`): texts by the cached
    MiniLM encoder, pictures by the cached Lite0 extractor (both keyed by content, so a retrain
    embeds only what changed)."""
    import hashlib

    from ..learners.item_features import item_matrix

    if not catalogue:
        return None, {}

    def texts(values: list[str]) -> np.ndarray:
        from ..learners.text import TextEncoder

        by_key = {hashlib.sha256(t.encode()).hexdigest(): t for t in values}
        encoder = TextEncoder(extractor.cache_dir, threads=extractor.threads)
        return encoder.features([hashlib.sha256(t.encode()).hexdigest() for t in values], by_key.__getitem__,
                                progress=progress)

    def pictures(digests: list[str]) -> np.ndarray:
        from ..codecs.imaging import decode_image, model_input
        from ..learners.features import POOLED

        return extractor.features(POOLED, digests, lambda d: model_input(decode_image(load_image(d))))

    return item_matrix(item_ids, catalogue, embed_texts=texts if extractor is not None else None,
                       embed_images=pictures if extractor is not None and load_image is not None else None)


def _first_ids(log, data, split) -> list[np.ndarray]:
    """Per evaluated person, the first interaction id of each of their held-out items: the served
    model saw an item exactly when its watermark reaches that id."""
    pair = data.users.astype(np.int64) * data.n_items + data.items
    order = np.lexsort((log.ids, pair))
    sorted_pairs = pair[order]
    first = np.r_[True, sorted_pairs[1:] != sorted_pairs[:-1]]
    pairs, min_id = sorted_pairs[first], log.ids[order][first]
    out = []
    for k, u in enumerate(split.test_users):
        q = int(u) * data.n_items + split.relevant(k).astype(np.int64)
        out.append(min_id[np.searchsorted(pairs, q)])
    return out


def _recent(split) -> list[list[str]]:
    """Each evaluated person's latest :data:`RECENT` training-part items, oldest first."""
    train = split.train
    order = np.lexsort((train.times, train.users))
    users = train.users[order]
    out = []
    for u in split.test_users:
        a, b = np.searchsorted(users, u, "left"), np.searchsorted(users, u, "right")
        out.append([str(train.item_ids[i]) for i in train.items[order][max(a, b - RECENT):b]])
    return out


def _interval(values: np.ndarray, seed: int) -> list[float] | None:
    if len(values) < 3:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP, len(values)))].mean(1)
    lo, hi = np.percentile(means, [100 * (1 - INTERVAL_LEVEL) / 2, 100 * (1 + INTERVAL_LEVEL) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def _served_watermark(served, notes: list[str]) -> int | None:
    if served is None:
        return None
    try:
        return (getattr(served(), "recommender", None) or object).__dict__.get("meta", {}).get("watermark")
    except Exception as exc:  # a missing file must not sink the run: the gate says it could not compare
        notes.append(f"the model in service could not be loaded ({type(exc).__name__})")
        return None


class RecStages:
    """What a run of the ranking target does differently (see the pipeline's module docstring)."""

    recipes = False  # no augmentation or balancing for interactions

    def sizes(self, log) -> tuple[int, int]:
        return len(log), 0

    def prepare(self, log, spec: TrainingSpec, *, served=None, progress=None, extractor=None,
                load_image=None) -> RecPrepared:
        from ..learners.recommend import temporal_split

        n_users, n_items = len(set(log.users)), len(set(log.items))
        tasks.get(spec.task).target.check_trainable({"interactions": len(log), "users": n_users, "items": n_items})
        rated = np.isfinite(log.ratings)
        explicit = bool(rated.all())
        notes = []
        if rated.any() and not explicit:
            notes.append(f"{int((~rated).sum()):,} of {len(log):,} interactions have no rating: all are treated as "
                         "implicit feedback (their weights), and the ratings-only learner is left out")
        data = _interactions(log, explicit)
        split = temporal_split(data).sample(MAX_EVAL_USERS, spec.seed)
        n_eval = len(split.test_users)
        first_ids = _first_ids(log, data, split)
        # an evaluation key the gate reads (tasks.recommend.SeenUpTo): the served model never saw some
        # of this person's held-out items exactly when its watermark is below the newest one's id
        keys = [f"{int(f.max())}:{data.user_ids[u]}" for f, u in zip(first_ids, split.test_users)]
        users = np.array([str(data.user_ids[u]) for u in split.test_users], dtype=object)
        plan = {"mode": "temporal", "holdout": [False] * n_eval,
                "reason": (f"each person's latest interactions held out (20%, 1 to 10 each): {split.held_out:,} "
                           f"interactions; {n_eval:,} people scored on what they chose next"),
                "train_size": split.train.n, "holdout_size": split.held_out}
        features, described = _item_features(getattr(log, "catalogue", {}), data.item_ids, extractor, load_image,
                                              None if progress is None else (lambda f: progress("features", f, None)))
        if progress is not None:
            progress("features", 1.0, None)
        return RecPrepared([], np.zeros(n_eval), [], keys, {"interactions": users}, plan, {}, interactions=data,
                           split=split, recent=_recent(split), served=served, seed=spec.seed,
                           watermark=int(log.watermark), notes=notes, first_ids=first_ids,
                           served_watermark=_served_watermark(served, notes), item_features=features,
                           catalogue=described)

    def describe(self, data: RecPrepared) -> str:
        d = data.interactions
        return (f"{d.n:,} interactions of {d.n_users:,} people with {d.n_items:,} items "
                f"({'ratings' if d.explicit else 'implicit feedback'})")

    # -- selection and evaluation --------------------------------------------------------------
    def _scored(self, cand: selection.Candidate, data: RecPrepared) -> dict[str, Any]:
        """The candidate fitted on the split's training part and scored on its held-out part
        (once per run: selection, evaluation and the comparison share it)."""
        from ..learners.recommend import ranking_metrics

        if cand.label not in data.scored:
            start = time.perf_counter()
            learner = cand.build()
            learner.fit_interactions(data.split.train, seed=data.seed, item_features=data.item_features)
            m = ranking_metrics(learner.model_, data.split, K, per_user=True, lists=True)
            data.scored[cand.label] = {"summary": {k: float(m[k]) for k in METRICS},
                                       "per_user": m["per_user"], "lists": m["lists"],
                                       "seconds": round(time.perf_counter() - start, 3)}
        return data.scored[cand.label]

    def select(self, candidates: list[selection.Candidate], data: RecPrepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        """(chosen, candidates that ran, the record for result["selection"], the record again)."""
        from ..learners.recommend import choose_one_se

        start = time.perf_counter()
        scores, cut_at = [], None
        for i, cand in enumerate(candidates):
            if i >= 2 and budget is not None and time.perf_counter() - start > budget:
                cut_at = i  # the budget is spent: the rest (more complex) are not tried
                break
            report(i / len(candidates), cand.label)
            entry: dict[str, Any] = {"index": i, "candidate": cand.to_dict(), "label": cand.label,
                                     "learner": cand.learner_class.core}
            try:
                if cand.learner_class.core == "svd" and not data.interactions.explicit:
                    raise Invalid("needs a rating on every interaction")
                if cand.learner_class.core == "content" and data.item_features is None:
                    raise Invalid("needs a catalogue (item categories, attributes, texts or pictures)")
                r = self._scored(cand, data)
                entry |= {"ndcg": r["summary"]["ndcg"], "hit_rate": r["summary"]["hit_rate"],
                          "metrics": r["summary"], "_ndcg": r["per_user"]["ndcg"], "seconds": r["seconds"],
                          "error": None}
            except Invalid as exc:
                entry |= {"ndcg": None, "error": exc.message, "seconds": 0.0}
            scores.append(entry)
        if not any(s["error"] is None for s in scores):
            raise Invalid("no recommendation learner could be fitted: "
                          + "; ".join(f"{s['label']}: {s['error']}" for s in scores))
        chosen, _ = choose_one_se(scores)
        best = max((s for s in scores if s["error"] is None), key=lambda s: s["ndcg"])
        record = {"metric": "ndcg", "k": K, "chosen_index": chosen, "best_index": best["index"], "cut_at": cut_at,
                  "rule": ("one standard error: the simplest learner whose NDCG@10 is within one standard error "
                           "(of the per-person differences) of the best"),
                  "scores": [{k: v for k, v in s.items() if not k.startswith("_")} for s in scores],
                  "seconds": round(time.perf_counter() - start, 3)}
        ran = [candidates[s["index"]] for s in scores]
        return candidates[chosen], ran, record, record

    def select_recipe(self, *args, **kwargs):
        from .augmentation import NO_RECIPE

        return NO_RECIPE, None

    def evaluate(self, candidate: selection.Candidate, data: RecPrepared, spec: TrainingSpec,
                 progress: Callable[[float], None] | None = None, **_class_only) -> dict[str, Any]:
        """NDCG@10 and the rest on the held-out part, with intervals, words and per-person lists."""
        from ..learners.recommend import describe

        r = self._scored(candidate, data)
        base = self._scored(selection.Candidate("rec.popularity"), data)
        split, ids = data.split, data.interactions.item_ids
        metrics: dict[str, Any] = dict(r["summary"])
        metrics["k"] = K
        metrics["evaluated_on"] = len(split.test_users)
        metrics["interval"] = {m: _interval(r["per_user"][m], data.seed) for m in ("ndcg", "hit_rate")}
        metrics["popular"] = base["summary"]
        metrics["summary"] = describe(r["summary"], base["summary"], K)
        metrics["estimate"] = {
            "method": "temporal", "level": INTERVAL_LEVEL, "interval": {"ndcg": "percentile bootstrap over people"},
            "description": (f"each of {len(split.test_users):,} people's latest interactions held out and never used "
                            "to fit the scored model; the learner was chosen on the same held-out part, so the "
                            "choice among the candidates may flatter it slightly")}
        metrics["predictions"] = [self._prediction(data, k, key, user, r["lists"][k], ids)
                                  for k, (key, user) in enumerate(zip(data.hashes, data.X["interactions"]))]
        if progress is not None:
            progress(1.0)
        return metrics

    def _prediction(self, data: RecPrepared, k: int, key: str, user, top: np.ndarray, ids) -> dict[str, Any]:
        """One person's evaluation record: what they chose next (``true``), the list, their latest
        training items; with a model in service, ``fresh``: the chosen items it never saw, the
        only ones the gate scores both models on."""
        held = data.split.relevant(k)
        out = {"content_hash": key, "user": str(user), "true": [str(ids[i]) for i in held[:K]],
               "predicted": [str(ids[i]) for i in top if i >= 0], "recent": data.recent[k]}
        if data.served_watermark is not None:
            out["fresh"] = [str(ids[i]) for i, first in zip(held, data.first_ids[k])
                            if first > data.served_watermark][:K]
        return out

    def baseline(self, data: RecPrepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """The 'most popular' list for everyone (the floor a first model must reach)."""
        return dict(self._scored(selection.Candidate("rec.popularity"), data)["summary"])

    def fit(self, learner, X, y, weights, data: RecPrepared, progress: Callable[[float], None]) -> None:
        """On every interaction; from the served model's factors when it is this learner's."""
        warm, served_version = None, None
        if data.served is not None:
            try:
                served = data.served()
                model = getattr(served, "recommender", None)
                if model is not None and learner.same_as(model):
                    warm, served_version = model, served.version
            except Exception as exc:  # a missing file must not sink the run: it trains cold
                data.notes.append(f"the model in service could not be loaded to continue from "
                                  f"({type(exc).__name__}); trained from scratch")
        start = time.perf_counter()
        learner.fit_interactions(data.interactions, warm=warm, seed=data.seed, progress=progress,
                                 item_features=data.item_features)
        learner.model_.meta["watermark"] = data.watermark  # what it has seen: the next gate scores it on the rest
        warm_start = learner.model_.meta.get("warm_start")
        data.fit_info = {"seconds": round(time.perf_counter() - start, 3), "warm_start": bool(warm_start),
                         "from_version": served_version if warm_start else None,
                         "continued": warm_start or None}

    def outputs(self, learner, X) -> list[list[str]]:
        return [[str(i) for i in learner.model_.recommend(u, K)["items"]] for u in X]

    def served_items(self, data: RecPrepared, rows: np.ndarray) -> list[dict[str, Any]]:
        return [{"user": data.X["interactions"][i], "n": K} for i in rows]

    def agrees(self, served: list[dict], trained: list[list[str]]) -> float | None:
        """1.0 when the file's lists differ from the trained model's for anyone, else None."""
        return None if [[str(i) for i in a["items"]] for a in served] == trained else 1.0

    def result_fields(self, data: RecPrepared, spec: TrainingSpec) -> dict[str, Any]:
        d = data.interactions
        return {"labels": [], "counts": {"interactions": d.n}, "interactions": d.n, "users": d.n_users,
                "distinct_items": d.n_items, "explicit": d.explicit, "watermark": data.watermark,
                "split": {"train_interactions": data.split.train.n, "held_out_interactions": data.split.held_out,
                          "evaluated_people": len(data.split.test_users)},
                "fit": data.fit_info, "notes": data.notes, "catalogue": data.catalogue}

    def card_fields(self, data: RecPrepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": [], "output": {"name": "items", "shape": ["n"], "also": ["scores", "source"]},
                "metrics": {k: metrics.get(k) for k in (*METRICS, "interval", "summary")},
                "interactions": data.interactions.n, "watermark": data.watermark}


REC_STAGES = RecStages()
