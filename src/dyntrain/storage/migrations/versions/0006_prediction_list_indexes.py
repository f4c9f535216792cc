"""prediction list indexes: one per order and filter of a project's prediction list

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

The prediction list pages a project's records newest first or least confident first, filtered by
class, model version or confidence. With only (project_id, created_at), a page at 10^6 records
sorted the project's rows or walked the primary key past other projects' records; each index
below ends in the id, so every order and filter is one index range and the next page starts
where the last one ended (keyset pagination). Measured by ``benchmarks/growth.py``.
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_predictions_project_id": ["project_id", "id"],
    "ix_predictions_project_label": ["project_id", "label", "id"],
    "ix_predictions_project_confidence": ["project_id", "confidence", "id"],
    "ix_predictions_project_version": ["project_id", "model_version", "id"],
}


# PostgreSQL keeps the confidence in the newest-first index too, so "newest, confidence ≤ x" is
# filtered inside the index instead of fetching each skipped record.
_INCLUDE = {"ix_predictions_project_id": ["confidence"]}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "predictions", columns, postgresql_include=_INCLUDE.get(name, []))


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="predictions")
