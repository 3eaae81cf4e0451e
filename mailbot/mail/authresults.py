"""RFC 8601 Authentication-Results: parse a field value, and pick the ones our server added.

Written by hand: the one PyPI parser (authres) has had no release since 2019 and ships no
types, and the email package has no parser for this field. The grammar (RFC 8601 §2.2):

    authres-payload = [CFWS] authserv-id [ CFWS authres-version ]
                      ( no-result / 1*resinfo ) [CFWS]
    no-result       = [CFWS] ";" [CFWS] "none"
    resinfo         = [CFWS] ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
    methodspec      = [CFWS] method [CFWS] "=" [CFWS] result
    method          = Keyword [ [CFWS] "/" [CFWS] method-version ]
    reasonspec      = "reason" [CFWS] "=" [CFWS] value
    propspec        = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
    pvalue          = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS]
    value           = token / quoted-string                    (RFC 2045)

Comments nest and may hold anything («dkim=pass» inside one is a comment); a quoted string
may hold «;». A value that does not follow the grammar is `Unreadable`, never a guess.

Which field is ours («the trusted field»): our receiving MTA prepends its trace fields
(Received, Return-Path, Delivered-To, X-Original-To) and its Authentication-Results above
everything the sender wrote. We read the header from the top down, passing over those trace
fields only; the first field of any other name ends the search. If that field is an
Authentication-Results carrying our authserv-id it is the one we trust; otherwise (another
server's, one we cannot parse, or any other field) nothing is trusted. Only that one field
is read: a second field with our id right below it may be the sender's own (a sender can
write any field below ours, and not every MTA strips them as RFC 8601 §5 asks), so it is
never believed. An MTA that writes its verdicts in several fields (OpenDKIM + OpenDMARC)
still works: the topmost one, OpenDMARC's, carries dmarc=pass, which is enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

TRACE_FIELDS = frozenset({"received", "return-path", "delivered-to", "x-original-to"})
FIELD = "authentication-results"
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
_PVALUE_STOP = frozenset('()<>,;:\\"[]?= \t')  # a pvalue may hold «/» (header.b) and «.»
_WSP = frozenset(" \t\r\n")


@dataclass(frozen=True)
class Property:
    ptype: str  # smtp, header, body, policy (lower-case)
    name: str  # d, from, mailfrom, i, … (lower-case)
    value: str


@dataclass(frozen=True)
class Result:
    method: str  # dkim, dmarc, spf … (lower-case, version dropped)
    result: str  # pass, fail, none … (lower-case)
    reason: str = ""
    properties: tuple[Property, ...] = ()

    def value(self, ptype: str, name: str) -> str | None:
        """The first property ptype.name, or None."""
        return next((p.value for p in self.properties if p.ptype == ptype and p.name == name), None)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    version: int | None
    results: tuple[Result, ...]  # empty for «none»


@dataclass(frozen=True)
class Unreadable:
    """A value that does not follow RFC 8601; why, for the log."""

    reason: str


class _Syntax(Exception):
    pass


class _Reader:
    """A cursor over one field value: CFWS skipping and the grammar's terminals."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        self.cfws()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def cfws(self) -> bool:
        """Skip folding white space and (nested) comments; True when anything was skipped."""
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _WSP:
                self.pos += 1
            elif ch == "(":
                self._comment()
            else:
                break
        return self.pos > start

    def _comment(self) -> None:
        depth = 0
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\":
                self.pos += 1  # quoted-pair
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return
        raise _Syntax("unclosed comment")

    def expect(self, ch: str) -> None:
        self.cfws()
        if self.peek() != ch:
            raise _Syntax(f"expected {ch!r} at {self.pos}")
        self.pos += 1

    def take(self, ch: str) -> bool:
        self.cfws()
        if self.peek() == ch:
            self.pos += 1
            return True
        return False

    def keyword(self) -> str:
        """RFC 5321 Ldh-str (letters, digits, hyphens; no trailing hyphen); «_» is tolerated."""
        self.cfws()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii()
            and (self.text[self.pos].isalnum() or self.text[self.pos] in "-_")
        ):
            self.pos += 1
        word = self.text[start : self.pos]
        if not word or word.endswith("-"):
            raise _Syntax(f"expected a keyword at {start}")
        return word.lower()

    def digits(self) -> int:
        self.cfws()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        if start == self.pos:
            raise _Syntax(f"expected digits at {start}")
        return int(self.text[start : self.pos])

    def quoted(self) -> str:
        """A quoted-string (the reader is at its opening quote); its unescaped content."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            else:
                out.append(ch)
        raise _Syntax("unclosed quoted string")

    def run(self, stop: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in stop or ch in _WSP or ord(ch) < 32 or ch == "\x7f":
                break
            self.pos += 1
        return self.text[start : self.pos]

    def value(self) -> str:
        """RFC 2045 value: token or quoted-string."""
        self.cfws()
        if self.peek() == '"':
            return self.quoted()
        word = self.run(_TSPECIALS)
        if not word:
            raise _Syntax(f"expected a value at {self.pos}")
        return word

    def pvalue(self) -> str:
        """value / [[local-part] "@"] domain-name: «x@y», «"a;b"@y», «@y», «y», «a/b+c=»."""
        self.cfws()
        local = self.quoted() if self.peek() == '"' else self.run(_PVALUE_STOP | {"@"})
        if self.peek() == "@":
            self.pos += 1
            domain = self.run(_PVALUE_STOP | {"@"})
            if not domain:
                raise _Syntax(f"expected a domain at {self.pos}")
            return f"{local}@{domain}"
        while self.peek() == "=":  # base64 padding of header.b, written unquoted by many MTAs
            self.pos += 1
            local += "="
        if not local:
            raise _Syntax(f"expected a property value at {self.pos}")
        return local


def parse(value: str) -> AuthResults | Unreadable:
    """One Authentication-Results field value (unfolded or not) → its parts, or why not."""
    r = _Reader(value)
    try:
        authserv_id = r.value()
        version: int | None = None
        if r.cfws() and r.peek().isdigit():
            version = r.digits()
        results: list[Result] = []
        r.expect(";")
        save = r.pos
        if r.keyword() == "none" and r.at_end():
            return AuthResults(authserv_id.lower(), version, ())
        r.pos = save
        results.append(_resinfo(r))
        while not r.at_end():
            r.expect(";")
            if r.at_end():
                break  # a trailing «;», which some MTAs write
            results.append(_resinfo(r))
    except _Syntax as exc:
        return Unreadable(str(exc))
    return AuthResults(authserv_id.lower(), version, tuple(results))


def _resinfo(r: _Reader) -> Result:
    method = r.keyword()
    if r.take("/"):
        r.digits()  # method-version: no method we read has a second version
    r.expect("=")
    result = r.keyword()
    reason = ""
    properties: list[Property] = []
    while not r.at_end() and r.peek() != ";":
        name = r.keyword()
        if name == "reason" and not properties and not reason:
            r.expect("=")
            reason = r.value()
            continue
        r.expect(".")
        prop = r.keyword()
        r.expect("=")
        properties.append(Property(name, prop, r.pvalue()))
    return Result(method, result, reason, tuple(properties))


def trusted(fields: Iterable[tuple[str, str]], authserv_id: str) -> AuthResults | None:
    """Our server's Authentication-Results at the top of the header (see the module doc).

    `fields` are (name, value) of the message's header fields in order, top first. With no
    authserv-id configured nothing is trusted.
    """
    ours = authserv_id.strip().lower()
    if not ours:
        return None
    for name, value in fields:
        key = name.strip().lower()
        if key in TRACE_FIELDS:
            continue
        if key != FIELD:
            return None
        parsed = parse(value)
        if isinstance(parsed, AuthResults) and parsed.authserv_id == ours:
            return parsed
        return None
    return None


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped inside the package; no network


def _domain(value: str) -> str:
    """A property's domain, lower-case, IDNA-encoded where possible, no trailing dot."""
    host = value.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def organisational(domain: str) -> str:
    """The registrable domain (public suffix + one label), per the Public Suffix List."""
    host = _domain(domain)
    return _psl().privatesuffix(host) or ""


def aligned(signed: str, author: str, *, exact: bool = False) -> bool:
    """DMARC identifier alignment of a signing domain with the From domain.

    Relaxed: the same organisational domain (so a parent or child of the From domain);
    a public suffix never aligns. Exact: the very same domain.
    """
    a, b = _domain(signed), _domain(author)
    if not a or not b:
        return False
    if exact:
        return a == b
    org = organisational(b)
    return bool(org) and organisational(a) == org


def authenticated_for(field: AuthResults | None, domain: str, *, exact: bool = False) -> bool:
    """Our server vouches for `domain`: dmarc=pass for it, or dkim=pass by an aligned signer."""
    if field is None or not domain:
        return False
    for result in field.results:
        if result.result != "pass":
            continue
        if result.method == "dmarc":
            author = result.value("header", "from")
            if author is not None and _domain(author) == _domain(domain):
                return True
        if result.method == "dkim":
            signer = result.value("header", "d") or result.value("header", "i")
            if signer is not None and aligned(signer, domain, exact=exact):
                return True
    return False
