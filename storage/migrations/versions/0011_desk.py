"""desk: the payment order's number and the payer's name on each payment (for the report)

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("payment") as batch:
        batch.add_column(
            sa.Column("payer_name", _S(length=500), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("doc_number", _S(length=20), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("payment") as batch:
        batch.drop_column("doc_number")
        batch.drop_column("payer_name")
