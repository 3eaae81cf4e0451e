"""The payment QR of an invoice (ГОСТ Р 56042-2014, UTF-8 variant `ST00012`).

The symbol is built with a fixed mask: segno's automatic mask selection scores all eight masks
and costs ~19 ms of the ~25 ms a symbol takes; any mask scans, the score only tunes contrast.
The ~4.3 ms left are the symbol itself: bit stream, Reed-Solomon blocks, placing and masking
~6,000 modules (version 15). Nothing else in segno's API skips work: giving the version, mode
"byte" or the payload as bytes measured the same.
"""

from __future__ import annotations

import io
from decimal import Decimal

import segno

from mailbot.billing.money import to_kopecks
from mailbot.documents.model import InvoiceDoc, Party

HEADER = "ST00012"
QR_MASK = 0
QR_ERROR = "m"
_LIMITS = {"Name": 160, "BankName": 45, "Purpose": 210}


def _clean(key: str, value: str) -> str:
    """Return `value` without `|` and line breaks, cut to the field's ГОСТ length limit."""
    flat = " ".join(value.replace("|", " ").split())
    limit = _LIMITS.get(key)
    return flat[:limit].rstrip() if limit else flat


def payment_qr_payload(doc: InvoiceDoc) -> str:
    """Return `ST00012|Name=…|…|KPP=…`; ValueError if the supplier's bank data is missing."""
    # what is left to pay after the prepaid balance
    return transfer_payload(doc.supplier, amount=doc.due, purpose=doc.purpose)


def transfer_payload(supplier: Party, *, amount: Decimal, purpose: str) -> str:
    """Return the ГОСТ payload of a transfer of `amount` to `supplier` (an invoice's, or a
    balance top-up's); ValueError if the supplier's bank data is missing."""
    required = {
        "Name": supplier.name,
        "PersonalAcc": supplier.account,
        "BankName": supplier.bank,
        "BIC": supplier.bik,
        "CorrespAcc": supplier.corr_account,
    }
    missing = [key for key, value in required.items() if not value]
    if missing:
        raise ValueError(f"supplier requisites missing for the payment QR: {', '.join(missing)}")
    fields = {
        **required,
        "Sum": str(to_kopecks(amount)),
        "Purpose": purpose,
        "PayeeINN": supplier.inn,
    }
    if supplier.kpp:
        fields["KPP"] = supplier.kpp
    return "|".join([HEADER, *(f"{k}={_clean(k, v or '')}" for k, v in fields.items())])


def qr_code(payload: str) -> segno.QRCode:
    """Return the QR symbol: error level M, UTF-8 bytes, fixed mask (no mask scoring)."""
    return segno.make_qr(payload, error=QR_ERROR, mask=QR_MASK, boost_error=False, encoding="utf-8")


def qr_png(payload: str, *, scale: int = 4, border: int = 4) -> bytes:
    """Return the QR as a black-on-white PNG, `scale` pixels per module."""
    buffer = io.BytesIO()
    qr_code(payload).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()
