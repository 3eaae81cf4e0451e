"""Splitting a mail into parts: sizes as composed, order kept, nothing over the budget."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from mailbot.mail.mailsplit import attachment_cost, encoded_size, pack, part_subject, raw_capacity
from mailbot.mail.render import FileAttachment, Mail, compose


def _file(name: str, size: int) -> FileAttachment:
    return FileAttachment(name, "application/zip", (bytes(range(256)) * (size // 256 + 1))[:size])


def test_the_cost_of_an_attachment_covers_what_compose_adds() -> None:
    base = Mail(to=("a@example.test",), subject="x", text="текст")
    for size in (256, 57_000, 1_000_192):
        att = _file(f"Штрихкоды EAN-2026-000123 (1 из 3) {size}.zip", size)
        build = partial(compose, message_id="<x@y>", from_addr="a@b.test", from_name="B",
                        date=datetime(2026, 11, 25, tzinfo=UTC))  # fmt: skip
        grown = len(build(Mail(**{**base.__dict__, "attachments": (att,)})))
        assert grown - len(build(base)) <= attachment_cost(att)


def test_raw_capacity_is_the_largest_file_that_fits() -> None:
    for budget in (10_000, 1_000_000, 10_000_000):
        raw = raw_capacity(budget)
        assert attachment_cost(_file("a", raw)) <= budget < attachment_cost(_file("a", raw + 57))
    assert encoded_size(57) == 78 and encoded_size(58) == 156


def test_attachments_are_packed_in_order_and_a_big_one_gets_its_own_part() -> None:
    small, big = _file("s", 2560), _file("b", 25_600)
    budget = attachment_cost(small) * 3
    parts = pack([small, small, big, small, small, small, small], budget)
    assert [len(p) for p in parts] == [2, 1, 3, 1]
    assert parts[1] == (big,)
    assert pack([], budget) == [()]


def test_a_part_subject_says_which_part_of_how_many() -> None:
    assert part_subject("Re: Заявка [EAN-2026-000001]", 2, 3).endswith("(часть 2 из 3)")
    assert part_subject("Re: x", 1, 1) == "Re: x"
