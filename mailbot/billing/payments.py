"""Payments: confirmed by the accountant or read from a 1C bank statement, applied once.

Every payment is a `Payment` row keyed by an idempotency fingerprint (`invoice:N` for the
CLI, the statement document's sha256 for imports), so a re-run or a re-import changes
nothing. An exact match pays the invoice (application → paid); a known client's payment
without an invoice number goes to its balance; anything else is held for the accountant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial

from sqlmodel import Session, col, func, select

from mailbot.billing.matching import ImportSummary, InvoiceFacts, Outcome, Verdict, decide
from mailbot.crashpoints import crash_point
from mailbot.guard import Budget, guarded
from mailbot.invariant import InvariantError
from mailbot.parsers.bank_statement_1c import (
    Statement,
    StatementDocument,
    UnreadableDocument,
    find_invoice_numbers,
    statement_result,
)
from mailbot.parsers.problems import Location
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Client, Invoice, InvoiceStatus, Payment
from mailbot.storage.queries import record_event
from mailbot.workflow import IllegalTransition, must, next_state, transition

UNVERIFIED = "statement not authenticated"


@dataclass(frozen=True)
class PayResult:
    ok: bool
    message: str


@dataclass(frozen=True)
class _Row:
    doc: StatementDocument
    payment: Payment | None
    outcome: Outcome
    balance: Decimal = Decimal("0.00")  # the client's balance after a credit


@dataclass
class _Context:
    now: datetime
    source: str
    correlation_id: str = ""
    hold_reason: str = ""  # set: every incoming document is held with this reason


def pay_invoice(  # noqa: PLR0913 - billing's inputs, keyword-only; left to its owner
    rt: Runtime,
    number: str,
    *,
    amount: Decimal | None = None,
    paid_on: date | None = None,
    force_reason: str = "",
    source: str = "cli",
) -> PayResult:
    """Mark invoice `number` paid (idempotent); the amount must match unless forced."""
    with transaction(rt.engine) as session:
        result = _pay(
            session,
            rt.clock(),
            number,
            amount=amount,
            paid_on=paid_on,
            force_reason=force_reason,
            source=source,
        )
    crash_point("after_payment")
    return result


def _pay(  # noqa: PLR0913 - billing's inputs, keyword-only; left to its owner
    session: Session,
    now: datetime,
    number: str,
    *,
    amount: Decimal | None,
    paid_on: date | None,
    force_reason: str,
    source: str,
) -> PayResult:
    invoice = _locked_invoice(session, number)
    if invoice is None:
        return PayResult(ok=False, message=f"invoice {number} not found")
    if invoice.status == InvoiceStatus.paid:
        return PayResult(ok=True, message=f"invoice {number} is already paid")
    due = invoice.total - invoice.from_balance
    if amount is not None and not (amount.is_finite() and amount > 0):
        return PayResult(ok=False, message=f"amount {amount} is not a positive sum of money")
    amount = due if amount is None else amount.quantize(Decimal("0.01"))
    force_reason = " ".join(force_reason.split())
    if amount != due and not force_reason:
        return PayResult(
            ok=False,
            message=f"invoice {number} is for {due} RUB, got {amount}: "
            "pass --force REASON to accept a different amount",
        )
    payment = Payment(
        fingerprint=_cli_fingerprint(session, number),
        amount=amount,
        paid_on=paid_on or now.date(),
        source=source,
        purpose=force_reason,
        reason=force_reason,
        created_at=now,
    )
    result = settle(session, invoice, payment, now=now)
    if result.ok and payment.paid_on < invoice.issued_on:
        warning = f"warning: paid on {payment.paid_on:%d.%m.%Y}, before the invoice was issued"
        return PayResult(
            ok=True, message=f"{result.message}\n{warning} ({invoice.issued_on:%d.%m.%Y})"
        )
    return result


def _cli_fingerprint(session: Session, number: str) -> str:
    """`invoice:N` for the first payment entered by hand; `invoice:N:2`… after a reversal
    (the reversed row keeps its key: nothing is deleted)."""
    key = f"invoice:{number}"
    taken = session.exec(
        select(func.count(col(Payment.id))).where(
            (col(Payment.fingerprint) == key) | col(Payment.fingerprint).startswith(f"{key}:")
        )
    ).one()
    return key if not taken else f"{key}:{taken + 1}"


def _locked_invoice(session: Session, number: str) -> Invoice | None:
    return session.exec(select(Invoice).where(Invoice.number == number).with_for_update()).first()


def settle(
    session: Session, invoice: Invoice, payment: Payment, *, now: datetime, correlation_id: str = ""
) -> PayResult:
    """Pay `invoice` with `payment` (stored as applied); an error value changes nothing."""
    number = invoice.number
    if invoice.status != InvoiceStatus.issued:
        return PayResult(ok=False, message=f"invoice {number} is {invoice.status}")
    app = session.get(Application, invoice.application_id)
    if app is None:
        raise InvariantError("an invoice always has its application")
    amount = str(payment.amount)
    paid = PaidBy(
        amount=payment.amount,
        source=payment.source,
        correlation_id=correlation_id,
        extra={"reason": payment.reason, "fingerprint": payment.fingerprint},
    )
    error = mark_paid(session, invoice, app, paid, now=now)
    if error is not None:
        return PayResult(ok=False, message=str(error))
    payment.invoice_id, payment.client_id = invoice.id, app.client_id or payment.client_id
    payment.status = "applied"
    session.add(payment)
    message = f"invoice {number} paid: {amount} RUB; {app.number} → paid"
    surplus = surplus_of(invoice, payment)
    if surplus > 0 and app.client_id is None:
        message += f"; surplus {surplus} RUB goes to the balance when the client is registered"
    elif surplus > 0:
        locked = select(Client).where(Client.id == app.client_id).with_for_update()
        client = session.exec(locked).one()
        credit_surplus(session, client, invoice, payment, now=now)
        message += f"; surplus {surplus} RUB credited to the balance ({client.balance} RUB)"
    return PayResult(ok=True, message=message)


@dataclass(frozen=True)
class PaidBy:
    """What paid an invoice, for its `invoice_paid` event."""

    amount: Decimal
    source: str  # cli | statement | mail | balance
    correlation_id: str = ""
    extra: dict[str, str] = dataclasses.field(default_factory=dict)


def mark_paid(
    session: Session, invoice: Invoice, app: Application, paid: PaidBy, *, now: datetime
) -> IllegalTransition | None:
    """The one place an issued invoice becomes paid: the application moves on (payment_matched),
    the invoice is marked paid and `invoice_paid` is logged; an error value changes nothing."""
    if invoice.id is None:
        raise InvariantError("invoice.id is missing")
    amount = str(paid.amount)
    data = {"invoice": invoice.number, "amount": amount}
    error = transition(
        session,
        app,
        "payment_matched",
        now=now,
        correlation_id=paid.correlation_id,
        data=data if paid.source != "balance" else {**data, "source": "balance"},
    )
    if error is not None:
        return error
    invoice.status, invoice.paid_at = InvoiceStatus.paid, now
    session.add(invoice)
    record_event(
        session,
        entity="invoice",
        entity_id=invoice.id,
        event="invoice_paid",
        at=now,
        from_state=InvoiceStatus.issued,
        to_state=InvoiceStatus.paid,
        correlation_id=paid.correlation_id,
        data={"amount": amount, "source": paid.source, **paid.extra},
    )
    return None


@dataclass(frozen=True)
class Spent:
    """What `spend_balance` did: taken from the balance, still due, the invoice paid."""

    used: Decimal
    due: Decimal
    paid: bool
    balance: Decimal


def spend_balance(  # noqa: PLR0913 - the rows and the event's context, keyword-only
    session: Session,
    invoice: Invoice,
    app: Application,
    client: Client,
    *,
    now: datetime,
    correlation_id: str = "",
) -> Spent | str:
    """Pay the (locked, issued) `invoice` from the (locked) client's balance as far as it goes.

    The debit is a `balance_used` movement; when the balance covers what was due the invoice
    becomes paid (`mark_paid`). An empty balance or an invoice that cannot be paid is a line
    saying so, and nothing changes.
    """
    if invoice.status != InvoiceStatus.issued:
        return f"invoice {invoice.number} is {invoice.status}"
    if client.id is None:
        raise InvariantError("client.id is missing")
    due = invoice.total - invoice.from_balance
    used = min(client.balance, due).quantize(Decimal("0.01"))
    if used <= 0:
        return f"the balance of {client.login or client.inn} is empty"
    if used == due and next_state(app.state, "payment_matched") is None:
        return f"{app.number} is {app.state}: its invoice cannot be paid"
    client.balance -= used
    invoice.from_balance += used
    session.add(client)
    session.add(invoice)
    record_event(
        session,
        entity="client",
        entity_id=client.id,
        event="balance_used",
        at=now,
        correlation_id=correlation_id,
        data={
            "amount": str(used),
            "balance": str(client.balance),
            "application": app.number,
            "invoice": invoice.number,
        },
    )
    if used < due:
        return Spent(used, due - used, paid=False, balance=client.balance)
    paid = PaidBy(amount=used, source="balance", correlation_id=correlation_id)
    must(mark_paid(session, invoice, app, paid, now=now))
    return Spent(used, Decimal("0.00"), paid=True, balance=client.balance)


def surplus_of(invoice: Invoice, payment: Payment) -> Decimal:
    """What `payment` brought beyond what `invoice` asked for (0.00 when nothing)."""
    return max(Decimal("0.00"), payment.amount - (invoice.total - invoice.from_balance))


def credit_surplus(
    session: Session, client: Client, invoice: Invoice, payment: Payment, *, now: datetime
) -> None:
    """Add an overpayment's surplus to the (locked) client's balance, with its movement."""
    if client.id is None:
        raise InvariantError("client.id is missing")
    surplus = surplus_of(invoice, payment)
    client.balance += surplus
    session.add(client)
    record_event(
        session,
        entity="client",
        entity_id=client.id,
        event="balance_credited",
        at=now,
        data={
            "amount": str(surplus),
            "balance": str(client.balance),
            "surplus_of": invoice.number,
            "payment": payment.fingerprint,
        },
    )


def credit_waiting_surplus(
    session: Session, app: Application, client: Client, now: datetime
) -> None:
    """At a new client's registration: credit what its application's payments brought beyond
    their invoices (settle could not: there was no client yet)."""
    paid = session.exec(
        select(Invoice, Payment)
        .join(Payment, col(Payment.invoice_id) == col(Invoice.id))
        .where(Invoice.application_id == app.id, Payment.status == "applied")
        .order_by(col(Payment.id))
    ).all()
    for invoice, payment in paid:
        if surplus_of(invoice, payment) > 0:
            payment.client_id = client.id
            session.add(payment)
            credit_surplus(session, client, invoice, payment, now=now)


def credit(session: Session, client: Client, payment: Payment) -> PayResult:
    """Add `payment` to the (locked) client's balance; the caller logs `credited_event`."""
    client.balance += payment.amount
    session.add(client)
    payment.client_id, payment.status = client.id, "credited"
    session.add(payment)
    return PayResult(ok=True, message=f"{payment.amount} RUB credited to {client.org_name}")


def credited_event(
    session: Session, payment: Payment, balance: Decimal, *, now: datetime, correlation_id: str
) -> None:
    if payment.client_id is None:
        raise InvariantError("payment.client_id is missing")
    record_event(
        session,
        entity="client",
        entity_id=payment.client_id,
        event="balance_credited",
        at=now,
        correlation_id=correlation_id,
        data={"amount": str(payment.amount), "balance": str(balance), "payment": payment.id},
    )


Progress = Callable[[int, int], None]  # (documents done, documents in the statement)


def _no_progress(done: int, total: int) -> None:
    del done, total


def import_file(
    rt: Runtime,
    data: bytes,
    *,
    source: str = "statement",
    dry_run: bool = False,
    progress: Progress = _no_progress,
) -> ImportSummary:
    """Import a statement file in one transaction (idempotent by document fingerprint).

    `dry_run`: the same import, in a transaction that is rolled back — the summary says what
    would happen, and nothing is changed.
    """
    if dry_run:
        with Session(rt.engine, expire_on_commit=False) as session:
            try:
                return import_statement(session, rt, data, source=source, progress=progress)
            finally:
                session.rollback()
    with transaction(rt.engine) as session:
        summary = import_statement(session, rt, data, source=source, progress=progress)
    crash_point("after_payment")
    return summary


def import_statement(  # noqa: PLR0913 - billing's inputs, keyword-only; left to its owner
    session: Session,
    rt: Runtime,
    data: bytes,
    *,
    source: str,
    correlation_id: str = "",
    hold_reason: str = "",
    progress: Progress = _no_progress,
) -> ImportSummary:
    """Read a 1C statement and apply, credit, hold or skip each document, in the caller's
    transaction; with `hold_reason` every incoming document is held (never applied).
    `progress` is told after each document (the CLI draws a bar from it).

    Lookups are batched (known fingerprints, invoices, clients: one query each) and the new
    rows are flushed once, so a 10,000-document statement costs a few queries, not 50,000.
    """
    statement = _read(rt, data, source)
    warnings = tuple(f"line {w.line}: {w.message}" for w in statement.warnings)
    if statement.error is not None:
        return ImportSummary(warnings=warnings, error=statement.error)
    ctx = _Context(rt.clock(), source, correlation_id, hold_reason)
    docs = [d for d in statement.documents if d.incoming]
    unread = {f"unreadable:{u.fingerprint}": u for u in statement.unreadable}
    known = _known_keys(session, [*(_key(d, ctx) for d in docs), *unread])
    invoices, apps = _invoices(session, {n for d in docs for n in find_invoice_numbers(d.purpose)})
    clients = _clients(session, {d.payer_inn.strip() for d in docs} - {""})
    rows = []
    for done, doc in enumerate(statement.documents, start=1):
        rows.append(_one(session, ctx, doc, known, invoices, clients))
        progress(done, len(statement.documents))
    held = [_hold_unreadable(session, ctx, key, u, known) for key, u in unread.items()]
    session.flush()
    del apps  # held until here so that `settle` finds them in the identity map
    outcomes = [_logged(session, ctx, row) for row in rows]
    outcomes += [_logged_unreadable(session, ctx, payment, o) for payment, o in held]
    return ImportSummary(tuple(sorted(outcomes, key=lambda o: o.line)), warnings)


def _hold_unreadable(
    session: Session,
    ctx: _Context,
    key: str,
    doc: UnreadableDocument,
    known: dict[str, int | None],
) -> tuple[Payment | None, Outcome]:
    """Hold a document we could not read, its raw lines kept, so no payment goes unseen.

    Its amount is unknown, so it is stored as 0.00 and can only be rejected or entered by
    hand (`invoices pay N --amount …`); `payments apply` refuses it.
    """
    reason = f"unreadable document: {doc.reason}"
    if key in known:
        twin = known[key]
        why = f"already imported as payment {twin}" if twin else "twice in this statement"
        return None, Outcome(doc.line, "", Decimal("0.00"), "", "duplicate", why)
    known[key] = None
    payment = Payment(
        fingerprint=key,
        amount=Decimal("0.00"),
        paid_on=ctx.now.date(),
        source=ctx.source,
        purpose=doc.raw,
        status="held",
        reason=reason,
        created_at=ctx.now,
    )
    session.add(payment)
    return payment, Outcome(doc.line, "", Decimal("0.00"), "", "unreadable", reason)


def _logged_unreadable(
    session: Session, ctx: _Context, payment: Payment | None, o: Outcome
) -> Outcome:
    if payment is None or payment.id is None:
        return o
    record_event(
        session,
        entity="payment",
        entity_id=payment.id,
        event="payment_held",
        at=ctx.now,
        to_state="held",
        correlation_id=ctx.correlation_id,
        data={"reason": o.reason, "amount": None, "invoice": None},
    )
    return dataclasses.replace(o, payment_id=payment.id)


def _read(rt: Runtime, data: bytes, source: str) -> Statement:
    """The statement parsed in the guarded parse worker, under its memory cap and deadline
    (a spoofed «accountant» mail is attacker bytes too); past them it is an error value."""
    lim = rt.settings.limits
    result = guarded(
        partial(statement_result, data, (rt.settings.service.account,)),
        Location(file=source),
        Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb),
    )
    if result.value is not None:
        return result.value
    why = next((p.params.get("reason", "") for p in result.problems), "") or "damaged"
    return Statement(error=f"the statement could not be read within the parse limits ({why})")


def _key(doc: StatementDocument, ctx: _Context) -> str:
    return f"unverified:{doc.fingerprint}" if ctx.hold_reason else doc.fingerprint


def _one(  # noqa: PLR0913 - the pass's lookups; left to billing's owner
    session: Session,
    ctx: _Context,
    doc: StatementDocument,
    known: dict[str, int | None],
    invoices: dict[str, Invoice],
    clients: dict[str, list[Client]],
) -> _Row:
    """Decide one document: the payment row it makes (not flushed yet) and its outcome."""

    def outcome(verdict: str, reason: str, invoice: str | None = None) -> Outcome:
        return Outcome(doc.line, doc.number, doc.amount, doc.payer_inn, verdict, reason, invoice)

    key = _key(doc, ctx)
    if doc.incoming and key in known:
        twin = known[key]
        why = f"already imported as payment {twin}" if twin else "twice in this statement"
        return _Row(doc, None, outcome("duplicate", why))
    facts = {
        n: InvoiceFacts(n, str(i.buyer.get("inn") or ""), i.total - i.from_balance, i.status)
        for n in find_invoice_numbers(doc.purpose)
        if (i := invoices.get(n)) is not None
    }
    payer = doc.payer_inn.strip()
    ids = {payer: [c.id for c in clients.get(payer, []) if c.id is not None]}
    decision = decide(doc, facts, ids)
    if decision.verdict is Verdict.skip:
        return _Row(doc, None, outcome("skipped", decision.reason))
    known[key] = None
    payment = Payment(
        fingerprint=key,
        amount=doc.amount,
        paid_on=doc.received_on or doc.date,
        source=ctx.source,
        payer_inn=payer[:12],
        payer_name=doc.payer_name[:500],
        doc_number=doc.number[:20],
        purpose=doc.purpose,
        status="held",
        reason=decision.reason,
        client_id=decision.client_id,
        created_at=ctx.now,
    )
    session.add(payment)  # now, so rows are inserted (and numbered) in statement order
    invoice = invoices.get(decision.invoice or "")
    payment.invoice_id = invoice.id if invoice is not None else None
    if ctx.hold_reason:
        payment.reason = ctx.hold_reason
    elif decision.verdict is Verdict.apply and invoice is not None:
        result = settle(session, invoice, payment, now=ctx.now, correlation_id=ctx.correlation_id)
        if result.ok:
            return _Row(doc, payment, outcome("applied", decision.reason, invoice.number))
        payment.reason = result.message
    elif decision.verdict is Verdict.credit:
        [client] = clients[payer]
        credit(session, client, payment)
        return _Row(doc, payment, outcome("credited", decision.reason), client.balance)
    return _Row(doc, payment, outcome("held", payment.reason, decision.invoice))


def _logged(session: Session, ctx: _Context, row: _Row) -> Outcome:
    """Log the event of a flushed payment; return the outcome with the payment's id."""
    payment, o, doc = row.payment, row.outcome, row.doc
    if payment is None or payment.id is None:
        return o
    if o.verdict == "credited":
        credited_event(
            session, payment, row.balance, now=ctx.now, correlation_id=ctx.correlation_id
        )
    elif o.verdict == "held":
        record_event(
            session,
            entity="payment",
            entity_id=payment.id,
            event="payment_held",
            at=ctx.now,
            to_state="held",
            correlation_id=ctx.correlation_id,
            data={"reason": o.reason, "amount": str(doc.amount), "invoice": o.invoice},
        )
    return dataclasses.replace(o, payment_id=payment.id)


def _known_keys(session: Session, keys: list[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = select(Payment.fingerprint, Payment.id).where(col(Payment.fingerprint).in_(chunk))
        found.update((key, pid) for key, pid in session.exec(query))
    return found


def _invoices(session: Session, numbers: set[str]) -> tuple[dict[str, Invoice], list[Application]]:
    """Our invoices with these numbers, locked, and their applications (loaded in bulk)."""
    found: dict[str, Invoice] = {}
    ordered = sorted(numbers)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        query = select(Invoice).where(col(Invoice.number).in_(chunk)).with_for_update()
        found.update((i.number, i) for i in session.exec(query))
    ids = sorted({i.application_id for i in found.values()})
    apps: list[Application] = []
    for start in range(0, len(ids), 500):
        query_apps = select(Application).where(col(Application.id).in_(ids[start : start + 500]))
        apps += session.exec(query_apps)
    return found, apps


def _clients(session: Session, inns: set[str]) -> dict[str, list[Client]]:
    """Clients by INN, locked (their balances may be credited), oldest first."""
    found: dict[str, list[Client]] = {}
    ordered = sorted(inns)
    for start in range(0, len(ordered), 500):
        query = (
            select(Client)
            .where(col(Client.inn).in_(ordered[start : start + 500]))
            .order_by(col(Client.id))
            .with_for_update()
        )
        for client in session.exec(query):
            found.setdefault(client.inn, []).append(client)
    return found


def held_payments(session: Session) -> Sequence[Payment]:
    """Payments waiting for the accountant, oldest first."""
    return session.exec(
        select(Payment).where(Payment.status == "held").order_by(col(Payment.id))
    ).all()


def apply_held(rt: Runtime, payment_id: int, *, invoice_number: str | None = None) -> PayResult:
    """The accountant's decision: pay an invoice with a held payment, or credit the payer."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        payment = _locked_payment(session, payment_id)
        if payment is None:
            return PayResult(ok=False, message=f"no payment {payment_id}")
        if payment.status != "held":
            return PayResult(
                ok=False, message=f"payment {payment_id} is {payment.status}, not held"
            )
        if payment.amount <= 0:
            return PayResult(
                ok=False,
                message=f"payment {payment_id} could not be read from the statement: reject it "
                "and enter the money with `mailbot invoices pay N --amount X --date D`",
            )
        invoice = (
            _locked_invoice(session, invoice_number)
            if invoice_number
            else (session.get(Invoice, payment.invoice_id) if payment.invoice_id else None)
        )
        if invoice_number and invoice is None:
            return PayResult(ok=False, message=f"invoice {invoice_number} not found")
        was = payment.reason
        if invoice is not None:
            result = settle(session, invoice, payment, now=now)
        else:
            inn = payment.payer_inn.strip()
            clients = _clients(session, {inn} - {""}).get(inn, [])
            if len(clients) != 1:
                return PayResult(
                    ok=False,
                    message=f"payment {payment_id}: payer INN {payment.payer_inn or '(none)'} "
                    "is not one client; name the invoice with --invoice N",
                )
            result = credit(session, clients[0], payment)
            credited_event(session, payment, clients[0].balance, now=now, correlation_id="")
        if result.ok:
            payment.reason = f"applied by the accountant (was: {was})"
            session.add(payment)
    return result


def reject_held(rt: Runtime, payment_id: int, *, reason: str) -> PayResult:
    """The accountant's decision: this held payment is not ours to apply (kept, with why)."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        payment = _locked_payment(session, payment_id)
        if payment is None:
            return PayResult(ok=False, message=f"no payment {payment_id}")
        if payment.status != "held":
            return PayResult(
                ok=False, message=f"payment {payment_id} is {payment.status}, not held"
            )
        payment.status, payment.reason = "rejected", f"{reason} (was: {payment.reason})"
        session.add(payment)
        record_event(
            session,
            entity="payment",
            entity_id=payment_id,
            event="payment_rejected",
            at=now,
            from_state="held",
            to_state="rejected",
            data={"reason": reason},
        )
    return PayResult(ok=True, message=f"payment {payment_id} rejected: {reason}")


def _locked_payment(session: Session, payment_id: int) -> Payment | None:
    return session.exec(select(Payment).where(Payment.id == payment_id).with_for_update()).first()
