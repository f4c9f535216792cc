"""Engine, sessions and schema upgrade for SQLite (embedded) and PostgreSQL (shared)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "is_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision) = ['\"]?([\w]+|None)['\"]?$", re.M)


@functools.cache
def head_revision() -> str:
    """The newest migration: the revision no other one names as its down_revision."""
    revisions, parents = set(), set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        found = dict(m.groups() for m in _REVISION.finditer(path.read_text()))
        revisions.add(found["revision"])
        parents.add(found.get("down_revision"))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one line; heads: {sorted(heads)}")
    return heads.pop()
# Opening a transaction (connect + BEGIN) that fails with a transient error is retried after
# these pauses: nothing of the caller's work has run yet, so a retry can never apply it twice.
_BEGIN_RETRY_PAUSES_S = (0.1, 0.5, 1.5)
_SQLITE_BUSY_TIMEOUT_S = 30.0


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying later: connection lost or refused, SQLite busy/locked.

    >>> is_transient(ValueError())
    False
    """
    # DBAPI's OperationalError is the class of "the database, not the statement, failed";
    # InterfaceError covers a connection the driver already knows is closed.
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


class Database:
    """One engine per process plus session factories.

    ``read()`` is for queries; ``write()`` takes SQLite's write lock up front
    (``BEGIN IMMEDIATE``) so read-then-write transactions never fail half-way with
    "database is locked" — on PostgreSQL callers lock rows with ``FOR UPDATE`` instead.

    Both open their transaction before yielding, and retry that step on a transient error
    (a PostgreSQL connection that died, a server restarting); pooled PostgreSQL connections
    are pinged before use. SQLite waits for a busy write lock up to the URL's ``timeout``
    query parameter (seconds, default 30: ``sqlite:///x.db?timeout=5``). What still fails
    raises ``sqlalchemy.exc.OperationalError``, which the API answers with a 503.

    >>> db = Database("sqlite://")  # doctest: +SKIP
    """

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            parsed = make_url(url)
            path = parsed.database or ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _create_owner_only(Path(path))
            timeout = float(parsed.query.get("timeout", _SQLITE_BUSY_TIMEOUT_S))
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout})
            _sqlite_pragmas(self.engine, timeout)
            write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            # pool_pre_ping: a pooled connection the server dropped (restart, pg_terminate_backend,
            # idle timeout) is replaced at checkout instead of failing the request.
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                                        connect_args={"application_name": "dyntrain"})
            write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (run on every start; idempotent).

        A schema already at the newest revision is left alone without importing Alembic
        (half a second of every replica's start-up)."""
        if self.revision() == head_revision():
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.connect() as conn, _sqlite_foreign_keys_off(conn, self.is_sqlite), conn.begin():
            if not self.is_sqlite:
                # Several processes may start together: one migrates, the others wait.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if self.is_sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").first()):
                raise RuntimeError(f"the schema upgrade broke a reference {tuple(broken)}; nothing was changed")

    def revision(self) -> str | None:
        """The schema's Alembic revision (None before the first migration)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:  # no table yet
            return None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._open(self._read) as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._open(self._write) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def write_retrying(self, work: Callable[[Session], T], attempts: int = 3) -> T:
        """Run ``work`` in a write transaction; after a transient error re-run the whole transaction.

        Only for work that is safe to repeat: nothing outside the database, and harmless if
        applied twice (a connection lost during COMMIT leaves unknown whether it committed).
        SQLite is not retried: its busy handler has already waited.

        >>> db.write_retrying(lambda s: s.add(AuditRow(actor="a", action="b")))  # doctest: +SKIP
        """
        pauses = _BEGIN_RETRY_PAUSES_S[:max(0, attempts - 1)]
        for attempt, pause in enumerate((*pauses, None), start=1):
            try:
                with self.write() as session:
                    return work(session)
            except DBAPIError as exc:
                if pause is None or self.is_sqlite or not is_transient(exc):
                    raise
                log.warning("write failed (%s); re-running the transaction (%d) in %.1f s",
                            str(exc.orig).strip()[:200], attempt, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _open(self, factory: sessionmaker) -> Iterator[Session]:
        """A session whose transaction is already open (connected, BEGIN sent), retrying that step."""
        session = factory()
        try:
            for attempt, pause in enumerate((*_BEGIN_RETRY_PAUSES_S, None), start=1):
                try:
                    session.connection()  # autobegin: check out (pinged), BEGIN [IMMEDIATE]
                    break
                except DBAPIError as exc:
                    session.rollback()
                    # SQLite's busy handler has already waited out its timeout: report, do not wait again.
                    if pause is None or self.is_sqlite or not is_transient(exc):
                        raise
                    log.warning("database unavailable (%s); retry %d in %.1f s", exc.orig, attempt, pause)
                    time.sleep(pause)
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _create_owner_only(path: Path) -> None:
    """Create a new SQLite file readable by its owner alone (an empty file is an empty database).

    SQLite would create it with the umask's mode, often world-readable, and gives its -wal and
    -shm files the mode of the database file; an existing file is left as it is."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@contextlib.contextmanager
def _sqlite_foreign_keys_off(conn, is_sqlite: bool) -> Iterator[None]:
    """SQLite alters a table by rebuilding it, and dropping the old table with foreign keys on
    would delete every row referencing it (cascades). The pragma is ignored inside a
    transaction, so it is set on the connection before the migration's transaction begins."""
    if not is_sqlite:
        yield
        return
    conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _sqlite_pragmas(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin (SQLAlchemy docs, pysqlite).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")
