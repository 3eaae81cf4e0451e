"""SQLModel tables: the whole persistent state of mailbot.

Every change of state is also appended to `Event`. Money is Numeric(14, 2) → Decimal.
Timestamps are aware UTC datetimes (SQLModel's UTCDateTime).
"""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Index, LargeBinary, Numeric, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel


def _money() -> Any:
    return Field(default=Decimal("0.00"), sa_column=Column(Numeric(14, 2), nullable=False))


class InboundStatus(StrEnum):
    archived = "archived"  # raw bytes on disk and row committed; not processed yet
    processed = "processed"
    failed = "failed"  # a bug or a damaged message; retried up to limits.max_attempts
    quarantined = "quarantined"
    rejected = "rejected"  # an admin gave up on it (`mailbot quarantine reject`)
    duplicate = "duplicate"


class InboundMessage(SQLModel, table=True):
    """One received message: its archived raw bytes and what became of it."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=400)  # intake key: maildir name or imap uid
    sha256: str = Field(index=True, max_length=64)
    message_id: str = Field(default="", index=True, max_length=998)
    archive_path: str = Field(max_length=400)  # relative to the archive folder
    size: int
    received_at: datetime
    from_addr: str = Field(default="", index=True, max_length=320)
    subject: str = Field(default="", max_length=998)
    kind: str = Field(default="", max_length=40)  # classification
    reason: str = Field(default="", max_length=400)  # why it was classified so
    status: str = Field(default=InboundStatus.archived, index=True, max_length=20)
    attempts: int = 0
    last_error: str = Field(default="")
    correlation_id: str = Field(default="", max_length=40)
    application_id: int | None = Field(default=None, index=True)  # no FK: breaks a cycle
    processed_at: datetime | None = None
    acknowledged: bool = False  # moved out of the mailbox (processed or quarantine folder)
    lease_until: datetime | None = None
    lease_owner: str = Field(default="", max_length=100)  # host:pid of the worker


class Client(SQLModel, table=True):
    """A registered company or sole trader."""

    __table_args__ = (UniqueConstraint("inn", "kpp"),)

    id: int | None = Field(default=None, primary_key=True)
    inn: str = Field(index=True, max_length=12)
    kpp: str = Field(default="", max_length=9)
    ogrn: str = Field(default="", max_length=15)
    org_name: str = Field(max_length=500)
    email: str = Field(max_length=320)
    phone: str = Field(default="", max_length=20)
    contact_name: str = Field(default="", max_length=200)
    address: str = Field(default="", max_length=500)  # legal address, once an admin changed it
    login: str | None = Field(default=None, unique=True, max_length=40)
    password_hash: str | None = None
    must_change: bool = True
    credentials_seq: int = 0
    balance: Decimal = _money()
    unsubscribed: bool = False
    created_at: datetime
    password_changed_at: datetime | None = None  # sessions older than this are ended
    totp_secret: str | None = None  # encrypted by the vault; set once the client confirmed it


class ClientAddress(SQLModel, table=True):
    """An address a client is known by: its application's e-mail and where it wrote from."""

    __table_args__ = (UniqueConstraint("client_id", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id")
    address: str = Field(index=True, max_length=320)


class ApplicationState(StrEnum):
    received = "received"
    needs_fix = "needs_fix"
    accepted = "accepted"
    invoiced = "invoiced"
    paid = "paid"
    issued = "issued"
    expired = "expired"
    cancelled = "cancelled"


class Application(SQLModel, table=True):
    """An application (or an order of a known client) and where it is in its life."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=20)  # EAN-YYYY-NNNNNN
    kind: str = Field(default="registration", max_length=20)  # registration | order
    state: str = Field(default=ApplicationState.received, index=True, max_length=20)
    client_id: int | None = Field(default=None, foreign_key="client.id", index=True)
    sender: str = Field(max_length=320)  # address the application came from
    subject: str = Field(default="", max_length=998)
    root_message_id: str = Field(default="", max_length=998)  # applicant's first Message-ID
    form: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    problems: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    form_inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    products_inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    waiting_reason: str = Field(default="")  # why a paid application is not issued yet
    issue_attempts: int = 0  # issuance runs started (counted when each starts)
    issue_error: str = Field(default="")  # non-empty: issuance failed, shunted until retried
    created_at: datetime
    updated_at: datetime


class ProductRow(SQLModel, table=True):
    """One row of the product list = one barcode to issue."""

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    row: int
    name: str = Field(max_length=255)
    product_type_code: str = Field(max_length=2)
    product_type_name: str = Field(max_length=100)
    brand: str = Field(default="", max_length=255)
    net_quantity: str = Field(default="", max_length=40)
    unit: str = Field(default="", max_length=10)
    okpd2: str = Field(default="", max_length=20)
    tnved: str = Field(default="", max_length=10)
    note: str = Field(default="")


class Counter(SQLModel, table=True):
    """Gap-free sequences (application, invoice, ticket numbers) per year."""

    name: str = Field(primary_key=True, max_length=20)
    year: int = Field(primary_key=True)
    last: int = 0


class InvoiceStatus(StrEnum):
    issued = "issued"
    paid = "paid"
    cancelled = "cancelled"


class Invoice(SQLModel, table=True):
    """«Счёт на оплату»: numbered YYYY-NNNNN, gap-free per year."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=12)
    application_id: int = Field(foreign_key="application.id", index=True)
    issued_on: date
    due_on: date
    total: Decimal = _money()
    vat_mode: str = Field(max_length=5)
    vat_amount: Decimal = _money()
    from_balance: Decimal = _money()
    lines: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    buyer: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=InvoiceStatus.issued, index=True, max_length=12)
    paid_at: datetime | None = None


class Payment(SQLModel, table=True):
    """Money received: from the CLI, a bank statement file or a statement by mail."""

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True, max_length=80)  # idempotency key
    invoice_id: int | None = Field(default=None, foreign_key="invoice.id", index=True)
    client_id: int | None = Field(default=None, foreign_key="client.id")
    amount: Decimal = _money()
    paid_on: date
    source: str = Field(max_length=20)  # cli | statement | mail
    payer_inn: str = Field(default="", max_length=12)
    payer_name: str = Field(default="", max_length=500)  # as the statement names the payer
    doc_number: str = Field(default="", max_length=20)  # the payment order's number (Номер)
    purpose: str = Field(default="")
    # applied | credited | held | rejected | reversed (billing.corrections: the row is kept)
    status: str = Field(default="applied", index=True, max_length=12)
    reason: str = Field(default="")
    created_at: datetime


class BarcodePool(SQLModel, table=True):
    """One GS1 company prefix. `next_ref` only ever grows: references are never reused."""

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(unique=True, max_length=10)
    capacity: int
    next_ref: int = 0
    active: bool = True
    alerted_on: date | None = None


class Barcode(SQLModel, table=True):
    """An issued EAN-13, bound to one product row forever."""

    id: int | None = Field(default=None, primary_key=True)
    ean: str = Field(unique=True, max_length=13)
    pool_id: int = Field(foreign_key="barcodepool.id")
    item_ref: int
    application_id: int = Field(foreign_key="application.id", index=True)
    product_row_id: int = Field(foreign_key="productrow.id", unique=True)
    issued_at: datetime


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # permanent refusal, or attempts exhausted
    bounced = "bounced"
    suppressed = "suppressed"  # loop guard: not sent
    held = "held"  # over a cap on mail to others: waits for an admin (outbox release/drop)
    dropped = "dropped"  # a held mail an admin decided not to send (kept, with the reason)


class OutboxMessage(SQLModel, table=True):
    """A finished outgoing mail, stored before it is sent; secrets are masked in `body`."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=200)  # e.g. application:12:invoice:1
    message_id: str = Field(unique=True, max_length=250)
    # True for ids made by render.new_message_id (random); rows from before revision 0008
    # carry a computable one, which proves nothing when a message names it.
    random_id: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=sa_false())
    )
    kind: str = Field(max_length=40)
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    correlation_id: str = Field(default="", max_length=40)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", max_length=998)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    secret: str | None = None  # encrypted secret substituted for the mask at delivery
    status: str = Field(default=OutboxStatus.pending, index=True, max_length=12)
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str = Field(default="")
    held_reason: str = Field(default="")  # which cap held it; an admin's drop reason after
    created_at: datetime
    sent_at: datetime | None = None
    lease_until: datetime | None = None
    lease_owner: str = Field(default="", max_length=100)  # host:pid of the worker


class OutboxRecipient(SQLModel, table=True):
    """One recipient of one queued mail that counts for the loop guard (not an alert to the
    staff, not suppressed): the guard counts these by address and time.

    Kept beside `OutboxMessage.recipients` (the JSON the sender uses) so that «how many
    replies did this address get in the last hour» is an index range, not a scan of every
    mail ever queued.
    """

    __table_args__ = (Index("ix_outboxrecipient_address_created", "address", "created_at"),)

    outbox_id: int = Field(foreign_key="outboxmessage.id", primary_key=True)
    address: str = Field(primary_key=True, max_length=320)  # lower-cased
    created_at: datetime


class SupportTicket(SQLModel, table=True):
    """«Обращение №N» from a known client."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=20)
    client_id: int | None = Field(default=None, foreign_key="client.id", index=True)
    sender: str = Field(max_length=320)
    subject: str = Field(default="", max_length=998)
    status: str = Field(default="open", max_length=12)
    root_message_id: str = Field(default="", max_length=998)
    created_at: datetime


class Event(SQLModel, table=True):
    """Append-only log of every state change, written in the change's own transaction."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    entity: str = Field(max_length=20)  # application | invoice | outbox | inbound | pool …
    entity_id: int = Field(index=True)
    event: str = Field(max_length=40)  # past-tense fact: form_valid, payment_matched …
    from_state: str = Field(default="", max_length=20)
    to_state: str = Field(default="", max_length=20)
    correlation_id: str = Field(default="", max_length=40)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class JobState(SQLModel, table=True):
    """A scheduled job's health: consecutive failures and the last error (the shunt)."""

    name: str = Field(primary_key=True, max_length=60)
    failures: int = 0  # consecutive failed runs; 0 once a run succeeds
    last_error: str = Field(default="")
    failed_at: datetime | None = None
    last_ok_at: datetime | None = None
