"""the events table as an outbox: a cursor per sink, applied broker messages, ids never reused

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Every sink of the events table (webhooks, the message broker …) keeps its own cursor, so one
outbox serves them all at least once. Ingested broker messages are remembered in the transaction
of the change they made, so a redelivery is applied once. On SQLite the events table becomes
AUTOINCREMENT: a deleted project's last events must not hand their ids to new ones (a cursor
would skip them and consumers would take them for duplicates).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _rebuild_events(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return  # PostgreSQL sequences never reuse ids
    with op.batch_alter_table('events', recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass


def upgrade() -> None:
    op.create_table(
        'event_cursors',
        sa.Column('sink', sa.String(length=40), primary_key=True),
        sa.Column('last_event_id', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'ingested_messages',
        sa.Column('source', sa.String(length=200), primary_key=True),
        sa.Column('message_id', sa.String(length=200), primary_key=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    _rebuild_events(autoincrement=True)


def downgrade() -> None:
    _rebuild_events(autoincrement=False)
    op.drop_table('ingested_messages')
    op.drop_table('event_cursors')
