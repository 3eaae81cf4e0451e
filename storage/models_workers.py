"""The daemons at work: one row per running process, written at every pass (a heartbeat)."""

from datetime import datetime

from sqlmodel import Field, SQLModel


class Worker(SQLModel, table=True):
    """A daemon process (host:pid); `reader` = it holds the IMAP reader lock."""

    id: str = Field(primary_key=True, max_length=300)  # host:pid, as in lease_owner
    reader: bool = False
    started_at: datetime
    last_pass_at: datetime
    last_imap_at: datetime | None = None
