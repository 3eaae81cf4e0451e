"""What every handler of an inbound message gets: one typed context, one call shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session

from mailbot.invariant import InvariantError
from mailbot.mail.message import ParsedMessage
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, Client, InboundMessage


@dataclass(frozen=True)
class Context:
    """One classified inbound message and what routing found for it, in one transaction."""

    session: Session
    rt: Runtime
    inbound: InboundMessage
    msg: ParsedMessage
    raw: bytes
    app: Application | None  # the application whose thread the message belongs to
    client: Client | None  # the known client the sender's address belongs to

    def require_app(self) -> Application:
        """The thread's application; routing sends only in-thread mail to such handlers."""
        if self.app is None:
            raise InvariantError(f"{self.inbound.kind} routed without an application")
        return self.app

    def require_client(self) -> Client:
        """The sender's client; routing sends only known clients' mail to such handlers."""
        if self.client is None:
            raise InvariantError(f"{self.inbound.kind} routed without a known client")
        return self.client


class Handler(Protocol):
    """Acts on one message in the caller's transaction; returns a short outcome for the log."""

    def __call__(self, c: Context, /) -> str: ...
