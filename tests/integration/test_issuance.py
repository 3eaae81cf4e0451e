"""Issuance end to end on the `rt` runtime: the deliverables, their images, split mails."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import zipfile
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from sqlmodel import Session, col, select

from mailbot.config import Prefix
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.mail.outbox import Delivery, send_due
from mailbot.mail.render import SECRET_MASK
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Barcode, OutboxMessage
from tests.conftest import FakeClock
from tests.fixtures.records import paid_application


def _issue(rt: Runtime, clock: FakeClock, rows: int, *, limit: int) -> int:
    rt.settings = dataclasses.replace(
        rt.settings,
        prefixes=(Prefix("4601234", 100_000),),
        limits=dataclasses.replace(rt.settings.limits, max_outgoing_bytes=limit),
    )
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=clock())
        app = paid_application(session, clock(), 1, rows)
    assert issue_paid(rt) == 1
    assert app.id is not None
    return app.id


def _delivered(rt: Runtime, folder: Path) -> list[EmailMessage]:
    transport = MaildirTransport(folder)
    send_due(rt.engine, Delivery(transport, rt.sender, rt.vault, rt.clock))
    parser = BytesParser(policy=policy.default)
    files = sorted((folder / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return [parser.parsebytes(p.read_bytes()) for p in files]


def _zbar_all(paths: list[Path]) -> set[str]:
    exe = shutil.which("zbarimg")
    assert exe is not None, "apt-get install zbar-tools"
    out = subprocess.run([exe, "-q", *map(str, paths)], capture_output=True, check=False)
    return set(out.stdout.decode().split())


def _rasterise(svgs: list[Path]) -> list[Path]:
    exe = shutil.which("rsvg-convert")
    assert exe is not None, "apt-get install librsvg2-bin"
    pngs = []
    for svg in svgs:
        png = svg.with_suffix(".from-svg.png")
        subprocess.run([exe, "-d", "300", "-p", "300", "-b", "white", str(svg), "-o", str(png)],
                       check=True)  # fmt: skip
        pngs.append(png)
    return pngs


def test_every_issued_image_svg_and_png_decodes_back_to_its_code(
    rt: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    app_id = _issue(rt, clock, 6, limit=10_000_000)
    [mail] = _delivered(rt, tmp_path / "out")
    files = {str(a.get_filename()): a.get_content() for a in mail.iter_attachments()}
    with Session(rt.engine) as s:
        app = s.get(Application, app_id)
        assert app is not None
        eans = set(s.exec(select(Barcode.ean).where(Barcode.application_id == app_id)).all())
    assert set(files) == {
        f"Реестр штрихкодов {app.number}.xlsx",
        f"Свидетельство {app.number}.pdf",
        f"Штрихкоды {app.number}.zip",
    }
    images = tmp_path / "images"
    zipfile.ZipFile(io.BytesIO(files[f"Штрихкоды {app.number}.zip"])).extractall(images)
    pngs = sorted(images.rglob("*.png"))
    svgs = sorted(images.rglob("*.svg"))
    assert {p.stem for p in pngs} == {p.stem for p in svgs} == eans
    assert _zbar_all(pngs) == {f"EAN-13:{e}" for e in eans}
    for svg, png in zip(svgs, _rasterise(svgs), strict=True):
        assert _zbar_all([png]) == {f"EAN-13:{svg.stem}"}


def test_a_mail_over_the_limit_is_split_into_numbered_parts_with_credentials_in_part_one(
    rt: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    limit = 120_000  # the certificate alone is ~55 KB; the images of 150 codes ~215 KB
    app_id = _issue(rt, clock, 150, limit=limit)
    with Session(rt.engine) as s:
        rows = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.application_id == app_id)
            .order_by(col(OutboxMessage.id))
        ).all()
        eans = set(s.exec(select(Barcode.ean).where(Barcode.application_id == app_id)).all())
    total = len(rows)
    assert total >= 3
    assert [r.dedupe_key for r in rows] == [
        f"application:{app_id}:issued:part{n}" for n in range(1, total + 1)
    ]
    assert all(len(r.body) <= limit for r in rows)
    assert rows[0].secret is not None and all(r.secret is None for r in rows[1:])
    assert SECRET_MASK.encode() in rows[0].body
    assert all(SECRET_MASK.encode() not in r.body for r in rows[1:])

    mails = _delivered(rt, tmp_path / "out")
    assert len(mails) == total
    in_zips: list[str] = []
    for n, mail in enumerate(mails, start=1):
        assert str(mail["Subject"]).endswith(f"(часть {n} из {total})")
        text = str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        assert f"Часть {n} из {total}" in text
        assert ("Пароль:" in text) == (n == 1)
        for part in mail.iter_attachments():
            name = str(part.get_filename())
            assert name in text  # each part lists its own files
            if name.endswith(".zip"):
                archive = zipfile.ZipFile(io.BytesIO(part.get_content()))
                in_zips += [Path(x).stem for x in archive.namelist() if x.endswith(".png")]
    assert sorted(in_zips) == sorted(eans)  # every code's images once, across the parts
    password = str(mails[0].get_body(("plain",)).get_content()).split("Пароль:")[1].split()[0]  # type: ignore[union-attr]
    assert len(password) == 12 and SECRET_MASK not in password
