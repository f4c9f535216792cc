"""Recommendations from the served model, every answer recorded; what people chose fed back.

The model in service is a project's hot-swapped recommender (``Target.load_served``: a ``.npz``
artefact read with NumPy only). Each answer — a person's top items, or the items most like one —
is recorded as a prediction whose ``output`` holds the item list (no scores: the row stays
small) and whose ``label`` is the first item; its ``prediction_id`` comes back with it. A
choice among the answered items (``chosen``) is appended as a ``feedback`` interaction, so it
is in the next dataset version and trains the next model.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import tasks
from ..kernel.core import Core
from ..kernel.errors import Conflict, Invalid, NotReady
from ..kernel.project_settings import ProjectSettings
from ..storage import sha256_hex
from ..storage.rows import utcnow
from .predict import prediction_row
from .records import writer_for

__all__ = ["recommend", "similar", "chosen", "MAX_N"]

#: Longest list one answer may hold.
MAX_N = 1000
#: Most item ids an answer may be restricted to.
MAX_FILTER = 10_000


def _served(core: Core, project: str, version: int | None):
    from ..datasets.interactions import interaction_project

    with core.db.read() as s:
        row = interaction_project(s, project)
        pid, task, settings = row.id, tasks.get(row.task), ProjectSettings(**(row.settings or {}))
    model = core.live.version(pid, version) if version is not None else core.live.production(pid)
    if not hasattr(model, "recommender"):
        raise NotReady(f"model version {model.version} of {project!r} is not a recommender")
    return pid, task, settings, model


def _n(n: int) -> int:
    if not 1 <= int(n) <= MAX_N:
        raise Invalid(f"n must be between 1 and {MAX_N}, got {n}")
    return int(n)


def _record(core: Core, project: str, pid: int, model, task, request: dict, answer: dict, output: dict,
            start: float, client: str) -> int:
    """Write one answer's prediction record (committed before the answer leaves) and return its id."""
    public = task.target.answer(answer, model.labels, 0.0)
    row = {"project_id": pid, "model_version": model.version, "label": public.label, "confidence": 0.0,
           "output": output, "input_hash": sha256_hex(json.dumps(request, sort_keys=True, default=str).encode()),
           "input_stored": False, "latency_ms": (time.perf_counter() - start) * 1000, "client": client[:100],
           "feedback_label": None, "feedback": None, "created_at": utcnow()}
    (prediction_id,) = writer_for(core.db).write([row])
    core.metrics.prediction(project, model.version, 1)
    return prediction_id


def _filter(where: dict[str, Any] | None) -> dict[str, str]:
    """Attribute filters as text (the catalogue keeps attribute values as text)."""
    out = {}
    for k, v in (where or {}).items():
        if isinstance(v, (dict, list)) or v is None:
            raise Invalid(f"filter {k!r} must be one value (text or a number), got {type(v).__name__}")
        out[str(k)] = str(v).strip()
    return out


def recommend(core: Core, project: str, user: Any, *, n: int = 10, exclude_seen: bool = True,
              items: list[Any] | None = None, history: list[Any] | None = None, version: int | None = None,
              category: str | None = None, where: dict[str, Any] | None = None,
              client: str = "") -> dict[str, Any]:
    """A person's top ``n`` items: ``{"user", "items", "scores", "source", "model_version", "prediction_id"}``.

    ``source`` says how it was made: ``model`` for a person the model knows (or one who brings a
    ``history`` of item ids), ``popular`` for a stranger (the cold-start answer). ``exclude_seen``
    leaves out what they already had; ``items`` restricts the answer to those item ids;
    ``category`` and ``where`` (attribute → value) to the catalogue's items that match now (all
    must hold; an item the model never knew is not recommended until a retrain gives it a vector).
    """
    from ..codecs.interactions import check_id

    start = time.perf_counter()
    user_id = check_id(user, "user")
    n = _n(n)
    if items is not None:
        if len(items) > MAX_FILTER:
            raise Invalid(f"{len(items):,} item ids to choose from; the limit is {MAX_FILTER:,}")
        items = [check_id(i, "item") for i in items]
    history = [check_id(i, "item") for i in history or ()][:MAX_FILTER]
    where = _filter(where)
    pid, task, _, model = _served(core, project, version)
    allowed = items
    if category is not None or where:
        from ..datasets.catalogue import matching_items

        matches = matching_items(core, project, category, where)
        keep = set(matches)
        allowed = matches if items is None else [i for i in items if i in keep]
    request = {"user": user_id, "n": n, "exclude_seen": bool(exclude_seen), "items": allowed, "history": history or None}
    (answer,) = model.predict_items([request])
    if category is not None or where:  # recorded as asked (the matching ids can be 10^5)
        request = {**request, "items": items, "category": category, "where": where or None}
    said = [str(i) for i in answer["items"]]
    prediction_id = _record(core, project, pid, model, task, request, answer,
                            {"kind": "recommend", "user": user_id, "items": said, "source": answer["source"]},
                            start, client)
    return {"user": user_id, "items": said, "scores": [round(float(x), 5) for x in answer["scores"]],
            "source": answer["source"], "model_version": model.version, "prediction_id": prediction_id}


def similar(core: Core, project: str, item: Any, *, n: int = 10, version: int | None = None,
            client: str = "") -> dict[str, Any]:
    """The ``n`` items most like ``item``: ``source`` ``model`` (the model's own likeness),
    ``content`` (catalogue vectors: an item nobody has touched yet), ``category`` (an item added to
    the catalogue after the model trained: its category's popular items) or ``popular``."""
    from ..codecs.interactions import check_id

    start = time.perf_counter()
    item_id, n = check_id(item, "item"), _n(n)
    pid, task, _, model = _served(core, project, version)
    answer = model.recommender.similar(item_id, n)
    if answer["source"] == "popular":
        # an item the model never knew (added to the catalogue since it trained): the popular
        # items of its category, until a retrain gives it a vector
        from ..datasets.catalogue import current, matching_items

        entry = current(core, project).get(item_id)
        if entry is not None and entry["category"] is not None:
            same = [i for i in matching_items(core, project, entry["category"]) if i != item_id]
            answer = model.recommender.recommend(None, n, allowed_items=same)
            answer["source"] = "category"
    said = [str(i) for i in answer["items"]]
    prediction_id = _record(core, project, pid, model, task, {"similar": item_id, "n": n}, answer,
                            {"kind": "similar", "item": item_id, "items": said, "source": answer["source"]},
                            start, client)
    return {"item": item_id, "items": said, "scores": [round(float(x), 5) for x in answer["scores"]],
            "source": answer["source"], "model_version": model.version, "prediction_id": prediction_id}


def chosen(core: Core, project: str, prediction_id: int, item: Any) -> dict[str, Any]:
    """Record that the person of a recommendation chose ``item`` from it: the answer's feedback,
    and one ``feedback`` interaction (a new dataset version, which retrains).

    Only an item the answer held, once per answer: a token that may only ask for
    recommendations can report real choices, not write arbitrary training data.
    """
    from ..codecs.interactions import check_id
    from ..datasets.interactions import add_interactions, interaction_project

    item_id = check_id(item, "item")
    with core.db.read() as s:
        row = prediction_row(s, interaction_project(s, project).id, prediction_id)
        output, already = dict(row.output or {}), row.feedback_label
    if output.get("kind") != "recommend":
        raise Invalid(f"prediction {prediction_id} is not a recommendation for a person (similar items have no "
                      "person to credit the choice to)")
    if item_id not in output.get("items", []):
        raise Invalid(f"item {item_id!r} was not among the {len(output.get('items', []))} items of recommendation "
                      f"{prediction_id}; record choices of other items as interactions (POST …/interactions)")
    if already is not None:
        raise Conflict(f"recommendation {prediction_id} already has its choice ({already!r})")
    added = add_interactions(core, project, [{"user_id": output["user"], "item_id": item_id, "rating": None,
                                              "weight": 1.0, "at": None}], source="feedback",
                             message=f"chosen from recommendation {prediction_id}")
    with core.db.write() as s:
        row = prediction_row(s, interaction_project(s, project).id, prediction_id)
        row.feedback_label = item_id
    return {"prediction_id": prediction_id, "user": output["user"], "item": item_id,
            "interaction_id": added["last_id"], "version": added["version"]}
