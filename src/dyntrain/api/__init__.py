"""HTTP API (FastAPI). Translates requests to service calls; decides nothing itself."""

from .app import create_app

__all__ = ["create_app"]
