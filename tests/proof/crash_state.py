"""The crash matrix's end state: what a play leaves that must not depend on crashes.

`end_state` reads one site's database and mailboxes (and takes the mail delivered to the
catch-all, emptying it for the next play); `differences` compares two of them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from mailbot.storage.models import (
    Application,
    Barcode,
    Client,
    InboundMessage,
    Invoice,
    OutboxMessage,
    Payment,
    SupportTicket,
)
from tests.mailstack import MailStack
from tests.proof.crash_harness import Site
from tests.proof.crash_workload import CATCH


@dataclass
class EndState:
    """What must not depend on crashes. `delivered` counts copies per mail in Dovecot."""

    applications: list[tuple[str, ...]]
    invoices: list[tuple[str, ...]]
    codes: dict[str, list[str]]
    payments: list[tuple[str, ...]]
    clients: list[tuple[str, ...]]
    tickets: list[tuple[str, ...]]
    inbound: list[tuple[str, ...]]
    outbox: list[tuple[str, ...]]
    mailbox: dict[str, int]
    delivered: Counter[tuple[str, str, str, str]]  # (Message-ID, kind, To, In-Reply-To)

    def totals(self) -> dict[str, int]:
        return {
            "applications": len(self.applications),
            "invoices": len(self.invoices),
            "codes": sum(len(c) for c in self.codes.values()),
            "payments": len(self.payments),
            "mails": sum(self.delivered.values()),
        }


def end_state(site: Site) -> EndState:
    """Read the site's database and mailboxes; takes (and removes) the delivered mail."""
    with Session(site.engine) as s:
        apps = {a.id: a for a in s.exec(select(Application))}
        number = {i: a.number for i, a in apps.items()}
        invoices = list(s.exec(select(Invoice)))
        inv_number = {i.id: i.number for i in invoices}
        codes: dict[str, list[str]] = {}
        for b in s.exec(select(Barcode).order_by(col(Barcode.ean))):
            codes.setdefault(number[b.application_id], []).append(b.ean)
        outbox = list(s.exec(select(OutboxMessage)))
        state = EndState(
            applications=sorted(
                (a.number, a.kind, a.state, a.sender, str(len(a.problems))) for a in apps.values()
            ),
            invoices=sorted(
                (i.number, number[i.application_id], str(i.total), str(i.from_balance), i.status)
                for i in invoices
            ),
            codes=codes,
            payments=sorted(
                (
                    inv_number.get(p.invoice_id, "-"),
                    str(p.amount),
                    p.source,
                    p.status,
                    p.reason,
                    p.payer_inn,
                )
                for p in s.exec(select(Payment))
            ),
            clients=sorted(
                (c.inn, c.login or "", str(c.balance), str(bool(c.password_hash)))
                for c in s.exec(select(Client))
            ),
            tickets=sorted((t.number, t.sender, t.status) for t in s.exec(select(SupportTicket))),
            # Not `attempts`: it counts when work starts, so a process killed while at a
            # message has used one (that is how a poison message reaches quarantine).
            inbound=sorted(
                (m.message_id, m.kind, m.status, str(m.acknowledged))
                for m in s.exec(select(InboundMessage))
            ),
            # Our Message-IDs are random (issue 16): a mail is named by its dedupe key, the
            # same in every run of the play.
            outbox=sorted(
                (o.dedupe_key, o.kind, ",".join(o.recipients), o.status, o.subject) for o in outbox
            ),
            mailbox={},
            delivered=Counter(),
        )
    kinds = {o.message_id: o.kind for o in outbox}
    keys = {o.message_id: o.dedupe_key for o in outbox}
    for suffix in ("", "-done", "-quarantine"):
        state.mailbox[suffix or "inbox"] = site.count(site.box + suffix)
    state.delivered = take_delivered(site.stack, kinds, keys)
    return state


_HEADERS = b"BODY[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO X-ORIGINAL-TO)]"


def take_delivered(
    stack: MailStack, kinds: dict[str, str], keys: dict[str, str] | None = None
) -> Counter[tuple[str, str, str, str]]:
    """Every mail in the catch-all as (Message-ID, kind, To, In-Reply-To); then empty it.

    With `keys`, our own Message-IDs (random) are written as the rows' dedupe keys.
    """
    keys = keys or {}
    found: Counter[tuple[str, str, str, str]] = Counter()
    with stack.imap(CATCH) as c:
        c.select_folder("INBOX")
        uids = c.search("ALL")
        for i in range(0, len(uids), 500):
            for item in c.fetch(
                uids[i : i + 500], [_HEADERS.replace(b"BODY[", b"BODY.PEEK[")]
            ).values():
                head = _fields(bytes(item[_HEADERS]))
                mid = head.get("message-id", "")
                to = ",".join(sorted(a.strip() for a in head.get("x-original-to", "").split(",")))
                irt = head.get("in-reply-to", "")
                found[(keys.get(mid, mid), kinds.get(mid, "?"), to, keys.get(irt, irt))] += 1
        if uids:
            c.delete_messages(uids)
            c.expunge()
    return found


def _fields(block: bytes) -> dict[str, str]:
    text = re.sub(r"\r?\n[ \t]+", " ", block.decode("utf-8", "replace"))
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def differences(reference: EndState, crashed: EndState, *, deliver_kills: int) -> list[str]:
    """Every way `crashed` differs from `reference`; [] when they agree.

    A mail may arrive twice only when a kill landed between its delivery and the commit
    that marks it sent (after_deliver): at most one extra copy per such kill, same
    Message-ID (copies are counted per Message-ID, so another id would be another mail).
    """
    out = []
    for name in ("applications", "invoices", "codes", "payments", "clients", "tickets",
                 "inbound", "outbox", "mailbox"):  # fmt: skip
        want, got = getattr(reference, name), getattr(crashed, name)
        if want != got:
            out.append(f"{name} differ:\n{_diff(want, got)}")
    eans = [e for codes in crashed.codes.values() for e in codes]
    if len(eans) != len(set(eans)):
        dup = [e for e, n in Counter(eans).items() if n > 1]
        out.append(f"codes handed out twice: {dup[:10]}")
    if set(reference.delivered) != set(crashed.delivered):
        out.append(
            "delivered mails differ:\n"
            + _diff(sorted(reference.delivered), sorted(crashed.delivered))
        )
    extra = {k: n for k, n in crashed.delivered.items() if n > reference.delivered.get(k, 0)}
    if sum(n - reference.delivered.get(k, 0) for k, n in extra.items()) > deliver_kills:
        out.append(f"duplicate mails beyond the {deliver_kills} after_deliver kills: {extra}")
    return out


def _diff(want: Any, got: Any) -> str:
    if isinstance(want, dict) and isinstance(got, dict):
        keys = sorted(set(want) | set(got))
        lines = [
            f"  {k}: {want.get(k)!r} != {got.get(k)!r}" for k in keys if want.get(k) != got.get(k)
        ]
    else:
        w, g = list(want), list(got)
        lines = [f"  - {x!r}" for x in w if x not in g] + [f"  + {x!r}" for x in g if x not in w]
    return "\n".join(lines[:30]) + (f"\n  … {len(lines) - 30} more" if len(lines) > 30 else "")
