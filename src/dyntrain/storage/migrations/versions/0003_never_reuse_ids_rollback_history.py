"""ids never reused on SQLite; alias history records rollbacks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

SQLite gives a deleted row's id to the next row unless the table is AUTOINCREMENT, so a worker
still training for a deleted project could reach the project (and jobs, runs, model versions)
that got its ids. SQLite cannot alter a table's id column: the tables are rebuilt (Alembic batch
mode), which ``Database.upgrade`` runs with foreign keys off — rebuilding drops the old table,
and with them on that would delete every row referencing it. PostgreSQL sequences never reuse
ids: nothing to do there.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_TABLES = ('projects', 'jobs', 'runs', 'model_versions')
_ONE_PENDING = sa.text("status IN ('delayed', 'queued')")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    # A rebuild copies indexes by reflection, which may lose a partial index's WHERE: made again here.
    op.drop_index('uq_jobs_one_pending', table_name='jobs')
    for table in _TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
    op.create_index('uq_jobs_one_pending', 'jobs', ['project_id'], unique=True, sqlite_where=_ONE_PENDING,
                    postgresql_where=_ONE_PENDING)


def upgrade() -> None:
    with op.batch_alter_table('alias_history') as batch:
        batch.add_column(sa.Column('action', sa.String(length=10), nullable=False, server_default='promote'))
    # Rollbacks made before this revision are known by the reason they recorded.
    op.execute("UPDATE alias_history SET action = 'rollback' WHERE reason LIKE 'rolled back from version %'")
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
    with op.batch_alter_table('alias_history') as batch:
        batch.drop_column('action')
