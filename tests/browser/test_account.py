"""The personal account in a real browser, against a real `mailbot web` and daemon.

The demo applicant's credentials come from the mail the daemon issued; the first log-in forces
a new password; the codes and every download are checked (EANs valid, images decode with
zbarimg, PDFs open); an order by upload is invoiced, paid with `mailbot invoices pay` and its
codes appear; a broken upload lists its problems; a contact change approved by `mailbot
requests approve` and a ticket answered by `mailbot tickets reply` show on their pages; an
admin's `mailbot clients reset-password` ends the session.

The tests share one site and one browser and run in file order; each needs only the module
fixtures (the issued demo account, logged in), so a test that xdist sends to a second worker
finds the same state there (that worker builds its own site). `xdist_group` would keep them on
one worker with `--dist loadgroup`, but pytest-xdist 3.8 cannot group under pytest 9.2 (it
renames `item._nodeid`, which pytest 9 no longer reads).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from openpyxl import load_workbook
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session, col, func, select
from stdnum import ean

from mailbot.forms import invalid_sample_products_xlsx, sample_products_xlsx
from mailbot.storage.models import Application, Barcode, Client, Invoice, SupportTicket
from mailbot.storage.models_clients import ContactChangeRequest
from tests.browser.harness import Camera, Site, poll
from tests.e2e.helpers import body, outbox_mails

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"), pytest.mark.timeout(300)]

NEW_PASSWORD = "зелёный-чайник-на-подоконнике"
COOKIE = "mb_session"


@dataclass(frozen=True)
class Account:
    login: str
    password: str  # the one the client chose at the forced change
    application: str  # the demo application, issued


# ---- helpers ------------------------------------------------------------------------------


def path_of(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).path


def open_page(driver: WebDriver, site: Site, path: str) -> None:
    driver.get(site.url + path)
    check_page(driver)


def check_page(driver: WebDriver) -> None:
    """What every page promises: Russian, one <h1>, not an error, a label on every field."""
    html = driver.find_element(By.TAG_NAME, "html")
    assert html.get_attribute("lang") == "ru", driver.current_url
    h1 = driver.find_elements(By.TAG_NAME, "h1")
    assert len(h1) == 1, f"{driver.current_url}: {len(h1)} <h1>"
    assert not h1[0].text.startswith("Ошибка"), f"{driver.current_url}: {h1[0].text}"
    labelled = {
        el.get_attribute("for") for el in driver.find_elements(By.CSS_SELECTOR, "label[for]")
    }
    for field in driver.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
        kind = field.get_attribute("type") or ""
        if kind in {"hidden", "submit", "button"}:
            continue
        name = field.get_attribute("id") or field.get_attribute("name")
        assert field.get_attribute("id") in labelled, f"{driver.current_url}: {name} has no label"


def submit(driver: WebDriver, fields: dict[str, str], *, clear: bool = True) -> None:
    """Type into the fields (by id) and press the submit button of their form."""
    element = None
    for name, value in fields.items():
        element = driver.find_element(By.ID, name)
        if clear and element.get_attribute("type") != "file":
            element.clear()
        element.send_keys(value)
    assert element is not None
    form = element.find_element(By.XPATH, "./ancestor::form")
    page = driver.find_element(By.TAG_NAME, "html")
    form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))


def fetch(driver: WebDriver, site: Site, href: str) -> httpx.Response:
    """GET a URL of the page with the browser's session cookie."""
    cookie = driver.get_cookie(COOKIE)
    assert cookie is not None, "the browser holds no session cookie"
    with httpx.Client(base_url=site.url, cookies={COOKIE: cookie["value"]}) as http:
        r = http.get(href)
    assert r.status_code == 200, f"{href}: {r.status_code}"
    return r


def download(driver: WebDriver, site: Site, href: str) -> httpx.Response:
    """A file link of the page: 200 and saved as an attachment, not shown as a page."""
    r = fetch(driver, site, href)
    assert "attachment" in r.headers.get("content-disposition", ""), href
    return r


def links(driver: WebDriver) -> list[str]:
    return [
        urlsplit(a.get_attribute("href") or "").path
        for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")
    ]


def eans_on_page(driver: WebDriver) -> set[str]:
    cells = driver.find_elements(By.CSS_SELECTOR, "td.ean")
    return {text for td in cells if (text := td.text.strip())}


def eans_of(site: Site, number: str) -> set[str]:
    with Session(site.engine) as s:
        return set(
            s.exec(
                select(Barcode.ean)
                .join(Application, Application.id == Barcode.application_id)  # type: ignore[arg-type]
                .where(Application.number == number)
            ).all()
        )


def check_pdf(data: bytes, tmp_path: Path, name: str, *must_contain: str) -> None:
    assert data.startswith(b"%PDF"), name
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and "Pages:" in info.stdout, info.stderr
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for needle in must_contain:
        assert needle in text, f"{name}: {needle!r} not in its text"


def check_registry(data: bytes, codes: set[str]) -> None:
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    found = {
        str(c).strip()
        for row in sheet.iter_rows(values_only=True)
        for c in row
        if re.fullmatch(r"\d{13}", str(c or "").strip())
    }
    assert found == codes
    assert all(ean.is_valid(c) for c in found)


def check_images(data: bytes, codes: set[str], tmp_path: Path) -> None:
    folder = tmp_path / "images"
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    pngs = sorted(folder.rglob("*.png"))
    assert len(pngs) == len(codes)
    zbar = shutil.which("zbarimg")
    assert zbar is not None, "apt-get install zbar-tools"
    out = subprocess.run([zbar, "-q", *map(str, pngs)], capture_output=True, check=False)
    assert set(out.stdout.decode().split()) == {f"EAN-13:{c}" for c in codes}


def product_list(tmp_path: Path, *, broken: bool = False) -> Path:
    """The sample product list, renamed so that no name is already coded (or the broken one)."""
    if broken:
        data = invalid_sample_products_xlsx()
    else:
        wb = load_workbook(io.BytesIO(sample_products_xlsx()))
        sheet = wb.active
        assert sheet is not None
        for row in sheet.iter_rows(min_row=3, max_row=7, min_col=2, max_col=2):
            row[0].value = f"{row[0].value} (новая серия)"
        buf = io.BytesIO()
        wb.save(buf)
        data = buf.getvalue()
    path = tmp_path / ("Перечень с ошибками.xlsx" if broken else "Перечень продукции.xlsx")
    path.write_bytes(data)
    return path


def client_id(site: Site, login: str) -> int:
    with Session(site.engine) as s:
        found = s.exec(select(Client.id).where(Client.login == login)).one()
        assert found is not None
        return found


# ---- the site's state, in the order a client lives it --------------------------------------


@pytest.fixture(scope="module")
def demo_credentials(web_site: Site) -> tuple[str, str, str]:
    """demo → the daemon invoices → `invoices pay` → the daemon issues: login, password, number."""
    web_site.cli("demo")

    def unpaid() -> str | None:
        with Session(web_site.engine) as s:
            return s.exec(select(Invoice.number).where(Invoice.status == "issued")).first()

    number = poll(unpaid, "the daemon to invoice the demo application")
    web_site.cli("invoices", "pay", number)

    def issued_mail() -> str | None:
        texts = [body(m) for m in outbox_mails(web_site.workdir)]
        return next((t for t in texts if "Пароль:" in t), None)

    text = poll(issued_mail, "the mail with the codes and the credentials")
    login = re.search(r"Логин:\s*(\S+)", text)
    password = re.search(r"Пароль:\s*(\S+)", text)
    assert login and password, text
    with Session(web_site.engine) as s:
        app = s.exec(select(Application.number).where(Application.state == "issued")).one()
    return login.group(1), password.group(1), app


@pytest.fixture(scope="module")
def account(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, demo_credentials: tuple[str, ...]
) -> Account:
    """Log in with the mailed password; the account forces a new one before anything else."""
    login, mailed, application = demo_credentials
    driver = web_browser
    driver.delete_all_cookies()
    open_page(driver, web_site, "/login")
    assert "info@" in driver.find_element(By.TAG_NAME, "main").text  # no self-service reset
    web_camera.shoot("01-login")
    submit(driver, {"login": login, "password": mailed})
    assert path_of(driver) == "/password", driver.page_source[:2000]
    check_page(driver)
    web_camera.shoot("02-password-forced")
    open_page(driver, web_site, "/")  # nothing else opens before the change
    assert path_of(driver) == "/password"
    submit(driver, {"current": mailed, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert path_of(driver) == "/", driver.page_source[:2000]
    check_page(driver)
    web_camera.shoot("03-overview")
    return Account(login, NEW_PASSWORD, application)


# ---- the tests ---------------------------------------------------------------------------


def test_chromium_starts_and_renders_a_page(web_browser: WebDriver) -> None:
    """Fails loudly when Debian's Chromium cannot start (a smoke test of the harness)."""
    web_browser.get("data:text/html;charset=utf-8,<h1>Проверка</h1>")
    assert web_browser.find_element(By.TAG_NAME, "h1").text == "Проверка"
    assert web_browser.capabilities["browserName"] in {"chrome", "chromium"}


def test_the_mailed_password_works_once_and_the_chosen_one_is_kept(
    web_site: Site, account: Account
) -> None:
    with Session(web_site.engine) as s:
        client = s.exec(select(Client).where(Client.login == account.login)).one()
    assert client.must_change is False
    assert client.password_changed_at is not None


def test_the_application_shows_its_codes_and_every_download_opens(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account, tmp_path: Path
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/applications")
    assert account.application in driver.find_element(By.TAG_NAME, "main").text
    web_camera.shoot("04-applications")
    open_page(driver, web_site, f"/applications/{account.application}")
    web_camera.shoot("05-application")
    codes = eans_of(web_site, account.application)
    assert len(codes) == 5
    assert eans_on_page(driver) == codes
    hrefs = links(driver)
    base = f"/applications/{account.application}"
    for suffix in ("registry.xlsx", "barcodes.zip", "certificate.pdf"):
        assert f"{base}/{suffix}" in hrefs, f"no link to {suffix}"
    invoices = [h for h in hrefs if re.fullmatch(r"/invoices/\d{4}-\d{5}/pdf", h)]
    assert invoices, "no invoice PDF link"

    registry = download(driver, web_site, f"{base}/registry.xlsx")
    assert "spreadsheetml" in registry.headers["content-type"]
    check_registry(registry.content, codes)
    images = download(driver, web_site, f"{base}/barcodes.zip")
    assert images.headers["content-type"].startswith("application/zip")
    check_images(images.content, codes, tmp_path)
    cert = download(driver, web_site, f"{base}/certificate.pdf")
    check_pdf(cert.content, tmp_path, "certificate", account.application)
    for href in invoices:
        pdf = download(driver, web_site, href)
        assert pdf.headers["content-type"].startswith("application/pdf")
        check_pdf(pdf.content, tmp_path, "invoice", href.split("/")[2])


def test_an_order_by_upload_is_invoiced_and_its_codes_appear_once_paid(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account, tmp_path: Path
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/order")
    web_camera.shoot("06-order")
    blank = [h for h in links(driver) if h.endswith(".xlsx")]
    assert blank, "no blank product list to download"
    sheet = load_workbook(io.BytesIO(download(driver, web_site, blank[0]).content)).active
    assert sheet is not None and sheet.max_column >= 5  # the form's columns
    submit(driver, {"products": str(product_list(tmp_path))}, clear=False)
    number = path_of(driver).removeprefix("/applications/")
    assert re.fullmatch(r"EAN-\d{4}-\d{6}", number), driver.current_url
    check_page(driver)
    web_camera.shoot("07-order-invoiced")
    assert not eans_on_page(driver)
    [href] = [h for h in links(driver) if re.fullmatch(r"/invoices/\d{4}-\d{5}/pdf", h)]
    invoice = href.split("/")[2]
    check_pdf(download(driver, web_site, href).content, tmp_path, "order-invoice", invoice)

    web_site.cli("invoices", "pay", invoice)
    poll(lambda: len(eans_of(web_site, number)) == 5, "the daemon to issue the order's codes")
    driver.refresh()
    check_page(driver)
    assert eans_on_page(driver) == eans_of(web_site, number)
    web_camera.shoot("08-order-issued")


def test_a_broken_product_list_is_answered_with_its_problems_on_the_page(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account, tmp_path: Path
) -> None:
    driver = web_browser
    with Session(web_site.engine) as s:
        before = s.exec(select(func.count()).select_from(Application)).one()
    open_page(driver, web_site, "/order")
    submit(driver, {"products": str(product_list(tmp_path, broken=True))}, clear=False)
    assert path_of(driver) == "/order"
    check_page(driver)
    text = driver.find_element(By.TAG_NAME, "main").text
    assert "Продукты питанья" in text, text  # the misspelt type, named as the mail names it
    web_camera.shoot("09-order-problems")
    with Session(web_site.engine) as s:
        assert s.exec(select(func.count()).select_from(Application)).one() == before


def test_a_contact_change_is_pending_until_approved_then_shown(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/details")
    web_camera.shoot("10-details")
    submit(driver, {"phone": "+7 912 345-67-89"})
    check_page(driver)
    web_camera.shoot("11-details-pending")
    me = client_id(web_site, account.login)
    with Session(web_site.engine) as s:
        request = s.exec(
            select(ContactChangeRequest)
            .where(ContactChangeRequest.client_id == me)
            .order_by(col(ContactChangeRequest.id).desc())
        ).first()
    assert request is not None and request.status == "pending"
    assert "9123456789" in re.sub(r"\D", "", str(request.changes))

    web_site.cli("requests", "approve", str(request.id))
    open_page(driver, web_site, "/details")
    web_camera.shoot("12-details-approved")
    phone = driver.find_element(By.ID, "phone").get_attribute("value") or ""
    assert re.sub(r"\D", "", phone).endswith("9123456789"), phone
    with Session(web_site.engine) as s:
        assert s.get(ContactChangeRequest, request.id).status == "approved"  # type: ignore[union-attr]


def test_a_ticket_written_on_the_web_shows_the_answer_from_the_cli(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/tickets")
    web_camera.shoot("13-tickets")
    submit(driver, {"subject": "Не открывается архив", "body": "Архив со штрихкодами пустой?"})
    check_page(driver)
    me = client_id(web_site, account.login)
    with Session(web_site.engine) as s:
        number = s.exec(
            select(SupportTicket.number)
            .where(SupportTicket.client_id == me)
            .order_by(col(SupportTicket.id).desc())
        ).first()
    assert number is not None
    open_page(driver, web_site, f"/tickets/{number}")
    assert "Архив со штрихкодами пустой?" in driver.find_element(By.TAG_NAME, "main").text
    web_camera.shoot("14-ticket")

    answer = "Архив в порядке: откройте его программой 7-Zip."
    web_site.cli("tickets", "reply", number, "--text", answer)

    def answered() -> bool:
        driver.refresh()
        return answer in driver.find_element(By.TAG_NAME, "main").text

    poll(answered, "the CLI's answer in the ticket's thread")
    check_page(driver)
    web_camera.shoot("15-ticket-answered")


def test_the_balance_page_draws_a_payment_qr_for_the_amount_typed(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account, tmp_path: Path
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/balance")
    web_camera.shoot("16-balance")
    submit(driver, {"amount": "1500"})
    check_page(driver)
    img = driver.find_element(By.CSS_SELECTOR, "img[src*='qr.png']")
    assert driver.execute_script("return arguments[0].naturalWidth", img) > 0  # it loaded
    web_camera.shoot("16-balance-qr")
    src = urlsplit(img.get_attribute("src") or "")
    png = fetch(driver, web_site, f"{src.path}?{src.query}")
    assert png.headers["content-type"] == "image/png"
    (tmp_path / "qr.png").write_bytes(png.content)
    zbar = subprocess.run(
        ["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True, check=False
    )
    payload = zbar.stdout.decode("utf-8", "replace")
    assert payload.startswith("ST0001"), payload  # ГОСТ Р 56042
    assert "Sum=150000" in payload, payload


@pytest.mark.parametrize(
    ("step", "path"),
    [("17-news", "/news"), ("18-security", "/security"), ("19-security-totp", "/security/totp")],
)
def test_the_other_pages_render(
    web_site: Site,
    web_browser: WebDriver,
    web_camera: Camera,
    account: Account,
    step: str,
    path: str,
) -> None:
    open_page(web_browser, web_site, path)
    assert path_of(web_browser) == path
    web_camera.shoot(step)


def test_an_admin_password_reset_ends_the_session(
    web_site: Site, web_browser: WebDriver, web_camera: Camera, account: Account
) -> None:
    driver = web_browser
    open_page(driver, web_site, "/applications")
    assert path_of(driver) == "/applications"
    yes = ["--yes"] if "--yes" in web_site.cli("clients", "reset-password", "--help") else []
    web_site.cli("clients", "reset-password", account.login, *yes)
    driver.get(web_site.url + "/applications")
    assert path_of(driver) == "/login"
    check_page(driver)
    web_camera.shoot("20-session-ended")


def test_no_page_scrolls_sideways_on_a_phone(web_camera: Camera) -> None:
    assert web_camera.taken, "no page was photographed"
    assert all(p.stat().st_size > 0 for p in web_camera.taken)
    assert web_camera.too_wide == []
