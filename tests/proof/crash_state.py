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
    """Read the site's database and mailboxes; takes (and removes) the delivered mail.

    Applications are named by where they came from (sender and first Message-ID), not by
    their numbers: a message whose processing was killed has used an attempt and goes
    behind fresh mail (issue 15), so after a crash applications may be numbered, invoiced
    and given codes in another order. What must not change is what each one ends as.
    """
    with Session(site.engine) as s:
        apps = {a.id: a for a in s.exec(select(Application))}
        label = {i: f"{a.kind}:{a.sender}:{a.root_message_id}" for i, a in apps.items()}
        by_number = {a.number: label[i] for i, a in apps.items()}
        invoices = sorted(s.exec(select(Invoice)), key=lambda i: i.id or 0)
        seen: Counter[int] = Counter()
        inv_label = {}
        for i in invoices:
            seen[i.application_id] += 1
            inv_label[i.id] = f"{label[i.application_id]}#{seen[i.application_id]}"
        codes: dict[str, list[str]] = {}
        for b in s.exec(select(Barcode).order_by(col(Barcode.ean))):
            codes.setdefault(label[b.application_id], []).append(b.ean)
        outbox = list(s.exec(select(OutboxMessage)))

        def named(text: str) -> str:  # application ids and numbers → their origin
            text = re.sub(
                r"application:(\d+):", lambda m: f"application:{label.get(int(m[1]), m[1])}:", text
            )
            return re.sub(r"EAN-\d{4}-\d{6}", lambda m: by_number.get(m[0], m[0]), text)

        state = EndState(
            applications=sorted(
                (label[a.id], a.kind, a.state, a.sender, str(len(a.problems)))
                for a in apps.values()
                if a.id is not None
            ),
            invoices=sorted(
                (inv_label[i.id], str(i.total), str(i.from_balance), i.status) for i in invoices
            ),
            # which codes an application gets depends on the order of issuance; how many it
            # gets, and that no code is handed out twice, does not (checked in differences)
            codes={k: [str(len(v))] for k, v in codes.items()},
            payments=sorted(
                (
                    inv_label.get(p.invoice_id, "-"),
                    str(p.amount),
                    p.source,
                    p.status,
                    named(p.reason),
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
                (named(o.dedupe_key), o.kind, ",".join(o.recipients), o.status, named(o.subject))
                for o in outbox
            ),
            mailbox={},
            delivered=Counter(),
        )
        all_codes = [e for v in codes.values() for e in v]
        if len(all_codes) != len(set(all_codes)):
            state.codes["handed out twice"] = sorted(
                e for e, n in Counter(all_codes).items() if n > 1
            )
    kinds = {o.message_id: o.kind for o in outbox}
    keys = {o.message_id: named(o.dedupe_key) for o in outbox}
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
    if "handed out twice" in crashed.codes:  # end_state records them
        out.append(f"codes handed out twice: {crashed.codes['handed out twice'][:10]}")
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
