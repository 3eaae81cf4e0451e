"""outbox rows say whether their Message-ID is random (issue 16)

Rows queued before this revision carry sha256 of their dedupe key as Message-ID, which
anyone can compute; they keep it (a row's Message-ID is never changed: a retry must send the
same one), but `random_id` is false for them, so a reference to one proves nothing (no
unsubscribe by References, no bounce by DSN).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ADD/DROP COLUMN on both databases: a batch copy of the table would have SQLite
# drop `outboxmessage`, which the news deliveries and the loop guard index point to.


def upgrade() -> None:
    op.add_column(
        "outboxmessage",
        sa.Column("random_id", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("outboxmessage", "random_id")
