"""The start-up shortcut's idea of the newest migration is Alembic's own."""

from __future__ import annotations

import pytest
from alembic.config import Config
from sqlalchemy.exc import IntegrityError
from alembic.script import ScriptDirectory

from dyntrain.storage import db


def test_head_revision_matches_alembic(core):
    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    assert db.head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    assert core.db.revision() == db.head_revision()  # a fresh database is migrated to it
    core.db.upgrade()  # and a second start leaves it there
    assert core.db.revision() == db.head_revision()


def test_0003_keeps_every_row_and_deleted_ids_stay_unused(database_url):
    """Upgrading a 0002 database with data: SQLite tables are rebuilt AUTOINCREMENT without losing a
    row (foreign keys are off while they are rebuilt, on again after), rollbacks are marked."""
    from alembic import command
    from sqlalchemy import text

    database = db.Database(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    at = "'2026-12-01 00:00:00'"
    with database.engine.begin() as c:
        for name in ("a", "b"):
            c.execute(text(f"INSERT INTO projects (name, task, description, settings, head_version, created_at, "
                           f"updated_at) VALUES ('{name}', 'image-classification', '', '{{}}', 0, {at}, {at})"))
        c.execute(text("INSERT INTO jobs (project_id, status, trigger, run_at, attempt, max_attempts, "
                       f"cancel_requested, progress, created_at) VALUES (2, 'delayed', 'auto', {at}, 0, 3, false, "
                       f"'{{}}', {at})"))
        c.execute(text(f"INSERT INTO events (project_id, type, data, created_at) VALUES (2, 'x', '{{}}', {at})"))
        c.execute(text("INSERT INTO alias_history (project_id, alias, version, previous_version, reason, created_at) "
                       f"VALUES (2, 'production', 1, 2, 'rolled back from version 2', {at})"))
    database.upgrade()
    assert database.revision() == db.head_revision()
    with database.engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM jobs")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM events")).scalar() == 1
        assert c.execute(text("SELECT action FROM alias_history")).scalar() == "rollback"
        c.execute(text("DELETE FROM projects WHERE name = 'b'"))
        assert c.execute(text("SELECT count(*) FROM jobs")).scalar() == 0  # cascades still hold
        c.execute(text(f"INSERT INTO projects (name, task, description, settings, head_version, created_at, "
                       f"updated_at) VALUES ('c', 'image-classification', '', '{{}}', 0, {at}, {at})"))
        assert c.execute(text("SELECT id FROM projects WHERE name = 'c'")).scalar() == 3  # not b's 2
        # the one-pending-job-per-project rule survived the rebuild
        insert_job = text("INSERT INTO jobs (project_id, status, trigger, run_at, attempt, max_attempts, "
                          f"cancel_requested, progress, created_at) VALUES (3, 'delayed', 'auto', {at}, 0, 3, "
                          f"false, '{{}}', {at})")
        c.execute(insert_job)
    with pytest.raises(IntegrityError), database.engine.begin() as c:
        c.execute(insert_job)
    database.dispose()


def test_0005_moves_scores_and_values_into_outputs_and_back(database_url):
    """Task-neutral records: a 0004 database's class and regression predictions keep every answer
    (scores, value) in their new ``output``; samples and version items gain an empty annotation;
    the downgrade gives the old columns back unchanged."""
    import json

    from alembic import command
    from sqlalchemy import text

    database = db.Database(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))

    def migrate(step, revision):
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    migrate(command.upgrade, "0004")
    at = "'2026-12-01 00:00:00'"
    with database.engine.begin() as c:
        c.execute(text(f"INSERT INTO projects (name, task, description, settings, head_version, created_at, "
                       f"updated_at) VALUES ('p', 'image-classification', '', '{{}}', 0, {at}, {at})"))
        c.execute(text("INSERT INTO samples (project_id, kind, content_hash, label, source, meta, status, created_at, "
                       f"updated_at) VALUES (1, 'image', 'h1', 'mug', 'upload', '{{}}', 'active', {at}, {at})"))
        insert = ("INSERT INTO predictions (project_id, model_version, label, confidence, scores, input_stored, "
                  "latency_ms, client, feedback_label, value, created_at) VALUES (1, 1, {label}, {conf}, '{scores}', "
                  f"false, 1.5, '', {{feedback}}, {{value}}, {at})")
        c.execute(text(insert.format(label="'mug'", conf=0.9, scores='{"mug": 0.9, "cup": 0.1}', feedback="'cup'",
                                     value="NULL")))
        c.execute(text(insert.format(label="NULL", conf=0.0, scores="{}", feedback="NULL", value=151.5)))
    database.upgrade()
    with database.engine.begin() as c:
        outputs = [(json.loads(o) if isinstance(o, str) else o, f) for o, f in
                   c.execute(text("SELECT output, feedback_label FROM predictions ORDER BY id")).all()]
        assert outputs == [({"label": "mug", "confidence": 0.9, "scores": {"mug": 0.9, "cup": 0.1}}, "cup"),
                           ({"value": 151.5}, None)]
        assert c.execute(text("SELECT annotation FROM samples")).scalar() is None
    from dyntrain.storage.rows import PredictionRow
    from sqlalchemy.orm import Session

    with Session(database.engine) as s:  # the ORM reads them: the entity's scores and value are the old ones
        first, second = (r.to_entity() for r in s.query(PredictionRow).order_by(PredictionRow.id))
        assert (first.scores, first.value, second.value, second.scores) == ({"mug": 0.9, "cup": 0.1}, None, 151.5, {})
    migrate(command.downgrade, "0004")
    with database.engine.begin() as c:
        rows = c.execute(text("SELECT scores, value FROM predictions ORDER BY id")).all()
        assert [(json.loads(s) if isinstance(s, str) else s, v) for s, v in rows] == [
            ({"mug": 0.9, "cup": 0.1}, None), ({}, 151.5)]
    database.dispose()
