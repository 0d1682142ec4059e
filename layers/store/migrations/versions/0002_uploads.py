"""Uploads in a table: state shared by every worker, claimed atomically by one committer.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 00:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'uploads',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('layer', sa.Text(), nullable=False),
        sa.Column('file_name', sa.Text(), nullable=False),
        sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('stage', sa.Text(), nullable=True),
        sa.Column('percentage', sa.Double(), server_default=sa.text('0'), nullable=False),
        sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('attempt', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('checked', 'committing', 'committed', 'failed')",
                           name=op.f('ck_uploads_state_domain')),
        sa.CheckConstraint('size_bytes >= 0', name=op.f('ck_uploads_size_bytes_min')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads')),
    )
    op.create_index('ix_uploads_created_at', 'uploads', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_uploads_created_at', table_name='uploads')
    op.drop_table('uploads')
