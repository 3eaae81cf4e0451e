"""Run the `mailbot` command as a process forked from an interpreter that imported it already.

`python -m mailbot run --once` spends ~1.5 s importing (typer, SQLAlchemy, reportlab,
openpyxl …) before it reads a message; the crash matrix starts dozens of processes per
database and the e2e tests hundreds. They come from multiprocessing's forkserver, which
imports mailbot once: each is still a process of its own, entered by the same
`mailbot.cli.main` as `python -m mailbot`, with its own environment, folder and output
files, and SIGKILLed for real at its crash point. The forkserver is single-threaded, so
forking it is safe (unlike forking pytest's process). It starts with stdout and stderr on
/dev/null, so that no module it preloads sees a terminal (a child's stdout is a file, like
a captured subprocess's).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.context import ForkServerContext
from pathlib import Path

PRELOAD = ["mailbot.cli", "mailbot.service.daemon", "tests.proof.mailbot_process"]


def _redirect(path: str, fd: int) -> None:
    new = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(new, fd)
    os.close(new)


def _enter(cwd: str, env: dict[str, str], args: list[str]) -> None:
    """The child: the site's folder, environment and argv, then the CLI."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["mailbot", *args]
    from mailbot.cli import main  # preloaded: no import cost here

    main()


def _main(cwd: str, env: dict[str, str], args: list[str], output: str) -> None:
    """The child with stdout and stderr into one file; it leaves by os._exit (a crash matrix
    process waits for no parse worker on its way out)."""
    _redirect(output, 1)
    os.dup2(1, 2)
    _enter(cwd, env, args)


def _main_captured(cwd: str, env: dict[str, str], args: list[str], out: str, err: str) -> None:
    """The child with stdout and stderr into two files, leaving through the exit handlers."""
    _redirect(out, 1)
    _redirect(err, 2)
    try:
        _enter(cwd, env, args)
    finally:
        atexit._run_exitfuncs()  # what a real interpreter runs on its way out


@contextlib.contextmanager
def _quiet_std_streams() -> Iterator[None]:
    """fds 1 and 2 on /dev/null for the duration (the forkserver inherits them)."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _context() -> ForkServerContext:
    """The forkserver context, its server started (once per process) with mailbot imported."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    from multiprocessing import forkserver

    with _quiet_std_streams():
        forkserver.ensure_running()
    return ctx


def _finish(proc: multiprocessing.process.BaseProcess, args: Sequence[str], timeout: float) -> int:
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise subprocess.TimeoutExpired(["mailbot", *args], timeout)
    code = proc.exitcode
    proc.close()
    return code


def run(
    cwd: Path, env: Mapping[str, str], args: Sequence[str], output: Path, timeout: float
) -> int:
    """Run `mailbot ARGS` to its end; return its exit code (-9 when SIGKILLed)."""
    target_args = (str(cwd), dict(env), list(args), str(output))
    return _finish(_context().Process(target=_main, args=target_args), args, timeout)


def run_captured(
    cwd: Path, env: Mapping[str, str], args: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `mailbot ARGS` to its end; return what subprocess.run(text=True) would."""
    with tempfile.TemporaryDirectory(prefix="mailbot-out-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        target_args = (str(cwd), dict(env), list(args), str(out), str(err))
        proc = _context().Process(target=_main_captured, args=target_args)
        code = _finish(proc, args, timeout)
        stdout, stderr = out.read_text("utf-8"), err.read_text("utf-8")
    return subprocess.CompletedProcess(["mailbot", *args], code, stdout, stderr)
