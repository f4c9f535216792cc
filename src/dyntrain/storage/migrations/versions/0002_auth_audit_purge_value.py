"""api tokens, audit log, purge marks, regression values

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('projects', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('project', sa.String(length=100), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_project_id', 'audit_log', ['project', 'id'], unique=False)
    with op.batch_alter_table('dataset_versions') as batch:
        batch.add_column(sa.Column('purged', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('value', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.drop_column('value')
    with op.batch_alter_table('dataset_versions') as batch:
        batch.drop_column('purged')
    op.drop_index('ix_audit_project_id', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_tokens')
