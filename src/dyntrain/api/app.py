"""The FastAPI app factory."""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text

from .. import __version__
from ..kernel.config import Settings
from ..kernel.core import Core
from ..access.audit import AuditMiddleware
from ..access.auth import ensure_admin_token, is_loopback
from ..kernel.errors import Invalid
from .deps import API_PREFIX, caller
from .errors import install_error_handlers
from .middleware import install_observability

__all__ = ["create_app"]


def _start_brokers(core: Core, background) -> list:
    """The broker publisher (on the scheduler leader only) and the ingest consumer, when configured."""
    parts: list = []
    if core.settings.events_url:
        from ..brokers.publisher import BrokerPublisher

        leadership = getattr(background, "leadership", None)
        parts.append(BrokerPublisher(core, leading=lambda: leadership is None or leadership.is_leader).start())
    if core.settings.ingest_url:
        from ..brokers.ingest import IngestConsumer

        parts.append(IngestConsumer(core).start())
    from ..ops import mlflow_log

    mlflow_log.watch(core)  # runs and promotions to MLflow when DYNTRAIN_MLFLOW_URI is set (off: a no-op)
    return parts


def create_app(settings: Settings | None = None, core: Core | None = None) -> FastAPI:
    """Build the app: migrate the schema, seed the demo project, start the scheduler.

    ``settings.role == "inference"`` builds a prediction replica: projects, models and
    predictions only — no UI, no uploads, no scheduler, no training imports.

    >>> app = create_app(Settings(data_dir="/tmp/dt", seed_demo=False))  # doctest: +SKIP
    """
    core = core or Core.create(settings or Settings())
    role = core.settings.role
    if core.settings.auth == "off" and not is_loopback(core.settings.host):
        raise Invalid(f"refusing to start without authentication on {core.settings.host}: auth=off is only "
                      "allowed on a loopback address; use auth=auto or auth=required (DYNTRAIN_AUTH)")
    first_admin_token = ensure_admin_token(core) if role != "inference" else None
    if core.settings.seed_demo and role != "inference":
        from ..ops.demo import seed_demo

        seed_demo(core)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..scheduler.runner import start_background

        background = start_background(core)
        app.state.background = background
        brokers = _start_brokers(core, background) if role != "inference" else []
        try:
            yield
        finally:
            for part in brokers:
                part.stop()
            background.stop()

    app = FastAPI(title="dyntrain", version=__version__, lifespan=lifespan,
                  description="Dynamic training: small, changing datasets; automatic retraining; "
                              "measured models; safe hot swap.",
                  dependencies=[Depends(caller)])
    app.state.core = core
    app.state.background = None
    app.state.first_admin_token = first_admin_token  # the CLI prints it once
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware, core=core)
    if core.settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in core.settings.cors_origins.split(",")],
                           allow_methods=["*"], allow_headers=["Authorization", "Content-Type", "X-Request-ID"])

    install_observability(app, core)  # last = outermost: request ids, latency, size limit; GET /metrics

    from . import access, models, projects, recommend

    api = APIRouter(prefix=API_PREFIX)
    if role == "inference":
        modules = (access, projects, models, recommend)
    else:
        from . import admin, catalogue, data, people, training, unlabelled

        modules = (access, projects, data, unlabelled, training, models, recommend, people, catalogue, admin)
        app.include_router(recommend.data_router)
    for module in modules:
        app.include_router(module.router)

    @api.get("/health", tags=["health"])
    def health():
        """Liveness for load balancers: status, version, database reachable, the model versions served here."""
        try:
            with core.db.read() as s:
                s.execute(text("SELECT 1"))
            db_ok = True
        except Exception:
            db_ok = False
        background = app.state.background
        leadership = getattr(background, "leadership", None)
        listener = getattr(background, "listener", None)
        return {"status": "ok" if db_ok else "degraded", "version": __version__, "database": db_ok,
                "serving": {str(pid): v for pid, v in core.live.served_versions().items()},
                "role": role, "leader": bool(leadership is not None and leadership.is_leader),
                "listening": bool(listener is not None and listener.connected.is_set()),
                "training_stack_loaded": "torch" in sys.modules}

    app.include_router(api)
    if role == "inference":
        return app

    from fastapi.staticfiles import StaticFiles

    from ..web import STATIC_DIR, access, extra_pages, pages

    app.include_router(access.router)
    app.include_router(pages.router)
    app.include_router(extra_pages.router)  # data versions and model versions pages
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
