"""Sample documents for people to look at: `python -m mailbot.documents.samples OUTDIR`.

The companies are invented (requisites pass their checksums); the bank is a real public BIK.
Tests and the benchmark build their documents from the same functions.
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from mailbot.billing.money import Tariffs, Tier, VatMode, price_lines
from mailbot.documents.barcodes import ean13, ean13_png, ean13_svg
from mailbot.documents.certificate_pdf import render_certificate_pdf
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.documents.model import CertificateDoc, InvoiceDoc, InvoiceLine, IssuedCode, Party
from mailbot.documents.registry_xlsx import render_registry

SAMPLE_DATE = date(2026, 11, 25)
SUPPLIER = Party(
    name="ООО «Штрихкод-Сервис»",
    inn="7701123451",
    kpp="770101001",
    address="125009, г. Москва, ул. Тверская, д. 7, офис 12",
    bank="ПАО СБЕРБАНК г. Москва",
    bik="044525225",
    account="40702810938000012345",
    corr_account="30101810400000000225",
    phone="+74951234567",
)
BUYER = Party(
    name="ООО «Молочная ферма „Заречье“»",
    inn="5003987659",
    kpp="500301001",
    address="142700, Московская обл., г. Видное, Промышленная ул., д. 3, стр. 1",
    phone="+79161234567",
)
SOLE_TRADER = Party(
    name="ИП Иванова Мария Петровна",
    inn="770412345664",
    kpp=None,
    address="109012, г. Москва, ул. Ильинка, д. 4",
)
TARIFFS = Tariffs(
    registration_fee=Decimal("4500.00"),
    tiers=(
        Tier(1, 9, Decimal("350.00")),
        Tier(10, 99, Decimal("290.00")),
        Tier(100, 999, Decimal("215.50")),
        Tier(1000, None, Decimal("149.90")),
    ),
)
_PRODUCTS = (
    ("Молоко питьевое ультрапастеризованное 3,2%", "Молочная продукция", "Заречье", "950 мл"),
    ("Кефир 2,5%", "Молочная продукция", "Заречье", "900 г"),
    ("Творог 9% в вакуумной упаковке", "Молочная продукция", "Заречье", "180 г"),
    ("Сыр полутвёрдый «Российский» 50%, весовой", "Сыры", None, None),
    ("Сметана 20%", "Молочная продукция", "Заречье", "300 г"),
)


def sample_invoice(
    line_count: int = 2, *, vat_mode: VatMode = VatMode.VAT_22, number: str = "2026-00123"
) -> InvoiceDoc:
    """Return an invoice: fee + codes for a new client, then made-up lines up to `line_count`."""
    lines = price_lines(TARIFFS, 12, new_client=True)
    for i in range(len(lines), line_count):
        lines.append(
            InvoiceLine(
                f"Присвоение штрихкодов EAN-13 для товарной группы № {i} "
                f"({_PRODUCTS[i % len(_PRODUCTS)][0]})",
                1 + i % 7,
                "шт.",
                Decimal("215.50") + i,
            )
        )
    return InvoiceDoc(
        number=number,
        date=SAMPLE_DATE,
        supplier=SUPPLIER,
        buyer=BUYER,
        lines=tuple(lines[:line_count]),
        vat_mode=vat_mode,
        application_number="EAN-2026-000123",
        due_days=5,
    )


def sample_codes(count: int, *, first_ref: int = 0) -> tuple[IssuedCode, ...]:
    """Return `count` issued codes from the made-up prefix 4601234."""
    return tuple(
        IssuedCode(ean13(f"4601234{first_ref + i:05d}"), *_PRODUCTS[i % len(_PRODUCTS)])
        for i in range(count)
    )


def sample_certificate(count: int = 12) -> CertificateDoc:
    """Return a certificate for `count` codes."""
    return CertificateDoc(
        number="EAN-2026-000123",
        date=SAMPLE_DATE,
        client=BUYER,
        codes=sample_codes(count),
        service=SUPPLIER,
    )


def write_samples(outdir: Path) -> list[Path]:
    """Write a sample SVG, PNG, invoices, certificate and registry into `outdir`; return paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    code = sample_codes(1)[0].ean
    files = {
        f"{code}.svg": ean13_svg(code),
        f"{code}.png": ean13_png(code),
        "invoice.pdf": render_invoice_pdf(sample_invoice()),
        "invoice-no-vat.pdf": render_invoice_pdf(sample_invoice(3, vat_mode=VatMode.NONE)),
        "invoice-60-lines.pdf": render_invoice_pdf(sample_invoice(60)),
        "certificate.pdf": render_certificate_pdf(sample_certificate(120)),
        "registry.xlsx": render_registry("EAN-2026-000123", SAMPLE_DATE, sample_codes(120)),
    }
    paths = []
    for name, data in files.items():
        path = outdir / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    """Write the samples into argv[0] and print their paths."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m mailbot.documents.samples OUTDIR\n")
        return 2
    for path in write_samples(Path(argv[0])):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
