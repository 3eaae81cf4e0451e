"""The password change: the current password is asked for, 8-128 characters, no truncation,
no common password, not the login or INN; typed exactly (spaces kept)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.web.passwords import common_passwords, password_problem
from tests.web.authkit import PASSWORD, add_client, events, log_in, post_form
from tests.web.authkit import web as web


def change(
    web: TestClient, new: str, *, current: str = PASSWORD, again: str | None = None
) -> tuple[int, str]:
    status, body, _ = post_form(
        web,
        "/password",
        "/password",
        current=current,
        new=new,
        again=new if again is None else again,
    )
    return status, body


@pytest.mark.parametrize(
    ("new", "says"),
    [
        ("short7!", "от 8 до 128 символов"),
        ("x" * 129, "от 8 до 128 символов"),
        ("password1", "слишком распространён"),
        ("PassWord1", "слишком распространён"),
        ("iloveyou", "слишком распространён"),
        ("7707083893", "логин или ИНН"),
        ("my7707083893pw", "логин или ИНН"),
        (PASSWORD, "отличаться от текущего"),
    ],
)
def test_bad_new_password_is_refused_next_to_its_field(
    rt: Runtime, web: TestClient, new: str, says: str
) -> None:
    add_client(rt)
    log_in(web)
    status, body = change(web, new)
    assert status == 400
    assert 'id="new-error"' in body and says in body
    assert events(rt, "web_password_changed") == []


def test_wrong_current_password_is_refused_and_recorded(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    log_in(web)
    status, body = change(web, "fresh-unusual-words-7", current="not-my-password")
    assert status == 400 and 'id="current-error"' in body
    assert len(events(rt, "web_recheck_failed")) == 1
    assert events(rt, "web_password_changed") == []


def test_mismatched_repeat_is_refused(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    log_in(web)
    status, body = change(web, "fresh-unusual-words-7", again="fresh-unusual-words-8")
    assert status == 400 and 'id="again-error"' in body


@pytest.mark.parametrize(
    "new", ["x" * 64 + "y" * 64, "  пароль с пробелами по краям  ", "ёжик в тумане 2026"]
)
def test_long_unicode_and_spaced_passwords_are_kept_exactly(
    rt: Runtime, web: TestClient, new: str
) -> None:
    add_client(rt)
    log_in(web)
    assert change(web, new)[0] == 303
    post_form(web, "/logout", "/")
    if new != new.strip():
        assert log_in(web, password=new.strip()) == ""
    assert log_in(web, password=new) == "/"


def test_forced_change_unlocks_the_account(rt: Runtime, web: TestClient) -> None:
    add_client(rt, must_change=True)
    assert log_in(web) == "/password"
    assert "Пароль из письма одноразовый" in web.get("/password").text
    assert web.get("/security", follow_redirects=False).headers["location"] == "/password"
    assert change(web, "my own long secret 1")[0] == 303
    assert web.get("/security", follow_redirects=False).status_code == 200


def test_the_shipped_list_is_the_top_ten_thousand() -> None:
    words = common_passwords()
    assert 9_900 <= len(words) <= 10_000
    assert {"123456", "password", "qwerty", "12345678"} <= words


def test_rules_are_length_and_list_only() -> None:
    rules = {"current": "old", "login": "5001234567", "inn": "5001234567"}
    assert password_problem("abcdefgh-simple", **rules) == ""  # no composition rules
    assert password_problem("aaaaaaaa", **rules) != ""  # in the list
    assert password_problem("z" * 128, **rules) == ""
