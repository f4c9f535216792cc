"""prediction input index: the predictions made on one input, for a sample's prediction history

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

An enlarged sample in the data grid lists the predictions whose input is that sample's content
(``input_hash`` equals its ``content_hash``). Without an index that is a scan of the project's
records per click; (project_id, input_hash, id) makes it one index range, newest last.
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_project_input", "predictions", ["project_id", "input_hash", "id"])


def downgrade() -> None:
    op.drop_index("ix_predictions_project_input", table_name="predictions")
