"""The running platform's shared parts, built once from Settings and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .storage import BlobStore, Database

__all__ = ["Core"]


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
        if self.metrics is None:
            from .observability import Metrics

            self.metrics = Metrics(self.db)

    @property
    def live(self):
        if self._live is None:
            from .serving.live import LiveModels

            fetch = self.artifacts.model_file if self.artifacts is not None else None
            self._live = LiveModels(self.db, self.settings.model_dir, self.settings.onnx_threads, fetch=fetch,
                                    on_swap=self._swapped)
        return self._live

    def _swapped(self, project_id: int, version: int) -> None:
        from .storage.rows import ProjectRow

        with self.db.read() as s:
            project = s.get(ProjectRow, project_id)
        self.metrics.swap(project.name if project is not None else str(project_id))

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> "Core":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        if migrate:
            db.upgrade()
        from .storage.artifacts import open_artifacts

        artifacts = open_artifacts(settings)
        return cls(settings=settings, db=db, blobs=artifacts.blobs, artifacts=artifacts)
