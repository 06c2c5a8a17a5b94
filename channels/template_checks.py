"""The size a template operation would produce, checked before it runs.

Each check estimates the result of one operator, string method or filter from its
operands, cheaply, and refuses it (LimitExceeded) when the result would pass a bound of
`template_budget.py`; the operation itself then runs on values known to be small.
"""

from __future__ import annotations

import operator
import re
from _string import formatter_parser  # type: ignore[import-not-found]
from collections.abc import Callable, Iterable, Mapping, Sized
from decimal import Decimal
from typing import Any

from channels.template_budget import (
    CHARS_PER_STEP,
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_RANGE,
    MAX_VALUE_CHARS,
    check_int,
    check_size,
    current,
    int_bits,
    measure,
)

BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_DIGITS = re.compile(r"\d+")
_SEQUENCES = (str, list, tuple, bytes)


def binop(op: str, left: object, right: object) -> Any:
    """`left op right`, refused when the result would be too large to compute quickly."""
    current().charge(1)
    if op == "**":
        _check_power(left, right)
    elif op == "*":
        _check_product(left, right)
    elif op == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        check_size(measure(left) + measure(right), "a joined value")
    elif op == "%" and isinstance(left, str):
        check_percent_format(left, right)
    result = BINOPS[op](left, right)
    check_int(result)
    return result


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    # At least (bits - 1) * exponent bits; what this lets through is at most twice the
    # bound, cheap to compute, and refused by check_int on the result.
    if abs(base) > 1 and (int_bits(base) - 1) * exponent > MAX_INT_BITS:
        current().fail(f"a power over {MAX_INT_BITS} bits")


def _check_product(left: object, right: object) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if int_bits(left) + int_bits(right) > MAX_INT_BITS + 1:
            current().fail(f"a product over {MAX_INT_BITS} bits")
        return
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(sequence, _SEQUENCES) and isinstance(times, int) and times > 1:
        if times > MAX_VALUE_CHARS:
            current().fail(f"a repeated value over {MAX_VALUE_CHARS} characters")
        size = len(sequence) if isinstance(sequence, str | bytes) else measure(sequence)
        check_size(size * times, "a repeated value")


def _check_width(text: str) -> int:
    widths = [int(digits) for digits in _DIGITS.findall(text[:64])] if text else []
    if len(text) > 64 or max(widths, default=0) > MAX_FORMAT_WIDTH:
        current().fail(f"a format width or precision over {MAX_FORMAT_WIDTH}")
    return max(widths, default=0)


def check_percent_format(template: str, values: Any) -> None:
    """`template % values`: widths, precisions and the result's size bounded."""
    budget = current()
    budget.charge(1 + len(template) // CHARS_PER_STEP)
    fields = 0
    at = template.find("%")
    while at != -1:
        end = at + 1
        if template.startswith("(", end):
            close = template.find(")", end)
            end = close + 1 if close != -1 else len(template)
        start = end
        while end < len(template) and template[end] in "#0- +*.0123456789":
            end += 1
        if "*" in template[start:end]:
            budget.fail("a `*` width in % formatting")
        fields += 1
        _check_width(template[start:end])
        at = template.find("%", end + 1)
    check_size(len(template) + measure(values) + fields * MAX_FORMAT_WIDTH, "a formatted value")


def check_str_format(template: str, args: Iterable[Any], kwargs: Mapping[str, object]) -> None:
    """`template.format(...)`: no nested fields, bounded widths and result."""
    budget = current()
    budget.charge(1 + len(template) // CHARS_PER_STEP)
    fields = 0
    try:
        parsed = list(formatter_parser(template))
    except ValueError:
        return  # the call raises the same error itself
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            budget.fail("a nested replacement field in a format spec")
        _check_width(spec or "")
    size = len(template) + fields * MAX_FORMAT_WIDTH
    size += sum(measure(value) for value in args) + sum(measure(v) for v in kwargs.values())
    check_size(size, "a formatted value")


def _width(value: object) -> int:
    return len(value) if isinstance(value, str) else int(value) if isinstance(value, int) else 0


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    hits = text.count(old) if old else len(text) + 1
    if count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def _join_size(separator: str, items: Any) -> int:
    size = measure(items)
    try:
        return size + len(separator) * len(items)
    except TypeError:
        return size


def _striptags_cost(text: str) -> None:
    # markupsafe rebuilds the string once per tag removed: quadratic in the tag count.
    current().charge(text.count("<") * (1 + len(text) // CHARS_PER_STEP))


def check_str_method(
    owner: str, name: str, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> None:
    """A string method that can make more than it is given: estimate before the call."""
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill") and values:
        check_size(len(owner) + _width(values[0]), "a padded value")
    elif name == "expandtabs":
        size = _width(values[0]) if values else 8
        check_size(len(owner) + owner.count("\t") * size, "an expanded value")
    elif name == "replace" and len(values) >= 2:
        old, new = str(values[0]), str(values[1])
        count = values[2] if len(values) > 2 and isinstance(values[2], int) else -1
        check_size(_replace_size(owner, old, new, count), "a replaced value")
    elif name == "join" and values:
        check_size(_join_size(owner, values[0]), "a joined value")
    elif name == "translate" and values and isinstance(values[0], Mapping):
        longest = max((measure(v) for v in values[0].values()), default=1)
        check_size(len(owner) * longest, "a translated value")
    elif name == "striptags":
        _striptags_cost(owner)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def check_filter(
    name: str, value: object, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> None:
    """A filter that can make more than it is given: estimate before it runs."""
    if name in _SIZED_FILTERS:
        _SIZED_FILTERS[name](value, args, kwargs)
    else:
        _check_costly_filter(name, value, args, kwargs)


def _check_center(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    first = args[0] if args else None
    check_size(len(_text(value)) + _width(first if args else 80), "a padded value")


def _check_indent(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    first = args[0] if args else None
    width = _width(kwargs.get("width", first if args else 4))
    lines = _text(value).count("\n") + 1
    check_size(len(_text(value)) + lines * width, "an indented value")


def _check_wordwrap(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    first = args[0] if args else None
    width = max(1, _width(kwargs.get("width", first if args else 79)))
    wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else "\n")
    text = _text(value)
    check_size(len(text) + (len(text) // width + 1) * len(_text(wrap)), "a wrapped value")
    current().charge(len(text) // 8)  # textwrap works word by word in Python


def _check_replace(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    if len(args) >= 2:
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
        size = _replace_size(str(value), str(args[0]), str(args[1]), count)
        check_size(size, "a replaced value")


def _check_join(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    first = args[0] if args else None
    check_size(_join_size(str(kwargs.get("d", first if args else "")), value), "a joined value")


def _check_format(value: object, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    if isinstance(value, str):
        check_percent_format(value, kwargs or args)


_SizedCheck = Callable[[Any, tuple[object, ...], Mapping[str, object]], None]
# Filters whose output can outgrow their input: each estimates the size first.
_SIZED_FILTERS: dict[str, _SizedCheck] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "join": _check_join,
    "format": _check_format,
}


def _check_costly_filter(
    name: str, value: object, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> None:
    """Filters that do more work than their input's size: charged to the budget."""
    first = args[0] if args else None
    if name in ("batch", "slice"):
        count = kwargs.get("linecount", kwargs.get("slices", first))
        if isinstance(count, int) and count > MAX_RANGE:
            current().fail(f"{name} of more than {MAX_RANGE}")
    elif name == "striptags":
        _striptags_cost(_text(value))
    elif name == "sum" and not isinstance(
        kwargs.get("start", args[1] if len(args) > 1 else 0), int | float | Decimal
    ):
        # Adding lists or strings copies the running total each time: quadratic.
        current().charge(len(value) * measure(value) // 64 if isinstance(value, Sized) else 1)
    elif name == "urlize":
        current().charge(len(_text(value)))  # a regular expression and a test per word
    elif name in ("title", "wordcount"):
        current().charge(len(_text(value)) // 2)  # a regular expression, word by word
