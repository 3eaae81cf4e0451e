"""Document rendering figures, each beside a floor measured in the same run.

    /tmp/venv/bin/python bench/bench_documents.py [--repeat N]

Prints the median ms of each task and its ratio to the floor (these machines are shared and
noisy: only the ratios travel). Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from functools import partial

import segno
from barcode.ean import EAN13
from barcode.writer import ImageWriter, SVGWriter
from openpyxl import Workbook
from PIL import Image
from reportlab.pdfgen.canvas import Canvas

from mailbot.billing.money import format_rub
from mailbot.documents.barcodes import (
    HEIGHT_MODULES,
    WIDTH_MODULES,
    ean13_modules,
    ean13_png,
    ean13_svg,
    px_per_module,
)
from mailbot.documents.certificate_pdf import render_certificate_pdf
from mailbot.documents.fonts import reportlab_fonts
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.documents.model import InvoiceDoc
from mailbot.documents.qr import payment_qr_payload, qr_code, qr_png
from mailbot.documents.registry_xlsx import render_registry
from mailbot.documents.samples import SAMPLE_DATE, sample_certificate, sample_codes, sample_invoice

BATCH = 10_000
EXTRAPOLATED_SAMPLE = 100  # python-barcode is too slow for a full batch: time 100, scale up


def median_ms(task: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of `task` in ms over `repeat` runs (after one warm-up)."""
    task()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        task()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def report(name: str, ms: float, floor_name: str, floor_ms: float) -> None:
    """Print one figure with its floor and the ratio."""
    figure = f"{name:<44} {ms:>10.1f} ms"
    print(f"{figure}   floor {floor_name:<40} {floor_ms:>9.1f} ms   x{ms / floor_ms:.2f}")


def canvas_floor(rows: list[str]) -> bytes:
    """Return `rows` drawn on a bare reportlab canvas, 50 a page: no tables, no layout."""
    regular, _ = reportlab_fonts()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=1)
    for start in range(0, len(rows), 50):
        canvas.setFont(regular, 8.5)
        for offset, row in enumerate(rows[start : start + 50]):
            canvas.drawString(40, 800 - offset * 15, row)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def invoice_rows(doc: InvoiceDoc) -> list[str]:
    """Return one string per invoice line with its figures."""
    return [
        f"{n} {line.name} {line.qty} {line.unit} {format_rub(line.price)} {format_rub(line.amount)}"
        for n, line in enumerate(doc.lines, start=1)
    ]


def bench_invoices(repeat: int) -> None:
    for lines in (20, 50, 100):
        doc = sample_invoice(lines)
        ours = median_ms(partial(render_invoice_pdf, doc), repeat)
        floor = median_ms(partial(canvas_floor, invoice_rows(doc)), repeat)
        report(f"invoice PDF + QR, {lines} lines", ours, "reportlab canvas, same strings", floor)
    certificate = sample_certificate(1000)
    rows = [f"{n} {code.ean} {code.name}" for n, code in enumerate(certificate.codes, start=1)]
    few = max(3, repeat // 5)
    ours = median_ms(lambda: render_certificate_pdf(certificate), few)
    floor = median_ms(partial(canvas_floor, rows), few)
    report("certificate PDF, 1,000 codes", ours, "reportlab canvas, same strings", floor)


def bench_qr(repeat: int) -> None:
    payload = payment_qr_payload(sample_invoice())
    print(f"payment QR payload: {len(payload.encode())} UTF-8 bytes")
    ours = median_ms(lambda: qr_code(payload), repeat)
    floor = median_ms(lambda: segno.make_qr(payload, error="m", boost_error=False), repeat)
    report("QR symbol, fixed mask", ours, "segno automatic mask", floor)

    def auto_png() -> bytes:
        buffer = io.BytesIO()
        segno.make_qr(payload, error="m", boost_error=False).save(buffer, kind="png", scale=4)
        return buffer.getvalue()

    report("QR PNG, fixed mask", median_ms(lambda: qr_png(payload), repeat),
           "segno automatic mask + PNG", median_ms(auto_png, repeat))  # fmt: skip


def bench_images(repeat: int) -> None:
    eans = [code.ean for code in sample_codes(BATCH)]
    few = eans[:EXTRAPOLATED_SAMPLE]
    scale = BATCH / EXTRAPOLATED_SAMPLE
    px = px_per_module(300)
    blank = Image.new("1", (WIDTH_MODULES * px, round(HEIGHT_MODULES * px)), 1)

    def encode_only() -> None:
        for _ in eans:
            blank.save(io.BytesIO(), format="PNG", dpi=(300, 300), compress_level=1)

    ours = median_ms(lambda: [ean13_png(e) for e in eans], repeat)
    report(
        "10,000 EAN-13 PNG (300 dpi)",
        ours,
        "PNG-encode a blank image",
        median_ms(encode_only, repeat),
    )
    barcode_png = (
        median_ms(lambda: [EAN13(e, writer=ImageWriter()).render() for e in few], 1) * scale
    )
    report("10,000 EAN-13 PNG (300 dpi)", ours, "python-barcode ImageWriter (extrap.)", barcode_png)

    ours = median_ms(lambda: [ean13_svg(e) for e in eans], repeat)
    report(
        "10,000 EAN-13 SVG",
        ours,
        "module pattern only",
        median_ms(lambda: [ean13_modules(e) for e in eans], repeat),
    )
    barcode_svg = median_ms(lambda: [EAN13(e, writer=SVGWriter()).render() for e in few], 1) * scale
    report("10,000 EAN-13 SVG", ours, "python-barcode SVGWriter (extrap.)", barcode_svg)


def bench_registry(repeat: int) -> None:
    codes = sample_codes(BATCH)

    def plain_write_only() -> bytes:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Реестр")
        for number, code in enumerate(codes, start=1):
            sheet.append([number, code.ean, code.name, code.product_type, code.brand,
                          code.net_quantity, SAMPLE_DATE])  # fmt: skip
        buffer = io.BytesIO()
        workbook.save(buffer)
        return buffer.getvalue()

    ours = median_ms(lambda: render_registry("EAN-2026-000123", SAMPLE_DATE, codes), repeat)
    report("registry xlsx, 10,000 rows", ours, "openpyxl write_only, same plain cells",
           median_ms(plain_write_only, repeat))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15, help="runs per small task")
    args = parser.parse_args()
    small, large = args.repeat, max(3, args.repeat // 5)
    bench_qr(small)
    bench_invoices(small)
    bench_images(large)
    bench_registry(large)


if __name__ == "__main__":
    main()
