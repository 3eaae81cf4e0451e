"""daemon heartbeats: host:pid, reader role, last pass, last IMAP contact

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "worker",
        sa.Column("id", _S(length=300), nullable=False),
        sa.Column("reader", sa.Boolean(), nullable=False),
        sa.Column("started_at", _T(), nullable=False),
        sa.Column("last_pass_at", _T(), nullable=False),
        sa.Column("last_imap_at", _T(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("worker")
