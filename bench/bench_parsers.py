"""Product list and application parsing: time and peak RSS beside bare reads of the same file.

    /tmp/venv/bin/python bench/bench_parsers.py [--repeat N]

For 100, 1,000 and 10,000 rows: parse+validate (parse_products) against a bare calamine read
and a bare openpyxl read-only read, each in a fresh forked child so that its peak RSS is its
own (wait4 rusage). Also the guard's overhead, and the docx form against bare python-docx.
Prints medians and ratios (these machines are shared: only ratios travel). Asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docx
import openpyxl
from python_calamine import CalamineWorkbook

from mailbot.forms import bundled_product_types, sample_application_docx
from mailbot.guard import Budget, guarded
from mailbot.parsers.application_docx import parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Location, ParseResult
from mailbot.parsers.products_xlsx import parse_products

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures import forms_builders as fb

TYPES = bundled_product_types()
LIMITS = Limits()


def in_child(task: Callable[[], object]) -> tuple[float, float]:
    """Return (ms, peak RSS MB) of task run once in a fresh forked child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        start = time.perf_counter()
        task()
        os.write(w, pickle.dumps((time.perf_counter() - start) * 1000))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        ms = pickle.loads(f.read())  # noqa: S301 - our own child
    _, _, usage = os.wait4(pid, 0)
    return ms, usage.ru_maxrss / 1024


def median(task: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = [in_child(task) for _ in range(repeat)]
    return statistics.median(m for m, _ in runs), max(r for _, r in runs)


def warm_ms(task: Callable[[], object], repeat: int) -> float:
    """Return the median ms of task in this process, after one warm-up run."""
    task()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        task()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def calamine_read(data: bytes) -> int:
    with CalamineWorkbook.from_filelike(io.BytesIO(data)) as wb:
        return len(wb.get_sheet_by_index(0).to_python())


def openpyxl_read(data: bytes) -> int:
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    return sum(1 for _ in wb.worksheets[0].iter_rows(values_only=True))


def products(data: bytes) -> int:
    result = parse_products(data, "p.xlsx", limits=LIMITS, product_types=TYPES)
    assert result.ok  # a broken bench input must not be timed
    return len(result.value or [])


def product_list(n: int) -> bytes:
    rows = fb.product_rows(n)
    for i, r in enumerate(rows):
        r[1] = f"Печенье «Ромашка» артикул {i + 1}"
    return fb.xlsx_bytes([fb.PRODUCT_HEADER, *rows])


def _tiny() -> ParseResult[int]:
    """An empty parse the worker can unpickle (a module-level function)."""
    return ParseResult(1, [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    print(f"{'rows':>6} {'parse+validate':>22} {'calamine bare':>22} {'openpyxl ro bare':>22}")
    for n in (100, 1_000, 10_000):
        data = product_list(n)
        ours = median(functools.partial(products, data), repeat)
        cal = median(functools.partial(calamine_read, data), repeat)
        opx = median(functools.partial(openpyxl_read, data), repeat)
        print(
            f"{n:>6} {ours[0]:>9.1f} ms {ours[1]:>6.0f} MB "
            f"{cal[0]:>9.1f} ms {cal[1]:>6.0f} MB {opx[0]:>9.1f} ms {opx[1]:>6.0f} MB"
            f"   x{ours[0] / cal[0]:.2f} of calamine, x{ours[0] / opx[0]:.2f} of openpyxl"
        )
    data = product_list(10_000)
    at = Location("p.xlsx")
    direct = median(lambda: products(data), repeat)[0]
    worker = functools.partial(parse_products, data, "p.xlsx", limits=LIMITS, product_types=TYPES)
    for label, parse in (("parse worker", worker), ("one-off fork", lambda: worker())):
        guarded(parse, at, Budget())  # the worker is forked at its first use
        start = time.perf_counter()
        for _ in range(repeat):
            guarded(parse, at, Budget())
        guard_ms = (time.perf_counter() - start) * 1000 / repeat
        print(
            f"guarded 10,000 rows ({label}) {guard_ms:.1f} ms vs {direct:.1f} ms unguarded "
            f"(x{guard_ms / direct:.2f})"
        )
    tiny = ParseResult(1, [])
    for label, call in (("parse worker", _tiny), ("one-off fork", lambda: tiny)):
        guarded(call, at, Budget())
        start = time.perf_counter()
        for _ in range(20):
            guarded(call, at, Budget())
        print(
            f"guard overhead per parse ({label}, empty parse): "
            f"{(time.perf_counter() - start) * 50:.2f} ms"
        )
    form = sample_application_docx()
    ours_docx = warm_ms(lambda: parse_application(form, "a.docx", limits=LIMITS), 50)
    bare = warm_ms(lambda: [t.rows for t in docx.Document(io.BytesIO(form)).tables], 50)
    print(
        f"docx form: parse+validate {ours_docx:.2f} ms, bare python-docx open {bare:.2f} ms "
        f"(x{ours_docx / bare:.2f})"
    )


if __name__ == "__main__":
    main()
