"""The sandbox's bounds: each costly construct refused before it runs, real templates not.

The time bounds asserted are generous hang guards for a busy machine: before the bounds
each of these took seconds or more (`3 ** 10 ** 7`: 3.8 s; `'</' * 50000` as HTML:
0.8 s; an HTML body of unclosed quoted attributes: 17 s).
"""

from __future__ import annotations

import time

import pytest

from channels.templates import (
    InlineMessage,
    InvalidTemplate,
    MissingVariable,
    Renderer,
    html_to_text,
    validate_template,
)
from tests.unit.channels.test_templates import Source, customer

SLOW = 1.0  # seconds


def render(body: str, channel: str = "sms") -> str:
    subject = "S" if channel == "email" else None
    rendered = Renderer().render(InlineMessage(channel, body, subject), customer(), None, {})
    return rendered.html or rendered.text


@pytest.mark.parametrize(
    ("body", "bound"),
    [
        ("{{ (3**(10**7)) > 1 }}", "a power over 4096 bits"),
        ("{{ 10**5000 }}", "a power over 4096 bits"),
        ("{% for i in range(100001) %}{% endfor %}x", "a range over 10000 items"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}x",
            "steps of work",
        ),
        ("{{ (2**4000) * (2**4000) }}", "a product over 4096 bits"),
        ("{{ ('x' * 100000) * 100000 }}", "a repeated value over"),
        ("{{ 'x'.center(100000000) }}", "a padded value over"),
        ("{{ 'x'|center(100000000) }}", "a padded value over"),
        ("{{ ('x' * 1000)|indent(1000000) }}", "an indented value over"),
        ("{{ '%999999999d' % 1 }}", "a format width or precision over"),
        ("{{ '%*d' % (999999999, 1) }}", "a `*` width"),
        ("{{ '{:>999999999}'.format(1) }}", "a format width or precision over"),
        ("{{ '{:{}}'.format(1, 999999999) }}", "a nested replacement field"),
        ("{{ ('x' * 100000).replace('x', 'yyyy') }}", "a replaced value over"),
        ("{{ ('x' * 1000)|batch(1000000000, 'f')|list }}", "batch of more than"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a joined value over",
        ),
        ("{% set l = ['x' * 100000] %}{{ (l * 1000)|join }}", "a repeated value over"),
        (
            "{% macro m(v) %}{{ m(v) }}{% endmacro %}{{ m(1) }}",
            "calls nested more than 50 deep",
        ),
        (
            "{% set l = range(10000)|list %}{% for i in range(10000) %}{{ l|sort|length }}"
            "{% endfor %}",
            "steps of work",
        ),
        # Constant arguments: Jinja's introspection used to fold this while compiling.
        ("{% if (9999|center(90000))|groupby('real') %}y{% endif %}", "steps of work"),
    ],
)
def test_each_costly_construct_is_refused_quickly(body: str, bound: str) -> None:
    started = time.thread_time()
    with pytest.raises(InvalidTemplate, match="exceeds a rendering limit") as refused:
        render(body)
    reason = str(refused.value)
    # The step budget and the CPU-time cap both bound a long loop; under a tracer (coverage
    # in `make test`) or a loaded CPU the time cap can trip first. Either refuses it.
    budget_bounds = (bound, "s of CPU time") if bound == "steps of work" else (bound,)
    assert any(expected in reason for expected in budget_bounds), reason
    assert time.thread_time() - started < SLOW


@pytest.mark.parametrize(
    "body",
    [
        "{{ 1/0 }}",  # ZeroDivisionError
        "{{ name|int + [] }}",  # TypeError
        "{{ name|nosuchfilter }}",  # fails to compile
    ],
)
def test_a_templates_own_error_is_an_invalid_template_not_a_crash(body: str) -> None:
    with pytest.raises(InvalidTemplate):
        render(body)


def test_lipsum_is_not_offered() -> None:
    """It writes any number of paragraphs; a template naming it names an unknown variable."""
    with pytest.raises(MissingVariable, match="lipsum"):
        render("{{ lipsum(10000) }}")
    issues = validate_template("sms", {}, {"uk": "{{ lipsum(10000) }}"}, [])
    assert [str(issue) for issue in issues] == ["body.uk: line 1: unknown variable 'lipsum'"]


def test_a_template_with_too_many_tags_is_refused_before_compiling() -> None:
    body = "Hi {{ name }}\n" + "{{ first_name }}" * 200
    started = time.thread_time()
    with pytest.raises(InvalidTemplate, match="line 2: more than 200 tags"):
        render(body)
    assert time.thread_time() - started < SLOW
    issues = validate_template("sms", {}, {"uk": body}, [])
    assert [issue.field for issue in issues] == ["body.uk"]


def test_a_save_is_refused_naming_the_text_and_the_bound() -> None:
    issues = validate_template(
        "email",
        {"uk": "{{ name }}"},
        {"uk": "<p>{{ first_name }}</p>\n{{ 'x' * (10**6) }}"},
        [],
    )
    assert [str(issue) for issue in issues] == [
        "body.uk: line 2: exceeds a rendering limit: a repeated value over 200000 characters"
    ]


def test_real_templates_still_render() -> None:
    body = (
        "{% macro row(k, v) %}<li>{{ k }}: {{ v }}</li>{% endmacro %}"
        "<p>{{ first_name|title }},</p><ul>"
        "{% for k, v in {'a': 1, 'b': 'two'}|dictsort %}{{ row(k, v) }}{% endfor %}</ul>"
        "{% for i in range(3) %}{{ loop.index }}{{ '%05.1f'|format(i * 1.5) }} {% endfor %}"
        "{{ '{:>6}'.format(name[:3]) }} {{ ('ab' * 3)|upper }} {{ 2 ** 10 }}"
        "{{ [1, 2, 3]|sum }} {{ ' | '.join(['x', 'y']) }}"
    )
    assert validate_template("email", {"uk": "S"}, {"uk": body}, []) == []
    assert render(body, "email") == (
        "<p>Шевченко,</p><ul><li>a: 1</li><li>b: two</li></ul>"
        "1000.0 2001.5 3003.0    Шев ABABAB 10246 x | y"
    )
    # Looking at a missing value is still allowed: the hooks never touch an undefined.
    optional = (
        "{{ 'y' if attributes.foo is defined else 'n' }}{{ attributes.foo|default('d') }}"
        "{% if attributes.foo is undefined %}u{% endif %}"
    )
    assert render(optional) == "ndu"
    loop = "{% for i in range(50) %}{% for j in range(50) %}.{% endfor %}{% endfor %}"
    assert render(loop) == "." * 2_500
    source = Source("sms", {"uk": "{{ first_name }}, {{ 'x' * 3 }}"})
    assert Renderer().render(source, customer(), None, {}).text == "Шевченко, xxx"


@pytest.mark.parametrize(
    "html",
    [
        "</" * 50_000,
        "<" * 100_000,
        "<a" * 50_000,
        "<!--" * 25_000,
        "<![" * 33_000,
        "--><b x=\"'<a href='" * 5_000,
        "<script>" + "<" * 100_000,
    ],
)
def test_the_text_of_an_html_email_is_read_in_linear_time(html: str) -> None:
    started = time.thread_time()
    html_to_text(html)
    assert time.thread_time() - started < SLOW


def test_the_text_alternative_keeps_blocks_links_and_entities() -> None:
    html = (
        "<!DOCTYPE html><html><head><style>p { color: red }</style></head><body>"
        "<h1>Hello &amp; welcome</h1><p>Pay <A HREF='https://x.test/?a=1&amp;b=2'>here</a>"
        "<!-- a <b>comment</b> --> now.<br/>Thanks</p><script>var x = '<p>';</script>"
        "<a href='#top'>top</a> 3 &lt; 4</body></html>"
    )
    assert html_to_text(html) == (
        "Hello & welcome\n\nPay here (https://x.test/?a=1&b=2) now.\n\nThanks\ntop 3 < 4"
    )
