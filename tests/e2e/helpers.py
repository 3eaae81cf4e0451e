"""Running the real `mailbot` command as a subprocess and reading what it mailed.

Each call is a process of its own forked from a warm interpreter that imported mailbot once
(tests/proof/mailbot_process.py): a cold `python -m mailbot` spends ~0.8 s of CPU importing,
and the e2e tests start hundreds. MAILBOT_TEST_COLD_START=1 runs `python -m mailbot` instead.
The daemon tests that start `python -m mailbot run` themselves keep the cold path covered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from tests.proof import mailbot_process

TIMEOUT = 120.0


def mailbot(
    workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `mailbot ARGS` in `workdir`; fail with its output when it fails."""
    full_env = {**os.environ, **(env or {})}
    if os.environ.get("MAILBOT_TEST_COLD_START") == "1":
        proc = subprocess.run(
            [sys.executable, "-m", "mailbot", *args],
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    else:
        proc = mailbot_process.run_captured(workdir, full_env, args, TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mailbot {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def outbox_mails(workdir: Path) -> list[EmailMessage]:
    """Every mail delivered to the embedded outbox Maildir, oldest first."""
    new = workdir / "var/mail/outbox/new"
    files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.exists() else []
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(f.read_bytes()) for f in files]


def attachments(mail: EmailMessage) -> dict[str, bytes]:
    return {str(a.get_filename()): a.get_content() for a in mail.iter_attachments()}


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())
