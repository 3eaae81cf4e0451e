"""What to do with one bank statement document: apply, credit, hold or skip (pure).

The caller looks up the invoices named in the purpose and the clients with the payer's INN
and passes them in; nothing here touches the database. A guess is never made: whatever is
not an exact match (invoice number in the purpose, payer INN = buyer INN, sum = amount due)
is held for the accountant with a reason in plain English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from mailbot.parsers.bank_statement_1c import StatementDocument, find_invoice_numbers


class Verdict(StrEnum):
    apply = "apply"  # pays the invoice in full
    credit = "credit"  # goes to a known client's balance (no invoice number)
    hold = "hold"  # waits for the accountant
    skip = "skip"  # not money to us (outgoing, another account)


@dataclass(frozen=True)
class InvoiceFacts:
    """What matching needs to know about one of our invoices."""

    number: str
    buyer_inn: str
    due: Decimal  # total minus what the client's balance already covered
    status: str  # issued | paid | cancelled


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    invoice: str | None = None  # the invoice the payment is for (or most likely for)
    client_id: int | None = None  # the client credited, or the payer's client when known


def decide(
    doc: StatementDocument,
    invoices: Mapping[str, InvoiceFacts],
    clients_by_inn: Mapping[str, Sequence[int]],
) -> Decision:
    """Return what to do with `doc`, given our invoices by number and client ids by INN."""
    if not doc.incoming:
        return Decision(Verdict.skip, "not a payment to our account")
    payer = doc.payer_inn.strip()
    clients = list(clients_by_inn.get(payer, ())) if payer else []
    client_id = clients[0] if len(clients) == 1 else None
    named = find_invoice_numbers(doc.purpose)
    ours = [number for number in named if number in invoices]
    if len(ours) > 1:
        return Decision(
            Verdict.hold,
            "ambiguous: the purpose names invoices " + ", ".join(ours),
            None,
            client_id,
        )
    if not ours:
        return _without_invoice(named, payer, clients)
    invoice = invoices[ours[0]]
    return _against(doc, invoice, client_id)


def _without_invoice(named: list[str], payer: str, clients: list[int]) -> Decision:
    if named:
        return Decision(
            Verdict.hold,
            "unknown invoice " + ", ".join(named) + " in the purpose",
            None,
            clients[0] if len(clients) == 1 else None,
        )
    if not payer:
        return Decision(Verdict.hold, "no invoice number and no payer INN")
    if not clients:
        return Decision(Verdict.hold, f"unknown payer: INN {payer} is no client, no invoice number")
    if len(clients) > 1:
        return Decision(
            Verdict.hold, f"ambiguous payer: INN {payer} belongs to {len(clients)} clients"
        )
    return Decision(
        Verdict.credit, "no invoice number: credited to the client's balance", None, clients[0]
    )


def _against(doc: StatementDocument, invoice: InvoiceFacts, client_id: int | None) -> Decision:
    number, payer = invoice.number, doc.payer_inn.strip()

    def hold(reason: str) -> Decision:
        return Decision(Verdict.hold, reason, number, client_id)

    if payer != invoice.buyer_inn:
        return hold(
            f"wrong payer: INN {payer or '(none)'}, invoice {number} is for INN {invoice.buyer_inn}"
        )
    if invoice.status == "paid":
        return hold(f"invoice {number} is already paid")
    if invoice.status == "cancelled":
        return hold(f"invoice {number} is cancelled")
    if doc.amount < invoice.due:
        return hold(f"partial payment: {doc.amount} of {invoice.due} RUB due on {number}")
    if doc.amount > invoice.due:
        return hold(f"overpayment: {doc.amount} for {invoice.due} RUB due on {number}")
    return Decision(Verdict.apply, "exact match", number, client_id)


@dataclass(frozen=True)
class Outcome:
    """What became of one statement document."""

    line: int
    number: str
    amount: Decimal
    payer_inn: str
    verdict: str  # applied | held | credited | skipped | duplicate | unreadable
    reason: str = ""
    invoice: str | None = None
    payment_id: int | None = None


@dataclass(frozen=True)
class ImportSummary:
    outcomes: tuple[Outcome, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def needs_accountant(self) -> bool:
        """Something was held or unreadable: the import command exits non-zero for scripts."""
        return self.count("held") + self.count("unreadable") > 0

    def count(self, verdict: str) -> int:
        return sum(1 for o in self.outcomes if o.verdict == verdict)

    @property
    def line(self) -> str:
        """Return «applied 1, held 2, unreadable 0, credited 0, skipped 1, duplicates 0»."""
        return ", ".join(
            f"{label} {self.count(v)}"
            for label, v in (
                ("applied", "applied"),
                ("held", "held"),
                ("unreadable", "unreadable"),
                ("credited", "credited"),
                ("skipped", "skipped"),
                ("duplicates", "duplicate"),
            )
        )
