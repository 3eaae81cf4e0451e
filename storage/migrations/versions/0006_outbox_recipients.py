"""outbox recipients indexed by address and time, for the per-sender loop guard

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    recipients = op.create_table(
        "outboxrecipient",
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("address", _S(length=320), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outboxmessage.id"]),
        sa.PrimaryKeyConstraint("outbox_id", "address"),
    )
    op.create_index(
        "ix_outboxrecipient_address_created", "outboxrecipient", ["address", "created_at"]
    )
    # Backfill from the JSON lists, so the guard counts mail queued before the upgrade too
    # (only mail that counts: not alerts to the staff, not suppressed).
    outbox = sa.table(
        "outboxmessage",
        sa.column("id", sa.Integer()),
        sa.column("recipients", sa.JSON()),
        sa.column("created_at", _T()),
        sa.column("kind", _S()),
        sa.column("status", _S()),
    )
    conn = op.get_bind()
    counted = sa.select(outbox.c.id, outbox.c.recipients, outbox.c.created_at).where(
        outbox.c.kind != "alert", outbox.c.status != "suppressed"
    )
    rows = conn.execute(counted).all()
    batch: list[dict[str, object]] = []
    for outbox_id, addresses, created_at in rows:
        for address in {a.lower() for a in addresses or []}:
            batch.append({"outbox_id": outbox_id, "address": address, "created_at": created_at})
        if len(batch) >= 5000:
            op.bulk_insert(recipients, batch)
            batch = []
    if batch:
        op.bulk_insert(recipients, batch)


def downgrade() -> None:
    op.drop_index("ix_outboxrecipient_address_created", "outboxrecipient")
    op.drop_table("outboxrecipient")
