"""web: sessions, log-in throttling, recovery codes, TOTP and password-change columns,
web messages in ticket threads

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "websession",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("stage", _S(length=12), nullable=False),
        sa.Column("csrf", _S(length=64), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("last_seen_at", _T(), nullable=False),
        sa.Column("ip", _S(length=45), nullable=False),
        sa.Column("user_agent", _S(length=300), nullable=False),
        sa.Column("ended_at", _T(), nullable=True),
        sa.Column("end_reason", _S(length=20), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_websession_client_id", "websession", ["client_id"])
    op.create_index("ix_websession_ended_at", "websession", ["ended_at"])
    op.create_table(
        "loginthrottle",
        sa.Column("key", _S(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _T(), nullable=True),
        sa.Column("blocked_until", _T(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "recoverycode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", _S(length=64), nullable=False),
        sa.Column("used_at", _T(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recoverycode_client_id", "recoverycode", ["client_id"])
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("password_changed_at", _T(), nullable=True))
        batch.add_column(sa.Column("totp_secret", _S(), nullable=True))
    with op.batch_alter_table("ticketmessage") as batch:
        batch.add_column(sa.Column("channel", _S(length=4), nullable=False, server_default="mail"))
        batch.add_column(sa.Column("body", _S(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("ticketmessage") as batch:
        batch.drop_column("body")
        batch.drop_column("channel")
    with op.batch_alter_table("client") as batch:
        batch.drop_column("totp_secret")
        batch.drop_column("password_changed_at")
    op.drop_index("ix_recoverycode_client_id", "recoverycode")
    op.drop_table("recoverycode")
    op.drop_table("loginthrottle")
    op.drop_index("ix_websession_ended_at", "websession")
    op.drop_index("ix_websession_client_id", "websession")
    op.drop_table("websession")
