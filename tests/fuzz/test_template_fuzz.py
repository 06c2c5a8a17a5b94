"""Generated templates against the bounded sandbox: CPU and output stay bounded.

Templates are built from a grammar heavy in what costs: powers and products of large
numbers, repeated strings, ranges at and past the limit, nested loops, macros calling
macros, recursion, every built-in filter and the string methods that pad, replace, join
and format, slices, comparisons, HTML e-mail bodies, large templates. Whatever the
template, rendering (and validating it for save) either gives a message within the
output cap or refuses it with a TemplateProblem — never another exception — and uses
little CPU: the bound asserted is a generous hang guard (many times the sandbox's own
CPU net), not a figure.

`SWITCHBOARD_FUZZ_SCALE=full` (what `make fuzz` sets) runs many more examples.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.template_budget import MAX_CPU_SECONDS
from channels.templates import (
    MAX_OUTPUT_CHARS,
    InlineMessage,
    Renderer,
    TemplateProblem,
    validate_template,
)
from gateway.core.db.models import Customer

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
EXAMPLES = 3000 if FULL else 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),  # a hang guard, not a performance figure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Generous on a busy 2-core machine: ten times the sandbox's own CPU-time net.
CPU_BOUND = 10 * MAX_CPU_SECONDS + 0.5

_NUMBERS = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([99, 1000, 4096, 9999, 10000, 10001, 100000, 10**6, 10**9, 2**64]),
).map(str)
_STRINGS = st.sampled_from(
    [
        "'x'",
        "'ab '",
        "'<a>'",
        "'%s'",
        "'%999999999d'",
        "'{:>99999999}'",
        "'{0}{0}{0}'",
        "'\\t'",
        "'</'",
        "'<!--'",
        "'<b x=\"'",
        "''",
        "name",
        "first_name",
        "code",
    ]
)
_ATOMS = st.one_of(
    _NUMBERS,
    _STRINGS,
    st.sampled_from(
        ["[1, 2, 3]", "{'a': 1}", "attributes", "ns.s", "range(10000)", "range(100001)", "x"]
    ),
)
_FILTERS = [
    "abs", "attr('a')", "batch(3)", "batch(1000000000, 'x')", "capitalize", "center(90000)",
    "center(1000000000)", "count", "default('d')", "dictsort", "e", "escape", "filesizeformat",
    "first", "float", "forceescape", "format(1)", "groupby('real')", "indent(100000)",
    "int", "items", "join", "join('x' * 1000)", "last", "length", "list", "lower",
    "map('string')", "map('upper')", "max", "min", "pprint", "reject", "replace('', 'yy')",
    "replace('x', 'xxxxxxxx')", "reverse", "round", "safe", "select", "slice(3)",
    "slice(1000000000)", "sort", "string", "striptags", "sum", "title", "tojson", "trim",
    "truncate(5)", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap(1)",
    "xmlattr",
]  # fmt: skip
_METHODS = [
    "center(N)", "ljust(N)", "zfill(N)", "expandtabs(N)", "replace('x', E)", "join(E)",
    "format(E)", "format_map(E)", "translate(E)", "split()", "upper()", "count(E)",
]  # fmt: skip


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        op = st.sampled_from(["**", "*", "+", "-", "//", "%", "~", "/", "==", "in", "<"])
        method = st.tuples(st.sampled_from(_METHODS), inner, _NUMBERS).map(
            lambda t: t[0].replace("E", t[1]).replace("N", t[2])
        )
        return st.one_of(
            st.tuples(inner, op, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.sampled_from(_FILTERS)).map(lambda t: f"({t[0]})|{t[1]}"),
            st.tuples(inner, method).map(lambda t: f"({t[0]}).{t[1]}"),
            st.tuples(inner, inner).map(lambda t: f"range({t[0]}, {t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}:]"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}] * {t[1]}"),
            inner.map(lambda e: f"m({e})"),
            inner.map(lambda e: f"-({e})"),
        )

    return st.recursive(_ATOMS, extend, max_leaves=8)


_EXPR = _expressions()


def _statements() -> st.SearchStrategy[str]:
    leaf = st.one_of(
        _EXPR.map(lambda e: "{{ " + e + " }}"),
        _EXPR.map(lambda e: "{% set ns.s = " + e + " %}"),
        st.sampled_from(["text ", "<p>", "</p>", "<a href='https://x.test'>", "</a>", "\n"]),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        body = st.lists(inner, min_size=1, max_size=4).map("".join)
        return st.one_of(
            st.tuples(_EXPR, body).map(lambda t: f"{{% for x in {t[0]} %}}{t[1]}{{% endfor %}}"),
            st.tuples(_EXPR, body).map(lambda t: f"{{% if {t[0]} %}}{t[1]}{{% endif %}}"),
            body.map(lambda b: f"{{% filter upper %}}{b}{{% endfilter %}}"),
            body.map(lambda b: f"{{% call c(1) %}}{b}{{% endcall %}}"),
        )

    return st.recursive(leaf, extend, max_leaves=10)


_MACROS = st.sampled_from(
    [
        "{% macro m(v) %}{{ v }}{% endmacro %}",
        "{% macro m(v) %}{{ v }}{{ v }}{% endmacro %}",
        "{% macro m(v) %}{% if v %}{{ m(v - 1) }}{{ m(v - 1) }}{% endif %}{% endmacro %}",
        "{% macro m(v) %}{{ v ~ v ~ v ~ v }}{% endmacro %}",
    ]
)
# Each call block renders its body twice: nested ones double and double again.
_CALLER = "{% macro c(v) %}{{ caller() }}{{ caller() }}{% endmacro %}"
# Repeated: large templates cost to compile before any bound of the render applies.
_REPEATS = st.sampled_from([1, 1, 1, 1, 3, 20, 80])
templates = st.tuples(_MACROS, st.lists(_statements(), min_size=1, max_size=4), _REPEATS).map(
    lambda t: "{% set ns = namespace(s='x') %}" + t[0] + _CALLER + "".join(t[1]) * t[2]
)


@dataclass
class _Customer:
    """What rendering reads of a customer (the ORM row needs a session otherwise)."""

    name: str = "Олена Коваль"
    language: str = "uk"
    external_id: str = "C1"
    email: str = "olena@example.com"
    status: str = "active"
    region: str = "Київ"
    responsible_agent: str | None = None
    bonus_balance: None = None
    attributes: dict[str, object] = field(default_factory=lambda: {"a": 1, "first_name": "О"})
    phones: list[object] = field(default_factory=list)


RENDERER = Renderer()
WHO: Customer = _Customer()  # type: ignore[assignment]


def _render_within_bounds(channel: str, text: str) -> None:
    source = InlineMessage(channel, text, "Subject {{ code }}" if channel == "email" else None)
    started = time.thread_time()
    try:
        rendered = RENDERER.render(source, WHO, None, {"code": "A-17", "x": "7"})
    except TemplateProblem:
        rendered = None
    spent = time.thread_time() - started
    assert spent < CPU_BOUND, f"{spent:.2f} s of CPU for {text!r}"
    if rendered is not None:
        assert len(rendered.text) <= MAX_OUTPUT_CHARS
        assert len(rendered.html or "") <= MAX_OUTPUT_CHARS
        assert len(rendered.subject or "") <= MAX_OUTPUT_CHARS


@FUZZ
@given(templates)
def test_sms_templates_render_within_the_bounds(text: str) -> None:
    _render_within_bounds("sms", text)


@FUZZ
@given(templates.map(lambda text: "<p>" + text + "</p>"))
def test_html_email_templates_render_within_the_bounds(text: str) -> None:
    _render_within_bounds("email", text)


@FUZZ
@given(templates)
def test_validating_a_template_for_save_is_bounded(text: str) -> None:
    started = time.thread_time()
    validate_template("sms", {}, {"uk": text}, ["code", "x"])
    spent = time.thread_time() - started
    assert spent < CPU_BOUND, f"{spent:.2f} s of CPU validating {text!r}"
