"""Message templates: validated on save, rendered in a Jinja2 sandbox at send time.

A template has a body (and, for e-mail, a subject) per language (`uk`, `ru`, `en`) and
declares the variables the campaign or request must supply; the customer's and the
payment's fields (`KNOWN_FIELDS`) are always available. Rendering is strict: a variable
that is used or declared but has no value raises `MissingVariable` (the pipeline skips
the message with `missing_variable`), never a half-filled text.

Locale formats (Decimal only, rounded half up to cents; plain spaces, SMS-safe):
`amount` — uk/ru `1 250,00 грн` (other currencies: `1 250,00 USD`), en `UAH 1,250.00`;
`bonus_balance` — uk/ru `1 250,00`, en `1,250.00`; `due_date` — uk/ru `25.11.2026`,
en `25 Nov 2026`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, TemplateError

from channels.html_text import html_to_text as linear_html_to_text
from channels.template_budget import LimitExceeded, rendering
from channels.template_sandbox import (
    BoundedEnvironment,
    template_line,
    trial_render,
    undeclared_variables,
)
from gateway.core.db.models import Customer, Payment

SUPPORTED_LANGUAGES = ("uk", "ru", "en")
CUSTOMER_FIELDS = (
    "name",
    "first_name",
    "external_id",
    "email",
    "phone",
    "status",
    "region",
    "language",
    "bonus_balance",
    "responsible_agent",
    "attributes",
)
PAYMENT_FIELDS = ("amount", "currency", "due_date", "contract_id")
KNOWN_FIELDS = frozenset(CUSTOMER_FIELDS + PAYMENT_FIELDS)
ANY_LANGUAGE = "*"
MAX_OUTPUT_CHARS = 100_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# `[^<>]`, not `[^>]`: a run of unclosed `<a<a<a…` is then scanned once, not once per `<`.
_HTML_TAG = re.compile(r"<\s*(?:[A-Za-z][A-Za-z0-9]*|!--|/[A-Za-z])[^<>]*>")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CURRENCY_WORDS = {"UAH": "грн"}


class TemplateProblem(Exception):
    """A message cannot be rendered; `reason` is the contract's `skipped` reason."""

    reason = "invalid_template"


class MissingVariable(TemplateProblem):
    """A variable the template needs has no value for this customer or request."""

    reason = "missing_variable"

    def __init__(self, name: str) -> None:
        super().__init__(f"variable {name!r} has no value")
        self.name = name


class InvalidTemplate(TemplateProblem):
    """The template does not parse, breaks the sandbox, or renders too much."""


@dataclass(frozen=True)
class TemplateIssue:
    """One reason a template is refused: `field` (`body.uk`) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Rendered:
    """A message ready for a channel: `html` only for e-mail bodies written in HTML."""

    subject: str | None
    text: str
    html: str | None
    language: str


class TemplateSource(Protocol):
    """What rendering needs of a template (the `Template` row satisfies it)."""

    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> Mapping[str, str]: ...
    @property
    def variables(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class InlineMessage:
    """A body (and subject) sent inline by `contact.requested`: no language, no declarations."""

    channel: str
    text: str
    subject_text: str | None = None
    variables: Sequence[str] = ()
    subject: Mapping[str, str] = field(init=False)
    body: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", {ANY_LANGUAGE: self.text})
        subject = {ANY_LANGUAGE: self.subject_text} if self.subject_text else {}
        object.__setattr__(self, "subject", subject)


def _environment(autoescape: bool) -> BoundedEnvironment:
    return BoundedEnvironment(undefined=StrictUndefined, autoescape=autoescape)


def choose_language(available: Sequence[str], preferred: str | None, default: str) -> str:
    """Customer's language, else the default, else the first supported, else any."""
    for language in (preferred, default, *SUPPORTED_LANGUAGES):
        if language and language in available:
            return language
    return sorted(available)[0]


def format_number(value: Decimal, language: str) -> str:
    """`1 250,00` (uk, ru) or `1,250.00` (en)."""
    text = format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), ",.2f")
    if language == "en":
        return text
    return text.replace(",", " ").replace(".", ",")


def format_money(value: Decimal, currency: str | None, language: str) -> str:
    """`1 250,00 грн` (uk, ru) or `UAH 1,250.00` (en); the ISO code when unknown."""
    number = format_number(value, language)
    code = (currency or "").upper()
    if language == "en":
        return f"{code} {number}".strip()
    return f"{number} {_CURRENCY_WORDS.get(code, code)}".strip()


def format_date(value: date, language: str) -> str:
    """`25.11.2026` (uk, ru) or `25 Nov 2026` (en)."""
    if language == "en":
        return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"
    return value.strftime("%d.%m.%Y")


def first_name(customer: Customer) -> str | None:
    """`attributes.first_name` when the CRM gives it, else the first word of the name.

    CRMs here often store "Surname Name Patronymic"; the attribute is the reliable source.
    """
    explicit = (customer.attributes or {}).get("first_name")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    words = (customer.name or "").split()
    return words[0] if words else None


def template_context(
    customer: Customer,
    payment: Payment | None,
    variables: Mapping[str, object],
    language: str,
) -> dict[str, object]:
    """Customer, then payment, then request variables (later wins); None means absent."""
    phone = next((p.e164 for p in customer.phones if not p.invalid), None)
    values: dict[str, object] = {
        "name": customer.name or None,
        "first_name": first_name(customer),
        "external_id": customer.external_id,
        "email": customer.email,
        "phone": phone,
        "status": customer.status,
        "region": customer.region,
        "language": customer.language,
        "responsible_agent": customer.responsible_agent,
        "attributes": dict(customer.attributes or {}),
        "bonus_balance": None
        if customer.bonus_balance is None
        else format_number(customer.bonus_balance, language),
    }
    if payment is not None:
        values.update(
            amount=format_money(payment.amount, payment.currency, language),
            currency=payment.currency,
            due_date=format_date(payment.due_date, language),
            contract_id=payment.contract_id,
        )
    values.update(variables)
    return {name: value for name, value in values.items() if value is not None}


def _first_line(tree: nodes.Template, name: str) -> int:
    lines = [node.lineno for node in tree.find_all(nodes.Name) if node.name == name]
    return min(lines, default=1)


def _check_text(
    env: BoundedEnvironment, where: str, text: str, allowed: frozenset[str], html: bool = False
) -> list[TemplateIssue]:
    if not text.strip():
        return [TemplateIssue(where, "empty")]
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        return [TemplateIssue(where, f"line {exc.lineno}: {exc.message}")]
    except RecursionError:
        return [TemplateIssue(where, "nested too deeply")]
    unknown = sorted(undeclared_variables(tree) - allowed)
    if unknown:
        return [
            TemplateIssue(where, f"line {_first_line(tree, name)}: unknown variable {name!r}")
            for name in unknown
        ]
    # A bound passed with sample values would be passed by every message: refuse it now.
    samples = {name: {} if name == "attributes" else "Sample" for name in allowed}
    problem = trial_render(text, html, samples)
    return [TemplateIssue(where, problem)] if problem else []


def validate_template(
    channel: str,
    subject: Mapping[str, str],
    body: Mapping[str, str],
    declared: Sequence[str],
) -> list[TemplateIssue]:
    """Every reason to refuse this template on save (empty when it may be saved)."""
    issues: list[TemplateIssue] = []
    seen: set[str] = set()
    for index, name in enumerate(declared):
        if not _IDENTIFIER.match(name):
            issues.append(TemplateIssue(f"variables[{index}]", f"{name!r} is not a name"))
        elif name in seen:
            issues.append(TemplateIssue(f"variables[{index}]", f"{name!r} is declared twice"))
        seen.add(name)
    if not body:
        issues.append(TemplateIssue("body", "give the text in at least one language"))
    for part, texts in (("body", body), ("subject", subject)):
        for language in texts:
            if language not in SUPPORTED_LANGUAGES:
                issues.append(
                    TemplateIssue(
                        f"{part}.{language}",
                        f"unsupported language; use {', '.join(SUPPORTED_LANGUAGES)}",
                    )
                )
    if channel == "email":
        issues += [
            TemplateIssue(f"subject.{lang}", "an e-mail needs a subject in each body language")
            for lang in body
            if lang not in subject
        ]
        issues += [
            TemplateIssue(f"subject.{lang}", "no body in this language")
            for lang in subject
            if lang not in body
        ]
    elif subject:
        issues.append(TemplateIssue("subject", f"a {channel} message has no subject"))
    env = _environment(autoescape=False)
    allowed = KNOWN_FIELDS | seen
    for part, texts in (("subject", subject), ("body", body)):
        for language, text in texts.items():
            html = channel == "email" and part == "body" and is_html(text)
            issues += _check_text(env, f"{part}.{language}", text, allowed, html)
    return issues


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (linear: see `channels/html_text.py`)."""
    return linear_html_to_text(html)


def is_html(body: str) -> bool:
    """Whether an e-mail body is written in HTML (it contains a tag)."""
    return _HTML_TAG.search(body) is not None


class Renderer:
    """Renders templates and inline bodies; caches compiled templates (one per app)."""

    def __init__(self, default_language: str = "uk", cache_size: int = 256) -> None:
        self.default_language = default_language
        self._text_env = _environment(autoescape=False)
        self._html_env = _environment(autoescape=True)
        self._cache: OrderedDict[tuple[bool, str], tuple[JinjaTemplate, frozenset[str]]] = (
            OrderedDict()
        )
        self._cache_size = cache_size

    def _compiled(self, text: str, html: bool) -> tuple[JinjaTemplate, frozenset[str]]:
        key = (html, text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        env = self._html_env if html else self._text_env
        try:
            tree = env.parse(text)
            compiled = (env.from_string(tree), frozenset(undeclared_variables(tree)))
        except TemplateSyntaxError as exc:
            raise InvalidTemplate(f"line {exc.lineno}: {exc.message}") from exc
        except (TemplateError, RecursionError, SyntaxError, MemoryError) as exc:
            raise InvalidTemplate(f"does not compile: {exc}") from exc
        self._cache[key] = compiled
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return compiled

    def _fill(
        self, text: str, context: Mapping[str, object], declared: Sequence[str], html: bool
    ) -> str:
        template, used = self._compiled(text, html)
        missing = sorted((used | set(declared)) - context.keys())
        if missing:
            raise MissingVariable(missing[0])
        size = 0
        chunks: list[str] = []
        try:
            with rendering() as budget:
                # generate() lets a runaway loop stop at the size limit, not at memory's end.
                for chunk in template.generate(context):
                    size += len(chunk)
                    if size > MAX_OUTPUT_CHARS:
                        raise InvalidTemplate(f"renders over {MAX_OUTPUT_CHARS} characters")
                    chunks.append(chunk)
                if budget.exceeded is not None:  # a filter swallowed the refusal
                    raise LimitExceeded(budget.exceeded)
        except LimitExceeded as exc:
            raise InvalidTemplate(f"{template_line(exc)}exceeds a rendering limit: {exc}") from exc
        except UndefinedError as exc:
            raise MissingVariable(_undefined_name(exc)) from exc
        except SecurityError as exc:
            raise InvalidTemplate(f"not allowed in the sandbox: {exc}") from exc
        except TemplateError as exc:
            raise InvalidTemplate(str(exc)) from exc
        except TemplateProblem:
            raise
        except Exception as exc:
            # The template's own error (1/0, a bad type): rendering is pure, so it fails
            # the same way every time; a retry would only log it again.
            raise InvalidTemplate(f"{template_line(exc)}{type(exc).__name__}: {exc}") from exc
        return "".join(chunks)

    def render(
        self,
        source: TemplateSource,
        customer: Customer,
        payment: Payment | None,
        variables: Mapping[str, object],
    ) -> Rendered:
        """Pick the customer's language, fill in the values; raise a TemplateProblem."""
        if not source.body:
            raise InvalidTemplate("the template has no body")
        preferred = customer.language if customer.language in SUPPORTED_LANGUAGES else None
        if ANY_LANGUAGE in source.body:
            language, key = preferred or self.default_language, ANY_LANGUAGE
        else:
            language = key = choose_language(list(source.body), preferred, self.default_language)
        context = template_context(customer, payment, variables, language)
        declared = list(source.variables)
        body = source.body[key]
        subject_text = source.subject.get(key)
        subject = None
        if subject_text is not None:
            subject = " ".join(self._fill(subject_text, context, declared, False).split())
        if source.channel == "email" and is_html(body):
            html = self._fill(body, context, declared, True)
            return Rendered(subject, html_to_text(html), html, language)
        return Rendered(subject, self._fill(body, context, declared, False), None, language)


def _undefined_name(exc: UndefinedError) -> str:
    match = re.search(r"has no attribute '([^']+)'|'([^']+)' is undefined", str(exc))
    if match is None:
        return "?"
    return match[1] or match[2]
