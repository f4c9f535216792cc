"""The running platform's shared parts, built once from Settings and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .config import Settings
from ..storage import BlobStore, Database

__all__ = ["Core", "hold_data_dir"]


@dataclass
class Core:
    """Settings, database, blob store and artifact store: what every service function needs.

    >>> core = Core.create(Settings(data_dir="/tmp/dt-doc"))  # doctest: +SKIP
    """

    settings: Settings
    db: Database
    blobs: BlobStore
    # The served models (serving.live.LiveModels); created on first use so storage-only
    # tools never import ONNX Runtime.
    _live: Any = field(default=None, repr=False)
    # Where model files are published and fetched (storage.artifacts); None = model_dir only.
    artifacts: Any = field(default=None, repr=False)
    # Prometheus metrics of this process (observability.Metrics, its own registry).
    metrics: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # The loop's wiring: the scheduler subscribes to new dataset versions (each may retrain).
        from ..scheduler import queue  # noqa: F401

        if self.metrics is None:
            from ..ops.observability import Metrics

            self.metrics = Metrics(self.db)

    @property
    def live(self):
        if self._live is None:
            from ..serving.live import LiveModels

            self._live = self.open_models(LiveModels)
        return self._live

    def open_models(self, kind):
        """A ``serving.live.LiveModels`` (or subclass) over this core's database and model files."""
        from ..storage.artifacts import open_artifacts

        # Through the store, always: it keeps each stored path inside it (storage.files.path_inside).
        fetch = (self.artifacts or open_artifacts(self.settings)).model_file
        return kind(self.db, self.settings.model_dir, self.settings.onnx_threads, fetch=fetch, on_swap=self._swapped)

    def _swapped(self, project_id: int, version: int) -> None:
        from ..storage.rows import ProjectRow

        with self.db.read() as s:
            project = s.get(ProjectRow, project_id)
        self.metrics.swap(project.name if project is not None else str(project_id))

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> "Core":
        # Owner-only where we create it: it holds the database, secrets and everyone's data.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(settings.database_url)
        if migrate:
            db.upgrade()
        from ..storage.artifacts import open_artifacts

        artifacts = open_artifacts(settings)
        return cls(settings=settings, db=db, blobs=artifacts.blobs, artifacts=artifacts)


def hold_data_dir(settings: Settings) -> IO | None:
    """On SQLite, the lock that makes this the only server of its database; None on PostgreSQL.

    SQLite means one process, which always leads the scheduler: a second server on the same
    file would lead too and run every job and send every webhook twice, so it is refused (an
    OS lock on ``server.lock`` beside the database: see ``storage.files.hold_server_lock``).
    The lock is held while the returned file stays open. PostgreSQL deployments run several
    API processes on purpose and elect a leader with an advisory lock instead.
    """
    from sqlalchemy.engine import make_url

    from ..storage.files import hold_server_lock

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return hold_server_lock(Path(url.database).resolve().parent)
