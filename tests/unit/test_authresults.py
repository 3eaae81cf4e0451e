"""RFC 8601 Authentication-Results: the RFC's own examples (appendix B) and hostile variants."""

from __future__ import annotations

import pytest

from mailbot.mail.authresults import (
    AuthResults,
    Property,
    Result,
    Unreadable,
    aligned,
    authenticated_for,
    parse,
    trusted,
)

OURS = "mx.example.test"


def _ok(value: str) -> AuthResults:
    parsed = parse(value)
    assert isinstance(parsed, AuthResults), parsed
    return parsed


def test_b2_nearly_trivial_case_service_provided_but_no_authentication_done() -> None:
    assert _ok("example.org 1; none") == AuthResults("example.org", 1, ())


def test_b3_service_provided_authentication_done() -> None:
    ar = _ok("example.com;\r\n          spf=pass smtp.mailfrom=example.net")
    assert ar.authserv_id == "example.com" and ar.version is None
    assert ar.results == (
        Result("spf", "pass", "", (Property("smtp", "mailfrom", "example.net"),)),
    )


def test_b4_several_authentications_done_single_mta() -> None:
    ar = _ok(
        "example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n"
        "          spf=pass smtp.mailfrom=example.net"
    )
    assert [(r.method, r.result) for r in ar.results] == [("auth", "pass"), ("spf", "pass")]
    assert ar.results[0].value("smtp", "auth") == "sender@example.net"
    iprev = _ok("example.com; iprev=pass\r\n          policy.iprev=192.0.2.200")
    assert iprev.results[0].value("policy", "iprev") == "192.0.2.200"


def test_b5_several_authentications_done_different_mtas() -> None:
    ar = _ok("example.com;\r\n          dkim=pass (good signature) header.d=example.com")
    assert ar.results == (Result("dkim", "pass", "", (Property("header", "d", "example.com"),)),)
    ar = _ok(
        "example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.com;\r\n"
        "          spf=fail smtp.mailfrom=example.com"
    )
    assert [(r.method, r.result) for r in ar.results] == [("auth", "pass"), ("spf", "fail")]


def test_b6_multi_tiered_authentication_done() -> None:
    ar = _ok(
        'example.com;\r\n      dkim=pass reason="good signature"\r\n'
        "        header.i=@mail-router.example.net;\r\n"
        '      dkim=fail reason="bad signature"\r\n'
        "        header.i=@newyork.example.com"
    )
    assert [(r.result, r.reason, r.value("header", "i")) for r in ar.results] == [
        ("pass", "good signature", "@mail-router.example.net"),
        ("fail", "bad signature", "@newyork.example.com"),
    ]
    ar = _ok("example.net;\r\n      dkim=pass (good signature) header.i=@newyork.example.com")
    assert ar.results[0].value("header", "i") == "@newyork.example.com"


def test_b7_comment_heavy_example() -> None:
    ar = _ok(
        "foo.example.net (foobar) 1 (baz);\r\n"
        "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n"
        "      policy (A dot can go here) . (like that) expired\r\n"
        "      (this surprised me) = (as I wasn't expecting it) 1362471462"
    )
    assert ar == AuthResults(
        "foo.example.net",
        1,
        (Result("dkim", "fail", "", (Property("policy", "expired", "1362471462"),)),),
    )


def test_quoted_authserv_id_body_ptype_base64_value_and_trailing_semicolon() -> None:
    ar = _ok('"MX.Example.test"; dkim=pass header.b=gfT/i2+B= body.x=1 header.d="a.test";')
    assert ar.authserv_id == "mx.example.test"
    assert [(p.ptype, p.name, p.value) for p in ar.results[0].properties] == [
        ("header", "b", "gfT/i2+B="),
        ("body", "x", "1"),
        ("header", "d", "a.test"),
    ]


def test_a_quoted_semicolon_stays_inside_its_value() -> None:
    ar = _ok(
        f'{OURS}; spf=pass smtp.mailfrom="x;dkim=pass header.d=bank.example"@evil.example; '
        "dkim=none"
    )
    assert [(r.method, r.result) for r in ar.results] == [("spf", "pass"), ("dkim", "none")]
    assert (
        ar.results[0].value("smtp", "mailfrom") == "x;dkim=pass header.d=bank.example@evil.example"
    )
    assert not authenticated_for(ar, "bank.example")


def test_a_comment_holding_dkim_pass_is_only_a_comment() -> None:
    for value in (
        f"{OURS}; dkim=neutral (dkim=pass header.d=bank.example)",
        f"{OURS}; dkim=fail (not (nested: dkim=pass) header.d=bank.example) header.d=bank.example",
        f"{OURS} (; dkim=pass header.d=bank.example); dkim=none",
    ):
        ar = _ok(value)
        assert all(r.result != "pass" for r in ar.results), value
        assert not authenticated_for(ar, "bank.example"), value


@pytest.mark.parametrize(
    "value",
    [
        "",
        ";",
        f"{OURS}",
        f"{OURS}; dkim",
        f"{OURS}; dkim=pass (unclosed",
        f'{OURS}; dkim=pass header.d="unclosed',
        f"x; {OURS}; dkim=pass header.d=bank.example",
        f"{OURS}; dkim=pass header.d",
        f"{OURS}; dkim=pass header=bank.example",
    ],
)
def test_values_off_the_grammar_are_unreadable_never_guessed(value: str) -> None:
    assert isinstance(parse(value), Unreadable)


def _fields(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k.lower(), v) for k, v in pairs)


PASS = f"{OURS}; dkim=pass header.d=bank.example; dmarc=pass header.from=bank.example"


def test_only_our_field_at_the_top_past_trace_fields_is_trusted() -> None:
    top = _fields(
        ("Return-Path", "<x@bank.example>"),
        ("Delivered-To", "info@us.test"),
        ("Received", "from mx by imap"),
        ("Authentication-Results", PASS),
        ("Received", "from outside by mx"),
        ("From", "buh@bank.example"),
    )
    found = trusted(top, OURS)
    assert found is not None and authenticated_for(found, "bank.example", exact=True)
    assert trusted(top, "") is None  # no authserv-id configured: nothing is trusted
    assert trusted(top, "other.test") is None


def test_ours_below_a_field_the_sender_could_write_is_not_read() -> None:
    for above in ("From", "Subject", "X-Anything", "DKIM-Signature"):
        fields = _fields(("Received", "r"), (above, "v"), ("Authentication-Results", PASS))
        assert trusted(fields, OURS) is None, above


def test_a_foreign_authserv_id_above_ours_ends_the_search() -> None:
    fields = _fields(
        ("Authentication-Results", "mx.evil.test; dkim=pass header.d=bank.example"),
        ("Authentication-Results", PASS),
    )
    assert trusted(fields, OURS) is None
    unreadable_first = _fields(
        ("Authentication-Results", f"{OURS}; ???"), ("Authentication-Results", PASS)
    )
    assert trusted(unreadable_first, OURS) is None


def test_of_several_fields_with_our_id_only_the_topmost_counts() -> None:
    fields = _fields(
        ("Authentication-Results", f"{OURS}; dkim=fail header.d=bank.example; dmarc=none"),
        ("Authentication-Results", PASS),  # the sender's, written right under ours
    )
    found = trusted(fields, OURS)
    assert found is not None and not authenticated_for(found, "bank.example")


def test_alignment_is_by_organisational_domain_and_exact_when_asked() -> None:
    assert aligned("bank.example", "mail.bank.example")
    assert aligned("mail.bank.example", "bank.example")
    assert aligned("BANK.example.", "bank.example", exact=True)
    assert not aligned("bank.example", "mail.bank.example", exact=True)
    assert not aligned("bank.example.evil.test", "bank.example")
    assert not aligned("evil-bank.example", "bank.example")
    assert not aligned("co.uk", "bank.co.uk")  # a public suffix aligns with nobody
    assert not aligned("other.co.uk", "bank.co.uk")
    assert aligned("пример.рф", "почта.пример.рф")  # IDN, compared as A-labels
    assert aligned("xn--e1afmkfd.xn--p1ai", "пример.рф", exact=True)


def test_what_counts_as_authenticated() -> None:
    def ok(value: str, domain: str = "bank.example", *, exact: bool = False) -> bool:
        return authenticated_for(_ok(value), domain, exact=exact)

    assert ok(f"{OURS}; dmarc=pass header.from=bank.example")
    assert ok(f"{OURS}; dkim=pass header.d=bank.example")
    assert ok(f"{OURS}; dkim=pass header.i=@mail.bank.example")
    assert ok(f"{OURS}; dkim=fail header.d=other.test; dkim=pass header.d=bank.example")
    assert not ok(f"{OURS}; dkim=pass header.d=mail.bank.example", exact=True)
    assert not ok(f"{OURS}; dmarc=pass header.from=evil.test")
    assert not ok(f"{OURS}; dmarc=pass")  # whose domain passed is not said
    assert not ok(f"{OURS}; spf=pass smtp.mailfrom=bank.example")  # SPF is not enough
    assert not ok(f"{OURS}; dkim=policy header.d=bank.example; dmarc=fail")
    assert not ok(f'{OURS}; dkim=fail reason="dkim=pass" header.d=bank.example')
    assert not ok(f"{OURS}; dkim=pass header.d=evil.test")
    assert not ok(f"{OURS}; none")
    assert not authenticated_for(None, "bank.example")
