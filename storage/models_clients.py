"""Tables of what known clients do by e-mail: contact changes, ticket threads, news.

A web personal account will work on the same rows: a contact change request is a request
whichever channel it came by; a news delivery is one mail to one client, never two.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


class ContactChangeRequest(SQLModel, table=True):
    """A client's request to change its contact details, waiting for an admin's decision."""

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    sender: str = Field(max_length=320)  # the registered address it came from
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    previous: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", index=True, max_length=12)  # approved | rejected
    reason: str = Field(default="")  # the admin's reason for a rejection
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    message_id: str = Field(default="", max_length=998)  # the client's Message-ID
    subject: str = Field(default="", max_length=998)
    created_at: datetime
    decided_at: datetime | None = None


class TicketMessage(SQLModel, table=True):
    """One mail in a support ticket's thread: the client's (in) or ours (out)."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="supportticket.id", index=True)
    direction: str = Field(max_length=3)  # in | out
    message_id: str = Field(default="", index=True, max_length=998)
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id")
    created_at: datetime
    channel: str = Field(default="mail", max_length=4)  # mail | web
    body: str = Field(default="")  # the text of a web message (a mail's text is in its archive)


class NewsCampaign(SQLModel, table=True):
    """One broadcast; `key` (hash of subject and body) makes `news send` resume, not repeat."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=64)
    subject: str = Field(max_length=998)
    body: str
    created_at: datetime
    finished_at: datetime | None = None


class NewsDelivery(SQLModel, table=True):
    """One recipient of a campaign: at most one outbox row, by its dedupe key."""

    __table_args__ = (UniqueConstraint("campaign_id", "client_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="newscampaign.id", index=True)
    client_id: int = Field(foreign_key="client.id")
    address: str = Field(max_length=320)
    status: str = Field(default="pending", index=True, max_length=12)  # queued | skipped
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id", index=True)


class SubscriptionToken(SQLModel, table=True):
    """The token in a client's unsubscribe link: it proves the mail reached that client."""

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", unique=True)
    token: str = Field(unique=True, max_length=40)
