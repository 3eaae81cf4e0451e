"""Tables of consent: one-time confirmation codes, the addresses an application is known by,
and the first time we wrote to an address (the global cap on new recipients).
"""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class Confirmation(SQLModel, table=True):
    """An action waiting for its proof: a reply from `address` carrying the one-time code.

    Only the SHA-256 of the code is stored; the code itself lives in the mail we sent.
    """

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(unique=True, max_length=64)
    action: str = Field(max_length=20)  # order_balance | contact_change | ticket_reply | correction
    entity_id: int  # the application, contact change request or ticket the action is about
    address: str = Field(index=True, max_length=320)  # registered address the code went to
    inbound_id: int = Field(foreign_key="inboundmessage.id")  # the message waiting for proof
    status: str = Field(default="waiting", index=True, max_length=12)  # waiting|used|void
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by_inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")


class ApplicationAddress(SQLModel, table=True):
    """An address an application is known by: the one it came from, its form's e-mail."""

    __table_args__ = (UniqueConstraint("application_id", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    address: str = Field(index=True, max_length=320)  # lower-cased


class FirstContact(SQLModel, table=True):
    """The first mail we queued to an address that did not write to us (caps, global)."""

    address: str = Field(primary_key=True, max_length=320)  # lower-cased
    first_at: datetime = Field(index=True)
