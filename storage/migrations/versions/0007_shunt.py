"""the shunt: failed issuance and failed scheduled jobs, with reason and attempts

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("application") as batch:
        batch.add_column(
            sa.Column("issue_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("issue_error", _S(), nullable=False, server_default=""))
    op.create_table(
        "jobstate",
        sa.Column("name", _S(length=60), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", _S(), nullable=False, server_default=""),
        sa.Column("failed_at", _T(), nullable=True),
        sa.Column("last_ok_at", _T(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("jobstate")
    with op.batch_alter_table("application") as batch:
        batch.drop_column("issue_error")
        batch.drop_column("issue_attempts")
