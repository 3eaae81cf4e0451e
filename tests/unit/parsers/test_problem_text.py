"""Russian problem texts: every code has a sentence; replies group problems by file."""

from __future__ import annotations

import re

import jinja2
import pytest

from mailbot.mail.problem_text import count_phrase, problem_sentence, render_problems
from mailbot.parsers.problems import Document, Location, Problem, ProblemCode

APP = Location("zayavlenie.docx", field="ИНН", document=Document.application)
CELL = Location("perechen.xlsx", "Лист1", 14, "Вид продукции", document=Document.products)
PARAMS: dict[ProblemCode, dict[str, str]] = {
    ProblemCode.value_too_long: {"max": "500"},
    ProblemCode.ogrn_type_mismatch: {"holder": "ip"},
    ProblemCode.account_key: {"bik": "044525225"},
    ProblemCode.corr_account_key: {"bik": "044525225"},
    ProblemCode.barcode_count_mismatch: {"rows": "3", "products_file": "perechen.xlsx"},
    ProblemCode.column_missing: {"column": "Вид продукции"},
    ProblemCode.too_many_rows: {"max": "10000"},
    ProblemCode.name_too_long: {"max": "255"},
    ProblemCode.control_character: {"char": "U+0001"},
    ProblemCode.duplicate_name: {"first_row": "3"},
    ProblemCode.unit_unknown: {"units": "г, кг"},
    ProblemCode.file_wrong_format: {"expected": "docx"},
    ProblemCode.file_too_large: {"max_mb": "20"},
    ProblemCode.zip_bomb: {"reason": "ratio"},
    ProblemCode.file_too_complex: {"reason": "time", "seconds": "10"},
}


@pytest.mark.parametrize("code", list(ProblemCode))
@pytest.mark.parametrize("where", [APP, CELL, Location("x.bin")])
def test_every_problem_code_renders_to_a_russian_sentence(
    code: ProblemCode, where: Location, env: jinja2.Environment
) -> None:
    text = problem_sentence(Problem(code, where, "значение", PARAMS.get(code, {})), env)
    assert re.search("[а-яА-Я]{4}", text)
    assert "{{" not in text and "{%" not in text and "None" not in text
    assert code.value not in text  # the fallback branch shows the code: it must not be used
    assert (text[0].isupper() or text[0] == "«") and text.endswith(".")


def test_inn_problem_reads_as_in_the_forms_spec(env: jinja2.Environment) -> None:
    p = Problem(ProblemCode.inn_checksum, APP, "7707083895")
    assert problem_sentence(p, env) == (
        "ИНН «7707083895»: неверное контрольное число. Проверьте ИНН по выписке ЕГРЮЛ."
    )


def test_reply_lists_problems_under_a_header_per_file(env: jinja2.Environment) -> None:
    problems = [
        Problem(ProblemCode.inn_checksum, APP, "7707083895"),
        Problem(
            ProblemCode.unknown_product_type,
            CELL,
            "Продукты питанья",
            {"suggestion": "01 Продукты питания"},
        ),
        Problem(
            ProblemCode.kpp_missing,
            Location("zayavlenie.docx", field="КПП", document=Document.application),
        ),
    ]
    assert render_problems(problems, env) == (
        "Заявление (zayavlenie.docx):\n"
        "  • ИНН «7707083895»: неверное контрольное число. Проверьте ИНН по выписке ЕГРЮЛ.\n"
        "  • КПП: не заполнен. Для организации КПП обязателен.\n"
        "Перечень продукции (perechen.xlsx, лист «Лист1»):\n"
        "  • Строка 14, столбец «Вид продукции»: «Продукты питанья» нет в списке видов продукции.\n"
        "    Возможно, вы имели в виду «01 Продукты питания»."
    )


def test_rows_of_one_file_are_listed_in_row_order(env: jinja2.Environment) -> None:
    def at(row: int) -> Location:
        return Location("p.xlsx", "Лист1", row, "Наименование", document=Document.products)

    problems = [Problem(ProblemCode.missing_field, at(r)) for r in (9, 3, 5)]
    text = render_problems(problems, env)
    assert [int(n) for n in re.findall(r"Строка (\d+)", text)] == [3, 5, 9]


def test_file_without_a_known_document_gets_a_plain_header(env: jinja2.Environment) -> None:
    text = render_problems([Problem(ProblemCode.file_encrypted, Location("a.xlsx"))], env)
    assert text.splitlines()[0] == "Файл a.xlsx:"
    assert text.splitlines()[1].startswith("  • Файл защищён паролем")


def test_wrong_format_without_an_expected_form_asks_for_both(env: jinja2.Environment) -> None:
    text = problem_sentence(Problem(ProblemCode.file_wrong_format, Location("scan.jpg")), env)
    assert ".docx" in text and ".xlsx" in text


def test_count_mismatch_agrees_the_noun_with_the_number(env: jinja2.Environment) -> None:
    def sentence(rows: str) -> str:
        p = Problem(
            ProblemCode.barcode_count_mismatch, APP, "12", {"rows": rows, "products_file": "p.xlsx"}
        )
        return problem_sentence(p, env)

    assert "21 строка" in sentence("21")
    assert "3 строки" in sentence("3")
    assert "11 строк " in sentence("11")


@pytest.mark.parametrize(
    ("n", "phrase"),
    [
        (1, "1 ошибку"),
        (3, "3 ошибки"),
        (5, "5 ошибок"),
        (11, "11 ошибок"),
        (12, "12 ошибок"),
        (21, "21 ошибку"),
        (22, "22 ошибки"),
        (111, "111 ошибок"),
    ],
)
def test_count_phrase_agrees_with_the_number(n: int, phrase: str) -> None:
    assert count_phrase(n) == phrase


def test_template_loads_through_the_installed_package_too() -> None:
    env = jinja2.Environment(loader=jinja2.PackageLoader("mailbot.templates", ""))  # noqa: S701
    text = problem_sentence(Problem(ProblemCode.file_damaged, Location("a.docx")), env)
    assert text.startswith("Файл повреждён")
