"""Hot-swappable ONNX sessions: one ``(version, session)`` reference per project.

A promotion loads and warms the new session off the request path, then rebinds one
reference; each request reads the reference once, so no request fails or mixes versions.
Serving imports ONNX Runtime, NumPy and Pillow only — never torch or the training stack.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from sqlalchemy import select

from ..kernel.errors import NotFound, NotReady
from ..kernel.onnx_session import session_options
from ..storage import Database
from ..storage.rows import AliasRow, ModelVersionRow, ProjectRow
from .trunks import TrunkCache, split_composed

__all__ = ["LoadedModel", "LiveModels", "load_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    project_id: int
    version: int
    labels: tuple[str, ...]
    session: ort.InferenceSession
    input_name: str
    # What the modality read off the file: a table model's columns ({"name", "type"}), a detector's
    # input size; None for images and texts.
    schema: Any = None
    target: Any = None  # the task's target: the outputs to run, and how they split per item
    # A backbone model cut in two (serving.trunks): ``session`` is then the trunk, shared with
    # every model whose trunk is byte-identical, and ``head`` this model's own part after ``cut``.
    head: ort.InferenceSession | None = None
    cut: str | None = None
    modality: Any = None  # the task's modality (dyntrain.tasks): it builds the session's feed

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def predict_items(self, items: list):
        """Decoded items (image arrays, strings or rows, see the task's modality) → one output per
        item, as the task's target splits them: probabilities [N, n_classes], values [N, 1], a
        detector's boxes per image …"""
        raw = self.run(self.modality.feed(self.input_names, self.schema, items))
        return self.target.split(raw, items, self)

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The target's outputs (see ``Target.outputs_read``) for one feed."""
        names = list(self.target.outputs_read())
        if self.head is None:
            return self.session.run(names, feed)
        features = self.session.run([self.cut], feed)[0]
        return self.head.run(names, {self.cut: features})


# Trunk sessions by content, shared by every model loaded in this process while any uses them.
TRUNKS = TrunkCache()


def _open(path: Path, threads: int) -> tuple[ort.InferenceSession, ort.InferenceSession | None, str | None, bool]:
    """(session taking the inputs, head or None, cut or None, whether that session is new):
    backbone models share their trunk."""
    split = split_composed(Path(path).read_bytes())
    if split is None:  # served whole, from its path as before
        session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        return session, None, None, True
    trunk, new = TRUNKS.get((split.key, threads), lambda: ort.InferenceSession(
        split.trunk_bytes(), session_options(threads), providers=["CPUExecutionProvider"]))
    # The head is small (a linear layer, or Lite0's last block on 7x7): one thread, no idle pool.
    head = ort.InferenceSession(split.head_bytes, session_options(1), providers=["CPUExecutionProvider"])
    return trunk, head, split.cut, new


_ZEROS = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _warm_head(model: LoadedModel) -> bool:
    """Warm a model's own head with zeros shaped like the cut; its shared trunk is warm already."""
    (cut,) = model.head.get_inputs()
    dtype = _ZEROS.get(cut.type)
    if dtype is None:
        return False
    model.head.run(list(model.target.outputs_read()), {model.cut: np.zeros([d if isinstance(d, int) else 1 for d in cut.shape], dtype)})
    return True


def load_model(path: Path, project_id: int, version: int, labels: list[str], threads: int = 2, *,
               task: str) -> LoadedModel:
    """Open an ONNX model of ``task`` (its name, see :mod:`dyntrain.tasks`) and warm it with one
    dummy input so the first request is not slow. The task's modality feeds it; its target names
    the output it answers in. A target whose model file is not ONNX opens it itself
    (``Target.load_served``), and is hot-swapped the same way."""
    from .. import tasks

    plugin = tasks.get(task)
    other = plugin.target.load_served(path, project_id, version, labels, threads, plugin.modality)
    if other is not None:  # a model file of another format (a recommender's arrays): the target opens it
        return other
    session, head, cut, new = _open(path, threads)
    names = [i.name for i in session.get_inputs()]
    model = LoadedModel(project_id, version, tuple(labels), session, names[0], plugin.modality.columns(session),
                        plugin.target, head, cut, plugin.modality)
    if head is not None and not new and _warm_head(model):
        return model
    model.predict_items([plugin.modality.warmup_item()])
    return model


class LiveModels:
    """The models this process serves: production per project, plus pinned versions on demand."""

    def __init__(self, db: Database, model_dir: Path, threads: int = 2,
                 fetch: Callable[[str], Path] | None = None,
                 on_swap: Callable[[int, int], None] | None = None):
        self.db, self.model_dir, self.threads = db, Path(model_dir), threads
        # Maps a row's relative path to a local file, fetching it from a shared artifact
        # store (S3) on a machine that has not seen it yet; None = read under model_dir.
        self.fetch = fetch
        self.on_swap = on_swap  # told (project_id, version) after each rebind: metrics
        self._production: dict[int, LoadedModel] = {}
        self._pinned: dict[tuple[int, int], LoadedModel] = {}
        self._lock = threading.Lock()  # serialises loading, never held while serving
        self.swaps = 0

    def _load_row(self, row: ModelVersionRow) -> LoadedModel:
        path = self.fetch(row.path) if self.fetch is not None else self.model_dir / row.path
        return load_model(path, row.project_id, row.version, row.card.get("labels") or [], self.threads,
                          task=self._task(row))

    def _task(self, row: ModelVersionRow) -> str:
        """The task the model was made for: its card says (cards older than that: its project's)."""
        if row.card.get("task"):
            return row.card["task"]
        with self.db.read() as s:
            return s.scalar(select(ProjectRow.task).where(ProjectRow.id == row.project_id))

    def _row(self, project_id: int, version: int) -> ModelVersionRow:
        with self.db.read() as s:
            row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == project_id,
                                                          ModelVersionRow.version == version)).first()
        if row is None:
            raise NotFound(f"model version {version} does not exist")
        return row

    def production(self, project_id: int) -> LoadedModel:
        """The served model, loading it on first use."""
        model = self._production.get(project_id)
        if model is not None:
            return model
        self.refresh(project_id)
        model = self._production.get(project_id)
        if model is None:
            raise NotReady("this project has no model in service yet: add examples of at least two classes "
                           "and wait for training (or POST …/train)")
        return model

    def version(self, project_id: int, version: int) -> LoadedModel:
        current = self._production.get(project_id)
        if current is not None and current.version == version:
            return current
        key = (project_id, version)
        if key not in self._pinned:
            with self._lock:
                if key not in self._pinned:
                    if len(self._pinned) > 16:
                        self._pinned.pop(next(iter(self._pinned)))
                    self._pinned[key] = self._load_row(self._row(project_id, version))
        return self._pinned[key]

    def refresh(self, project_id: int) -> int | None:
        """Make the served model match the ``production`` alias; returns the version served."""
        with self.db.read() as s:
            version = s.scalar(select(AliasRow.version).where(AliasRow.project_id == project_id,
                                                               AliasRow.name == "production"))
        current = self._production.get(project_id)
        if version is None or (current is not None and current.version == version):
            return version
        with self._lock:
            current = self._production.get(project_id)
            if current is None or current.version != version:
                model = self._load_row(self._row(project_id, version))  # load + warm, off the request path
                self._production[project_id] = model  # the one atomic rebind
                self.swaps += 1
                log.info("project %s now serves model version %s", project_id, version)
                if self.on_swap is not None:
                    try:
                        self.on_swap(project_id, version)
                    except Exception:  # metrics must never fail a swap
                        log.warning("swap hook failed", exc_info=True)
        return version

    def refresh_all(self) -> None:
        """Safety-net poll: pick up promotions made by other processes."""
        with self.db.read() as s:
            pairs = s.execute(select(AliasRow.project_id, AliasRow.version).where(AliasRow.name == "production")).all()
        for project_id, version in pairs:
            current = self._production.get(project_id)
            if current is not None and current.version != version:
                try:
                    self.refresh(project_id)
                except Exception:
                    log.exception("could not load model version %s of project %s", version, project_id)

    def load_all(self) -> int:
        """Serve every project's production model (inference replicas: at start, on reconnect, as the poll).

        One query; only projects whose served version differs are (re)loaded.
        """
        with self.db.read() as s:
            pairs = s.execute(select(AliasRow.project_id, AliasRow.version).where(AliasRow.name == "production")).all()
        for project_id, version in pairs:
            current = self._production.get(project_id)
            if current is None or current.version != version:
                try:
                    self.refresh(project_id)
                except Exception:
                    log.exception("could not load the production model of project %s", project_id)
        return len(self._production)

    def served_versions(self) -> dict[int, int]:
        return {pid: m.version for pid, m in self._production.items()}

    def forget(self, project_id: int) -> None:
        self._production.pop(project_id, None)
