"""known clients by e-mail: contact changes, ticket threads, news, client address

Revision ID: 0004
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("address", _S(length=500), nullable=False, server_default=""))
    op.create_table(
        "contactchangerequest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("sender", _S(length=320), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("status", _S(length=12), nullable=False),
        sa.Column("reason", _S(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), sa.ForeignKey("inboundmessage.id"), nullable=True),
        sa.Column("message_id", _S(length=998), nullable=False),
        sa.Column("subject", _S(length=998), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("decided_at", _T(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contactchangerequest_client_id", "contactchangerequest", ["client_id"])
    op.create_index("ix_contactchangerequest_status", "contactchangerequest", ["status"])
    op.create_table(
        "ticketmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("supportticket.id"), nullable=False),
        sa.Column("direction", _S(length=3), nullable=False),
        sa.Column("message_id", _S(length=998), nullable=False),
        sa.Column("inbound_id", sa.Integer(), sa.ForeignKey("inboundmessage.id"), nullable=True),
        sa.Column("outbox_id", sa.Integer(), sa.ForeignKey("outboxmessage.id"), nullable=True),
        sa.Column("created_at", _T(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticketmessage_ticket_id", "ticketmessage", ["ticket_id"])
    op.create_index("ix_ticketmessage_message_id", "ticketmessage", ["message_id"])
    op.create_table(
        "newscampaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", _S(length=64), nullable=False),
        sa.Column("subject", _S(length=998), nullable=False),
        sa.Column("body", _S(), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("finished_at", _T(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "newsdelivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("newscampaign.id"), nullable=False),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("address", _S(length=320), nullable=False),
        sa.Column("status", _S(length=12), nullable=False),
        sa.Column("outbox_id", sa.Integer(), sa.ForeignKey("outboxmessage.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "client_id"),
    )
    op.create_index("ix_newsdelivery_campaign_id", "newsdelivery", ["campaign_id"])
    op.create_index("ix_newsdelivery_status", "newsdelivery", ["status"])
    op.create_index("ix_newsdelivery_outbox_id", "newsdelivery", ["outbox_id"])
    op.create_table(
        "subscriptiontoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("token", _S(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
        sa.UniqueConstraint("token"),
    )


def downgrade() -> None:
    op.drop_table("subscriptiontoken")
    op.drop_table("newsdelivery")
    op.drop_table("newscampaign")
    op.drop_table("ticketmessage")
    op.drop_table("contactchangerequest")
    with op.batch_alter_table("client") as batch:
        batch.drop_column("address")
