"""Uploads may be ``checking``: a large file is stored first and checked by a job.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 04:10:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_uploads_state_domain'), 'uploads', type_='check')
    op.create_check_constraint('state_domain', 'uploads',
                               "state IN ('checking', 'checked', 'committing', 'committed', 'failed')")


def downgrade() -> None:
    op.execute("DELETE FROM uploads WHERE state = 'checking'")
    op.drop_constraint(op.f('ck_uploads_state_domain'), 'uploads', type_='check')
    op.create_check_constraint('state_domain', 'uploads',
                               "state IN ('checked', 'committing', 'committed', 'failed')")
