"""bench/bench_web.py runs end to end for ~2 s per route and prints every figure (values are
the benchmark's business, not the test's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)


def test_bench_web_prints_its_figures_on_sqlite() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "bench/bench_web.py",
            "--seconds",
            "2",
            "--accounts",
            "6",
            "--clients",
            "4",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "web account on SQLite" in out
    assert "log-ins/s" in out and "floor argon2id verify" in out
    for route in ("/hello", "/applications", "/balance"):
        line = next((x for x in out.splitlines() if x.strip().startswith(route)), "")
        assert "p50" in line and "p99" in line and "req/s" in line, out
    assert "status p99 / hello p99" in out and "saturated: status page" in out
    assert "web process RSS peak" in out
