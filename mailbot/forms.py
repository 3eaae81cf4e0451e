"""Our published forms, generated from the schema: blanks, filled samples, product types list.

`mailbot forms export DIR` and `mailbot demo` use these; parsers read them back without problems.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from mailbot.mail.render import FileAttachment
from mailbot.parsers.schema import (
    APPLICATION_FIELDS,
    PRODUCT_COLUMNS,
    ProductType,
    parse_product_types,
)

APPLICATION_TITLE = "Заявление о регистрации"
PRODUCTS_TITLE = "Перечень продукции"
TYPES_SHEET = "Виды продукции"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
BLANK_ROWS = 1000  # rows of the blank product list that carry the drop-down
FILES = {
    "application_blank": "Заявление о регистрации — бланк.docx",
    "products_blank": "Перечень продукции — бланк.xlsx",
    "product_types": "Список видов продукции.xlsx",
    "application_sample": "Заявление о регистрации — образец.docx",
    "products_sample": "Перечень продукции — образец.xlsx",
}
_INTRO = (
    "Заполните таблицу и пришлите заявление вместе с перечнем продукции (.xlsx) на наш адрес "
    "электронной почты. Поля со звёздочкой (*) обязательны. ИНН, КПП, ОГРН, БИК и счета "
    "проверяются по контрольным числам — сверьте их с выпиской ЕГРЮЛ (ЕГРИП) и реквизитами банка."
)

SAMPLE_APPLICATION: dict[str, str] = {
    "org_name": "Общество с ограниченной ответственностью «Ромашка»",
    "short_name": "ООО «Ромашка»",
    "inn": "7707083893",
    "kpp": "773601001",
    "ogrn": "1027700132195",
    "legal_address": "117997, г. Москва, ул. Вавилова, д. 19",
    "postal_address": "117997, г. Москва, ул. Вавилова, д. 19",
    "director": "Иванова Мария Петровна",
    "director_title": "Генеральный директор",
    "contact_name": "Петров Сергей Иванович",
    "phone": "+7 (495) 123-45-67",
    "email": "zakaz@romashka.example",
    "bank_name": "ПАО Сбербанк",
    "bik": "044525225",
    "account": "40702810938000000001",
    "corr_account": "30101810400000000225",
    "barcode_count": "5",
    "date": "25 ноября 2026 г.",
}
SAMPLE_PRODUCTS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    # name, type, brand, quantity, unit, ОКПД2, ТН ВЭД
    (
        "Печенье сахарное «Ромашка» 250 г",
        "01 Продукты питания",
        "Ромашка",
        "250",
        "г",
        "10.72.12.000",
        "1905311100",
    ),
    (
        "Печенье овсяное «Ромашка» 400 г",
        "01 Продукты питания",
        "Ромашка",
        "400",
        "г",
        "10.72.12.000",
        "1905311100",
    ),
    (
        "Морс клюквенный «Ромашка» 1 л",
        "02 Напитки безалкогольные",
        "Ромашка",
        "1",
        "л",
        "11.07.19.130",
        "2202999100",
    ),
    (
        "Крем для рук «Ромашка» 75 мл",
        "06 Косметика и парфюмерия",
        "Ромашка",
        "75",
        "мл",
        "20.42.19.190",
        "3304990000",
    ),
    (
        "Полотенце вафельное 45×70",
        "15 Текстиль для дома",
        "Ромашка",
        "1",
        "шт",
        "13.92.14.000",
        "6302910000",
    ),
)


def bundled_product_types() -> tuple[ProductType, ...]:
    """Return the product types shipped in templates/product_types.toml."""
    text = resources.files("mailbot.templates").joinpath("product_types.toml").read_text("utf-8")
    types: tuple[ProductType, ...] = parse_product_types(text)
    return types


# python-docx and openpyxl (~15 MB resident) are imported where a form is built: the daemon
# needs them only when it attaches blank forms to a problems reply, not to sit idle.


def _application_docx(values: dict[str, str] | None) -> bytes:
    import docx
    from docx.shared import Pt

    document = docx.Document()
    document.add_heading(APPLICATION_TITLE, level=1)
    document.add_paragraph(_INTRO)
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for spec in APPLICATION_FIELDS:
        cells = table.add_row().cells
        cells[0].text = spec.label + (" *" if spec.required or spec.key == "kpp" else "")
        cells[1].text = (values or {}).get(spec.key, "")
    for row in table.rows:
        for paragraph in row.cells[0].paragraphs:
            for run in paragraph.runs:
                run.font.size = Pt(10)
    document.add_paragraph(
        "КПП обязателен для организаций; у индивидуального предпринимателя "
        "поле КПП остаётся пустым."
    )
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def blank_application_docx() -> bytes:
    """Return the blank «Заявление о регистрации»."""
    return _application_docx(None)


def sample_application_docx() -> bytes:
    """Return a filled, valid sample application (ООО «Ромашка», 5 barcodes)."""
    return _application_docx(SAMPLE_APPLICATION)


def invalid_sample_application_docx() -> bytes:
    """Return a sample application with deliberate problems: bad INN checksum, no КПП."""
    return _application_docx(SAMPLE_APPLICATION | {"inn": "7707083895", "kpp": ""})


def _products_xlsx(rows: Sequence[Sequence[object]], types: Sequence[ProductType]) -> bytes:
    import openpyxl
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = PRODUCTS_TITLE
    ws.append([PRODUCTS_TITLE])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([c.title for c in PRODUCT_COLUMNS])
    for i, col in enumerate(PRODUCT_COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
        cell = ws.cell(row=2, column=i)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for n, row in enumerate(rows, start=1):
        ws.append([n, *row])
    ws.freeze_panes = "A3"
    listing = wb.create_sheet(TYPES_SHEET)
    for t in types:
        listing.append([t.label])
    listing.sheet_state = "hidden"
    type_col = get_column_letter(1 + [c.key for c in PRODUCT_COLUMNS].index("product_type"))
    dv = DataValidation(
        type="list",
        formula1=f"='{TYPES_SHEET}'!$A$1:$A${len(types)}",
        allow_blank=True,
        showErrorMessage=False,
    )
    dv.add(f"{type_col}3:{type_col}{BLANK_ROWS + 2}")
    ws.add_data_validation(dv)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _sample_rows() -> list[list[object]]:
    return [
        [name, kind, brand, float(qty) if "." in qty else int(qty), unit, okpd2, tnved, ""]
        for name, kind, brand, qty, unit, okpd2, tnved in SAMPLE_PRODUCTS
    ]


def blank_products_xlsx(product_types: Sequence[ProductType]) -> bytes:
    """Return the blank «Перечень продукции» with a drop-down of product types."""
    return _products_xlsx([], product_types)


def sample_products_xlsx(product_types: Sequence[ProductType] | None = None) -> bytes:
    """Return a filled, valid sample product list of 5 rows."""
    return _products_xlsx(_sample_rows(), product_types or bundled_product_types())


def invalid_sample_products_xlsx(product_types: Sequence[ProductType] | None = None) -> bytes:
    """Return a sample list with a misspelt type «Продукты питанья» and a duplicate name."""
    rows = _sample_rows()
    rows[1][1] = "Продукты питанья"
    rows[3][0] = rows[0][0]
    return _products_xlsx(rows, product_types or bundled_product_types())


def product_types_xlsx(product_types: Sequence[ProductType]) -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    """Return «Список видов продукции»: code and name per row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = TYPES_SHEET
    ws.append(["Код", "Вид продукции"])
    ws["A1"].font = ws["B1"].font = Font(bold=True)
    for t in product_types:
        ws.append([t.code, t.name])
    ws.column_dimensions["A"].width = 8
    ws.column_dimensions["B"].width = 44
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def export_forms(out_dir: Path, product_types: Sequence[ProductType]) -> list[Path]:
    """Write the blanks, the samples and the product types list into out_dir; return paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "application_blank": blank_application_docx(),
        "products_blank": blank_products_xlsx(product_types),
        "product_types": product_types_xlsx(product_types),
        "application_sample": sample_application_docx(),
        "products_sample": sample_products_xlsx(product_types),
    }
    paths = []
    for key, data in contents.items():
        path = out_dir / FILES[key]
        path.write_bytes(data)
        paths.append(path)
    return paths


@functools.lru_cache(maxsize=4)
def blank_form_attachments(types: tuple[ProductType, ...]) -> tuple[FileAttachment, ...]:
    """Blank application, blank product list, product types and the filled samples, as mailed.

    Built once per process and product-type list: five documents cost ~30 ms to make.
    """
    return (
        FileAttachment("Заявление о регистрации (бланк).docx", DOCX, blank_application_docx()),
        FileAttachment("Перечень продукции (бланк).xlsx", XLSX, blank_products_xlsx(types)),
        FileAttachment("Виды продукции.xlsx", XLSX, product_types_xlsx(types)),
        FileAttachment("Заявление (образец).docx", DOCX, sample_application_docx()),
        FileAttachment("Перечень продукции (образец).xlsx", XLSX, sample_products_xlsx(types)),
    )
