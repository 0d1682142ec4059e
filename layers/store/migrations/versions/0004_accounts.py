"""Accounts, roles, sessions, API tokens and the login throttle.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('display_name', sa.Text(), nullable=True),
        sa.Column('roles', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"),
                  nullable=False),
        sa.Column('password_hash', sa.Text(), nullable=True),
        sa.Column('disabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("roles <@ ARRAY['viewer', 'surveyor', 'planner', 'admin']::text[]",
                           name=op.f('ck_users_roles_domain')),
        sa.CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'", name=op.f('ck_users_name_format')),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_users')),
    )
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('label', sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_name'], ['users.name'], name=op.f('fk_api_tokens_user_name'),
                                onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    op.create_index(op.f('ix_api_tokens_user_name'), 'api_tokens', ['user_name'], unique=False)
    op.create_table(
        'sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_name', sa.Text(), nullable=False),
        sa.Column('csrf_secret', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_name'], ['users.name'], name=op.f('fk_sessions_user_name'),
                                onupdate='CASCADE', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    )
    op.create_index(op.f('ix_sessions_user_name'), 'sessions', ['user_name'], unique=False)
    op.create_table(
        'login_attempts',
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('failures', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('last_failure_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_login_attempts')),
    )


def downgrade() -> None:
    op.drop_table('login_attempts')
    op.drop_index(op.f('ix_sessions_user_name'), table_name='sessions')
    op.drop_table('sessions')
    op.drop_index(op.f('ix_api_tokens_user_name'), table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_table('users')
