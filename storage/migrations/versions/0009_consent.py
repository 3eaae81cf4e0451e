"""consent: confirmation codes, application addresses, first contacts, held outgoing mail

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "confirmation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", _S(length=64), nullable=False),
        sa.Column("action", _S(length=20), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("address", _S(length=320), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("status", _S(length=12), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("expires_at", _T(), nullable=False),
        sa.Column("used_at", _T(), nullable=True),
        sa.Column("used_by_inbound_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["inbound_id"], ["inboundmessage.id"]),
        sa.ForeignKeyConstraint(["used_by_inbound_id"], ["inboundmessage.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index("ix_confirmation_address", "confirmation", ["address"])
    op.create_index("ix_confirmation_status", "confirmation", ["status"])
    op.create_table(
        "applicationaddress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("address", _S(length=320), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["application.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "address"),
    )
    op.create_index(
        "ix_applicationaddress_application_id", "applicationaddress", ["application_id"]
    )
    op.create_index("ix_applicationaddress_address", "applicationaddress", ["address"])
    op.create_table(
        "firstcontact",
        sa.Column("address", _S(length=320), nullable=False),
        sa.Column("first_at", _T(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index("ix_firstcontact_first_at", "firstcontact", ["first_at"])
    with op.batch_alter_table("outboxmessage") as batch:
        batch.add_column(sa.Column("held_reason", _S(), nullable=False, server_default=""))
    # Applications already on file are known by their sender and their valid form's e-mail.
    application = sa.table(
        "application",
        sa.column("id", sa.Integer()),
        sa.column("sender", _S()),
        sa.column("form", sa.JSON()),
    )
    conn = op.get_bind()
    rows: list[dict[str, object]] = []
    for app_id, sender, form in conn.execute(
        sa.select(application.c.id, application.c.sender, application.c.form)
    ):
        email = str((form or {}).get("email") or "")
        for address in {a.strip().lower() for a in (sender or "", email) if a and a.strip()}:
            rows.append({"application_id": app_id, "address": address})
    if rows:
        op.bulk_insert(
            sa.table(
                "applicationaddress",
                sa.column("application_id", sa.Integer()),
                sa.column("address", _S()),
            ),
            rows,
        )


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage") as batch:
        batch.drop_column("held_reason")
    op.drop_index("ix_firstcontact_first_at", "firstcontact")
    op.drop_table("firstcontact")
    op.drop_index("ix_applicationaddress_address", "applicationaddress")
    op.drop_index("ix_applicationaddress_application_id", "applicationaddress")
    op.drop_table("applicationaddress")
    op.drop_index("ix_confirmation_status", "confirmation")
    op.drop_index("ix_confirmation_address", "confirmation")
    op.drop_table("confirmation")
