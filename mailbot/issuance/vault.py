"""Secrets at rest: a password waiting in the outbox is stored encrypted, never plain.

The key comes from $MAILBOT_SECRET_KEY, else from var/secret.key (created 0600 on first
use). Fernet (cryptography) is authenticated encryption; no home-made crypto.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


class Vault:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def __repr__(self) -> str:
        return "Vault(***)"

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode("ascii")).decode()


def load_vault(var_dir: Path, env: dict[str, str] | None = None) -> Vault:
    """The vault for this installation; the key file is created once, readable by us only."""
    env = dict(os.environ) if env is None else env
    if env.get("MAILBOT_SECRET_KEY"):
        return Vault(env["MAILBOT_SECRET_KEY"].encode())
    path = var_dir / "secret.key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret.key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
            fh.flush()
            os.fsync(fh.fileno())
        try:  # link() fails if another process won the race: then its key is the key
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return Vault(path.read_bytes().strip())
