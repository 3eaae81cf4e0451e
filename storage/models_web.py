"""Tables of the web personal account («личный кабинет»): sessions, log-in throttling,
second-factor recovery codes.

Sessions live here, not in a signed cookie, so that log-out, expiry, a password change and an
admin's reset end them on the server (ASVS 7.4.1, 7.4.3); any number of web processes share
them. Only the SHA-256 of a session token or a recovery code is stored.
"""

from datetime import datetime

from sqlmodel import Field, SQLModel


class WebSession(SQLModel, table=True):
    """One logged-in browser of a client."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)  # sha256 hex of the cookie's token
    client_id: int = Field(foreign_key="client.id", index=True)
    stage: str = Field(default="full", max_length=12)  # totp: password ok, second factor due
    csrf: str = Field(max_length=64)  # the anti-forgery token of this session's forms
    created_at: datetime
    last_seen_at: datetime
    ip: str = Field(default="", max_length=45)
    user_agent: str = Field(default="", max_length=300)
    ended_at: datetime | None = Field(default=None, index=True)
    end_reason: str = Field(default="", max_length=20)  # logout|idle|expired|password|reset|user


class LoginThrottle(SQLModel, table=True):
    """Consecutive failed log-ins of one key (`login:<login>` or `ip:<address>`)."""

    key: str = Field(primary_key=True, max_length=100)
    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None  # the next try is refused (slowed) until then


class RecoveryCode(SQLModel, table=True):
    """A one-time code that stands in for the TOTP code when the phone is lost."""

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = None
