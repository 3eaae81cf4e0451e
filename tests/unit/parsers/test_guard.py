"""The guard runs one parse in a child: results come back whole, overruns come back as problems."""

from __future__ import annotations

import os

import pytest

from mailbot.guard import Budget, GuardedParseError, guarded
from mailbot.parsers.application_docx import parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Location, ParseResult, Problem, ProblemCode
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import ProductType
from tests.fixtures import forms_builders as fb

AT = Location("f.xlsx")


def spin() -> ParseResult[int]:
    n = 0
    while True:
        n += 1


def balloon() -> ParseResult[int]:
    hoard = [bytearray(16 * 1024 * 1024) for _ in range(64)]  # 1 GB
    return ParseResult(len(hoard), [])


def abort() -> ParseResult[int]:
    os.abort()


def crash() -> ParseResult[int]:
    raise ValueError("a bug in a parser")


def test_a_parse_comes_back_equal_with_its_problems(
    product_types: tuple[ProductType, ...],
) -> None:
    data = fb.xlsx_bytes([fb.PRODUCT_HEADER, *fb.product_rows(3), [4, "", "Продукты питанья"]])
    direct = parse_products(data, "p.xlsx", limits=Limits(), product_types=product_types)
    result = guarded(
        lambda: parse_products(data, "p.xlsx", limits=Limits(), product_types=product_types),
        AT,
        Budget(),
    )
    assert result == direct
    assert [p.code for p in result.problems] == [
        ProblemCode.missing_field,
        ProblemCode.unknown_product_type,
    ]
    assert result.problems[1].params["suggestion"] == "01 Продукты питания"


def test_an_application_comes_back_with_its_values() -> None:
    data = fb.application_docx()
    result = guarded(lambda: parse_application(data, "a.docx", limits=Limits()), AT, Budget())
    assert result.ok and result.value is not None and result.value.inn == "7707083893"


def test_a_parse_that_never_ends_is_killed_and_reported_with_the_limit() -> None:
    result = guarded(spin, AT, Budget(seconds=0.3))
    assert result.value is None
    assert result.problems == [
        Problem(ProblemCode.file_too_complex, AT, params={"reason": "time", "seconds": "0.3"})
    ]


def test_a_parse_that_balloons_hits_the_memory_cap() -> None:
    result = guarded(balloon, AT, Budget(memory_mb=128))
    assert [(p.code, dict(p.params)) for p in result.problems] == [
        (ProblemCode.file_too_complex, {"reason": "memory"})
    ]


def test_a_child_that_aborts_is_reported_not_fatal() -> None:
    result = guarded(abort, AT, Budget())
    assert [(p.code, dict(p.params)) for p in result.problems] == [
        (ProblemCode.file_too_complex, {"reason": "memory"})
    ]


def test_a_bug_in_the_parser_is_raised_in_the_parent_with_its_traceback() -> None:
    with pytest.raises(GuardedParseError, match="a bug in a parser"):
        guarded(crash, AT, Budget())


def test_the_caller_keeps_going_after_many_hostile_parses() -> None:
    outcomes = [guarded(f, AT, Budget(seconds=0.2, memory_mb=64)) for f in (spin, balloon) * 3]
    assert all(r.problems[0].code is ProblemCode.file_too_complex for r in outcomes)
    assert guarded(lambda: ParseResult(7, []), AT, Budget()).value == 7


def own_pid_and_fds() -> ParseResult[tuple[int, list[int]]]:
    return ParseResult((os.getpid(), sorted(int(fd) for fd in os.listdir("/proc/self/fd"))), [])


def test_a_picklable_parse_runs_in_one_long_lived_worker_without_our_descriptors() -> None:
    with open(__file__, "rb") as held:  # a descriptor of ours the worker must not keep
        first = guarded(own_pid_and_fds, AT, Budget()).value
        second = guarded(own_pid_and_fds, AT, Budget()).value
        ours = held.fileno()
    assert first is not None and second is not None
    assert first[0] == second[0] != os.getpid()  # the same worker, not a fork per parse
    assert ours not in first[1]
    assert len(first[1]) <= 6  # stdin, stdout, stderr, two pipes (+ the listing itself)


def test_a_worker_killed_for_time_is_replaced_for_the_next_parse() -> None:
    before = guarded(own_pid_and_fds, AT, Budget(seconds=0.3)).value
    assert guarded(spin, AT, Budget(seconds=0.3)).problems[0].code is ProblemCode.file_too_complex
    after = guarded(own_pid_and_fds, AT, Budget(seconds=0.3)).value
    assert before is not None and after is not None and before[0] != after[0]
