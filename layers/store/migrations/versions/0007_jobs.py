"""Jobs: procrastinate's queue (its own schema, pinned with the library) and landeco's jobs table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 03:40:00

The queue's tables, types and functions are procrastinate's ``schema.sql`` for the version
pinned in pyproject.toml; a later procrastinate needs a migration that applies its own
migration files (``procrastinate.schema.SchemaManager.get_migrations_path()``).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_QUEUE_TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())
    op.create_table(
        'jobs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('owner', sa.Text(), nullable=True),
        sa.Column('progress', sa.Double(), server_default=sa.text('0'), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint('progress >= 0 AND progress <= 1', name=op.f('ck_jobs_progress_fraction')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    )
    op.create_index('ix_jobs_created_at', 'jobs', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('jobs')
    op.execute("""
        DO $$ DECLARE f record; BEGIN
          FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                   JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
          LOOP EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE'; END LOOP;
        END $$""")
    for table in ("procrastinate_periodic_defers", "procrastinate_events", "procrastinate_jobs",
                  "procrastinate_workers"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for name in _QUEUE_TYPES:
        op.execute(f"DROP TYPE IF EXISTS {name} CASCADE")
