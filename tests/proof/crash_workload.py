"""The crash matrix's workload: the mixed mail of phase A, the payments and fixes of phase B.

Phase A (built once, the same bytes for every play): applications with valid forms, each
from an address and a company of its own; invalid ones; automatic mail; orders (a product
list alone) and support mail from clients registered beforehand, some with a balance that
pays an order in full; strangers' questions. Phase B is built per play from the invoices
the play issued: 1C statements (imported with the CLI, or mailed by the accountants with
our server's DKIM/DMARC pass, and one mailed without it) and corrected files in the
threads of some invalid applications.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime

from stdnum.ru import inn as ru_inn

from mailbot.forms import (
    SAMPLE_APPLICATION,
    _application_docx,
    _products_xlsx,
    _sample_rows,
    bundled_product_types,
    invalid_sample_application_docx,
    invalid_sample_products_xlsx,
)
from tests.fixtures.statements import incoming, statement_bytes
from tests.unit.test_classify_automatic import automatic_mails

INFO = "info@example.test"
CATCH = "inbox@example.test"  # the relay's catch-all: every other address is delivered here
ACCOUNTANTS = ("buh@example.test", "buh2@example.test", "buh3@example.test")
AUTHSERV = "mx.example.test"
PASS = (
    f"{AUTHSERV}; dkim=pass (2048-bit key) header.d=example.test header.s=mail; "
    "dmarc=pass (p=reject) header.from=example.test"
)
DATE = format_datetime(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
KPP = "773601001"


@dataclass(frozen=True)
class Party:
    """Someone who gets an invoice in phase A, and how (or whether) it is paid in phase B."""

    sender: str
    inn: str
    route: str  # "cli" | "import" | "mail" | "unverified" | "" (left unpaid)


@dataclass(frozen=True)
class Fix:
    """An invalid application corrected in its thread in phase B."""

    n: int  # the applicant's number (its INN, OGRN and company name)
    sender: str
    rows: int
    root_message_id: str


@dataclass(frozen=True)
class SeedClient:
    email: str
    inn: str
    balance: Decimal


@dataclass(frozen=True)
class Workload:
    mails: tuple[bytes, ...]  # phase A, in mailbox order
    clients: tuple[SeedClient, ...]  # registered before phase A (orders come from them)
    payers: tuple[Party, ...]  # invoiced in phase A
    fixes: tuple[Fix, ...]
    per_statement: int  # payments per statement file
    kinds: Counter[str] = field(default_factory=Counter)  # what phase A holds, for reports


def company_inn(n: int, region: str = "77") -> str:
    """A 10-digit organisation INN with a valid control digit."""
    head = f"{region}{n:07d}"
    return head + ru_inn.calc_company_check_digit(head)


def company_ogrn(n: int) -> str:
    head = f"1027700{n:05d}"
    return head + str(int(head) % 11 % 10)


def letter(frm: str, subject: str, text: str, mid: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Date"] = frm, INFO, subject, DATE
    msg["Message-ID"] = mid
    msg.set_content(text)
    return msg


def _mid(tag: str) -> str:
    return f"<{tag}@client.example.test>"


def with_files(msg: EmailMessage, docx: bytes | None, xlsx: bytes) -> bytes:
    if docx is not None:
        msg.add_attachment(
            docx,
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
            filename="Заявление о регистрации.docx",
        )
    msg.add_attachment(
        xlsx,
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="Перечень продукции.xlsx",
    )
    return bytes(msg)


def products(rows: int) -> bytes:
    return _products_xlsx(_sample_rows()[:rows], bundled_product_types())


def application_form(n: int, rows: int) -> bytes:
    values = SAMPLE_APPLICATION | {
        "inn": company_inn(n),
        "kpp": KPP,
        "ogrn": company_ogrn(n),
        "email": f"office{n}@romashka.example",  # .test fails the form's e-mail check
        "barcode_count": str(rows),
        "org_name": f"Общество с ограниченной ответственностью «Ромашка-{n}»",
        "short_name": f"ООО «Ромашка-{n}»",
    }
    return _application_docx(values)


# Phase A is these kinds, round-robin (so every step meets every kind); counts per 20 mails.
PATTERN = (
    "valid", "order", "valid", "automatic", "invalid", "valid", "stranger", "order", "valid",
    "support", "valid", "order", "invalid", "valid", "automatic", "order", "valid", "stranger",
    "valid", "order",
)  # fmt: skip
CLI_PAID = 3  # the first payers are paid with `mailbot invoices pay` (a process each)
ROUTES = ("mail", "import", "mail", "", "mail", "unverified", "mail", "import", "")


def _route(payers: Sequence[Party]) -> str:
    k = len(payers)
    return "cli" if k < CLI_PAID else ROUTES[(k - CLI_PAID) % len(ROUTES)]


def build_workload(n: int) -> Workload:
    """n phase-A mails of every kind, each applicant from an address of its own."""
    kinds: Counter[str] = Counter()
    mails: list[bytes] = []
    payers: list[Party] = []
    fixes: list[Fix] = []
    n_orders = sum(PATTERN[i % len(PATTERN)] == "order" for i in range(n))
    clients = tuple(
        SeedClient(
            email=f"client{j}@client.example.test",
            inn=company_inn(j, region="78"),
            # every 4th pays its order from the balance in full (issued in phase A), every
            # 4th in part (the invoice is for the rest), the others owe it all
            balance=Decimal(("100000.00", "700.00", "0.00", "0.00")[j % 4]),
        )
        for j in range(max(1, (n_orders + 1) // 2))  # two orders each
    )
    robots = iter(automatic_mails(n))
    order_no = support_no = stranger_no = 0
    for i in range(n):
        kind = PATTERN[i % len(PATTERN)]
        kinds[kind] += 1
        rows = 1 + i % 5
        if kind == "valid":
            sender = f"app{i}@client.example.test"
            msg = letter(
                sender,
                "Заявка на регистрацию",
                "Заявление и перечень во вложении.",
                _mid(f"app{i}"),
            )
            mails.append(with_files(msg, application_form(i, rows), products(rows)))
            payers.append(Party(sender, company_inn(i), _route(payers)))
        elif kind == "invalid":
            sender = f"bad{i}@client.example.test"
            msg = letter(sender, "Заявка", "Заявление во вложении.", _mid(f"bad{i}"))
            mails.append(
                with_files(msg, invalid_sample_application_docx(), invalid_sample_products_xlsx())
            )
            if kinds[kind] % 2:
                fixes.append(Fix(i, sender, rows, _mid(f"bad{i}")))
        elif kind == "order":
            client = clients[order_no % len(clients)]
            msg = letter(
                client.email, "Заказ штрихкодов", "Новые товары во вложении.", _mid(f"order{i}")
            )
            mails.append(with_files(msg, None, products(rows)))
            if client.balance < Decimal(10000) and order_no < len(clients):
                payers.append(Party(client.email, client.inn, _route(payers)))
            order_no += 1
        elif kind == "support":  # all from one client: past 20 an hour, replies are held
            client = clients[0]
            msg = letter(
                client.email,
                f"Вопрос {support_no}",
                "Подскажите, как добавить бренд?",
                _mid(f"support{i}"),
            )
            mails.append(bytes(msg))
            support_no += 1
        elif kind == "stranger":
            # two addresses only: instructions go once a day, the rest is recorded unanswered
            sender = f"stranger{stranger_no % 2}@elsewhere.example.test"
            msg = letter(sender, "Вопрос", "Сколько стоит штрихкод?", _mid(f"stranger{i}"))
            mails.append(bytes(msg))
            stranger_no += 1
        else:
            mails.append(next(robots))
    # the second order of a client is paid (or not) with the first; its invoice stays
    return Workload(
        tuple(mails), clients, tuple(payers), tuple(fixes), per_statement=6, kinds=kinds
    )


def statement_mail(data: bytes, *, sender: str, number: int, authenticated: bool) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Date"] = sender, INFO, DATE
    msg["Subject"] = f"Выписка {number}"
    msg["Message-ID"] = _mid(f"statement{number}")
    msg.set_content("Выписка во вложении.")
    msg.add_attachment(data, maintype="text", subtype="plain", filename=f"kl_to_1c_{number}.txt")
    top = f"Authentication-Results: {PASS}\n" if authenticated else ""  # as our MTA prepends
    return top.encode() + bytes(msg)


def correction_mail(fix: Fix, n: int) -> bytes:
    msg = letter(fix.sender, "Re: Заявка", "Исправленные файлы во вложении.", _mid(f"fix{n}"))
    msg["In-Reply-To"] = msg["References"] = fix.root_message_id
    # authenticated by our server, so the correction runs at once (no confirmation round);
    # our MTA's field is the topmost, above everything the sender wrote
    domain = fix.sender.rpartition("@")[2]
    top = f"Authentication-Results: {AUTHSERV}; dkim=pass header.d={domain}; dmarc=pass\n"
    return top.encode() + with_files(msg, application_form(fix.n, fix.rows), products(fix.rows))


def statement_file(payments: Sequence[tuple[Party, str, Decimal]], *, first: int) -> bytes:
    """A 1C statement paying each (party, invoice number, amount), numbered from `first`."""
    docs = [
        incoming(
            str(first + k),
            amount=f"{amount:.2f}",
            purpose=f"Оплата по счёту № {number} от 25.11.2026 за регистрацию штрихкодов. "
            "В том числе НДС 22%",
            payer_inn=party.inn,
        )
        for k, (party, number, amount) in enumerate(payments)
    ]
    return statement_bytes(docs)
