"""A throwaway loopback mail stack for tests: Dovecot 2.3 + an SMTP relay, all on 127.0.0.1.

`start_mailstack(dir)` writes a minimal dovecot.conf (IMAP, IMAPS, LMTP, passwd-file users,
Maildir), runs `dovecot -F` in its own process group and `mailstack_relay.py` (aiosmtpd ->
LMTP before 250; plain SMTP, SMTPS and STARTTLS ports) beside it, and waits for the banners
with a deadline. Every TLS port shows a certificate signed by the session's throw-away CA
(tests/mailstack_tls.py); clients trust `MailStack.ca_file`. Every process it starts is
killed by `MailStack.stop()`, at interpreter exit, or when the test process dies
(PR_SET_PDEATHSIG). Fixtures: `mailstack` (one per session and xdist worker) and
`mailstack_factory` (own stacks for tests that break them).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.mailstack_tls import SERVER_NAMES, session_ca

HOST = "127.0.0.1"
USERS = ("info@example.test", "applicant@example.test", "accountant@example.test")
PASSWORD = "secret"
RELAY = Path(__file__).with_name("mailstack_relay.py")
INSTALL_HINT = (
    "Dovecot is not installed. Run the project's test command (it apt-installs "
    "dovecot-imapd dovecot-lmtpd openssl), or: apt-get install -y dovecot-imapd dovecot-lmtpd"
)
START_TIMEOUT = 15.0


class MailStackError(RuntimeError):
    """The stack could not be started; the message says why (with the log tail)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _reachable_by_others(path: Path) -> bool:
    """Return True when a non-owner uid can traverse every directory down to `path`."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class MailStack:
    """A running stack; `stop()` ends it. Logins are the full addresses + `password`."""

    host: str
    imap_port: int
    imaps_port: int
    smtp_port: int
    lmtp_port: int
    ca_file: Path
    password: str
    users: tuple[str, ...]
    dir: Path
    catchall: str | None = None
    smtps_port: int = 0  # implicit TLS (security = "ssl")
    starttls_port: int = 0  # STARTTLS required before anything else (security = "starttls")
    spill: Path | None = None  # mail + users file outside `dir` (root, 0700 parents)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # ---------------------------------------------------------------- processes
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.dir / "log" / f"{name}.out").open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches every child
                preexec_fn=_die_with_parent,  # only async-signal-safe work: one prctl()
            )
        self.procs[name] = proc
        return proc

    def _ready(self, name: str, port: int, banner: bytes, deadline: float) -> None:
        proc = self.procs[name]
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, port), timeout=2) as s,
            ):
                if s.recv(200).startswith(banner):
                    return
            if proc.poll() is not None or time.monotonic() > deadline:
                log = self.dir / "log" / ("dovecot.log" if name == "dovecot" else "relay.out")
                out = _tail(self.dir / "log" / f"{name}.out") + "\n" + _tail(log)
                self._kill(name)
                raise MailStackError(f"{name} did not come up on port {port}:\n{out}")
            time.sleep(0.01)  # poll interval of the readiness loop

    def _kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def _dovecot_argv(self) -> list[str]:
        (self.dir / "run" / "master.pid").unlink(missing_ok=True)  # left by a SIGKILL
        return ["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")]

    def _relay_argv(self) -> list[str]:
        argv = [sys.executable, str(RELAY), "--listen", str(self.smtp_port)]
        argv += ["--lmtp", str(self.lmtp_port), "--users", ",".join(self.users)]
        argv += ["--password", self.password, "--fault-file", str(self.dir / "relay.fault")]
        argv += ["--smtps", str(self.smtps_port), "--starttls", str(self.starttls_port)]
        argv += ["--tls-cert", str(self.dir / "ssl" / "cert.pem")]
        argv += ["--tls-key", str(self.dir / "ssl" / "key.pem")]
        return argv + (["--catchall", self.catchall] if self.catchall else [])

    def start_dovecot(self) -> None:
        """Start Dovecot again (same ports, same mail) and wait for its IMAP banner."""
        if "dovecot" not in self.procs:
            self._spawn("dovecot", self._dovecot_argv())
            self._ready("dovecot", self.imap_port, b"* OK", time.monotonic() + START_TIMEOUT)

    def stop_dovecot(self) -> None:
        """Kill Dovecot like a crash: its connections drop, the relay answers 451."""
        self._kill("dovecot")

    def start_relay(self) -> None:
        """Start the SMTP relay again on its port and wait for its banner."""
        if "relay" not in self.procs:
            self._spawn("relay", self._relay_argv())
            self._ready("relay", self.smtp_port, b"220", time.monotonic() + START_TIMEOUT)

    def stop_relay(self) -> None:
        """Kill the SMTP relay: open SMTP connections drop, new ones are refused."""
        self._kill("relay")

    def set_relay_fault(self, fault: str | None) -> None:
        """Make the relay answer DATA with a fault until cleared with None.

        `4xx` (451, nothing delivered), `5xx` (554, nothing delivered), or
        `drop-after-data` (delivered, then the connection drops without an answer).
        """
        if fault not in (None, "4xx", "5xx", "drop-after-data"):
            raise ValueError(f"unknown relay fault {fault!r}")
        (self.dir / "relay.fault").write_text(fault or "")

    def stop(self) -> None:
        """Kill every process of the stack and remove the spill directory. Idempotent."""
        for name in list(self.procs):
            self._kill(name)
        if self.spill is not None:
            shutil.rmtree(self.spill, ignore_errors=True)
            self.spill = None
        atexit.unregister(self.stop)

    # ---------------------------------------------------------------- mail helpers
    def imap(self, user: str) -> Any:
        """Return an IMAPClient logged in as `user` over plain IMAP."""
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=15)
        client.login(user, self.password)
        return client

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """APPEND `raw` to the user's folder as if it had been received."""
        with self.imap(user) as c:
            c.append(folder, raw)

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Return the raw messages of the folder, in UID order."""
        with self.imap(user) as c:
            return _fetch_all(c, folder)

    def by_message_id(self, user: str, message_id: str, folder: str = "INBOX") -> list[bytes]:
        """Return the messages of the folder whose Message-ID header is `message_id`."""
        with self.imap(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search(["HEADER", "Message-ID", message_id])
            got = c.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
            return [bytes(got[u][b"BODY[]"]) for u in sorted(got)]

    def wait_for_messages(
        self, user: str, n: int, timeout: float = 10.0, folder: str = "INBOX"
    ) -> list[bytes]:
        """Return the folder's messages once there are at least n; AssertionError at timeout."""
        deadline = time.monotonic() + timeout
        with self.imap(user) as c:
            c.select_folder(folder, readonly=True)
            while True:
                c.noop()
                count = len(c.search("ALL"))
                if count >= n:
                    return _fetch_all(c, folder)
                if time.monotonic() > deadline:
                    raise AssertionError(f"{user}/{folder}: {count} of {n} messages in {timeout}s")
                time.sleep(0.02)  # poll interval of the deadline loop


def _fetch_all(client: Any, folder: str) -> list[bytes]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    got = client.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
    return [bytes(got[u][b"BODY[]"]) for u in sorted(got)]


def _identity() -> dict[str, str]:
    """Return the uids/gids Dovecot runs as: nobody + dovecot/dovenull as root, else me."""
    import grp  # POSIX only, like the whole stack
    import pwd

    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(me.pw_gid).gr_name
        return dict(
            uid=str(me.pw_uid),
            gid=str(me.pw_gid),
            internal=me.pw_name,
            internal_group=group,
            login=me.pw_name,
            root="",
        )
    nobody = pwd.getpwnam("nobody")
    return dict(
        uid=str(nobody.pw_uid),
        gid=str(nobody.pw_gid),
        internal="dovecot",
        internal_group="dovecot",
        login="dovenull",
        root="1",
    )


def _write_config(stack: MailStack, mailroot: Path, users_file: Path) -> None:
    d, ident = stack.dir, _identity()
    users_file.write_text("".join(f"{u}:{{PLAIN}}{stack.password}::::::\n" for u in stack.users))
    users_file.chmod(0o644)
    chroot_off = (
        ""
        if ident["root"]
        else "".join(
            f"service {s} {{\n  chroot =\n}}\n"
            for s in ("anvil", "imap-login", "imap-urlauth-login", "ipc", "old-stats")
        )
    )
    instance = "mailstack-" + hashlib.sha256(str(d).encode()).hexdigest()[:8]
    (d / "dovecot.conf").write_text(f"""\
# written by tests/mailstack.py for one test run
instance_name = {instance}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log/dovecot.log
listen = {stack.host}
protocols = imap lmtp
default_internal_user = {ident["internal"]}
default_internal_group = {ident["internal_group"]}
default_login_user = {ident["login"]}
first_valid_uid = {ident["uid"]}
last_valid_uid = {ident["uid"]}
first_valid_gid = {ident["gid"]}
last_valid_gid = {ident["gid"]}
ssl = yes
ssl_cert = <{d}/ssl/cert.pem
ssl_key = <{d}/ssl/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {users_file}
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {users_file}
  default_fields = uid={ident["uid"]} gid={ident["gid"]} home={mailroot}/%Ld/%Ln
}}
mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_idle_check_interval = 1 secs
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = 500
}}
protocol lmtp {{
  postmaster_address = postmaster@example.test
}}
service imap-login {{
  inet_listener imap {{
    address = {stack.host}
    port = {stack.imap_port}
  }}
  inet_listener imaps {{
    address = {stack.host}
    port = {stack.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {stack.host}
    port = {stack.lmtp_port}
  }}
}}
# no auth penalty: a failed login would slow every later login from 127.0.0.1
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{chroot_off}""")


def _make_cert(ssl_dir: Path, names: tuple[str, ...]) -> Path:
    """Write the session CA (ca.pem) and a server certificate for `names` it signed."""
    ssl_dir.mkdir(exist_ok=True)
    ca = session_ca()
    ca.issue(names).write(ssl_dir / "cert.pem", ssl_dir / "key.pem")
    return ca.write(ssl_dir / "ca.pem")


def start_mailstack(
    dir: Path,  # the brief's name, shadowing the builtin on purpose
    users: tuple[str, ...] = USERS,
    *,
    catchall: str | None = None,
    password: str = PASSWORD,
    tls_names: tuple[str, ...] = SERVER_NAMES,
) -> MailStack:
    """Start Dovecot and the relay on free ports with everything under `dir`; wait for both.

    `tls_names`: the names the servers' certificate is issued for (another name than the
    host the client dials makes every TLS connection fail the hostname check).
    """
    for prog in ("dovecot", "/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp"):
        if shutil.which(prog) is None:
            raise MailStackError(f"{prog} missing. {INSTALL_HINT}")
    d = Path(dir).resolve()
    if len(str(d)) > 70:  # + /run/token-login/imap-urlauth must fit in 108 bytes
        raise MailStackError(f"{d}: too long for Dovecot's unix sockets (> 70 characters)")
    if catchall is not None and catchall.lower() not in {u.lower() for u in users}:
        raise MailStackError(f"catchall {catchall} is not one of {users}")
    for sub in ("run", "state", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    imap, imaps, smtp, lmtp, smtps, starttls = _free_ports(6)
    stack = MailStack(HOST, imap, imaps, smtp, lmtp, d / "ssl" / "ca.pem", password,
                      tuple(users), d, catchall, smtps, starttls)  # fmt: skip
    mailroot, users_file = d / "mail", d / "users"
    if os.geteuid() == 0:  # mail belongs to nobody, who must reach it
        d.chmod(0o755)
        if not _reachable_by_others(d):  # e.g. pytest's 0700 /tmp/pytest-of-root
            stack.spill = Path(tempfile.mkdtemp(prefix="mailstack-"))
            stack.spill.chmod(0o711)
            mailroot, users_file = stack.spill / "mail", stack.spill / "users"
        mailroot.mkdir(exist_ok=True)
        ident = _identity()
        os.chown(mailroot, int(ident["uid"]), int(ident["gid"]))
    mailroot.mkdir(exist_ok=True)
    atexit.register(stack.stop)
    try:
        _make_cert(d / "ssl", tls_names)
        _write_config(stack, mailroot, users_file)
        stack._spawn("dovecot", stack._dovecot_argv())
        stack._spawn("relay", stack._relay_argv())
        deadline = time.monotonic() + START_TIMEOUT
        stack._ready("dovecot", imap, b"* OK", deadline)
        stack._ready("relay", smtp, b"220", deadline)  # bound after its TLS ports
    except BaseException:
        stack.stop()
        raise
    return stack


def _start_or_fail(path: Path, **kwargs: Any) -> MailStack:
    """Return a started stack; a stack that cannot start FAILS the test, never skips it."""
    try:
        return start_mailstack(path, **kwargs)
    except MailStackError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


_SESSION: dict[str, MailStack] = {}


@pytest.fixture(scope="session")
def mailstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """One stack per test session (per xdist worker). Tests must not break it."""
    stack = _SESSION.get("stack")
    if stack is None:  # the fixture may be imported into several modules: share one stack
        stack = _SESSION["stack"] = _start_or_fail(tmp_path_factory.mktemp("mailstack"))
    yield stack
    stack.stop()
    _SESSION.pop("stack", None)


@pytest.fixture
def mailstack_factory() -> Iterator[Callable[..., MailStack]]:
    """Return start(**kwargs) -> a stack of the test's own, stopped after the test.

    Each stack lives in a short /tmp/ms-* folder, not under tmp_path: under xdist a test's
    tmp_path plus Dovecot's run/token-login/imap-urlauth outgrows a unix socket name.
    """
    started: list[MailStack] = []

    def start(**kwargs: Any) -> MailStack:
        stack = _start_or_fail(Path(tempfile.mkdtemp(prefix="ms-", dir="/tmp")), **kwargs)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()
        shutil.rmtree(stack.dir, ignore_errors=True)
