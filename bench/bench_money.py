"""Money figures, each beside a floor measured in the same run.

    /tmp/venv/bin/python bench/bench_money.py [--repeat N] [--documents N] [--database-url URL]

1. «Счёт на оплату» PDF with its payment QR, 20 lines: median vs a bare reportlab canvas
   drawing the same strings (the floor of bench_documents.py).
2. Import of a 1C statement of N documents (default 10,000; a mix of exact matches, credits
   to known clients' balances and held unknown payers) into a fresh database (SQLite in a
   temporary folder unless --database-url): vs parsing alone, and vs parsing plus one
   SQLAlchemy Core executemany of N payment rows (what the import writes, without the
   per-document lookups).
Only the ratios travel (shared, noisy machines). Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from bench_documents import canvas_floor, invoice_rows, median_ms, report  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from mailbot.billing.payments import import_file  # noqa: E402
from mailbot.config import load_settings  # noqa: E402
from mailbot.documents.invoice_pdf import render_invoice_pdf  # noqa: E402
from mailbot.documents.samples import sample_invoice  # noqa: E402
from mailbot.parsers.bank_statement_1c import parse_statement  # noqa: E402
from mailbot.runtime import Runtime, build_runtime  # noqa: E402
from mailbot.storage.db import transaction  # noqa: E402
from mailbot.storage.migrate import upgrade  # noqa: E402
from mailbot.storage.models import Client, Payment  # noqa: E402
from tests.fixtures.statements import OUR_ACCOUNT, incoming, statement_bytes  # noqa: E402
from tests.integration.test_payments import invoiced  # noqa: E402

INVOICES = 200
CLIENTS = 50


def bench_invoice(repeat: int) -> None:
    doc = sample_invoice(20)
    ours = median_ms(partial(render_invoice_pdf, doc), repeat)
    floor = median_ms(partial(canvas_floor, invoice_rows(doc)), repeat)
    report("invoice PDF + QR, 20 lines", ours, "reportlab canvas, same strings", floor)


def _runtime(url: str, folder: Path) -> Runtime:
    shutil.copy(REPO / "config.toml", folder / "config.toml")
    settings = load_settings(folder / "config.toml", env={"MAILBOT_DATABASE_URL": url})
    service = dataclasses.replace(settings.service, account=OUR_ACCOUNT)
    rt = build_runtime(dataclasses.replace(settings, service=service))
    upgrade(rt.engine)
    return rt


def _statement(rt: Runtime, documents: int) -> bytes:
    """Invoices and clients in the database, and a statement paying them (and strangers)."""
    invoices = [invoiced(rt) for _ in range(min(INVOICES, documents))]
    inns = [f"77{i:08d}" for i in range(CLIENTS)]
    with transaction(rt.engine) as s:
        for inn in inns:
            s.add(
                Client(
                    inn=inn,
                    org_name="ООО «Клиент»",
                    email=f"{inn}@c.test",
                    created_at=datetime.now(UTC),
                )
            )
    docs = []
    for i in range(documents):
        if i < len(invoices):
            inv = invoices[i]
            docs.append(incoming(str(i), amount=str(inv.total), purpose=f"Оплата {inv.number}"))
        elif i % 2:
            docs.append(
                incoming(str(i), amount="700", payer_inn=inns[i % CLIENTS], purpose="Аванс")
            )
        else:
            docs.append(incoming(str(i), amount="1.00", payer_inn="7707083893", purpose="Заём"))
    return statement_bytes(docs)


def _core_floor(rt: Runtime, data: bytes) -> None:
    """Parse, then insert one payment row per document with one executemany: no lookups."""
    statement = parse_statement(data, our_accounts=(OUR_ACCOUNT,))
    now = datetime.now(UTC)
    rows = [
        {
            "fingerprint": f"floor:{d.fingerprint}",
            "amount": d.amount,
            "paid_on": d.date,
            "source": "bench",
            "payer_inn": d.payer_inn,
            "purpose": d.purpose,
            "status": "held",
            "reason": "",
            "created_at": now,
        }
        for d in statement.documents
    ]
    with Session(rt.engine) as s:
        s.execute(insert(Payment), rows)
        s.commit()


def bench_import(documents: int, url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-money-"))
    try:
        rt = _runtime(url or f"sqlite:///{folder / 'bench.db'}", folder)
        data = _statement(rt, documents)
        parse_ms = median_ms(lambda: parse_statement(data, our_accounts=(OUR_ACCOUNT,)), 3)
        start = time.perf_counter()
        summary = import_file(rt, data)
        ours = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        _core_floor(rt, data)
        floor = (time.perf_counter() - start) * 1000
        again_start = time.perf_counter()
        again = import_file(rt, data)
        again_ms = (time.perf_counter() - again_start) * 1000
        kind = rt.engine.dialect.name
        print(f"statement of {documents} documents ({kind}): {summary.line}")
        report(f"import {documents:,} documents", ours, "parse only", parse_ms)
        report(f"import {documents:,} documents", ours, "parse + Core executemany", floor)
        report(
            f"re-import ({again.count('duplicate'):,} duplicates)", again_ms, "parse only", parse_ms
        )
        print(f"per document: {ours / documents:.2f} ms")
        rt.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    bench_invoice(args.repeat)
    bench_import(args.documents, args.database_url)


if __name__ == "__main__":
    main()
