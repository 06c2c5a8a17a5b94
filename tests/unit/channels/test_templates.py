"""Templates: language choice, locale formats, strict variables, sandbox, escaping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.templates import (
    InlineMessage,
    InvalidTemplate,
    MissingVariable,
    Renderer,
    choose_language,
    format_date,
    format_money,
    format_number,
    validate_template,
)
from gateway.core.db.models import Customer, CustomerPhone, Payment


@dataclass
class Source:
    """A saved template as rendering sees it."""

    channel: str
    body: dict[str, str]
    subject: dict[str, str] = field(default_factory=dict)
    variables: list[str] = field(default_factory=list)


def customer(language: str | None = "uk", **values: object) -> Customer:
    row = Customer(
        id="cus_1",
        external_id="C-1",
        name="Шевченко Тарас",
        language=language,
        status="active",
        attributes={},
        phones=[
            CustomerPhone(e164="+380501110000", invalid=True, position=0),
            CustomerPhone(e164="+380671234567", invalid=False, position=1),
        ],
    )
    for key, value in values.items():
        setattr(row, key, value)
    return row


PAYMENT = Payment(
    contract_id="K-9", due_date=date(2026, 11, 25), amount=Decimal("1250"), currency="UAH"
)
GREETING = {"uk": "Вітаємо, {{ first_name }}!", "ru": "Здравствуйте, {{ first_name }}!"}


@pytest.mark.parametrize(
    ("available", "preferred", "default", "chosen"),
    [
        (["uk", "ru"], "ru", "uk", "ru"),
        (["uk", "ru"], "en", "uk", "uk"),
        (["uk", "ru"], None, "ru", "ru"),
        (["ru", "en"], "uk", "uk", "ru"),
        (["en"], "uk", "ru", "en"),
    ],
)
def test_language_falls_back_from_customer_to_default_to_any(
    available: list[str], preferred: str | None, default: str, chosen: str
) -> None:
    assert choose_language(available, preferred, default) == chosen


def test_the_customers_language_variant_is_rendered() -> None:
    renderer = Renderer(default_language="uk")
    ru = renderer.render(Source("sms", GREETING), customer("ru"), None, {})
    en = renderer.render(Source("sms", GREETING), customer("en"), None, {})
    assert (ru.text, ru.language) == ("Здравствуйте, Шевченко!", "ru")
    assert (en.text, en.language) == ("Вітаємо, Шевченко!", "uk")
    assert ru.subject is None and ru.html is None


def test_money_and_dates_have_one_format_per_language() -> None:
    assert format_money(Decimal("1250"), "UAH", "uk") == "1 250,00 грн"
    assert format_money(Decimal("1250"), "UAH", "ru") == "1 250,00 грн"
    assert format_money(Decimal("1250"), "uah", "en") == "UAH 1,250.00"
    assert format_money(Decimal("-1234567.005"), "USD", "uk") == "-1 234 567,01 USD"
    assert format_number(Decimal("0.004"), "en") == "0.00"
    assert format_date(date(2026, 11, 25), "uk") == "25.11.2026"
    assert format_date(date(2026, 1, 5), "en") == "5 Jan 2026"


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False))
def test_number_format_reads_back_as_the_rounded_amount(value: Decimal) -> None:
    uk = format_number(value, "uk")
    en = format_number(value, "en")
    half_up = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)  # money rounding
    assert Decimal(uk.replace(" ", "").replace(",", ".")) == half_up
    assert Decimal(en.replace(",", "")) == Decimal(uk.replace(" ", "").replace(",", "."))


def test_customer_payment_and_request_variables_fill_the_text() -> None:
    source = Source(
        "sms",
        {
            "uk": "{{ first_name }}, {{ amount }} до {{ due_date }} ({{ contract_id }}); "
            "бонуси {{ bonus_balance }}; код {{ code }}; {{ phone }}",
            "en": "{{ amount }} by {{ due_date }}",
        },
        variables=["code"],
    )
    who = customer("uk", bonus_balance=Decimal("10.5"), attributes={"first_name": "Тарас"})
    rendered = Renderer().render(source, who, PAYMENT, {"code": "X1"})
    assert rendered.text == (
        "Тарас, 1 250,00 грн до 25.11.2026 (K-9); бонуси 10,50; код X1; +380671234567"
    )
    english = Renderer().render(source, customer("en"), PAYMENT, {"code": "X1"})
    assert english.text == "UAH 1,250.00 by 25 Nov 2026"
    overridden = Renderer().render(
        Source("sms", {"uk": "{{ amount }}"}), who, PAYMENT, {"amount": "500 грн"}
    )
    assert overridden.text == "500 грн"


def test_a_missing_value_raises_instead_of_a_half_rendered_text() -> None:
    renderer = Renderer()
    declared = Source("sms", {"uk": "Код {{ code }}"}, variables=["code"])
    with pytest.raises(MissingVariable) as missing:
        renderer.render(declared, customer(), None, {})
    assert missing.value.name == "code" and missing.value.reason == "missing_variable"
    # Declared but unused in this language still has to be supplied.
    unused = Source("sms", {"uk": "Привіт"}, variables=["promo"])
    with pytest.raises(MissingVariable, match="promo"):
        renderer.render(unused, customer(), None, {})
    with pytest.raises(MissingVariable, match="amount"):
        renderer.render(Source("sms", {"uk": "{{ amount }}"}), customer(), None, {})
    with pytest.raises(MissingVariable, match="region"):
        renderer.render(Source("sms", {"uk": "{{ region }}"}), customer(), None, {})
    with pytest.raises(MissingVariable, match="tier"):
        renderer.render(Source("sms", {"uk": "{{ attributes.tier }}"}), customer(), None, {})


def test_validation_names_language_line_and_variable() -> None:
    body = {"uk": "Вітаємо!\nБонус: {{ bonus }}", "ru": "{{ name }}\n\n{{ amount }"}
    issues = [str(issue) for issue in validate_template("sms", {}, body, [])]
    assert issues[0] == "body.uk: line 2: unknown variable 'bonus'"
    assert issues[1].startswith("body.ru: line 3: unexpected '}'")
    assert len(issues) == 2
    assert validate_template("sms", {}, {"uk": "{{ bonus }}"}, ["bonus"]) == []


def test_template_local_names_and_known_fields_are_not_unknown() -> None:
    body = {
        "en": "{% set total = amount %}{% for p in products %}{{ p }} {{ loop.index }}"
        "{% endfor %}{{ total }} {{ range(2) | list }}"
    }
    assert validate_template("sms", {}, body, ["products"]) == []


@pytest.mark.parametrize(
    ("channel", "subject", "body", "declared", "expected"),
    [
        ("email", {}, {"uk": "x"}, [], "subject.uk: an e-mail needs a subject"),
        ("email", {"uk": "s", "en": "s"}, {"uk": "x"}, [], "subject.en: no body in"),
        ("sms", {"uk": "s"}, {"uk": "x"}, [], "subject: a sms message has no subject"),
        ("sms", {}, {}, [], "body: give the text"),
        ("sms", {}, {"de": "x"}, [], "body.de: unsupported language"),
        ("sms", {}, {"uk": "  "}, [], "body.uk: empty"),
        ("sms", {}, {"uk": "x"}, ["not a name"], "variables[0]: 'not a name' is not"),
        ("sms", {}, {"uk": "x"}, ["a", "a"], "variables[1]: 'a' is declared twice"),
        ("email", {"uk": "{{ oops }}"}, {"uk": "x"}, [], "subject.uk: line 1: unknown"),
    ],
)
def test_validation_refuses_malformed_templates(
    channel: str, subject: dict[str, str], body: dict[str, str], declared: list[str], expected: str
) -> None:
    issues = [str(issue) for issue in validate_template(channel, subject, body, declared)]
    assert any(issue.startswith(expected) for issue in issues), issues


def test_html_email_escapes_values_and_has_a_text_alternative() -> None:
    source = Source(
        "email",
        {"en": '<p>Hello {{ name }}</p><p><a href="https://x.test/pay">Pay</a> now</p>'},
        subject={"en": "For {{ name }}"},
    )
    who = customer("en", name="Tom & <b>Jerry</b>\r\nBcc: evil@x.test")
    rendered = Renderer().render(source, who, None, {})
    assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in (rendered.html or "")
    assert "<b>" not in (rendered.html or "")
    assert rendered.text.splitlines()[0] == "Hello Tom & <b>Jerry</b>"
    assert "Pay (https://x.test/pay) now" in rendered.text
    assert rendered.subject == "For Tom & <b>Jerry</b> Bcc: evil@x.test"


def test_sms_and_plain_email_are_not_escaped() -> None:
    who = customer("en", name="Tom & Jerry")
    sms = Renderer().render(Source("sms", {"en": "Hi {{ name }} <3"}), who, None, {})
    assert sms.text == "Hi Tom & Jerry <3" and sms.html is None
    plain = Renderer().render(
        Source("email", {"en": "Hi {{ name }}"}, subject={"en": "S"}), who, None, {}
    )
    assert (plain.text, plain.html, plain.subject) == ("Hi Tom & Jerry", None, "S")


def test_the_sandbox_refuses_internals_and_runaway_output() -> None:
    renderer = Renderer()
    with pytest.raises(InvalidTemplate, match="sandbox"):
        renderer.render(Source("sms", {"uk": "{{ name.__class__.__mro__ }}"}), customer(), None, {})
    loop = "{% for i in range(99999) %}{% for j in range(99999) %}xx{% endfor %}{% endfor %}"
    with pytest.raises(InvalidTemplate, match="over"):
        renderer.render(Source("sms", {"uk": loop}), customer(), None, {})
    with pytest.raises(InvalidTemplate, match="line 1"):
        renderer.render(InlineMessage("sms", "{{ name "), customer(), None, {})


def test_inline_bodies_render_in_the_customers_language_in_the_same_sandbox() -> None:
    inline = InlineMessage("email", "<p>{{ first_name }}: {{ code }}</p>", "Код {{ code }}")
    rendered = Renderer(default_language="ru").render(inline, customer(None), None, {"code": "<7>"})
    assert rendered.language == "ru"
    assert rendered.html == "<p>Шевченко: &lt;7&gt;</p>"
    assert (rendered.text, rendered.subject) == ("Шевченко: <7>", "Код <7>")
    with pytest.raises(MissingVariable, match="code"):
        Renderer().render(inline, customer(), None, {})


def test_compiled_templates_are_reused_and_the_cache_is_bounded() -> None:
    renderer = Renderer(cache_size=2)
    for index in range(5):
        text = f"{index} {{{{ first_name }}}}"
        assert renderer.render(Source("sms", {"uk": text}), customer(), None, {}).text == (
            f"{index} Шевченко"
        )
    assert len(renderer._cache) == 2
