"""task-neutral records: annotations on samples and version items, a prediction's whole output

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

A sample keeps its short ``label`` (the key the data view groups by and filters on: a class, a
number's canonical text) and gains ``annotation``: the whole label as its task's target validated
it, where the key does not say everything (an image's boxes, a mask). Dataset version items carry
the same, so a moved box is a new version. A prediction keeps ``label`` and ``confidence`` (the
columns the prediction list filters and sorts on) and records its whole decoded ``output`` as JSON;
the fixed ``scores`` (class scores) and ``value`` (regression) columns are folded into it, and a
correction gains ``feedback`` beside ``feedback_label`` in the same way as a sample's annotation.
Nothing is lost: every old row's scores or value is in its output.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _outputs(conn, source: str) -> list[dict]:
    """Each prediction's output as the API answered it: a regression model's value, else the class
    answer (label, confidence, scores)."""
    import json

    rows = conn.execute(sa.text(f"SELECT id, label, confidence, {source} FROM predictions")).all()
    out = []
    for pid, label, confidence, scores, value in rows:
        if isinstance(scores, str):  # SQLite hands JSON back as text through a plain query
            scores = json.loads(scores)
        output = {"value": value} if value is not None else {"label": label, "confidence": confidence,
                                                              "scores": scores or {}}
        out.append({"pid": pid, "output": json.dumps(output)})
    return out


def upgrade() -> None:
    with op.batch_alter_table('samples') as batch:
        batch.add_column(sa.Column('annotation', sa.JSON(), nullable=True))
    with op.batch_alter_table('dataset_version_items') as batch:
        batch.add_column(sa.Column('annotation', sa.JSON(), nullable=True))
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('output', sa.JSON(), nullable=False, server_default='{}'))
        batch.add_column(sa.Column('feedback', sa.JSON(), nullable=True))
    conn = op.get_bind()
    outputs = _outputs(conn, "scores, value")
    if outputs:
        cast = "CAST(:output AS JSON)" if conn.dialect.name == "postgresql" else ":output"
        conn.execute(sa.text(f"UPDATE predictions SET output = {cast} WHERE id = :pid"), outputs)
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('scores')
        batch.drop_column('value')


def downgrade() -> None:
    import json

    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('scores', sa.JSON(), nullable=False, server_default='{}'))
        batch.add_column(sa.Column('value', sa.Float(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, output FROM predictions")).all()
    cast = "CAST(:scores AS JSON)" if conn.dialect.name == "postgresql" else ":scores"
    for pid, output in rows:
        output = json.loads(output) if isinstance(output, str) else (output or {})
        conn.execute(sa.text(f"UPDATE predictions SET scores = {cast}, value = :value WHERE id = :pid"),
                     {"pid": pid, "scores": json.dumps(output.get("scores") or {}), "value": output.get("value")})
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('feedback')
        batch.drop_column('output')
    with op.batch_alter_table('dataset_version_items') as batch:
        batch.drop_column('annotation')
    with op.batch_alter_table('samples') as batch:
        batch.drop_column('annotation')
