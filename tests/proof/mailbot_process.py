"""Run the `mailbot` command as a process forked from an interpreter that imported it already.

`python -m mailbot run --once` spends ~1.5 s importing (typer, SQLAlchemy, reportlab,
openpyxl …) before it reads a message; the crash matrix starts dozens of processes per
database. They come from multiprocessing's forkserver, which imports mailbot once: each is
still a process of its own, entered by the same `mailbot.cli.main` as `python -m mailbot`,
with its own environment, folder and output file, and SIGKILLed for real at its crash point.
The forkserver is single-threaded, so forking it is safe (unlike forking pytest's process).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ["mailbot.cli", "mailbot.service.daemon", "tests.proof.mailbot_process"]


def _main(cwd: str, env: dict[str, str], args: list[str], output: str) -> None:
    """The child: output to a file, the site's folder and environment, then the CLI."""
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["mailbot", *args]
    from mailbot.cli import main  # preloaded: no import cost here

    main()


def run(
    cwd: Path, env: Mapping[str, str], args: Sequence[str], output: Path, timeout: float
) -> int:
    """Run `mailbot ARGS` to its end; return its exit code (-9 when SIGKILLed)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # used when this call starts the server
    proc = ctx.Process(target=_main, args=(str(cwd), dict(env), list(args), str(output)))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise TimeoutError(f"mailbot {' '.join(args)} still running after {timeout}s")
    code = proc.exitcode
    proc.close()
    return code
