"""«Заявление о регистрации»: read by meaning from tables and paragraphs, every rule at once."""

from __future__ import annotations

import datetime as dt

from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Document, ParseResult, Problem, ProblemCode
from tests.fixtures import forms_builders as fb


def parse(data: bytes) -> ParseResult[ApplicationForm]:
    return parse_application(data, "zayavlenie.docx", limits=Limits())


def form_of(data: bytes) -> ApplicationForm:
    result = parse(data)
    assert result.problems == []
    assert result.value is not None
    return result.value


def by_code(problems: list[Problem]) -> dict[ProblemCode, Problem]:
    return {p.code: p for p in problems}


def test_valid_organisation_is_read_and_normalised() -> None:
    form = form_of(fb.application_docx())
    assert form.org_name == "Общество с ограниченной ответственностью «Ромашка»"
    assert (form.inn, form.kpp, form.ogrn) == ("7707083893", "773601001", "1027700132195")
    assert form.phone == "+74951234567"
    assert form.email == "zakaz@romashka.example"
    assert (form.bik, form.account) == ("044525225", "40702810938000000001")
    assert form.barcode_count == 5
    assert form.date == dt.date(2026, 11, 25)
    assert not form.is_sole_trader


def test_postal_address_defaults_to_legal_and_director_title_to_general_director() -> None:
    form = form_of(fb.application_docx())
    assert form.postal_address == form.legal_address
    assert form.director_title == "Генеральный директор"


def test_sole_trader_needs_no_kpp_and_gets_the_ip_title() -> None:
    form = form_of(fb.application_docx(fb.VALID_SOLE_TRADER))
    assert form.is_sole_trader
    assert form.kpp is None
    assert form.director_title == "Индивидуальный предприниматель"


def test_labels_are_matched_after_folding_and_by_synonym() -> None:
    rows = [
        ["Наименование организации*:", "ООО «Ромашка»"]
        if k.startswith("Полное")
        else ["  " + k.upper().replace("Ё", "Е") + " :", v]
        for k, v in fb.VALID_ORG.items()
    ]
    assert form_of(fb.docx_bytes(rows)).org_name == "ООО «Ромашка»"


def test_values_split_across_runs_are_read_whole() -> None:
    rows: list[list[fb.Cell]] = [[k, v] for k, v in fb.VALID_ORG.items() if k != "ИНН"]
    rows.append([["И", "НН"], ["77070", "83", "893"]])
    assert form_of(fb.docx_bytes(rows)).inn == "7707083893"


def test_multi_column_table_pairs_each_label_with_the_cell_after_it() -> None:
    items = list(fb.VALID_ORG.items())
    rows = [
        [*items[i], *items[i + 1]] if i + 1 < len(items) else list(items[i])
        for i in range(0, len(items), 2)
    ]
    form = form_of(fb.docx_bytes(rows))
    assert (form.inn, form.kpp, form.bik) == ("7707083893", "773601001", "044525225")


def test_numbered_three_column_table_is_read() -> None:
    rows = [[str(i + 1), k, v] for i, (k, v) in enumerate(fb.VALID_ORG.items())]
    assert form_of(fb.docx_bytes(rows)).ogrn == "1027700132195"


def test_table_nested_inside_another_table_is_read() -> None:
    data = fb.docx_bytes([[k, v] for k, v in fb.VALID_ORG.items()], nested=True)
    assert form_of(data).corr_account == "30101810400000000225"


def test_label_colon_value_paragraphs_are_read_without_a_table() -> None:
    data = fb.docx_bytes(
        [], before=["Заявление о регистрации", *[f"{k}: {v}" for k, v in fb.VALID_ORG.items()]]
    )
    assert form_of(data).email == "zakaz@romashka.example"


def test_inn_kpp_in_one_row_is_split() -> None:
    rows = [[k, v] for k, v in fb.VALID_ORG.items() if k not in {"ИНН", "КПП"}]
    rows.append(["ИНН/КПП", "7707083893 / 773601001"])
    form = form_of(fb.docx_bytes(rows))
    assert (form.inn, form.kpp) == ("7707083893", "773601001")


def test_unknown_rows_are_kept_as_notes_not_errors() -> None:
    rows = [
        ["Реквизит", "Значение"],
        *[[k, v] for k, v in fb.VALID_ORG.items()],
        ["Сайт", "romashka.example"],
    ]
    form = form_of(fb.docx_bytes(rows, after=["Примечание: просим выставить счёт на ООО"]))
    assert form.notes == ("Сайт: romashka.example", "Примечание: просим выставить счёт на ООО")


def test_a_second_different_value_for_the_same_field_goes_to_notes() -> None:
    rows = [*[[k, v] for k, v in fb.VALID_ORG.items()], ["Телефон", "+7 916 000-00-00"]]
    form = form_of(fb.docx_bytes(rows))
    assert form.phone == "+74951234567"
    assert form.notes == ("Телефон: +7 916 000-00-00",)


def test_every_failed_rule_is_reported_at_once_with_the_label_as_written() -> None:
    values = dict(fb.VALID_ORG) | {
        "ИНН": "7707083895",
        "КПП": "",
        "Телефон": "12-34",
        "E-mail": "zakaz@",
        "БИК": "144525225",
        "Дата": "вчера",
    }
    values["Контактный телефон"] = values.pop("Телефон")
    problems = by_code(parse(fb.application_docx(values)).problems)
    assert set(problems) == {
        ProblemCode.inn_checksum,
        ProblemCode.kpp_missing,
        ProblemCode.phone_format,
        ProblemCode.email_invalid,
        ProblemCode.bik_format,
        ProblemCode.date_format,
    }
    assert problems[ProblemCode.phone_format].location.field == "Контактный телефон"
    assert problems[ProblemCode.inn_checksum].value == "7707083895"
    assert problems[ProblemCode.kpp_missing].location.document is Document.application


def test_invalid_fields_are_none_in_the_partial_form() -> None:
    values = dict(fb.VALID_ORG) | {"ИНН": "7707083895"}
    result = parse(fb.application_docx(values))
    assert result.value is not None and result.value.inn is None
    assert result.value.org_name is not None
    assert not result.ok


def test_missing_required_fields_are_each_reported_with_the_canonical_label() -> None:
    values = {k: v for k, v in fb.VALID_ORG.items() if k not in {"Руководитель", "БИК"}}
    values["Банк"] = "—"
    problems = parse(fb.application_docx(values)).problems
    assert {(p.code, p.location.field) for p in problems} == {
        (ProblemCode.missing_field, "Руководитель"),
        (ProblemCode.missing_field, "БИК"),
        (ProblemCode.missing_field, "Банк"),
    }


def test_account_key_is_checked_against_the_bik() -> None:
    values = dict(fb.VALID_ORG) | {"Расчётный счёт": "40702810038000000001"}
    assert [p.code for p in parse(fb.application_docx(values)).problems] == [
        ProblemCode.account_key
    ]


def test_ogrnip_with_organisation_inn_is_a_type_mismatch() -> None:
    values = dict(fb.VALID_ORG) | {"ОГРН": "304500116000157"}
    assert [p.code for p in parse(fb.application_docx(values)).problems] == [
        ProblemCode.ogrn_type_mismatch
    ]


def test_kpp_given_by_a_sole_trader_is_reported() -> None:
    values = dict(fb.VALID_SOLE_TRADER) | {"КПП": "773601001"}
    assert [p.code for p in parse(fb.application_docx(values)).problems] == [
        ProblemCode.kpp_not_applicable
    ]


def test_too_long_organisation_name_is_reported() -> None:
    values = dict(fb.VALID_ORG) | {"Полное наименование организации / ИП": "О" * 501}
    problem = parse(fb.application_docx(values)).problems[0]
    assert (problem.code, problem.params["max"]) == (ProblemCode.value_too_long, "500")


def test_document_without_any_form_field_is_not_recognised() -> None:
    result = parse(fb.docx_bytes([], before=["Добрый день!", "Высылаем документы."]))
    assert [p.code for p in result.problems] == [ProblemCode.form_not_recognised]
    assert result.value is None


def test_blank_form_reports_only_missing_required_fields() -> None:
    rows = [[k, ""] for k in fb.VALID_ORG]
    codes = {p.code for p in parse(fb.docx_bytes(rows)).problems}
    assert codes == {ProblemCode.missing_field}  # no format problems for empty cells
