"""The audit trail: who wrote what, when and from where; the database refuses to change it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:30:00

Append-only is enforced by triggers, so that no role that writes through landeco (not even
the table's owner through SQL) can rewrite or erase history: UPDATE, DELETE and TRUNCATE
raise. Only a superuser who drops the triggers (or this migration's downgrade) can.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
# the accounts migrations (0003, 0004) are written in parallel: the lead relinks this one at merge
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'audit',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('actor', sa.Text(), nullable=True),
        sa.Column('address', postgresql.INET(), nullable=True),
        sa.Column('action', sa.Text(), nullable=False),
        sa.Column('route', sa.Text(), nullable=True),
        sa.Column('layer', sa.Text(), nullable=True),
        sa.Column('upload_id', sa.Text(), nullable=True),
        sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('feature_ids', postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("action ~ '^[a-z_]+\\.[a-z_]+$'", name=op.f('ck_audit_action_format')),
        sa.CheckConstraint('cardinality(feature_ids) <= 10000', name=op.f('ck_audit_feature_ids_bounded')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit')),
    )
    op.create_index('ix_audit_at', 'audit', ['at'], unique=False)
    op.create_index('ix_audit_actor_at', 'audit', ['actor', 'at'], unique=False)
    op.create_index('ix_audit_layer_at', 'audit', ['layer', 'at'], unique=False)
    op.create_index('ix_audit_action_at', 'audit', ['action', 'at'], unique=False)
    op.execute("""
        CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'history is never changed; record a new entry instead';
        END $$
    """)
    op.execute("CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit "
               "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
    op.execute("CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")


def downgrade() -> None:
    op.drop_table('audit')  # its triggers go with it
    op.execute("DROP FUNCTION audit_append_only()")
