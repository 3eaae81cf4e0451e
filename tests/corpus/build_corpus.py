"""Builds the corpus of applicants' files under tests/corpus/files/ (see README.md).

    python -m tests.corpus.build_corpus            # our builders: .docx, .xlsx, .ods, .csv
    python -m tests.corpus.build_corpus --libreoffice   # + LibreOffice conversions (dev only)

The files are committed; CI only reads them. Expected results live in cases.toml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from mailbot.forms import bundled_product_types, sample_application_docx, sample_products_xlsx
from tests.fixtures import forms_builders as fb

FILES = Path(__file__).resolve().parent / "files"
ORG = fb.VALID_ORG
HEADER: list[object] = list(fb.PRODUCT_HEADER)


def _rows(items: dict[str, str]) -> list[list[fb.Cell]]:
    return [[k, v] for k, v in items.items()]


def _relabel(mapping: dict[str, str], items: dict[str, str] = ORG) -> list[list[fb.Cell]]:
    return [[mapping.get(k, k), v] for k, v in items.items()]


def _pairs_per_row(n: int) -> list[list[fb.Cell]]:
    items = list(ORG.items())
    return [[c for kv in items[i : i + n] for c in kv] for i in range(0, len(items), n)]


APPLICATIONS: dict[str, Callable[[], bytes]] = {
    "a01-sample.docx": sample_application_docx,
    "a02-two-column.docx": fb.application_docx,
    "a03-sole-trader.docx": lambda: fb.application_docx(fb.VALID_SOLE_TRADER),
    "a04-folded-labels.docx": lambda: fb.docx_bytes(
        _relabel(
            {
                "ИНН": "инн:",
                "КПП": "КПП *",
                "ОГРН": "огрн",
                "Юридический адрес": "ЮРИДИЧЕСКИЙ  Адрес:",
                "E-mail": "e-mail*",
                "Расчётный счёт": "Расчетный счет",
                "Корреспондентский счёт": "Корреспондентский\u00a0счёт:",
            }
        )
    ),
    "a05-split-runs.docx": lambda: fb.docx_bytes(
        [
            [["Расч", "ётный ", "счёт"], ["4070281", "0938000", "000001"]]
            if k == "Расчётный счёт"
            else [["И", "НН"], ["77070", "83", "893"]]
            if k == "ИНН"
            else [k, [v[: len(v) // 2], v[len(v) // 2 :]] if v else v]
            for k, v in ORG.items()
        ]
    ),
    "a06-four-columns.docx": lambda: fb.docx_bytes(_pairs_per_row(2)),
    "a07-six-columns.docx": lambda: fb.docx_bytes(_pairs_per_row(3)),
    "a08-numbered.docx": lambda: fb.docx_bytes(
        [[str(i + 1), k, v] for i, (k, v) in enumerate(ORG.items())]
    ),
    "a09-nested.docx": lambda: fb.docx_bytes(_rows(ORG), nested=True),
    "a10-paragraphs.docx": lambda: fb.docx_bytes(
        [], before=["Заявление о регистрации", *[f"{k}: {v}" for k, v in ORG.items()]]
    ),
    "a11-inn-kpp-row.docx": lambda: fb.docx_bytes(
        [[k, v] for k, v in ORG.items() if k not in {"ИНН", "КПП"}]
        + [["ИНН/КПП", "7707083893 / 773601001"]]
    ),
    "a12-old-labels.docx": lambda: fb.docx_bytes(
        _relabel(
            {
                "Полное наименование организации / ИП": "Наименование организации",
                "ОГРН": "ОГРН/ОГРНИП",
                "Юридический адрес": "Адрес регистрации",
                "Почтовый адрес": "Фактический адрес",
                "Руководитель": "ФИО руководителя",
                "Контактное лицо": "ФИО контактного лица",
                "Телефон": "Контактный телефон",
                "E-mail": "Адрес электронной почты",
                "Банк": "Наименование банка",
                "Расчётный счёт": "Р/с",
                "Корреспондентский счёт": "К/с",
                "Количество штрихкодов": "Количество кодов",
            }
        ),
        before=("ЗАЯВКА на присвоение штрихкодов (форма 2019 г.)",),
    ),
    "a13-google-docs.docx": lambda: fb.docx_bytes(
        [
            ["Реквизит", "Значение"],
            *_relabel({"ИНН": "ИНН (10 или 12 цифр)", "БИК": "БИК (9 цифр)"}),
            ["", ""],
        ],
        before=("Заявление о регистрации", "", "Заполните все поля со звёздочкой."),
    ),
    "a14-notes.docx": lambda: fb.docx_bytes(
        [*_rows(ORG), ["Сайт", "romashka.example"], ["Комментарий", "Нужно срочно"]],
        after=("Подпись: ____________ /Иванова М. П./", "М.П."),
    ),
    "a15-free-spelling.docx": lambda: fb.application_docx(
        ORG
        | {
            "ИНН": "7707 083 893",
            "Телефон": "+7 495 123-45-67 доб. 12",
            "Количество штрихкодов": "5 шт.",
            "Дата": "25.11.2026",
            "Почтовый адрес": "—",
            "Должность руководителя": "нет",
        }
    ),
    "a16-all-errors.docx": lambda: fb.application_docx(
        ORG
        | {
            "ИНН": "7707083895",
            "КПП": "77360100",
            "ОГРН": "10277001321",
            "БИК": "123456789",
            "Расчётный счёт": "4070281093800000000",
            "Корреспондентский счёт": "40101810400000000225",
            "Телефон": "12-34",
            "E-mail": "zakaz@@romashka",
            "Количество штрихкодов": "пять",
            "Дата": "31.02.2026",
        }
    ),
    "a17-missing.docx": lambda: fb.application_docx(
        {"Полное наименование организации / ИП": ORG["Полное наименование организации / ИП"]}
        | {"ИНН": "7707083893", "КПП": "", "Телефон": "8 (495) 123-45-67"}
    ),
    "a18-ogrnip-for-organisation.docx": lambda: fb.application_docx(
        ORG | {"ОГРН": "304500116000157"}
    ),
    "a19-sole-trader-with-kpp.docx": lambda: fb.application_docx(
        fb.VALID_SOLE_TRADER | {"КПП": "500101001"}
    ),
    "a20-account-key.docx": lambda: fb.application_docx(
        ORG | {"Расчётный счёт": "40702810938000000002"}
    ),
    "a21-not-a-form.docx": lambda: fb.docx_bytes(
        [], before=("Добрый день!", "Просим зарегистрировать штрихкоды.", "С уважением, Мария")
    ),
}


def _five() -> list[list[object]]:
    return [HEADER, *fb.product_rows(5)]


def _moved() -> list[list[object]]:
    order = [1, 2, 0, 5, 4, 3, 8, 7, 6]
    return [[row[i] for i in order] for row in _five()]


def _formula_rows() -> list[list[object]]:
    rows = _five()
    rows[1][1] = '="Печенье «Ромашка» вариант "&A2'
    rows[2][4] = "=E2+1"
    return rows


def _bad_rows() -> list[list[object]]:
    return [
        HEADER,
        [1, "Печенье", "01", "", "двести", "г", "10.72.12.000", "1905311100", ""],
        [2, "", "Продукты питанья", "", "250", "", "10.7", "19053111", ""],
        [3, "Вафли", "", "", "0,5", "бутылка", "1072", "19A5", ""],
        [4, "х" * 256, "99", "", "", "", "", "1905311100000", ""],
        [5, "печенье ", "Мебель", "", "1", "шт", "", "", ""],
    ]


PRODUCTS: dict[str, Callable[[], bytes]] = {
    "p01-sample.xlsx": lambda: sample_products_xlsx(bundled_product_types()),
    "p02-plain.xlsx": lambda: fb.xlsx_bytes(_five()),
    "p03-title-rows-moved-columns.xlsx": lambda: fb.xlsx_bytes(
        [["Перечень продукции"], ["ООО «Ромашка», ИНН 7707083893"], [], *_moved()]
    ),
    "p04-empty-and-number-rows.xlsx": lambda: fb.xlsx_bytes(
        [HEADER, [], *fb.product_rows(2), [3], [], [None, None], *fb.product_rows(5)[2:], [9], [10]]
    ),
    "p05-margin-notes.xlsx": lambda: fb.xlsx_bytes(
        [
            [*HEADER, "", "Комментарий менеджера"],
            *[[*r, "", "проверено" if r[0] == 2 else ""] for r in fb.product_rows(5)],
            [],
            ["", "", "", "", "", "", "", "", "", "", "Итого 5 позиций"],
        ]
    ),
    "p06-merged-cells.xlsx": lambda: fb.xlsx_bytes(
        [
            ["Перечень продукции"],
            HEADER,
            *[
                [*r[:2], "01 Продукты питания" if r[0] == 1 else None, *r[3:]]
                for r in fb.product_rows(3)
            ],
        ],
        merges=("A1:I1", "C3:C5"),
    ),
    "p07-formulas-cached.xlsx": lambda: fb.xlsx_bytes(
        _formula_rows(), cached={"B2": "Печенье «Ромашка» вариант 1", "E3": "251"}
    ),
    "p08-formula-not-cached.xlsx": lambda: fb.xlsx_bytes(_formula_rows(), cached={"E3": "251"}),
    "p09-old-headers.xlsx": lambda: fb.xlsx_bytes(
        [
            [
                "N",
                "Наименование товара",
                "вид продукции",
                "Бренд",
                "Вес",
                "Единица измерения",
                "Код ОКПД2",
                "Код ТН ВЭД ЕАЭС",
                "примечание",
            ],
            *fb.product_rows(5),
        ]
    ),
    "p10-quantities-and-units.xlsx": lambda: fb.xlsx_bytes(
        [
            HEADER,
            [1, "Сахар 1 кг", "01", "", "1 000 гр.", "", "", "", ""],
            [2, "Морс 0,5 л", "02", "", "0,5", "литр", "", "", ""],
            [3, "Крем 75 мл", "06", "", 75, "ml", "", "", ""],
            [4, "Полотенце", "15", "", "1", "Шт.", "", "", ""],
            [5, "Лента 2.5 м", "16", "", "2.5м", "", "", "", ""],
        ]
    ),
    "p11-codes-as-numbers.xlsx": lambda: fb.xlsx_bytes(
        [
            HEADER,
            [1, "Рыба мороженая", "01", "", "", "", "10.20", 302910000, ""],
            ["2", "Чай", "2", "", "100", "г", "10.83.13", "0902300000", "в пачках"],
        ]
    ),
    "p12-all-errors.xlsx": lambda: fb.xlsx_bytes(_bad_rows()),
    "p13-duplicates.xlsx": lambda: fb.xlsx_bytes(
        [HEADER, *fb.product_rows(3), [4, "печенье  «ромашка» ВАРИАНТ 2", "01"]]
    ),
    "p14-no-header.xlsx": lambda: fb.xlsx_bytes([["Товар", "Тип"], ["Печенье", "Еда"]]),
    "p15-missing-type-column.xlsx": lambda: fb.xlsx_bytes(
        [[c for c in HEADER if c != "Вид продукции"], ["1", "Печенье"]]
    ),
    "p16-header-only.xlsx": lambda: fb.xlsx_bytes([HEADER, [1], [2], [3]]),
    "p17-empty-first-sheet.xlsx": lambda: fb.xlsx_bytes(_five(), empty_first_sheet=True),
    "p18-sheet-named.xlsx": lambda: fb.xlsx_bytes(_bad_rows()[:3], title="Товары 2026"),
    "p19-plain.ods": lambda: fb.ods_bytes(_five()),
    "p20-cp1251-semicolon.csv": lambda: fb.csv_bytes(_five()),
    "p21-utf8-bom-comma.csv": lambda: fb.csv_bytes(
        _five(), delimiter=",", encoding="utf-8", bom=True
    ),
    "p22-utf8-semicolon.csv": lambda: fb.csv_bytes(_five(), encoding="utf-8"),
    "p23-utf8-bom-semicolon.csv": lambda: fb.csv_bytes(_five(), encoding="utf-8", bom=True),
    "p24-cp1251-comma.csv": lambda: fb.csv_bytes(_five(), delimiter=","),
    "p25-tabs.csv": lambda: fb.csv_bytes(_five(), delimiter="\t", encoding="utf-8"),
    "p26-quoted-fields.csv": lambda: fb.csv_bytes(
        [
            HEADER,
            [1, 'Печенье "Ромашка"; сахарное', "01", "", "250", "г", "", "", "см.\nприложение"],
        ],
        encoding="utf-8",
    ),
    "p27-title-rows.csv": lambda: fb.csv_bytes(
        [["Перечень продукции ООО «Ромашка»"], [], *_moved()], encoding="utf-8"
    ),
}

# name → (source in FILES, LibreOffice --convert-to argument, extension of the result)
LIBREOFFICE: dict[str, tuple[str, str, str]] = {
    "a22-lo-roundtrip.odt": ("a02-two-column.docx", "odt", "odt"),
    "a22-lo-roundtrip.docx": ("a22-lo-roundtrip.odt", "docx:MS Word 2007 XML", "docx"),
    "a23-lo-four-columns.docx": ("a06-four-columns.docx", "docx:MS Word 2007 XML", "docx"),
    "a24-lo-nested.docx": ("a09-nested.docx", "docx:MS Word 2007 XML", "docx"),
    "a25-lo-paragraphs.docx": ("a10-paragraphs.docx", "docx:MS Word 2007 XML", "docx"),
    "a26-lo-old-labels.docx": ("a12-old-labels.docx", "docx:MS Word 2007 XML", "docx"),
    "a27-lo-word97.doc": ("a02-two-column.docx", "doc:MS Word 97", "doc"),
    "a28-lo.rtf": ("a02-two-column.docx", "rtf", "rtf"),
    "a29-lo.pdf": ("a02-two-column.docx", "pdf", "pdf"),
    "a30-lo-sample.docx": ("a01-sample.docx", "docx:MS Word 2007 XML", "docx"),
    "p28-lo-roundtrip.ods": ("p02-plain.xlsx", "ods", "ods"),
    "p28-lo-roundtrip.xlsx": ("p28-lo-roundtrip.ods", "xlsx:Calc MS Excel 2007 XML", "xlsx"),
    "p29-lo-excel97.xls": ("p02-plain.xlsx", "xls:MS Excel 97", "xls"),
    "p30-lo-merged.ods": ("p06-merged-cells.xlsx", "ods", "ods"),
    "p31-lo-merged.xls": ("p06-merged-cells.xlsx", "xls:MS Excel 97", "xls"),
    "p32-lo-formulas.xls": ("p07-formulas-cached.xlsx", "xls:MS Excel 97", "xls"),
    "p33-lo-formulas.ods": ("p07-formulas-cached.xlsx", "ods", "ods"),
    "p34-lo-title-rows.xls": ("p03-title-rows-moved-columns.xlsx", "xls:MS Excel 97", "xls"),
    "p35-lo-errors.ods": ("p12-all-errors.xlsx", "ods", "ods"),
    "p36-lo-sample.xls": ("p01-sample.xlsx", "xls:MS Excel 97", "xls"),
    "p37-lo-cp1251-semicolon.csv": (
        "p02-plain.xlsx",
        "csv:Text - txt - csv (StarCalc):59,34,34",
        "csv",
    ),
    "p38-lo-utf8-comma.csv": ("p02-plain.xlsx", "csv:Text - txt - csv (StarCalc):44,34,76", "csv"),
    "p39-lo-old-headers.xlsx": ("p09-old-headers.xlsx", "xlsx:Calc MS Excel 2007 XML", "xlsx"),
}


def build(names: Sequence[str] = ()) -> None:
    """Write the builder-made files (all, or only `names`)."""
    FILES.mkdir(exist_ok=True)
    for name, make in (APPLICATIONS | PRODUCTS).items():
        if not names or name in names:
            (FILES / name).write_bytes(make())


def convert(soffice: str = "soffice") -> None:
    """Make the LibreOffice variants, in order (a later one may convert an earlier one)."""
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp, "profile").as_uri()
        for name, (source, target, ext) in LIBREOFFICE.items():
            work = Path(tmp, "in")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            src = work / f"{Path(name).stem}{Path(source).suffix}"
            shutil.copyfile(FILES / source, src)
            subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation={profile}",
                    "--headless",
                    "--convert-to",
                    target,
                    "--outdir",
                    str(Path(tmp, "out")),
                    str(src),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            shutil.move(Path(tmp, "out", f"{src.stem}.{ext}"), FILES / name)


if __name__ == "__main__":
    build()
    if "--libreoffice" in sys.argv:
        convert()
