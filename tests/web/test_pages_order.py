"""«Заказать коды»: an uploaded list goes the e-mailed list's way (archive, guard, filing)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import httpx2
from sqlmodel import Session, col, select
from starlette.testclient import TestClient

from mailbot import forms
from mailbot.mail.archive import read_raw
from mailbot.mail.message import parse_message
from mailbot.pipeline import process_pending
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    Barcode,
    BarcodePool,
    Client,
    Event,
    InboundMessage,
    Invoice,
    OutboxMessage,
    ProductRow,
)
from mailbot.web.orders import archive_upload, with_attachment
from tests.conftest import FakeClock
from tests.web.pages2 import ON_POSTGRESQL, ON_SQLITE, add_client, browser, csrf

HOSTILE = Path(__file__).resolve().parents[1] / "corpus" / "hostile"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _upload(
    web: TestClient, data: bytes, name: str = "Перечень.xlsx", **extra: str
) -> httpx2.Response:
    form = {"csrf": csrf(web, "/order"), **extra}
    return web.post("/order", data=form, files={"products": (name, data, XLSX)})


def _applications(rt: Runtime) -> list[Application]:
    with Session(rt.engine) as s:
        return list(s.exec(select(Application)))


def _valid_list_becomes_an_invoiced_order(rt: Runtime) -> None:
    client_id = add_client(rt)
    web = browser(rt, "7707083893")
    sent = forms.sample_products_xlsx()  # (its zip entries carry the time: made once)
    r = _upload(web, sent)
    assert r.status_code == 303
    with Session(rt.engine) as s:
        [app] = s.exec(select(Application)).all()
        assert r.headers["location"] == f"/applications/{app.number}"
        assert app.kind == "order" and app.client_id == client_id and app.state == "invoiced"
        [invoice] = s.exec(select(Invoice)).all()
        assert invoice.application_id == app.id and invoice.status == "issued"
        rows = s.exec(select(ProductRow).where(ProductRow.application_id == app.id)).all()
        assert len(rows) == 5
        # archived first, as received mail: the web row is processed and never in a mailbox
        inbound = s.get(InboundMessage, app.products_inbound_id)
        assert inbound is not None and inbound.key.startswith("web:order:")
        assert inbound.status == "processed" and inbound.acknowledged and inbound.kind == "order"
        assert inbound.lease_owner == "" and inbound.from_addr == "boss@client.test"
        archived = parse_message(read_raw(rt.settings.archive_dir, inbound.archive_path))
        assert archived.attachments[0].data == sent
        # the invoice mail of the order flow goes to the registered address
        [mail] = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "invoice")).all()
        assert mail.recipients == ["boss@client.test"] and mail.application_id == app.id
        events = s.exec(select(Event.event).where(Event.entity_id == inbound.id)).all()
        assert "message_archived" in events and "message_processed" in events


@ON_SQLITE
def test_a_valid_list_becomes_an_order_with_an_invoice_and_redirects(rt: Runtime) -> None:
    _valid_list_becomes_an_invoiced_order(rt)


@ON_POSTGRESQL
def test_a_valid_list_becomes_an_order_on_postgresql(rt: Runtime) -> None:
    _valid_list_becomes_an_invoiced_order(rt)


@ON_SQLITE
def test_the_balance_pays_first_without_a_confirmation_code(rt: Runtime) -> None:
    client_id = add_client(rt, balance="100000.00")
    web = browser(rt, "7707083893")
    r = _upload(web, forms.sample_products_xlsx())
    assert r.status_code == 303
    with Session(rt.engine) as s:
        [app] = s.exec(select(Application)).all()
        [invoice] = s.exec(select(Invoice)).all()
        client = s.get(Client, client_id)
        assert client is not None
        kinds = s.exec(select(OutboxMessage.kind)).all()
    assert app.state == "paid" and invoice.status == "paid"
    assert invoice.from_balance == invoice.total
    assert client.balance == Decimal("100000.00") - invoice.total
    assert "confirm_request" not in kinds


@ON_SQLITE
def test_a_broken_list_shows_each_problem_by_row_and_column_and_opens_nothing(
    rt: Runtime,
) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    r = _upload(web, forms.invalid_sample_products_xlsx())
    page = r.text
    assert r.status_code == 200
    assert "нужно исправить 2 ошибки" in page
    assert "Строка 4, столбец «Вид продукции»" in page
    assert "Строка 6, столбец «Наименование продукции»" in page
    assert _applications(rt) == []
    with Session(rt.engine) as s:
        [inbound] = s.exec(select(InboundMessage)).all()
        assert inbound.status == "processed" and inbound.application_id is None
        assert s.exec(select(OutboxMessage)).all() == []  # the page says it; no mail


@ON_SQLITE
def test_an_oversized_upload_is_refused_before_anything_is_stored(rt: Runtime) -> None:
    limits = dataclasses.replace(rt.settings.limits, max_attachment_bytes=100_000)
    rt.settings = dataclasses.replace(rt.settings, limits=limits)
    add_client(rt)
    web = browser(rt, "7707083893")
    for size in (100_001, 100_000 + 70_000):  # over the file limit; over the body limit
        r = _upload(web, b"x" * size)
        assert r.status_code == 413
        assert "Файл больше 0.1 МБ" in r.text
    with Session(rt.engine) as s:
        assert s.exec(select(InboundMessage)).all() == []
    assert not any(rt.settings.archive_dir.rglob("*.eml"))


@ON_SQLITE
def test_a_zip_bomb_and_an_entity_bomb_are_refused_by_the_mail_limits(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    for name in ("bomb-ratio.xlsx", "billion-laughs.xlsx"):
        r = _upload(web, (HOSTILE / name).read_bytes(), name=name)
        assert r.status_code == 200
        assert name in r.text and "нужно исправить 1 ошибку" in r.text
    assert _applications(rt) == []


@ON_SQLITE
def test_a_file_of_another_kind_is_named_as_in_the_reply_mail(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    r = _upload(web, b"%PDF-1.4", name="C:\\Documents\\scan.pdf")
    assert r.status_code == 200
    assert "scan.pdf" in r.text and "Documents" not in r.text
    assert "прочитать не можем" in r.text
    assert _applications(rt) == []


@ON_SQLITE
def test_products_already_coded_are_flagged_and_not_coded_again(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    assert _upload(web, forms.sample_products_xlsx()).status_code == 303
    with transaction(rt.engine) as s:  # as if issued: every row of the first order has a code
        pool = BarcodePool(prefix="4600000", capacity=1000)
        s.add(pool)
        s.flush()
        assert pool.id is not None
        rows = s.exec(select(ProductRow).order_by(col(ProductRow.id))).all()
        for n, row in enumerate(rows):
            assert row.id is not None
            s.add(
                Barcode(
                    ean=f"46000000000{n}",
                    pool_id=pool.id,
                    item_ref=n,
                    application_id=row.application_id,
                    product_row_id=row.id,
                    issued_at=rt.clock(),
                )
            )
    r = _upload(web, forms.sample_products_xlsx())
    assert r.status_code == 200
    assert "Штрихкоды уже присвоены" in r.text and "460000000000" in r.text
    assert len(_applications(rt)) == 1


@ON_SQLITE
def test_an_upload_without_the_csrf_token_is_refused_and_nothing_is_stored(
    rt: Runtime,
) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    r = web.post("/order", files={"products": ("p.xlsx", forms.sample_products_xlsx(), XLSX)})
    assert r.status_code == 403
    r = web.post(
        "/order",
        data={"csrf": "forged"},
        files={"products": ("p.xlsx", forms.sample_products_xlsx(), XLSX)},
    )
    assert r.status_code == 403
    with Session(rt.engine) as s:
        assert s.exec(select(InboundMessage)).all() == []
    assert _applications(rt) == []


@ON_SQLITE
def test_the_order_page_offers_the_blank_list_and_a_labelled_file_field(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    page = web.get("/order").text
    assert '<label for="products">' in page and 'accept=".xlsx,.xls,.ods,.csv"' in page
    blank = web.get("/order/products-blank.xlsx")
    assert blank.status_code == 200 and blank.content.startswith(b"PK")
    assert blank.headers["content-disposition"].startswith("attachment")
    anonymous = TestClient(web.app, follow_redirects=False)
    assert anonymous.get("/order").headers["location"] == "/login"


def test_the_archived_message_carries_the_upload_byte_for_byte() -> None:
    name = "Перечень «Ромашка» — " + "очень длинное имя " * 8 + ".xlsx"
    for size in (0, 1, 57, 58, 57 * 1024, 57 * 1024 + 1, 300_000):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        mail = EmailMessage()
        mail["From"], mail["Subject"] = "boss@client.test", "Заказ"
        mail.set_content("Текст\n")
        parsed = parse_message(with_attachment(mail, name, data))
        [att] = parsed.attachments
        assert (att.filename, att.data, parsed.text.strip()) == (name, data, "Текст")


@ON_SQLITE
def test_an_upload_left_by_a_dead_web_process_is_filed_by_the_daemon(
    rt: Runtime, clock: FakeClock
) -> None:
    """Archived first: a web process killed before filing loses nothing (the mail path
    files it once its lease is over, asking a confirmation code before the balance)."""
    client_id = add_client(rt, balance="100000.00")
    with Session(rt.engine) as s:
        client = s.get(Client, client_id)
        assert client is not None
    upload = archive_upload(rt, client, "Перечень.xlsx", forms.sample_products_xlsx())
    assert process_pending(rt) == 0  # leased by the (now dead) web process
    clock.advance(minutes=11)
    assert process_pending(rt) == 1
    with Session(rt.engine) as s:
        inbound = s.get(InboundMessage, upload.inbound_id)
        [app] = s.exec(select(Application)).all()
        kinds = set(s.exec(select(OutboxMessage.kind)).all())
    assert inbound is not None and inbound.status == "processed"
    assert app.kind == "order" and app.products_inbound_id == upload.inbound_id
    assert {"invoice", "confirm_request"} <= kinds


@ON_SQLITE
def test_an_upload_from_a_visitor_not_logged_in_is_answered_before_its_body_is_read(
    rt: Runtime,
) -> None:
    """The log-in check comes first: a stranger's declared 100 MB is never drained. Driven at
    the ASGI level, so the test sees every read of the body (a test client sends it whole)."""
    import asyncio

    from mailbot.web.app import create_app

    add_client(rt)
    app = create_app(rt)
    reads: list[int] = []
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        reads.append(65536)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/order",
        "raw_path": b"/order",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"multipart/form-data; boundary=b"),
            (b"content-length", b"104857600"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 303
    assert (b"location", b"/login") in start["headers"]  # type: ignore[operator]
    assert reads == []  # not one chunk of the stranger's body was read
    with Session(rt.engine) as s:
        assert s.exec(select(InboundMessage)).all() == []


@ON_SQLITE
def test_a_list_without_its_header_row_points_to_the_blank_on_the_page_not_to_a_mail(
    rt: Runtime,
) -> None:
    """The reply mail says the blank is attached; the page says where it is on the page."""
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["что-то", "не", "то"])
    buf = io.BytesIO()
    book.save(buf)
    add_client(rt)
    r = _upload(browser(rt, "7707083893"), buf.getvalue())
    assert r.status_code == 200
    assert "бланк перечня продукции (его можно скачать на этой странице)" in r.text
    assert "приложен к письму" not in r.text
