"""interactions: who interacted with what, for recommendation projects; version watermarks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

A recommendation project's examples are interactions (a user, an item, an optional rating, a
weight, the event time), arriving by the thousand. They live in their own append-only table,
never as one sample blob each. A dataset version of such a project does not copy one item row
per interaction: it records a ``watermark`` (the last interaction id it includes) and its
counts, and its hash chains the parent's hash with a digest of the interactions added since
(see ``datasets/interactions.py``). Ids never repeat (AUTOINCREMENT on SQLite, a sequence on
PostgreSQL), so "every interaction with id ≤ watermark" names a version's data exactly.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


_INDEXES = {"ix_interactions_project_id": ["project_id", "id"],
            "ix_interactions_project_user": ["project_id", "user_id"],
            "ix_interactions_project_item": ["project_id", "item_id"]}


def upgrade() -> None:
    op.create_table(
        'interactions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), nullable=False),
        sa.Column('user_id', sa.String(200), nullable=False),
        sa.Column('item_id', sa.String(200), nullable=False),
        sa.Column('rating', sa.Float(), nullable=True),
        sa.Column('weight', sa.Float(), nullable=False, server_default='1'),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column('source', sa.String(20), nullable=False, server_default='api'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sqlite_autoincrement=True,
    )
    # (project, id): a version's interactions are one index range; (project, user) and (project,
    # item): a person's history (privacy deletion) and whether an id is new (a version's counts).
    for name, columns in _INDEXES.items():
        op.create_index(name, 'interactions', columns)
    with op.batch_alter_table('dataset_versions') as batch:
        batch.add_column(sa.Column('watermark', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dataset_versions') as batch:
        batch.drop_column('watermark')
    for name in _INDEXES:
        op.drop_index(name, table_name='interactions')
    op.drop_table('interactions')
