"""The web UI: HTML pages (``pages.router``) and static files, served by the API's app."""

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
