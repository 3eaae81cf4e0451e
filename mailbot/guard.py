"""One parse of an untrusted file in a child process, under a hard time limit and a memory cap.

Why a process, not a thread with a budget: a hostile spreadsheet makes calamine ask for
hundreds of GB (a sharedStrings count of 2^31, a cell at XFD1048576) and Rust *aborts the
process* instead of raising; a thread cannot be stopped or capped either.

Two ways in, same verdicts:
- A parse that pickles (a module-level function, or functools.partial of one with its bytes
  and limits — what the handlers pass) goes to a long-lived *parse worker*: a child forked
  once, on first use, that reads requests from a pipe and answers each. Forking the daemon per
  parse cost 10-25 ms (page tables of a 200 MB process, then copy-on-write faults in the
  child) for a parse that itself takes ~3 ms; the worker pays the fork once. It caps its own
  address space (RLIMIT_AS = its size at start + the budget), closes every inherited
  descriptor but its two pipes (a socket or database file the daemon closes must not stay
  open in the worker), and retires itself after a parse that left its heap grown, so the next
  parse starts clean. The parent SIGKILLs a worker that overruns the deadline and forks a
  fresh one for the next parse.
- Anything else (a closure) runs in a one-off fork, as the worker would run it.

Out of time → file_too_complex(reason=time); out of memory or killed by the kernel →
file_too_complex(reason=memory); a library panic → file_damaged. A bug (an exception in our
parser) is raised in the parent as GuardedParseError, for the per-message boundary to record.
The daemon's own threads (the scheduler) never parse; forking from them is safe because the
child runs only parsers, touches no logging, database or sockets and leaves with os._exit.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import fcntl
import math
import os
import pickle
import resource
import select
import signal
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from mailbot.parsers.problems import Location, ParseResult, Problem, ProblemCode

T = TypeVar("T")
MB = 1024 * 1024
_CHUNK = 1 << 16
log = structlog.get_logger()


@dataclass(frozen=True)
class Budget:
    """What one file may cost: wall-clock seconds and memory on top of the daemon's own."""

    seconds: float = 10.0
    memory_mb: int = 512


class GuardedParseError(RuntimeError):
    """The parser itself raised (a bug); the message carries the child's traceback."""


def _address_space() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _cap(budget: Budget) -> None:
    """Enter the child's regime: default signals, no core dumps or stderr, memory capped."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the daemon, which stops us
    faulthandler.disable()  # an abort of a hostile file is expected, not a crash to dump
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # nor does Rust's «memory allocation failed» belong in our logs
    os.close(devnull)
    cap = _address_space() + budget.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _run(parse: Callable[[], ParseResult[T]]) -> bytes:
    """Pickled ("ok"|"memory"|"panic"|"bug", payload) of one parse."""
    message: tuple[str, object]
    try:
        message = ("ok", parse())
    except MemoryError:
        message = ("memory", None)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        # pyo3 turns a Rust panic into PanicException (a BaseException): the library gave up
        # on this file; anything else is a bug in our parser.
        kind = "panic" if type(exc).__name__ == "PanicException" else "bug"
        message = (kind, traceback.format_exc())
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return pickle.dumps(("memory", None))


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytearray | None:
    """n bytes from fd (blocking), or None at EOF; read in place (a message is tens of MB:
    chunks joined afterwards would hold it twice)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        read = os.readv(fd, [view[got:]])
        if not read:
            return None
        got += read
    return buf


def _one_off_child(parse: Callable[[], ParseResult[T]], budget: Budget, out_fd: int) -> None:
    _cap(budget)
    cpu = math.ceil(budget.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _write_all(out_fd, _run(parse))


def _worker_main(budget: Budget, in_fd: int, out_fd: int) -> None:
    """Answer framed requests until EOF; retire after a parse that grew the heap."""
    os.closerange(3, min(in_fd, out_fd))  # inherited sockets and database files
    os.closerange(min(in_fd, out_fd) + 1, max(in_fd, out_fd))
    os.closerange(max(in_fd, out_fd) + 1, _FD_LIMIT)
    _cap(budget)
    base = _address_space()
    while True:
        head = _read_exact(in_fd, _HEAD.size)
        if head is None:
            return
        body = _read_exact(in_fd, _HEAD.unpack(head)[0])
        if body is None:
            return
        try:
            parse = pickle.loads(body)  # noqa: S301 - our own parent wrote it
            del body  # the request's bytes live on in `parse` alone
        except Exception:  # noqa: BLE001 - cannot happen for what the parent pickled
            answer = pickle.dumps(("bug", traceback.format_exc()))
        else:
            answer = _run(parse)
            del parse
        retire = _address_space() > base + _RETIRE_GROWTH
        _write_all(out_fd, _HEAD.pack(len(answer)) + bytes([retire]))
        _write_all(out_fd, answer)  # not concatenated: the answer may be tens of MB
        if retire:
            return


class _Worker:
    """The parent's handle on one parse worker (one per process and budget)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        for fd in (req_w, ans_w):
            _widen(fd)
        pid = _fork(lambda: _worker_main(budget, req_r, ans_w), close=(req_w, ans_r))
        os.close(req_r)
        os.close(ans_w)
        self.pid, self.requests, self.answers = pid, req_w, ans_r
        self.owner = os.getpid()

    def ask(self, request: bytes, seconds: float) -> tuple[bytes | bytearray | None, int | None]:
        """(answer, None); (b"", exit status) when the worker ended without one; (None, None)
        when the deadline passed (the worker is killed)."""
        try:
            _write_all(self.requests, _HEAD.pack(len(request)))
            _write_all(self.requests, request)
        except BrokenPipeError:
            return b"", self.stop()
        frame = _read_frame(self.answers, time.monotonic() + seconds)
        if frame is None:
            os.kill(self.pid, signal.SIGKILL)
            self.stop()
            return None, None
        retire, body = frame
        if body is None:
            return b"", self.stop()  # it died before or while answering
        if retire:  # it retires after this answer
            self.stop()
        return body, None

    def stop(self) -> int:
        for fd in (self.requests, self.answers):
            with contextlib.suppress(OSError):
                os.close(fd)
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return status

    @property
    def alive(self) -> bool:
        return self.pid != 0 and self.owner == os.getpid()


def _widen(fd: int) -> None:
    """Give a pipe 1 MB of buffer (Linux's default maximum) instead of 64 KB.

    A whole inbound message goes to the worker and comes back parsed: with 64 KB pipes a
    60 KB request and a 100 KB answer take several hand-offs between the two processes,
    each waiting for the other to be scheduled (~3 ms per message on a loaded machine).
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a lower pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


_PIPE_BYTES = 1 << 20
_HEAD = struct.Struct("!Q")
_RETIRE_GROWTH = 64 * MB
_FD_LIMIT = 65536
_workers_lock = threading.Lock()
_worker: _Worker | None = None


@atexit.register
def stop_worker() -> None:
    """Let this process's parse worker go (EOF on its request pipe) and reap it."""
    with _workers_lock:
        if _worker is not None and _worker.alive:
            _worker.stop()


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to fd until EOF, None when the deadline passes."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_frame(fd: int, deadline: float) -> tuple[bool, bytearray | None] | None:
    """One framed answer as (retire flag, body), body None when fd ended before the whole
    frame (the worker died); None when the deadline passes. The body is read in place, into
    a buffer of its announced size, so a large answer is held once."""
    head = _read_into(fd, bytearray(_HEAD.size + 1), deadline)
    if head is None or head is _SHORT:
        return None if head is None else (False, None)
    body = _read_into(fd, bytearray(_HEAD.unpack_from(head)[0]), deadline)
    if body is None or body is _SHORT:
        return None if body is None else (False, None)
    return bool(head[_HEAD.size]), body


_SHORT = bytearray()  # _read_into's answer when fd ended before the buffer was full


def _read_into(fd: int, buf: bytearray, deadline: float) -> bytearray | None:
    """buf filled from fd; _SHORT at EOF before it is full; None when the deadline passes."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        read = os.readv(fd, [view[got:]])
        if not read:
            return _SHORT
        got += read
    return buf


def guarded(parse: Callable[[], ParseResult[T]], where: Location, budget: Budget) -> ParseResult[T]:
    """Return parse() run in a child process; a file that overruns the budget is a Problem."""
    try:
        request = pickle.dumps(parse, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        return _forked(parse, where, budget)
    global _worker
    with _workers_lock:
        if _worker is None or not _worker.alive or _worker.budget != budget:
            if _worker is not None and _worker.alive:
                _worker.stop()
            _worker = _Worker(budget)
        raw, status = _worker.ask(request, budget.seconds)
    if raw is None:
        return _timed_out(where, budget)
    return _outcome(raw, 0 if status is None else status, where)


def _forked(parse: Callable[[], ParseResult[T]], where: Location, budget: Budget) -> ParseResult[T]:
    """The same parse in a one-off fork: for a callable that cannot be pickled."""
    read_fd, write_fd = os.pipe()
    pid = _fork(lambda: _one_off_child(parse, budget, write_fd), close=(read_fd,))
    os.close(write_fd)
    try:
        raw = _read_until(read_fd, time.monotonic() + budget.seconds)
    finally:
        os.close(read_fd)
    if raw is None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if raw is None:
        return _timed_out(where, budget)
    return _outcome(raw, status, where)


def _fork(child: Callable[[], None], *, close: tuple[int, ...]) -> int:
    """Fork; the child closes the parent's ends `close`, runs `child` and leaves with
    os._exit (status 0 when it returned), never running the parent's code or atexit."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for fd in close:
                os.close(fd)
            child()
            status = 0
        finally:
            os._exit(status)
    return pid


def _timed_out(where: Location, budget: Budget) -> ParseResult[T]:
    log.warning("parse_timeout", file=where.file, seconds=budget.seconds)
    return _refused(where, reason="time", seconds=f"{budget.seconds:g}")


def _outcome(raw: bytes | bytearray, status: int, where: Location) -> ParseResult[T]:
    if not raw:  # died without a word: aborted on allocation, killed by the kernel
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        log.warning("parse_died", file=where.file, signal=sig, status=status)
        return _refused(where, reason="memory")
    kind, payload = pickle.loads(raw)  # noqa: S301 - our own child wrote it
    if kind == "ok":
        result: ParseResult[T] = payload
        return result
    if kind == "memory":
        log.warning("parse_out_of_memory", file=where.file)
        return _refused(where, reason="memory")
    if kind == "panic":
        log.warning("parse_library_panic", file=where.file, error=str(payload).splitlines()[-1:])
        return ParseResult(None, [Problem(ProblemCode.file_damaged, where)])
    raise GuardedParseError(f"parser raised on {where.file}:\n{payload}")


def _refused(where: Location, **params: str) -> ParseResult[T]:
    return ParseResult(None, [Problem(ProblemCode.file_too_complex, where, params=params)])
