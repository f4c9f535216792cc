"""The notebook side of :class:`dyntrain.client.Client`: one project's data, training, models and
predictions in a few calls, with typed answers and the server's own words in every error.

>>> from dyntrain.client import Client
>>> shelf = Client("http://127.0.0.1:8000").project("shelf", create=True)  # doctest: +SKIP
>>> shelf.add(["mug1.jpg", "mug2.jpg", "cup1.jpg", "cup2.jpg"], labels=["mug", "mug", "cup", "cup"])  # doctest: +SKIP
>>> run = shelf.train(wait=True, progress=print)  # doctest: +SKIP
>>> shelf.predict("new.jpg")[0].label  # doctest: +SKIP
'mug'

Inputs are what a notebook has at hand: image paths, bytes, PIL images or NumPy arrays (HWC
uint8, or HW grey); texts; table rows as dicts or a pandas DataFrame (its target column named).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

__all__ = ["Project", "Prediction", "Run", "ModelVersion", "TrainingFailed", "image_bytes"]


class TrainingFailed(Exception):
    """A training job ended without a model: ``job`` is the server's record, ``message`` its reason."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.message = f"training job {job.get('id')} {job.get('status')}: {job.get('error') or 'no reason given'}"
        super().__init__(self.message)


@dataclass(frozen=True)
class Prediction:
    """One answer: ``label``/``confidence``/``scores`` (classes), ``value`` (numbers), ``boxes``
    (detection); ``explanation`` when asked for; ``error`` for an input the server refused."""

    label: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    value: float | None = None
    boxes: list[dict[str, Any]] | None = None
    model_version: int | None = None
    prediction_id: int | None = None
    explanation: dict[str, Any] | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> "Prediction":
        return cls(d.get("label"), d.get("confidence"), d.get("scores"), d.get("value"), d.get("boxes"),
                   d.get("model_version"), d.get("prediction_id"), d.get("explanation"), d.get("error"), d)


@dataclass(frozen=True)
class Run:
    """A training run: what it chose, how it scored, which model it made and what the gate did."""

    id: int
    status: str
    learner: str | None
    model_version: int | None
    promoted: bool | None
    accuracy: float | None = None
    macro_f1: float | None = None
    r2: float | None = None
    mae: float | None = None
    gate_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def per_class(self) -> dict[str, dict[str, Any]]:
        """Each class's holdout scores (``precision``, ``recall``, ``f1``, ``support`` for classes;
        the task's own for boxes and masks). Runs from :meth:`Project.run` and ``train()`` carry
        them; the summaries of :meth:`Project.runs` do not (an empty dict)."""
        return ((self.raw.get("result") or {}).get("metrics") or {}).get("per_class") or {}

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> "Run":
        gate = d.get("gate") or (d.get("result") or {}).get("gate") or {}
        return cls(d["id"], d["status"], d.get("learner"), d.get("model_version"),
                   gate.get("promoted") if gate else None, d.get("accuracy"), d.get("macro_f1"), d.get("r2"),
                   d.get("mae"), gate.get("reason"), d)


@dataclass(frozen=True)
class ModelVersion:
    """A registered model: ``aliases`` holds ``production`` for the one in service."""

    version: int
    source: str
    run_id: int | None
    aliases: tuple[str, ...]
    sha256: str
    card: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def in_service(self) -> bool:
        return "production" in self.aliases

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> "ModelVersion":
        return cls(d["version"], d["source"], d.get("run_id"), tuple(d.get("aliases") or ()), d["sha256"],
                   d.get("card") or {})


def image_bytes(item: Any) -> tuple[str, bytes]:
    """(file name, encoded bytes) of a path, bytes, PIL image or NumPy array."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        return path.name, path.read_bytes()
    if isinstance(item, (bytes, bytearray, memoryview)):
        return "upload", bytes(item)
    if hasattr(item, "save") and hasattr(item, "mode"):  # a PIL image
        buf = io.BytesIO()
        item.save(buf, "PNG")
        return "image.png", buf.getvalue()
    if hasattr(item, "__array__"):
        import numpy as np
        from PIL import Image

        arr = np.asarray(item)
        if arr.dtype != np.uint8:
            raise TypeError(f"an image array must be uint8 (0-255), got {arr.dtype}; scale it first")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        return "image.png", buf.getvalue()
    raise TypeError(f"cannot send a {type(item).__name__} as an image: pass a path, bytes, a PIL image or an array")


def _many(items: Any) -> list:
    """One input or many: a single path/bytes/image/array/text/dict becomes a list of one."""
    if items is None:
        return []
    if isinstance(items, (str, bytes, bytearray, os.PathLike, dict)) or hasattr(items, "mode"):
        return [items]
    if hasattr(items, "__array__") and getattr(items, "ndim", 0) in (2, 3) and not hasattr(items, "columns"):
        return [items]  # one image array (a batch is 4-D, or a list)
    return list(items)


def _rows(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame: NaN → missing
        import math

        return [{k: (None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v)
                 for k, v in r.items()} for r in rows.to_dict(orient="records")]
    return [dict(r) for r in _many(rows)]


class Project:
    """One project on the server. Every call is one REST request (``train(wait=True)`` polls)."""

    def __init__(self, client: "Client", name: str):
        self.client, self.name = client, name

    def __repr__(self) -> str:
        return f"Project({self.name!r})"

    @property
    def _p(self) -> str:
        from urllib.parse import quote

        return f"/projects/{quote(self.name, safe='')}"

    # -- reading -----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The project with its status: samples, model in service, training."""
        return self.client.get(self._p)

    def classes(self) -> list[dict[str, Any]]:
        return self.client.get(f"{self._p}/classes")

    def runs(self, limit: int = 50) -> list[Run]:
        """Training history, newest first."""
        return [Run.from_api(r) for r in self.client.get(f"{self._p}/runs", params={"limit": limit})]

    def run(self, run_id: int) -> Run:
        """Everything one run recorded (``raw`` holds the metrics, candidates and log)."""
        return Run.from_api(self.client.get(f"/runs/{run_id}"))

    def models(self) -> list[ModelVersion]:
        """Model versions, newest first."""
        return [ModelVersion.from_api(m) for m in self.client.get(f"{self._p}/models")]

    def model_file(self, version: int) -> bytes:
        """A model version's ONNX file."""
        return self.client.download(f"{self._p}/models/{version}/file")

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """Follow the project's live events (training progress, promotions) as they happen."""
        return self.client.events(self.name, after)

    # -- changing ----------------------------------------------------------------------------
    def add(self, files: Any = None, labels: Any = None, *, texts: Any = None, rows: Any = None,
            target: str | None = None) -> dict[str, Any]:
        """Add labelled examples as ONE dataset version (retraining follows by itself when the
        project's ``auto_train`` is on). ``labels``: one per item, or one for all. Images are
        ``files`` (paths, bytes, PIL images, arrays); texts are ``texts``; table rows are ``rows``
        (dicts or a DataFrame) holding the ``target`` column. Any bad item rejects the whole call."""
        given = sum(x is not None for x in (files, texts, rows))
        if given != 1:
            raise ValueError("pass exactly one of files=, texts= or rows=")
        if rows is not None:
            if not target:
                raise ValueError("rows need target= (the column to predict)")
            return self.client.post(f"{self._p}/samples/rows", json={"rows": _rows(rows), "target": target})
        items = _many(files if files is not None else texts)
        names = [labels] * len(items) if isinstance(labels, str) else list(_many(labels))
        if len(names) != len(items):
            raise ValueError(f"{len(items)} examples but {len(names)} labels: give one label per example, or one for all")
        if texts is not None:
            return self.client.post(f"{self._p}/samples/texts",
                                    json={"items": [{"text": t, "label": lab} for t, lab in zip(items, names)]})
        encoded = [image_bytes(x) for x in items]
        return self.client.post(f"{self._p}/samples", files=[("files", e) for e in encoded],
                                data={"labels": [str(x) if not isinstance(x, (list, dict)) else _json(x)
                                                 for x in names]})

    def train(self, wait: bool = True, progress: Callable[[dict[str, Any]], Any] | bool | None = None,
              timeout: float | None = None, poll_s: float = 0.5) -> Run | dict[str, Any]:
        """Train now. With ``wait`` (the default) follow the job until it ends and return its
        :class:`Run`; ``progress`` is called with each new ``{"stage", "percent", "eta_s", …}``
        (``True`` prints them). Raises :class:`TrainingFailed` when the job fails or is cancelled."""
        accepted = self.client.post(f"{self._p}/train")
        if not wait:
            return accepted
        report = _printer if progress is True else progress or None
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.client.get(f"{self._p}/jobs/{accepted['job_id']}")
            step = job.get("progress") or {}
            if report is not None and step and step != last:
                report(step)
                last = step
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"training job {job['id']} still {job['status']} after {timeout:.0f} s; "
                                   f"it goes on on the server (follow it with project.events())")
            time.sleep(poll_s)
        if job["status"] != "succeeded":
            raise TrainingFailed(job)
        return self.run(job["run_id"])

    def predict(self, files: Any = None, *, texts: Any = None, rows: Any = None, explain: str | None = None,
                version: int | None = None) -> list[Prediction]:
        """Predict with the model in service (or ``version``): one :class:`Prediction` per input.
        ``explain``: ``cam``/``occlusion``/``auto`` for images, ``words`` for texts."""
        params = {k: v for k, v in (("explain", explain), ("version", version)) if v is not None}
        if rows is not None:
            answer = self.client.post(f"{self._p}/predict/rows", json={"rows": _rows(rows)}, params=params)
        elif texts is not None:
            answer = self.client.post(f"{self._p}/predict/texts", json={"texts": _many(texts)}, params=params)
        elif files is not None:
            answer = self.client.post(f"{self._p}/predict", params=params,
                                      files=[("files", image_bytes(x)) for x in _many(files)])
        else:
            raise ValueError("pass files=, texts= or rows=")
        return [Prediction.from_api(p) for p in answer["predictions"]]

    def explain(self, prediction: Prediction | int, method: str = "auto", timeout: float = 120.0) -> dict[str, Any]:
        """Why a recorded prediction said what it said, explained later with the model version that
        answered it (``auto``: words for texts, else a heatmap). Waits while the server computes it;
        an :class:`ApiError` 409 when its input was not kept, 410 when that version was deleted."""
        pid = prediction.prediction_id if isinstance(prediction, Prediction) else int(prediction)
        deadline = time.monotonic() + timeout
        while True:
            e = self.client.get(f"{self._p}/predictions/{pid}/explanation", params={"method": method})
            if e.get("status") != "pending" or time.monotonic() > deadline:
                return e
            time.sleep(1.0)

    def feedback(self, prediction: Prediction | int, label: Any, add_to_training: bool = False) -> dict[str, Any]:
        """Record the right answer to a prediction (and, with ``add_to_training``, learn from it)."""
        pid = prediction.prediction_id if isinstance(prediction, Prediction) else int(prediction)
        return self.client.post(f"{self._p}/predictions/{pid}/feedback",
                                json={"label": label, "add_to_training": add_to_training})

    def promote(self, version: int) -> dict[str, Any]:
        """Serve ``version`` now."""
        return self.client.post(f"{self._p}/models/{version}/promote")

    def rollback(self) -> dict[str, Any]:
        """Serve the version that served before the current one."""
        return self.client.post(f"{self._p}/rollback")

    def update(self, *, settings: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
        """Change settings (merged) or the description."""
        body = {k: v for k, v in (("settings", settings), ("description", description)) if v is not None}
        return self.client.patch(self._p, json=body)

    def delete(self) -> None:
        """Delete the project and everything in it."""
        self.client.delete(self._p)


def _json(x: Any) -> str:
    import json

    return json.dumps(x)


def _printer(step: dict[str, Any]) -> None:
    eta = step.get("eta_s")
    print(f"{step.get('stage', '?'):<12} {step.get('percent', 0):5.1f}%"
          + (f"  ~{eta:.0f} s left" if isinstance(eta, (int, float)) else "")
          + (f"  {step['candidate']}" if step.get("candidate") else ""), flush=True)
