"""The ГОСТ Р 56042-2014 payment QR: payload fields, limits, and that the image scans exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mailbot.documents.qr import QR_MASK, payment_qr_payload, qr_code, qr_png
from mailbot.documents.samples import SOLE_TRADER, sample_invoice

EXPECTED = (
    "ST00012|Name=ООО «Штрихкод-Сервис»|PersonalAcc=40702810938000012345"
    "|BankName=ПАО СБЕРБАНК г. Москва|BIC=044525225|CorrespAcc=30101810400000000225"
    "|Sum=798000|Purpose=Оплата по счёту № 2026-00123 от 25.11.2026 за регистрацию штрихкодов. "
    "В том числе НДС 22% — 1 439,02 руб.|PayeeINN=7701123451|KPP=770101001"
)


def _fields(payload: str) -> dict[str, str]:
    header, *pairs = payload.split("|")
    assert header == "ST00012"
    return dict(pair.split("=", 1) for pair in pairs)


def test_payload_has_the_gost_fields_in_order_with_the_sum_in_kopecks() -> None:
    assert payment_qr_payload(sample_invoice()) == EXPECTED


def test_values_lose_pipes_and_line_breaks_and_respect_length_limits() -> None:
    doc = sample_invoice()
    supplier = replace(
        doc.supplier,
        name="ООО «Очень|длинное»\nназвание " + "Я" * 200,
        bank="АКЦИОНЕРНЫЙ КОММЕРЧЕСКИЙ БАНК «ОЧЕНЬ ДЛИННОЕ НАЗВАНИЕ БАНКА» (ПАО)",
    )
    payload = payment_qr_payload(replace(doc, supplier=supplier, number="2026-|0001" + "9" * 200))
    fields = _fields(payload)
    assert len(fields) == 9
    assert fields["Name"].startswith("ООО «Очень длинное» название ЯЯ")
    assert len(fields["Name"]) <= 160
    assert len(fields["BankName"]) <= 45
    assert len(fields["Purpose"]) <= 210
    assert "\n" not in payload


def test_sole_trader_supplier_has_no_kpp_field() -> None:
    supplier = replace(
        SOLE_TRADER,
        bank="ПАО СБЕРБАНК",
        bik="044525225",
        account="40702810938000012345",
        corr_account="30101810400000000225",
    )
    fields = _fields(payment_qr_payload(replace(sample_invoice(), supplier=supplier)))
    assert "KPP" not in fields
    assert fields["PayeeINN"] == "770412345664"


def test_missing_supplier_bank_data_is_an_error() -> None:
    doc = sample_invoice()
    with pytest.raises(ValueError, match="BIC, CorrespAcc"):
        payment_qr_payload(replace(doc, supplier=replace(doc.supplier, bik=None, corr_account="")))


def test_symbol_uses_level_m_and_the_fixed_mask() -> None:
    code = qr_code(EXPECTED)
    assert code.error == "M"
    assert code.mask == QR_MASK


def test_qr_png_decodes_to_exactly_the_payload(
    tmp_path: Path, zbar_raw: Callable[[Path], str]
) -> None:
    for payload in (EXPECTED, payment_qr_payload(sample_invoice(40, number="2026-99999"))):
        path = tmp_path / "qr.png"
        path.write_bytes(qr_png(payload))
        assert zbar_raw(path) == payload
