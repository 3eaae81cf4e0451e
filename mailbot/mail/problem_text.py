"""Problems → the Russian list in a reply, grouped by file (wording: templates/_problems.ru.j2)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import cast

import jinja2

from mailbot.parsers.problems import Location, Problem

TEMPLATE = "_problems.ru.j2"
WIDTH = 90


def _macro(env: jinja2.Environment, name: str) -> Callable[..., str]:
    module = env.get_template(TEMPLATE).module
    return cast(Callable[..., str], getattr(module, name))


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def problem_sentence(problem: Problem, env: jinja2.Environment, *, web: bool = False) -> str:
    """Return one problem as one Russian sentence (first letter capital); `web`: as the order
    page says it (the blank is a link there, not an attachment)."""
    text = _one_line(_macro(env, "problem_text")(problem, web))
    return text[:1].upper() + text[1:]


def file_header(location: Location, env: jinja2.Environment) -> str:
    """Return «Заявление (zayavlenie.docx):» / «Перечень продукции (…, лист «Лист1»):»."""
    return _one_line(_macro(env, "file_header")(location))


def problem_groups(
    problems: Sequence[Problem], env: jinja2.Environment, *, web: bool = False
) -> list[tuple[str, list[str]]]:
    """Return (file header, its problems' sentences by row) per file, as a reply lists them."""
    groups: dict[tuple[str, str | None], list[Problem]] = {}
    for p in problems:
        groups.setdefault((p.location.file, p.location.document), []).append(p)
    listed: list[tuple[str, list[str]]] = []
    for items in groups.values():
        with_sheet = next((p.location for p in items if p.location.sheet), items[0].location)
        ordered = sorted(items, key=lambda p: p.location.row or 0)
        listed.append(
            (file_header(with_sheet, env), [problem_sentence(p, env, web=web) for p in ordered])
        )
    return listed


def render_problems(problems: Sequence[Problem], env: jinja2.Environment) -> str:
    """Return the problems as a header line per file followed by «  • …» bullets."""
    lines: list[str] = []
    for header, sentences in problem_groups(problems, env):
        lines.append(header)
        for sentence in sentences:
            lines += textwrap.wrap(
                sentence,
                width=WIDTH,
                initial_indent="  • ",
                subsequent_indent="    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
    return "\n".join(lines)


def count_phrase(n: int) -> str:
    """Return «1 ошибку», «3 ошибки», «5 ошибок» (as in «нужно исправить …»)."""
    n10, n100 = n % 10, n % 100
    if n10 == 1 and n100 != 11:
        word = "ошибку"
    elif 2 <= n10 <= 4 and not 12 <= n100 <= 14:
        word = "ошибки"
    else:
        word = "ошибок"
    return f"{n} {word}"
