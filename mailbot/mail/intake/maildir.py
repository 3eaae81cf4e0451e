"""Maildir intake: reads `root/new` and `root/cur`; acknowledged files move out by rename.

Processed mail goes to `root/.processed/cur/`, quarantined mail to `root/.quarantine/cur/`
with a `<name>.reason` sidecar. Keys are ``maildir:<unique name>`` (the `:2,` info cut off).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from mailbot.mail.intake.base import OversizedMessage, RawMessage

log = structlog.get_logger()

HEADER_CAP = 64 * 1024
PROCESSED = ".processed"
QUARANTINE = ".quarantine"


def unique_name(filename: str) -> str:
    """Return the Maildir unique part of a file name (without `:2,<flags>`)."""
    return filename.split(":", 1)[0]


def read_headers(path: Path, cap: int = HEADER_CAP) -> bytes:
    """Return the header block of a message file, its blank line included; at most `cap`."""
    out = bytearray()
    with path.open("rb") as f:
        for line in f:
            out += line
            if line in (b"\n", b"\r\n") or len(out) >= cap:
                break
    return bytes(out[:cap])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_maildir(root: Path) -> None:
    """Create `root/{tmp,new,cur}` when missing."""
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)


class MaildirIntake:
    """`Intake` on a local Maildir."""

    def __init__(
        self, root: Path, *, max_bytes: int = 25 * 1024 * 1024, poll_interval: float = 0.05
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.poll_interval = poll_interval
        self._yielded: set[str] = set()
        ensure_maildir(self.root)

    def __repr__(self) -> str:
        return f"MaildirIntake({str(self.root)!r})"

    def _files(self) -> list[Path]:
        """Return the message files in new/ and cur/, oldest first (mtime, then name)."""
        found: list[tuple[int, str, Path]] = []
        for sub in ("new", "cur"):
            with os.scandir(self.root / sub) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        mtime = entry.stat().st_mtime_ns
                    except FileNotFoundError:  # acknowledged meanwhile
                        continue
                    found.append((mtime, entry.name, Path(entry.path)))
        found.sort(key=lambda t: (t[0], t[1]))
        return [p for _, _, p in found]

    def fetch_new(
        self, known: Callable[[str], bool] | None = None
    ) -> Iterator[RawMessage | OversizedMessage]:
        """Yield every message still in new/ or cur/ (unless `known`), oldest first."""
        files = self._files()
        self._yielded &= {unique_name(p.name) for p in files}  # forget acknowledged ones
        for path in files:
            key = "maildir:" + unique_name(path.name)
            if known is not None and known(key):
                self._yielded.add(unique_name(path.name))
                continue
            try:
                size = path.stat().st_size
                if size > self.max_bytes:
                    log.warning("maildir_message_oversized", key=key, size=size)
                    msg: RawMessage | OversizedMessage = OversizedMessage(
                        key=key, size=size, headers=read_headers(path)
                    )
                else:
                    data = path.read_bytes()
                    msg = RawMessage(key=key, data=data, size=len(data))
            except FileNotFoundError:
                continue
            self._yielded.add(unique_name(path.name))
            yield msg

    def _find(self, name: str) -> Path | None:
        for sub in ("new", "cur"):
            with os.scandir(self.root / sub) as it:
                for entry in it:
                    if unique_name(entry.name) == name:
                        return Path(entry.path)
        return None

    def acknowledge(self, key: str, *, quarantine: bool = False, reason: str = "") -> None:
        """Rename the file into .processed/cur (or .quarantine/cur + reason); no-op when gone."""
        prefix, _, name = key.partition(":")
        if prefix != "maildir" or not name or "/" in name:
            raise ValueError(f"not a Maildir intake key: {key!r}")
        src = self._find(name)
        if src is None:
            log.debug("maildir_ack_missing", key=key)
            return
        box = self.root / (QUARANTINE if quarantine else PROCESSED)
        ensure_maildir(box)
        dest = box / "cur" / src.name
        if quarantine:
            tmp = box / "tmp" / f"{src.name}.reason"
            tmp.write_text(reason + "\n", encoding="utf-8")
            os.replace(tmp, box / "cur" / f"{src.name}.reason")
        try:
            os.rename(src, dest)
        except FileNotFoundError:  # acknowledged by someone else meanwhile
            return
        _fsync_dir(dest.parent)
        event = "maildir_message_quarantined" if quarantine else "maildir_message_acknowledged"
        log.info(event, key=key, reason=reason)

    def _has_unseen(self) -> bool:
        for sub in ("new", "cur"):
            with os.scandir(self.root / sub) as it:
                for entry in it:
                    name = unique_name(entry.name)
                    if not name.startswith(".") and name not in self._yielded:
                        return True
        return False

    def wait(self, timeout: float) -> bool:
        """Return True as soon as a file not yet yielded by fetch_new is there."""
        deadline = time.monotonic() + timeout
        while True:
            if self._has_unseen():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.poll_interval, left))  # the poll interval

    def close(self) -> None:
        """Nothing to release."""
