"""The start-up shortcut's idea of the newest migration is Alembic's own."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from dyntrain.storage import db


def test_head_revision_matches_alembic(core):
    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    assert db.head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    assert core.db.revision() == db.head_revision()  # a fresh database is migrated to it
    core.db.upgrade()  # and a second start leaves it there
    assert core.db.revision() == db.head_revision()
