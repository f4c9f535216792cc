"""Settings: built once by the CLI or the app factory and passed down, never a global."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Server settings, read from ``DYNTRAIN_*`` environment variables.

    >>> Settings(data_dir="/tmp/x").database_url
    'sqlite:////tmp/x/dyntrain.db'
    """

    model_config = SettingsConfigDict(env_prefix="DYNTRAIN_", extra="ignore")

    data_dir: Path = Field(default=Path("dyntrain-data"), description="Blobs, models, caches and the SQLite file.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    host: str = "127.0.0.1"
    port: int = 8000
    max_image_pixels: int = Field(default=40_000_000, description="Larger images are refused (decompression bombs).")
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, description="Largest single uploaded file.")
    max_files_per_request: int = 500
    seed_demo: bool = Field(default=True, description="Create the demo project on first start.")
    scheduler_enabled: bool = Field(default=True, description="Run the training scheduler in this process.")
    scheduler_poll_s: float = 0.5
    job_lease_s: float = Field(default=30.0, description="A running job whose heartbeat is older is considered dead.")
    max_attempts: int = 3
    onnx_threads: int = 2
    webhook_secret: str = Field(default="", description="HMAC key for webhook signatures; empty = generated once in data_dir.")
    webhook_allow_private: bool = Field(default=False, description="Allow webhooks to loopback/private addresses.")
    auth: Literal["auto", "required", "off"] = Field(
        default="auto", description="auto: bound to loopback, requests from this machine need no token, all others "
                                    "do; bound elsewhere, every request needs one. required: always a token. off: "
                                    "no tokens, allowed only on a loopback address.")
    session_secret: str = Field(default="", description="Signs the UI's session cookies; empty = generated once "
                                                        "in data_dir (set the same value on every API machine).")
    cors_origins: str = Field(default="", description="Comma-separated origins allowed to call the API from a "
                                                      "browser; empty = CORS off.")
    allowed_hosts: str = Field(default="", description="Comma-separated host names (Host header) the server answers "
                                                       "besides localhost, 127.0.0.1, ::1 and the bound address, e.g. "
                                                       "its DNS name behind a proxy; *.example.com matches "
                                                       "subdomains, * any (the proxy checks it). Others get a 400.")
    # Scale out (docs/deployment.md).
    role: Literal["all", "api", "inference"] = Field(
        default="all", description="api: API, UI and (when leader) the scheduler; inference: predictions only, "
                                   "no scheduler and no training imports; all: both.")
    artifacts: str = Field(default="", description="Where blobs and model files live for every machine: a path "
                                                   "(shared filesystem) or s3://bucket/prefix; empty = data_dir.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, moto); empty = AWS. "
                                                         "Credentials come from the usual AWS_* variables.")
    ray_address: str = Field(default="", description="Train on Ray: a cluster address (host:port) or 'local' for "
                                                     "a Ray started in this process; empty = in-process executor.")
    ray_num_cpus: float = Field(default=1.0, description="CPUs a training task asks of Ray.")
    ray_gpu_projects: str = Field(default="", description="Comma-separated projects whose jobs ask Ray for a GPU "
                                                          "(num_gpus=1); '*' = all.")
    ray_max_jobs: int = Field(default=0, description="Training tasks in flight on Ray at once; 0 = the cluster's "
                                                     "CPUs / ray_num_cpus.")
    ray_resource_timeout_s: float = Field(default=120.0, description="A job whose resources no Ray node offers "
                                                                    "fails after waiting this long.")
    ray_object_store_mb: int = Field(default=200, description="Object store cap of a Ray started with 'local'.")
    leader_poll_s: float = Field(default=2.0, description="How often a standby API process tries to become the "
                                                          "scheduler leader (PostgreSQL).")
    model_poll_s: float = Field(default=2.0, description="Safety-net poll for promotions made elsewhere.")
    gc_interval_s: float = Field(default=3600.0, description="How often the leader runs housekeeping "
                                                              "(retention, old models, caches, orphan files).")
    gc_grace_s: float = Field(default=3600.0, description="Housekeeping never deletes a file younger than this: "
                                                          "an upload in progress has no database row yet.")
    # Limits (413 beyond them) and observability (README "Observability and limits").
    max_request_bytes: int = Field(default=512 * 1024 * 1024, description="Largest request body, checked before "
                                   "anything is parsed; keep it above max_model_bytes.")
    max_csv_rows: int = Field(default=100_000, description="Most rows (records) read from one CSV/JSONL file.")
    max_model_bytes: int = Field(default=500 * 1024 * 1024, description="Largest uploaded ONNX model file.")
    max_text_chars: int = Field(default=200_000, description="Longest text sample, in characters (a long speech "
                                                             "or article fits).")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="Server logs on stderr: json lines, text, or auto (text on a terminal, "
                                    "json otherwise).")
    log_level: str = Field(default="INFO", description="Server log level (DEBUG, INFO, WARNING …).")
    # Loosely coupled events (README "Events on a message broker"); the events extra.
    events_url: str = Field(default="", description="Publish every project event as a CloudEvent to this broker: "
                                                    "nats://host:4222 (JetStream) or amqp://user:pass@host:5672/; "
                                                    "empty = off.")
    events_source: str = Field(default="", description="The CloudEvents 'source' of published events; empty = "
                                                       "dyntrain://<hostname> (set one value on every API machine).")
    ingest_url: str = Field(default="", description="Take data changes sent as CloudEvents from this broker "
                                                    "(nats://… or amqp://…); empty = off.")
    ingest_subject: str = Field(default="dyntrain-ingest", description="The NATS subject or AMQP queue changes "
                                "arrive on; rejected messages go to '<it>.dead' with the reason.")
    ingest_redeliver_s: float = Field(default=30.0, description="NATS: a message not acknowledged this long "
                                                                "after delivery (a crashed server) is redelivered.")

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        self.data_dir = Path(self.data_dir).resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'dyntrain.db'}"

    @property
    def artifact_root(self) -> Path:
        """Blobs and models: the shared path of ``artifacts``, else data_dir (also the local cache of S3)."""
        url = self.artifacts
        if url and not url.startswith("s3://"):
            return Path(url.removeprefix("file://")).resolve()
        return self.data_dir

    @property
    def blob_dir(self) -> Path:
        return self.artifact_root / "blobs"

    @property
    def model_dir(self) -> Path:
        return self.artifact_root / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
