"""Recommendation: the interaction modality and the ranking target (contract "recommender").

A project's examples are interactions — a user id, an item id, an optional rating, a weight and
when it happened — kept in their own table and versioned by watermark
(:mod:`dyntrain.datasets.interactions`), never as sample blobs. The model ranks items for a
person; it is served as a ``.npz`` artefact of factor matrices or neighbour lists, opened by
:class:`LoadedRecommender` through the same hot swap as ONNX files, and answered with NumPy
only (:mod:`dyntrain.learners.recommend_serving`).

The gate compares NDCG@10 on people's held-out latest interactions: the new model's lists
against the lists the served file itself gives, for people none of whose held-out interactions
the served model trained on (its version's watermark says which).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Answer, Modality, Target

__all__ = ["InteractionModality", "RankingTarget", "LoadedRecommender", "SeenUpTo", "MIN_USERS", "MIN_ITEMS",
           "MIN_INTERACTIONS", "K"]

#: Fewest distinct people, items and interactions a model is trained on.
MIN_USERS, MIN_ITEMS, MIN_INTERACTIONS = 2, 2, 10
#: The list length every ranking metric is measured at.
K = 10


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"


class SeenUpTo:
    """The evaluation keys (``"<newest held-out item's first interaction id>:<user>"``) of people
    all of whose held-out items the served model had trained on: those up to its watermark."""

    def __init__(self, watermark: int):
        self.watermark = watermark

    def __contains__(self, key: object) -> bool:
        try:
            return int(str(key).split(":", 1)[0]) <= self.watermark
        except ValueError:
            return False


@dataclass(frozen=True)
class LoadedRecommender:
    """A served recommender, hot-swapped like a :class:`~dyntrain.serving.live.LoadedModel`."""

    project_id: int
    version: int
    labels: tuple[str, ...]
    recommender: Any  # learners.recommend_serving.Recommender
    target: Any = None
    modality: Any = None
    schema: Any = None

    def predict_items(self, requests: list[dict]) -> list[dict]:
        """One answer per request ``{"user", "n", "exclude_seen", "items", "history"}``."""
        return [self.recommender.recommend(r["user"], int(r.get("n", K)), exclude_seen=r.get("exclude_seen", True),
                                           allowed_items=r.get("items"), history=r.get("history"))
                for r in requests]


class InteractionModality(Modality):
    """Interactions (user, item[, rating, weight, time]), sent as JSON or imported from CSV/JSONL."""

    kind = "interaction"
    noun = "interaction"
    plural = "interactions"
    title = "Interactions"
    upload_format = "interactions"
    sample_versions = False  # versions are watermarks over the interactions table
    training_curves = False
    shows_text = True
    data_template = "_data_recommend.html"
    add_template = "_add_recommend.html"
    help_template = "_help_recommend.html"
    try_template = "_try_recommend.html"
    data_scripts, try_script = ("recommend.js",), "recommend.js"

    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        from ..kernel.errors import Invalid

        raise Invalid("a recommendation project takes interactions, not files: POST them to …/interactions "
                      "(JSON) or …/interactions/import (CSV or JSON Lines)")

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000) -> dict[str, Any]:
        """A recommendation request as JSON bytes → the request object."""
        return json.loads(data)

    def feed(self, input_names, columns, items):
        from ..kernel.errors import Invalid

        raise Invalid("a recommender is not an ONNX model: ask it with predict_items")

    def example(self) -> bytes:
        return b'{"user": "anyone", "n": 10}'

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        """Cheapest first: the popular list, content (the run skips it, saying so, without a
        catalogue), item-kNN, ALS, and biased MF (skipped without ratings)."""
        from ..learners.candidates import Candidate

        return [Candidate("rec.popularity"), Candidate("rec.content"), Candidate("rec.item_knn", {"K": 100}),
                Candidate("rec.als", {"factors": 32}), Candidate("rec.svd", {"factors": 50})]

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        return {}  # the interactions are the features (training.recommend prepares them)

    def input_contract(self, path) -> dict[str, Any]:
        from ..learners.recommend_serving import FORMAT

        return {"preprocessing": "none", "format": FORMAT,
                "input": {"name": "user", "dtype": "string", "also": ["n", "exclude_seen", "items", "history"]},
                "runtime": "NumPy (no ONNX Runtime, torch or training library)"}

    # -- what the job glue asks of a version and of the model in service ------------------------
    def version_data(self, session, project, number: int):
        from ..datasets.interactions import load_log

        return load_log(session, project, number)

    def trained_contents(self, session, project, card: dict, run) -> SeenUpTo:
        from ..datasets.versions import get_version

        number = card.get("dataset_version")
        return SeenUpTo(int(get_version(session, project, number).watermark or 0) if number else 0)

    def served_input(self, prediction: dict, load_blob) -> dict[str, Any]:
        """What the served model is asked for a person of the evaluation: their top list, with their
        latest training-part interactions (``recent``) folded in and excluded, as serving would once
        they were sent as history — the new model's list excludes their whole training part."""
        return {"user": prediction["user"], "n": K, "history": prediction.get("recent") or None}


class RankingTarget(Target):
    """A ranked list of items per person: NDCG@10 decides, the popular list is the floor."""

    name = "ranking"
    contract = "recommender"
    has_classes = False
    output = "items"
    gate_metrics = ("ndcg", "hit_rate", "map")
    headline = "ndcg"
    run_template = "_run_recommend.html"
    goal = "recommend items to each person"
    model_format = "NumPy .npz"

    def validate_label(self, label: Any) -> str:
        """An item id (what a person chose)."""
        from ..codecs.interactions import check_id

        return check_id(label, "item")

    def training_stages(self):
        from ..training.recommend import REC_STAGES

        return REC_STAGES

    def counts(self, labels: list[str]) -> dict[str, int]:
        return {"interactions": len(labels)}

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..kernel.errors import Invalid

        n, users, items = (int(counts.get(k, 0)) for k in ("interactions", "users", "items"))
        missing = []
        if n < MIN_INTERACTIONS:
            missing.append(f"{MIN_INTERACTIONS - n} more interactions (there are {n})")
        if users < MIN_USERS:
            more = MIN_USERS - users
            missing.append(f"interactions of {more} more {'person' if more == 1 else 'people'} (there are {users})")
        if items < MIN_ITEMS:
            more = MIN_ITEMS - items
            missing.append(f"interactions with {more} more {'item' if more == 1 else 'items'} (there are {items})")
        if missing:
            raise Invalid("waiting for data: a recommender needs at least "
                          f"{MIN_INTERACTIONS} interactions of {MIN_USERS} people with {MIN_ITEMS} items; add "
                          + " and ".join(missing))

    def problem(self, label_counts: dict[str, int]) -> str | None:
        return None  # interactions are not samples: the data view checks the version's counts

    # -- gate ------------------------------------------------------------------------------
    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        return _list_scores(samples, [[str(i) for i in answer["items"]] for answer in output])

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        # held-out items the served model had seen are neither hits nor slots for either model: the
        # served file leaves them out as seen, so the new model's list does too (it may then be shorter)
        lists = []
        for p in samples:
            known = set(p["true"]) - set(p.get("fresh", p["true"]))
            lists.append([i for i in p["predicted"] if i not in known])
        return _list_scores(samples, lists)

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        floor = float(floor or 0.0)
        if score <= 0:
            return False, (f"{metric} {score:.3f}: no one's next choice was in their top {K}; add interactions "
                           "(more people, and more interactions per person)")
        if score + 1e-9 >= floor:
            return True, f"first model: {metric} {score:.3f} (the 'most popular' list scores {floor:.3f})"
        return False, (f"{metric} {score:.3f} is below the 'most popular' list's {floor:.3f}; add interactions")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        return self.dropped(new, old, metric, settings.gate_tolerance)

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        return (f"For {n} people whose latest choices the model in service had never seen, its top {K} held "
                f"something they chose next for {_pct(old.get('hit_rate'))} of them (NDCG@{K} "
                f"{old.get('ndcg', 0):.3f}); the new one for {_pct(new.get('hit_rate'))} (NDCG@{K} "
                f"{new.get('ndcg', 0):.3f}): {outcome}.")

    def show_score(self, x: float | None) -> str:
        return "—" if x is None else f"{float(x):.3f}"

    def estimate_words(self) -> tuple[str, str]:
        return f"NDCG@{K} ", "people"

    def run_view(self, result: dict, metrics: dict) -> dict | None:
        """The report in words, each learner's scores, and the chosen one against the popular list."""
        baseline = result.get("baseline") or {}
        rows = [(k, metrics.get(k), baseline.get(k)) for k in
                ("ndcg", "hit_rate", "precision", "recall", "map", "coverage", "novelty", "popularity_bias")]
        return {"sentence": metrics.get("summary"), "rows": rows, "interval": (metrics.get("interval") or {}).get("ndcg"),
                "candidates": ((result.get("selection") or {}).get("scores") or []),
                "fit": result.get("fit") or {}, "split": result.get("split") or {}}

    # -- serving -----------------------------------------------------------------------------
    def load_served(self, path, project_id: int, version: int, labels, threads: int,
                    modality: Modality) -> LoadedRecommender:
        """The ``.npz`` artefact, opened with NumPy only and asked once (warm)."""
        from ..learners.recommend_serving import load_recommender

        loaded = LoadedRecommender(project_id, version, tuple(labels), load_recommender(path), self, modality)
        loaded.predict_items([{"user": None, "n": 1}])
        return loaded

    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        items = [str(i) for i in output["items"]]
        return Answer({"items": items, "scores": [round(float(s), 5) for s in output["scores"]],
                       "source": output["source"]}, items[0] if items else None, 0.0)

    def cli_columns(self) -> list[str]:
        return ["items", "source", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        return [", ".join(prediction.get("items") or []) or "(nothing)", prediction.get("source", ""),
                f"v{prediction['model_version']}"]


def _list_scores(samples: list[dict], lists: list[list[str]]) -> dict[str, Any]:
    """NDCG, hit rate, precision, recall and MAP at K of top lists against each person's
    held-out items (``true``), binary relevance — the same formulas as the run's metrics."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    out = {m: [] for m in ("ndcg", "hit_rate", "precision", "recall", "map")}
    for p, said in zip(samples, lists):
        rel = {str(t) for t in p.get("fresh", p["true"])}  # the chosen items the served model never saw
        hits = np.array([str(i) in rel for i in said[:K]] + [False] * (K - len(said[:K])))
        ideal = discounts[:min(K, len(rel))].sum()
        out["ndcg"].append(float((discounts * hits).sum() / ideal) if ideal else 0.0)
        out["hit_rate"].append(float(hits.any()))
        out["precision"].append(float(hits.sum() / K))
        out["recall"].append(float(hits.sum() / max(1, len(rel))))
        prec_at = np.cumsum(hits) / np.arange(1, K + 1)
        out["map"].append(float((prec_at * hits).sum() / min(K, max(1, len(rel)))))
    return {m: (float(np.mean(v)) if v else None) for m, v in out.items()} | {"n_people": len(samples)}
