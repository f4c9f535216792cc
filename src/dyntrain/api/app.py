"""The FastAPI app factory."""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text

from .. import __version__
from ..config import Settings
from ..core import Core
from .deps import caller
from .errors import install_error_handlers

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, core: Core | None = None) -> FastAPI:
    """Build the app: migrate the schema, seed the demo project, start the scheduler.

    ``settings.role == "inference"`` builds a prediction replica: projects, models and
    predictions only — no UI, no uploads, no scheduler, no training imports.

    >>> app = create_app(Settings(data_dir="/tmp/dt", seed_demo=False))  # doctest: +SKIP
    """
    core = core or Core.create(settings or Settings())
    role = core.settings.role
    if core.settings.seed_demo and role != "inference":
        from ..demo import seed_demo

        seed_demo(core)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..scheduler.runner import start_background

        background = start_background(core)
        app.state.background = background
        try:
            yield
        finally:
            background.stop()

    app = FastAPI(title="dyntrain", version=__version__, lifespan=lifespan,
                  description="Dynamic training: small, changing datasets; automatic retraining; "
                              "measured models; safe hot swap.",
                  dependencies=[Depends(caller)])
    app.state.core = core
    app.state.background = None
    install_error_handlers(app)

    from . import models, projects

    api = APIRouter(prefix="/api/v1")
    if role == "inference":
        modules = (projects, models)
    else:
        from . import data, training

        modules = (projects, data, training, models)
    for module in modules:
        api.include_router(module.router)

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

    from ..web import STATIC_DIR, pages

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
