"""catalogue: item features of recommendation projects (category, attributes, text, picture)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

A recommendation project may describe its items: a category, attributes (name → value), a text
and a picture (a blob in the blob store, by its sha256). Like interactions, catalogue entries are
append-only rows with ids that never repeat: a change to an item is a new row, and the newest row
with id ≤ a version's ``catalogue_mark`` is that item's entry in the version. A version records
the mark beside its interaction watermark, so a catalogue change is one version row however many
items it touches (see ``datasets/catalogue.py``).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


_INDEXES = {"ix_catalogue_project_id": ["project_id", "id"],
            "ix_catalogue_project_item": ["project_id", "item_id"],
            "ix_catalogue_project_category": ["project_id", "category"]}


def upgrade() -> None:
    op.create_table(
        'catalogue_items',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), nullable=False),
        sa.Column('item_id', sa.String(200), nullable=False),
        sa.Column('category', sa.String(200), nullable=True),
        sa.Column('attributes', sa.JSON(), nullable=False),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('image', sa.String(64), nullable=True),
        sa.Column('source', sa.String(20), nullable=False, server_default='api'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sqlite_autoincrement=True,
    )
    # (project, id): a version's entries are one index range; (project, item): an item's newest
    # entry; (project, category): the recommend filter.
    for name, columns in _INDEXES.items():
        op.create_index(name, 'catalogue_items', columns)
    with op.batch_alter_table('dataset_versions') as batch:
        batch.add_column(sa.Column('catalogue_mark', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dataset_versions') as batch:
        batch.drop_column('catalogue_mark')
    for name in _INDEXES:
        op.drop_index(name, table_name='catalogue_items')
    op.drop_table('catalogue_items')
