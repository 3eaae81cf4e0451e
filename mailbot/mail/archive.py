"""The raw-mail archive: content-addressed files written durably before any processing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_raw(archive_dir: Path, data: bytes) -> tuple[str, str]:
    """Write `data` as <sha[:2]>/<sha>.eml (temp file, fsync, rename); return (sha, relpath).

    Storing the same bytes twice is a no-op: the name is the content's hash.
    """
    digest = sha256_of(data)
    rel = f"{digest[:2]}/{digest}.eml"
    final = archive_dir / rel
    if final.exists():
        return digest, rel
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{digest}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return digest, rel


def read_raw(archive_dir: Path, rel: str) -> bytes:
    return (archive_dir / rel).read_bytes()
