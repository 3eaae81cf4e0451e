"""Bank statements in the 1CClientBankExchange text format: bytes in, documents and warnings out.

Owns the reading of the exchange file only (encoding, sections, fields, fingerprints, invoice
numbers in purposes). Matching payments to invoices lives in mailbot. Never raises on bad input:
what cannot be read is skipped and reported as a `StatementWarning`; a file that is not a
statement at all comes back with `Statement.error` set.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from mailbot.parsers.problems import ParseResult

HEADER = "1CClientBankExchange"
KNOWN_VERSIONS = ("1.02", "1.03")
SNIFF_BYTES = 65_536

# Keys and labels are compared casefolded (banks write `ПлательщикКорСчет`, `ПлательщикКорсчет`).
_DECLARED_ENCODINGS = {
    **dict.fromkeys(("windows", "windows-1251", "win", "cp1251", "1251"), "cp1251"),
    **dict.fromkeys(("dos", "cp866", "866", "ibm866"), "cp866"),
    **dict.fromkeys(("utf-8", "utf8"), "utf-8"),
}
_FORMAT_KEYWORDS = ("версияформата", "кодировка", "отправитель", "секциядокумент", "конецфайла")
_PURPOSE_PARTS = tuple(f"назначениеплатежа{i}" for i in range(1, 7))
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_AMOUNT = re.compile(r"(\d+)(?:[.,](\d{1,2}))?")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphen and the dashes word processors put
_INVOICE_NUMBER = re.compile(rf"(?<!\d)(20\d\d)\s*[{_DASHES}]\s*(\d{{5}})(?!\d)")


@dataclass(frozen=True)
class StatementWarning:
    line: int
    message: str


@dataclass(frozen=True)
class UnreadableDocument:
    """A document that may be money for us but cannot be read: kept whole for the accountant."""

    line: int
    reason: str
    raw: str  # the document's lines as they stand in the file

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.raw.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class StatementDocument:
    line: int
    kind: str
    number: str
    date: dt.date
    amount: Decimal
    payer_inn: str
    payer_name: str
    payer_account: str
    payee_inn: str
    payee_account: str
    purpose: str
    received_on: dt.date | None
    written_off_on: dt.date | None
    incoming: bool
    fingerprint: str


@dataclass(frozen=True)
class Statement:
    version: str | None = None
    encoding: str | None = None
    sender: str | None = None
    receiver: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    accounts: tuple[str, ...] = ()
    documents: tuple[StatementDocument, ...] = ()
    warnings: tuple[StatementWarning, ...] = ()
    error: str | None = None
    unreadable: tuple[UnreadableDocument, ...] = ()


def parse_statement(
    data: bytes,
    *,
    our_accounts: Collection[str],
    max_bytes: int = 20_000_000,
    max_documents: int = 100_000,
) -> Statement:
    """Return the statement read from `data`; `error` is set when it is not a statement at all."""
    if len(data) > max_bytes:
        return Statement(error=f"file is {len(data)} bytes, over the limit of {max_bytes}")
    if b"\x00" in data:
        return Statement(error="binary file, not a 1CClientBankExchange statement")
    body = data.removeprefix(codecs.BOM_UTF8)
    if [line.strip() for line in body.lstrip()[:64].splitlines()[:1]] != [HEADER.encode()]:
        return Statement(error=f"no {HEADER} header, not a 1C bank statement")
    reader = _Reader(our_accounts=frozenset(a.strip() for a in our_accounts))
    encoding = _sniff_encoding(body[:SNIFF_BYTES], bom=len(body) < len(data), reader=reader)
    text = _decode(body, encoding, reader)
    if not reader.read(text, max_documents=max_documents):
        return Statement(error=f"more than {max_documents} documents, over the limit")
    return reader.statement(encoding)


def statement_result(data: bytes, our_accounts: tuple[str, ...]) -> ParseResult[Statement]:
    """`parse_statement` as a guarded parse (mailbot.guard): module-level, so it pickles to
    the parse worker with its bytes. Reading a statement costs ~8-20× its size (measured:
    153 MB for 20 MB of 19,900 payments, 171 MB for one 9 MB purpose line): in the worker,
    under its cap, not in the daemon."""
    return ParseResult(parse_statement(data, our_accounts=our_accounts), [])


def find_invoice_numbers(purpose: str) -> list[str]:
    """Return our invoice numbers (`YYYY-NNNNN`) in a purpose text, normalised, distinct, in order.

    Only the full five-digit form counts, with or without spaces around the dash («№2026-00123»,
    «сч. 2026 - 00123»); a short «2026-123» is too easily part of some other number, and a
    payment whose number is not found is held for the accountant rather than guessed.
    """
    found: list[str] = []
    for match in _INVOICE_NUMBER.finditer(purpose):
        number = f"{match.group(1)}-{match.group(2)}"
        if number not in found:
            found.append(number)
    return found


def _sniff_encoding(head: bytes, *, bom: bool, reader: _Reader) -> str:
    """Return the codec the header region is really written in.

    `Кодировка=` is not trusted on its own: files re-saved as UTF-8 still say `Windows`. The
    format's own keys (`ВерсияФормата`, `Кодировка`, …) are Cyrillic, so whichever codec turns
    their bytes back into those words is the codec of the file. UTF-8 goes first: cp1251 or cp866
    Cyrillic is practically never valid UTF-8, while every byte string decodes as cp866.
    """
    if bom:
        return "utf-8"
    for codec in ("utf-8", "cp1251", "cp866"):
        errors = "strict" if codec == "utf-8" else "replace"  # cp1251 lacks 0x98; one is no veto
        try:
            text = codecs.getincrementaldecoder(codec)(errors).decode(head, final=False)
        except UnicodeDecodeError:
            continue
        if any(keyword in text.casefold() for keyword in _FORMAT_KEYWORDS):
            return codec
    # No readable key: guess by which codec maps the high bytes to letters, and say so.
    cp1251_letters = sum(1 for b in head if b >= 0xC0)
    cp866_letters = sum(1 for b in head if 0x80 <= b <= 0xAF or 0xE0 <= b <= 0xEF)
    guess = "cp866" if cp866_letters > cp1251_letters else "cp1251"
    if cp1251_letters or cp866_letters:
        reader.warn(1, f"no readable format keys in the header; encoding guessed as {guess}")
    return guess


def _decode(body: bytes, encoding: str, reader: _Reader) -> str:
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        reader.warn(line, f"bytes not valid in {encoding} replaced (the first on this line)")
        return body.decode(encoding, errors="replace")


def _parse_date(value: str) -> dt.date | None:
    match = _DATE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return dt.date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
    except ValueError:
        return None


def _parse_amount(value: str) -> Decimal | None:
    match = _AMOUNT.fullmatch(_SPACES.sub("", value))
    if match is None:
        return None
    try:
        amount = Decimal(f"{match.group(1)}.{match.group(2) or '0'}").quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    return amount if amount > 0 else None


def _fingerprint(
    number: str, on: dt.date, amount: Decimal, parties: tuple[str, str, str], purpose: str
) -> str:
    """Return the sha256 identifying one payment across re-imports and overlapping statements.

    `parties` is (payer INN, payer account, payee account). Leading zeros of the number, and
    how the purpose is split into НазначениеПлатежа1…6 (even mid-word) or spaced, do not
    change it.
    """
    payer_inn, payer_account, payee_account = parties
    parts = (
        number.strip().lstrip("0") or "0",
        on.isoformat(),
        str(amount),
        payer_inn.strip(),
        payer_account.strip(),
        payee_account.strip(),
        "".join(purpose.split()).casefold(),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class _Reader:
    """The state of one pass over the lines; `read` fills it, `statement` freezes it."""

    our_accounts: frozenset[str]
    warnings: list[StatementWarning] = field(default_factory=list)
    documents: list[StatementDocument] = field(default_factory=list)
    header: dict[str, tuple[int, str]] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    section: str = "header"  # header | account | document | body (between sections) | end
    doc_line: int = 0
    doc_kind: str = ""
    doc: dict[str, str] = field(default_factory=dict)
    doc_raw: list[str] = field(default_factory=list)
    unreadable: list[UnreadableDocument] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(StatementWarning(line, message))

    def read(self, text: str, *, max_documents: int) -> bool:
        """Read every line; return False when the document limit is exceeded."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        started = False
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not started:  # the header line (checked by the caller), after any blank lines
                started = line == HEADER
                continue
            if self.section == "end":
                self.warn(number, f"{len(lines) - number + 1} lines after КонецФайла ignored")
                break
            self._line(number, line)
            if len(self.documents) > max_documents:
                return False
        if self.section == "document":
            self._unreadable("file ends inside a document (truncated?)")
        if self.section != "end":
            self.warn(len(lines), "no КонецФайла; the file may be truncated")
        return True

    def _line(self, number: int, line: str) -> None:
        key, sep, value = line.partition("=")
        key, value = key.strip().casefold(), value.strip()
        if self.section == "document" and not (key == "секциядокумент" and sep):
            self.doc_raw.append(line)
        if self._marker(number, key, value, sep=bool(sep)):
            if self.section == "document" and number == self.doc_line:
                self.doc_raw = [line]  # a new document starts with its marker line
            return
        if not line:
            self.warn(number, "blank line ignored")
        elif not sep or not key:
            self.warn(number, f"line without key=value ignored: {line[:60]!r}")
        elif self.section == "document":
            self._document_key(number, key, value, label=line.partition("=")[0].strip())
        elif key == "расчсчет":
            if value and value not in self.accounts:
                self.accounts.append(value)
        elif self.section == "header":
            self.header.setdefault(key, (number, value))
        elif self.section == "body":
            self.warn(number, f"{line[:60]!r} outside any section ignored")

    def _marker(self, number: int, key: str, value: str, *, sep: bool) -> bool:
        """Open or close a section when the line is a section marker; False when it is not."""
        if key == "секциядокумент" and sep:
            self._close(number)
            self.section, self.doc_line, self.doc_kind, self.doc = "document", number, value, {}
        elif key == "конецдокумента" and not sep and self.section == "document":
            self._finish()
            self.section = "body"
        elif key == "секциярасчсчет" and not sep:
            self._close(number)
            self.section = "account"
        elif key == "конецрасчсчет" and not sep and self.section == "account":
            self.section = "body"
        elif key == "конецфайла" and not sep:
            self._close(number)
            self.section = "end"
        else:
            return False
        return True

    def _close(self, number: int) -> None:
        """End an open section at a line that starts another one."""
        if self.section == "document":
            self.warn(self.doc_line, f"document has no КонецДокумента (next section at {number})")
            self._finish()
        elif self.section == "account":
            self.warn(number, "СекцияРасчСчет has no КонецРасчСчет")
        self.section = "body"

    def _document_key(self, number: int, key: str, value: str, *, label: str) -> None:
        if key in self.doc and self.doc[key] != value:
            self.warn(number, f"repeated {label} with another value ignored")
        self.doc.setdefault(key, value)

    def _finish(self) -> None:
        """Turn the collected document fields into a `StatementDocument`, or warn why not."""
        doc, line = self.doc, self.doc_line
        amount = _parse_amount(doc.get("сумма", ""))
        if amount is None:
            self._unreadable(f"bad or missing Сумма {doc.get('сумма', '')!r}")
            return
        doc_date = _parse_date(doc.get("дата", ""))
        if doc_date is None:
            self._unreadable(f"bad or missing Дата {doc.get('дата', '')!r}")
            return
        number = doc.get("номер", "")
        if not number:
            self.warn(line, "document has no Номер")
        purpose = doc.get("назначениеплатежа") or " ".join(
            doc[part] for part in _PURPOSE_PARTS if doc.get(part)
        )
        payer_account = doc.get("плательщиксчет") or doc.get("плательщикрасчсчет", "")
        payee_account = doc.get("получательсчет") or doc.get("получательрасчсчет", "")
        payer_inn, payee_inn = doc.get("плательщикинн", ""), doc.get("получательинн", "")
        parties = (payer_inn, payer_account, payee_account)
        fingerprint = _fingerprint(number, doc_date, amount, parties, purpose)
        if fingerprint in self.seen:
            self.warn(line, "the same payment appears twice in this file")
        self.seen.add(fingerprint)
        self.documents.append(
            StatementDocument(
                line=line,
                kind=self.doc_kind,
                number=number,
                date=doc_date,
                amount=amount,
                payer_inn=payer_inn,
                payer_name=doc.get("плательщик1") or doc.get("плательщик", ""),
                payer_account=payer_account,
                payee_inn=payee_inn,
                payee_account=payee_account,
                purpose=purpose,
                received_on=self._optional_date(
                    line, doc.get("датапоступило", ""), "ДатаПоступило"
                ),
                written_off_on=self._optional_date(line, doc.get("датасписано", ""), "ДатаСписано"),
                incoming=bool(payee_account) and payee_account in self.our_accounts,
                fingerprint=fingerprint,
            )
        )

    def _unreadable(self, reason: str) -> None:
        """Keep a document we cannot read, unless it is plainly not paid to us."""
        payee = self.doc.get("получательсчет") or self.doc.get("получательрасчсчет", "")
        if payee and payee not in self.our_accounts:
            self.warn(self.doc_line, f"outgoing document skipped: {reason}")
            return
        self.warn(self.doc_line, f"document unreadable, held for the accountant: {reason}")
        raw = "\n".join(self.doc_raw)
        self.unreadable.append(UnreadableDocument(self.doc_line, reason, raw))

    def _optional_date(self, line: int, value: str, label: str) -> dt.date | None:
        parsed = _parse_date(value) if value else None
        if value and parsed is None:
            self.warn(line, f"bad {label} {value!r} ignored")
        return parsed

    def _header_value(self, key: str) -> str | None:
        entry = self.header.get(key)
        return entry[1] if entry else None

    def _check_header(self, encoding: str) -> None:
        version = self._header_value("версияформата")
        if version is None:
            self.warn(1, "no ВерсияФормата; read as 1.03")
        elif version not in KNOWN_VERSIONS:
            self.warn(self.header["версияформата"][0], f"unknown ВерсияФормата={version}")
        line, declared = self.header.get("кодировка", (1, ""))
        expected = _DECLARED_ENCODINGS.get(declared.casefold())
        if not declared:
            self.warn(1, f"no Кодировка; read as {encoding}")
        elif expected is None:
            self.warn(line, f"unknown Кодировка={declared}; read as {encoding}")
        elif expected != encoding:
            self.warn(line, f"Кодировка={declared} but the file is {encoding}; read as {encoding}")

    def statement(self, encoding: str) -> Statement:
        self._check_header(encoding)
        start, end = self._header_value("датаначала"), self._header_value("датаконца")
        return Statement(
            version=self._header_value("версияформата"),
            encoding=encoding,
            sender=self._header_value("отправитель"),
            receiver=self._header_value("получатель"),
            date_from=_parse_date(start) if start else None,
            date_to=_parse_date(end) if end else None,
            accounts=tuple(self.accounts),
            documents=tuple(self.documents),
            warnings=tuple(sorted(self.warnings, key=lambda w: w.line)),
            error=None,
            unreadable=tuple(self.unreadable),
        )
