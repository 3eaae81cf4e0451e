"""«Заявки и коды»: the list, one application, its downloads and invoice PDFs; owner only."""

from __future__ import annotations

import io
import subprocess
import zipfile
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from urllib.parse import quote

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, col, select

from mailbot.documents.barcodes import validate_ean13
from mailbot.handlers.correspondence import STATE_TEXT
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, Barcode, Event, Invoice, OutboxMessage
from mailbot.web.status import timeline
from tests.web.accounts import (
    INN_A,
    INN_B,
    SQLITE_ONLY,
    Order,
    add_client,
    invoiced_order,
    issued_order,
    logged_in,
)

DOWNLOADS = ("registry.xlsx", "barcodes.zip", "certificate.pdf")


def eans_of(rt: Runtime, number: str) -> list[str]:
    """The application's codes in product row order, from the database."""
    with Session(rt.engine) as s:
        app = s.exec(select(Application).where(Application.number == number)).one()
        rows = s.exec(
            select(Barcode.ean)
            .where(Barcode.application_id == app.id)
            .order_by(col(Barcode.product_row_id))
        )
        return list(rows)


def issued_mail_files(rt: Runtime, number: str) -> dict[str, bytes]:
    """The attachments of the issued mail of application `number`, from its outbox row."""
    with Session(rt.engine) as s:
        app = s.exec(select(Application).where(Application.number == number)).one()
        row = s.exec(
            select(OutboxMessage).where(
                OutboxMessage.application_id == app.id, OutboxMessage.kind == "issued"
            )
        ).one()
    mail = BytesParser(policy=policy.default).parsebytes(row.body)
    return {str(a.get_filename()): a.get_content() for a in mail.iter_attachments()}


def pdf_text(data: bytes) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    )
    return out.stdout.decode()


@SQLITE_ONLY
def test_list_shows_every_application_in_the_status_reply_words_with_invoice_and_due(
    rt: Runtime,
) -> None:
    a = add_client(rt, INN_A)
    waiting = invoiced_order(rt, a, rows=2)
    done = issued_order(rt, a, rows=3)
    page = logged_in(rt, INN_A).get("/applications")
    assert page.status_code == 200
    html = page.text
    assert html.index(done.application) < html.index(waiting.application)  # newest first
    assert STATE_TEXT["invoiced"] in html and STATE_TEXT["issued"] in html
    with Session(rt.engine) as s:
        invoice = s.exec(select(Invoice).where(Invoice.number == waiting.invoice)).one()
    due = f"{invoice.total:,.2f}".replace(",", " ").replace(".", ",")
    assert f'href="/invoices/{waiting.invoice}/pdf"' in html
    assert f'<td class="num">{due}</td>' in html
    assert '<div class="table-wrap">' in html and 'lang="ru"' in html


@SQLITE_ONLY
def test_application_page_has_timeline_products_with_their_codes_and_invoice_links(
    rt: Runtime,
) -> None:
    a = add_client(rt, INN_A)
    order = issued_order(rt, a, rows=3)
    html = logged_in(rt, INN_A).get(f"/applications/{order.application}").text
    eans = eans_of(rt, order.application)
    assert len(eans) == 3
    for ean in eans:
        assert f'<td class="ean">{ean}</td>' in html
    assert "Сок яблочный 3" in html and "Продукты питания" in html
    steps = ["Выставлен счёт", "Оплата получена", "Штрихкоды присвоены", "Штрихкоды выданы"]
    positions = [html.index(step) for step in steps]
    assert positions == sorted(positions)  # oldest first
    assert f"Оплата получена (счёт № {order.invoice}, " in html
    assert html.count(f"счёт № {order.invoice}") == 2  # issued, paid: each said once
    assert f'href="/invoices/{order.invoice}/pdf"' in html
    for name in DOWNLOADS:
        assert f'href="/applications/{order.application}/{name}"' in html
    assert html.count("<h1>") == 1


@SQLITE_ONLY
def test_downloads_are_the_issued_mails_files_with_a_disposition_and_their_type(
    rt: Runtime,
) -> None:
    a = add_client(rt, INN_A)
    order = issued_order(rt, a, rows=4)
    browser = logged_in(rt, INN_A)
    mailed = issued_mail_files(rt, order.application)
    eans = eans_of(rt, order.application)

    registry = browser.get(f"/applications/{order.application}/registry.xlsx")
    assert registry.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    name = f"Реестр штрихкодов {order.application}.xlsx"
    assert registry.headers["content-disposition"] == (
        f'attachment; filename="registry-{order.application}.xlsx"; '
        f"filename*=UTF-8''{quote(name)}"
    )
    assert name in mailed
    sheet = load_workbook(io.BytesIO(registry.content), read_only=True).active
    assert sheet is not None
    cells = [row[1] for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert cells == eans == [validate_ean13(str(c)) for c in cells]

    images = browser.get(f"/applications/{order.application}/barcodes.zip")
    assert images.headers["content-type"] == "application/zip"
    assert "attachment;" in images.headers["content-disposition"]
    assert images.content == mailed[f"Штрихкоды {order.application}.zip"]
    with zipfile.ZipFile(io.BytesIO(images.content)) as z:
        names = z.namelist()
        assert {n.rsplit(".", 1)[1] for n in names} == {"png", "svg"}
        png = next(n for n in names if n.endswith(".png"))
        assert z.read(png).startswith(b"\x89PNG")
    assert all(any(e in n for n in names) for e in eans)

    certificate = browser.get(f"/applications/{order.application}/certificate.pdf")
    assert certificate.headers["content-type"] == "application/pdf"
    assert "attachment;" in certificate.headers["content-disposition"]
    assert certificate.content.startswith(b"%PDF")
    assert certificate.content == mailed[f"Свидетельство {order.application}.pdf"]


@SQLITE_ONLY
def test_invoice_pdf_is_the_invoice_of_that_number(rt: Runtime) -> None:
    a = add_client(rt, INN_A)
    order = invoiced_order(rt, a, rows=2)
    answer = logged_in(rt, INN_A).get(f"/invoices/{order.invoice}/pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="invoice-{order.invoice}.pdf"; '
        f"filename*=UTF-8''{quote(f'Счёт {order.invoice}.pdf')}"
    )
    assert answer.content.startswith(b"%PDF")
    text = pdf_text(answer.content)
    assert order.invoice in text and order.application in text


@SQLITE_ONLY
def test_downloads_are_404_while_the_application_has_no_codes(rt: Runtime) -> None:
    a = add_client(rt, INN_A)
    order = invoiced_order(rt, a)
    browser = logged_in(rt, INN_A)
    assert "/registry.xlsx" not in browser.get(f"/applications/{order.application}").text
    for name in DOWNLOADS:
        assert browser.get(f"/applications/{order.application}/{name}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/applications/{app}",
        *(f"/applications/{{app}}/{name}" for name in DOWNLOADS),
        "/invoices/{invoice}/pdf",
    ],
)
@SQLITE_ONLY
def test_another_client_gets_404_on_every_object_of_a(rt: Runtime, path: str) -> None:
    a, b = add_client(rt, INN_A), add_client(rt, INN_B)
    mine = issued_order(rt, a)
    own = issued_order(rt, b)
    browser = logged_in(rt, INN_B)
    theirs = path.format(app=mine.application, invoice=mine.invoice)
    assert browser.get(theirs).status_code == 404
    assert browser.get(path.format(app=own.application, invoice=own.invoice)).status_code == 200
    assert mine.application not in browser.get("/applications").text


def test_status_pages_and_a_download_smoke(rt: Runtime) -> None:
    """SQLite and PostgreSQL: the list, the page and the registry of an issued order."""
    a = add_client(rt, INN_A)
    order: Order = issued_order(rt, a, rows=2)
    browser = logged_in(rt, INN_A)
    assert order.application in browser.get("/applications").text
    html = browser.get(f"/applications/{order.application}").text
    assert all(f'<td class="ean">{e}</td>' in html for e in eans_of(rt, order.application))
    registry = browser.get(f"/applications/{order.application}/registry.xlsx")
    assert registry.status_code == 200 and registry.content.startswith(b"PK")


def test_timeline_names_known_events_in_russian_and_others_by_their_name() -> None:
    at = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    events = [
        Event(at=at, entity="application", entity_id=1, event="invoice_issued",
              data={"invoice": "2026-00007"}),
        Event(at=at, entity="invoice", entity_id=7, event="invoice_created"),
        Event(at=at, entity="application", entity_id=1, event="payment_matched",
              data={"invoice": "2026-00007", "amount": "2500.00"}),
        Event(at=at, entity="invoice", entity_id=7, event="invoice_reversed"),
    ]  # fmt: skip
    assert [(s.at, s.text) for s in timeline(events, {7: "2026-00007"})] == [
        ("25.11.2026 12:30", "Выставлен счёт (счёт № 2026-00007)"),
        ("25.11.2026 12:30", "Оплата получена (счёт № 2026-00007, 2 500,00 руб.)"),
        ("25.11.2026 12:30", "invoice_reversed (счёт № 2026-00007)"),
    ]
