"""Pure rules of the clients' mail: contact lines, unsubscribe words, product names, kinds."""

from __future__ import annotations

from mailbot.handlers.contacts import requested_changes
from mailbot.handlers.orders import product_key
from mailbot.mail.classify import MessageKind, classify, own_text, wants_unsubscribe
from mailbot.mail.message import ParsedMessage
from mailbot.mail.news import unsubscribe_header


def _msg(subject: str, text: str, *, sender: str = "c@example.test") -> ParsedMessage:
    return ParsedMessage(
        message_id="<1@example.test>",
        from_addr=sender,
        from_headers=(sender,),
        from_name="",
        reply_to="",
        subject=subject,
        in_reply_to="",
        references=(),
        headers={},
        content_type="text/plain",
        text=text,
        attachments=(),
    )


def _kind(msg: ParsedMessage, *, known: bool, in_ticket: bool = False) -> MessageKind:
    return classify(
        msg,
        our_addresses=frozenset({"info@example.test"}),
        accountants=frozenset(),
        authserv_id="",
        in_thread=False,
        known_client=known,
        in_ticket=in_ticket,
    ).kind


def test_contact_lines_are_read_normalised_and_bad_values_kept_apart() -> None:
    asked = requested_changes(
        "Здравствуйте!\nНовый телефон: 8 (916) 123-45-67\nE-mail: New@Example.test\n"
        "Контактное лицо: Сидоров П. П.\nЮридический адрес: г. Тверь, ул. Ленина, 1\n"
    )
    assert asked.changes == {
        "phone": "+79161234567",
        "email": "new@example.test",
        "contact_name": "Сидоров П. П.",
        "address": "г. Тверь, ул. Ленина, 1",
    }
    bad = requested_changes("Телефон: 12345\nАдрес электронной почты: not-an-address\n")
    assert bad.changes == {} and bad.invalid == {"phone": "12345", "email": "not-an-address"}


def test_text_without_field_lines_asks_for_no_change() -> None:
    asked = requested_changes("Хотим поменять телефон, позвоните нам.")
    assert asked.changes == {} and asked.invalid == {}


def test_unsubscribe_word_counts_in_the_subject_or_first_own_line_never_in_a_quote() -> None:
    assert wants_unsubscribe(_msg("unsubscribe 0123456789abcdef0123", ""))
    assert wants_unsubscribe(_msg("Re: Новости", "Отписаться\n\n> Новости сервиса"))
    quoted = "Спасибо, интересно!\n\n> Чтобы отписаться, ответьте «Отписаться»\n> Отписаться"
    assert not wants_unsubscribe(_msg("Re: Новости", quoted))
    outlook = "Спасибо\nFrom: info@example.test\nОтписаться"
    assert own_text(_msg("x", outlook)) == "Спасибо"


def test_known_client_mail_is_a_contact_change_status_request_or_ticket() -> None:
    assert _kind(_msg("Смена контактных данных", ""), known=True) == MessageKind.contact_change
    assert _kind(_msg("Вопрос", "Прошу изменить телефон"), known=True) == (
        MessageKind.contact_change
    )
    assert _kind(_msg("Вопрос", "Какой статус заявки?"), known=True) == MessageKind.status_request
    assert _kind(_msg("Вопрос", "Где свидетельство?"), known=True) == MessageKind.client_mail
    assert _kind(_msg("Смена контактных данных", ""), known=False) == MessageKind.unknown_sender
    assert _kind(_msg("Re: тема", "ещё"), known=True, in_ticket=True) == MessageKind.ticket_reply


def test_status_words_in_a_quoted_reply_do_not_make_a_status_request() -> None:
    msg = _msg("Спасибо", "Спасибо!\n> Состояние ваших заявок: …")
    assert _kind(msg, known=True) == MessageKind.client_mail


def test_product_names_match_ignoring_case_quotes_and_spaces() -> None:
    assert product_key("Печенье  «Ромашка» 250 г") == product_key('печенье "ромашка" 250 г')
    assert product_key("Печенье 250 г") != product_key("Печенье 400 г")


def test_list_unsubscribe_is_a_mailto_with_the_token_in_the_subject() -> None:
    assert unsubscribe_header("info@example.test", "abc") == (
        "<mailto:info@example.test?subject=unsubscribe%20abc>"
    )
