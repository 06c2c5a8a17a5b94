"""The plain-text alternative of an HTML e-mail, read in one linear pass.

Not `html.parser`: before CPython 3.11.13 / 3.12.11 / 3.13.4 (gh-135462, CVE-2025-6069)
it goes quadratic on constructs left open — `</</</…`, a tag with an unclosed quote,
an unterminated comment; 100 KB of such output took from one to seventeen seconds on the
event loop, and we run on 3.11.7. The text needs only tags, links and entities; every
pattern here stops at the next `<` or `>`, so each character is looked at a bounded
number of times.
"""

from __future__ import annotations

import re
from html import unescape

_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table"})
_RAW = frozenset({"script", "style"})
# Possessive quantifiers: a tag left open fails at the next `<` without backtracking.
_TOKEN = re.compile(r"<!--|<(/?)([A-Za-z][^\s/<>]*+)([^<>]*+)>|<[!?][^<>]*+>")
_RAW_END = {name: re.compile(rf"</\s*+{name}\s*+>", re.IGNORECASE) for name in _RAW}
_HREF = re.compile(r"""(?:^|[\s/])href\s*+=\s*+(?:"([^"]*+)"|'([^']*+)'|([^\s"'=<>`]++))""", re.I)


def _href(attributes: str) -> str | None:
    match = _HREF.search(attributes)
    if match is None:
        return None
    return unescape(next(group for group in match.groups() if group is not None))


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body: blocks become lines, links keep URLs."""
    parts: list[str] = []
    links: list[str | None] = []
    at = 0
    while True:
        match = _TOKEN.search(html, at)
        if match is None:
            parts.append(unescape(html[at:]))
            break
        if match.start() > at:
            parts.append(unescape(html[at : match.start()]))
        at = match.end()
        if match[0] == "<!--":
            close = html.find("-->", at)
            if close == -1:
                break  # an unterminated comment runs to the end
            at = close + 3
            continue
        if match[2] is None:
            continue  # a declaration or processing instruction
        closing, tag = bool(match[1]), match[2].lower()
        if tag in _RAW and not closing:
            end = _RAW_END[tag].search(html, at)
            at = end.end() if end is not None else len(html)
            continue
        # `<br/>` is a start and an end tag, as html.parser reports it.
        for end_tag in (closing,) if closing or not match[3].endswith("/") else (False, True):
            _tag(tag, end_tag, match[3], parts, links)
    lines = [" ".join(line.split()) for line in "".join(parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _tag(
    tag: str, closing: bool, attributes: str, parts: list[str], links: list[str | None]
) -> None:
    if tag in _BLOCKS:
        parts.append("\n")
    elif tag == "a" and not closing:
        links.append(_href(attributes))
    elif tag == "a" and links:
        href = links.pop()
        if href and not href.startswith("#"):
            parts.append(f" ({href})")
