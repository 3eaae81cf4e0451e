"""MaildirTransport writes each message once, named by its Message-ID."""

from __future__ import annotations

from pathlib import Path

from mailbot.mail.maildir_outbox import MaildirTransport, outbox_name
from mailbot.mail.transport import Envelope

ENV = Envelope(mail_from="info@example.test", recipients=("a@example.test",), message_id="<1@x>")
DATA = b"Message-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n"


def test_delivered_message_lands_in_new_with_exact_bytes(tmp_path: Path) -> None:
    MaildirTransport(tmp_path).deliver(DATA, ENV)
    (path,) = (tmp_path / "new").iterdir()
    assert path.name == outbox_name(ENV.message_id, DATA)
    assert path.name.endswith(".eml")
    assert path.read_bytes() == DATA
    assert list((tmp_path / "tmp").iterdir()) == []


def test_delivering_the_same_message_twice_leaves_one_file(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    transport.deliver(DATA, ENV)
    transport.deliver(DATA, ENV)
    assert len(list((tmp_path / "new").iterdir())) == 1


def test_different_message_ids_give_different_files(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    transport.deliver(DATA, ENV)
    transport.deliver(DATA, Envelope(ENV.mail_from, ENV.recipients, "<2@x>"))
    assert len(list((tmp_path / "new").iterdir())) == 2


def test_name_is_deterministic_and_falls_back_to_the_bytes_without_message_id() -> None:
    assert outbox_name("<1@x>", b"a") == outbox_name("<1@x>", b"b")
    assert outbox_name("", b"a") != outbox_name("", b"b")
