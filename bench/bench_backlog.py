"""Backlog benchmark: N valid 50-row applications waiting in the inbox, one pipeline pass.

Embedded defaults (Maildir in, Maildir out) on SQLite in a temp dir, so the figure is the
pipeline's own cost: archive (fsync) → parse → validate → invoice PDF + QR → commit → send.
Prints applications/s beside the bare floor of the same run (archive fsync + one commit
per message, nothing else) and, with --profile, the top functions.
Asserts nothing.  Run: /tmp/venv/bin/python bench/bench_backlog.py [--n 1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import re
import resource
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from mailbot import guard
from mailbot.cli.demo import deliver_to_maildir
from mailbot.config import load_settings
from mailbot.mail.archive import store_raw
from mailbot.mail.intake.maildir import MaildirIntake
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.runtime import Runtime, build_runtime
from mailbot.service.daemon import run_pass
from mailbot.storage.db import transaction
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import Event
from tests.fixtures.forms_builders import PRODUCT_HEADER, VALID_ORG, docx_bytes, product_rows
from tests.fixtures.forms_builders import xlsx_bytes as products_xlsx

REPO = Path(__file__).resolve().parents[1]
INFO = "info@example.test"
DOCX = "vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def application_files(rows: int = 50) -> tuple[bytes, bytes]:
    """A valid application (count = rows) and its product list."""
    values = {**VALID_ORG, "Количество штрихкодов": str(rows)}
    form = docx_bytes([[k, v] for k, v in values.items()])
    return form, products_xlsx([PRODUCT_HEADER, *product_rows(rows)])


def application_mail(sender: str, files: tuple[bytes, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, INFO, "Заявка на штрихкоды"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@client.test>"
    msg.set_content("Добрый день! Заявление и перечень во вложении.")
    msg.add_attachment(files[0], maintype="application", subtype=DOCX,
                       filename="Заявление.docx")  # fmt: skip
    msg.add_attachment(files[1], maintype="application", subtype=XLSX,
                       filename="Перечень продукции.xlsx")  # fmt: skip
    return bytes(msg)


def site(root: Path) -> Runtime:
    root.mkdir()
    text = (REPO / "config.toml").read_text()  # one client: lift the per-address reply limit
    text = re.sub(  # the reply limit and the caps on mail to others (one form address)
        r"(?m)^(replies_per_sender_per_hour|applications_per_\w+|mails_per_recipient_per_day"
        r"|new_recipients_per_hour) = \d+",
        r"\1 = 100000",
        text,
    )
    (root / "config.toml").write_text(text)
    env = {"MAILBOT_DATABASE_URL": f"sqlite:///{root / 'mailbot.db'}", "MAILBOT_SECRET_KEY": ""}
    rt = build_runtime(load_settings(root / "config.toml", env=env))
    upgrade(rt.engine)
    return rt


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (the parse worker)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def floor(rt: Runtime, raws: list[bytes]) -> float:
    """Seconds to archive each message durably and commit one row per message."""
    t0 = time.perf_counter()
    for raw in raws:
        store_raw(rt.settings.archive_dir / "floor", raw)
        with transaction(rt.engine) as session:
            session.add(Event(entity="bench", entity_id=1, event="x", at=rt.clock()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    files = application_files(a.rows)
    raws = [application_mail(f"client{i}@example.test", files) for i in range(a.n)]
    with tempfile.TemporaryDirectory(prefix="bench-backlog-", dir="/tmp") as tmp:
        rt = site(Path(tmp) / "site")
        inbox = rt.settings.maildir.inbox
        for raw in raws:
            deliver_to_maildir(inbox, raw)
        intake = MaildirIntake(inbox, max_bytes=rt.settings.limits.max_message_bytes)
        transport = MaildirTransport(rt.settings.maildir.outbox)
        prof = cProfile.Profile() if a.profile else None
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        report = run_pass(rt, intake, transport)
        if prof:
            prof.disable()
        took = time.perf_counter() - t0
        guard.stop_worker()  # reaped, so its CPU time is counted below
        cpu = cpu_seconds() - cpu0
        base = floor(rt, raws[: min(200, a.n)]) / min(200, a.n) * a.n
    size = len(raws[0]) // 1024
    print(f"backlog of {a.n} valid {a.rows}-row applications ({size} KB each), SQLite:")
    print(f"  received {report.received}, processed {report.processed}, sent {report.sent}")
    print(f"  mailbot pass            {a.n / took:8.1f} applications/s  ({took:.1f} s)")
    print(f"  floor: fsync + commit   {a.n / base:8.1f} messages/s     "
          f"(mailbot spends {took / base:.1f}x the floor; target >= 20/s)")  # fmt: skip
    print(f"  CPU per application     {cpu / a.n * 1000:8.1f} ms "
          f"(daemon + parse worker; {a.n / cpu:.1f}/s if it had a core to itself)")  # fmt: skip
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
