"""Dedicated PostgreSQL connections (outside the SQLAlchemy pool) for LISTEN and advisory locks.

Both need one long-lived session: a NOTIFY reaches only the session that LISTENs, and an
advisory lock lives exactly as long as the session that took it.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

__all__ = ["is_postgres", "libpq_url", "connect"]

# Notice a dead peer in ~30 s instead of the kernel's default of hours.
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def libpq_url(url: str) -> str:
    """SQLAlchemy URL → libpq URL.

    >>> libpq_url("postgresql+psycopg://u:p@127.0.0.1:5432/db")
    'postgresql://u:p@127.0.0.1:5432/db'
    """
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str, application_name: str, timeout: float = 5.0):
    """An autocommit psycopg connection tagged with ``application_name`` (visible in pg_stat_activity)."""
    import psycopg

    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=max(1, int(timeout)),
                           application_name=application_name, **_KEEPALIVE)
