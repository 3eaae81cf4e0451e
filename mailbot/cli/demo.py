"""`mailbot demo`: a realistic application dropped into the embedded Maildir inbox."""

from __future__ import annotations

import os
import socket
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailbot.forms import DOCX, XLSX, sample_application_docx, sample_products_xlsx
from mailbot.runtime import utcnow


def sample_message(*, to: str, sender: str = "demo@client.example.test") -> bytes:
    """An applicant's mail with the filled application and product list attached."""
    msg = EmailMessage()
    msg["From"] = f"Анна Смирнова <{sender}>"
    msg["To"] = to
    msg["Subject"] = "Заявка на регистрацию штрихкодов"
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain="client.example.test")
    msg.set_content(
        "Здравствуйте! Направляем заявление и перечень продукции.\nС уважением, Анна Смирнова\n"
    )
    maintype, _, subtype = DOCX.partition("/")
    msg.add_attachment(
        sample_application_docx(),
        maintype=maintype,
        subtype=subtype,
        filename="Заявление о регистрации.docx",
    )
    maintype, _, subtype = XLSX.partition("/")
    msg.add_attachment(
        sample_products_xlsx(),
        maintype=maintype,
        subtype=subtype,
        filename="Перечень продукции.xlsx",
    )
    return bytes(msg)


def deliver_to_maildir(root: Path, data: bytes) -> Path:
    """Deliver like an MDA: write into tmp/, then rename into new/."""
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.P{os.getpid()}.{socket.gethostname()}"
    tmp = root / "tmp" / name
    tmp.write_bytes(data)
    final = root / "new" / name
    tmp.rename(final)
    return final


def drop_sample(inbox: Path, *, to: str) -> Path:
    return deliver_to_maildir(inbox, sample_message(to=to))
