"""One parse of an untrusted file in a forked child, under a hard time limit and a memory cap.

Why a process, not a thread with a budget: a hostile spreadsheet makes calamine ask for
hundreds of GB (a sharedStrings count of 2^31, a cell at XFD1048576) and Rust *aborts the
process* instead of raising; a thread cannot be stopped or capped either. Why fork per parse,
not a spawned worker pool: the child already has the parsers imported (no start-up cost, ~2 ms
per parse measured by bench/bench_parsers.py), each parse starts from a clean heap and returns
every byte to the OS, and there is no pool to restart after a kill. The daemon is
single-threaded (asyncio), so forking it is safe; the child touches no logging, database or
sockets and leaves with os._exit.

The child caps its address space (RLIMIT_AS = its size at fork + the budget) and CPU time,
runs the parse and writes the pickled ParseResult into a pipe; the parent reads it with a
deadline and SIGKILLs a child that overruns. Out of time → file_too_complex(reason=time); out
of memory or killed by the kernel → file_too_complex(reason=memory); a library panic →
file_damaged. A bug (an exception in our parser) is raised in the parent as GuardedParseError,
for the per-message boundary to record.
"""

from __future__ import annotations

import faulthandler
import math
import os
import pickle
import resource
import select
import signal
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


def _child(parse: Callable[[], ParseResult[T]], budget: Budget, out_fd: int) -> None:
    """Run the parse under the caps and write ("ok"|"memory"|"panic"|"bug", payload)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    faulthandler.disable()  # an abort of a hostile file is expected, not a crash to dump
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # nor does Rust's «memory allocation failed» belong in our logs
    cap = _address_space() + budget.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cpu = math.ceil(budget.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
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
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        payload = pickle.dumps(("memory", None))
    view = memoryview(payload)
    while view:
        view = view[os.write(out_fd, view) :]


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Return everything written to fd until EOF, or None when the deadline passes first."""
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


def guarded(parse: Callable[[], ParseResult[T]], where: Location, budget: Budget) -> ParseResult[T]:
    """Return parse() run in a child process; a file that overruns the budget is a Problem."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_fd)
            _child(parse, budget, write_fd)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        raw = _read_until(read_fd, time.monotonic() + budget.seconds)
    finally:
        os.close(read_fd)
    if raw is None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if raw is None:
        log.warning("parse_timeout", file=where.file, seconds=budget.seconds)
        return _refused(where, reason="time", seconds=f"{budget.seconds:g}")
    return _outcome(raw, status, where)


def _outcome(raw: bytes, status: int, where: Location) -> ParseResult[T]:
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
