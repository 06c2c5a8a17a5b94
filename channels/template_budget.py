"""What rendering one template may cost, counted while it renders.

Templates come from admins and from the CRM, and they render on the event loop that also
answers screen-pops and the AMI link. Jinja's sandbox stops attribute escapes, not work:
one `3 ** 10 ** 7` holds the GIL for seconds, so no thread or timer could stop it. So
the bounds are checked *before* each costly step, inside the sandbox's own hooks
(`template_sandbox.py`): a number may not grow past `MAX_INT_BITS`, a value past
`MAX_VALUE_CHARS`, a `range` past `MAX_RANGE`, and the work of one render — loop
iterations weighted by the size of the loop body, elements a filter or method walks,
characters printed — past `MAX_STEPS`. A CPU-time check rides on the same hooks as a
last net for work the step count underestimates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, NoReturn

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

MAX_STEPS = 25_000
MAX_VALUE_CHARS = 200_000
MAX_EMITTED_CHARS = 1_000_000
MAX_INT_BITS = 4_096
MAX_RANGE = 10_000
MAX_FORMAT_WIDTH = 1_000
# Compiling costs about 1 ms per expression tag on a busy machine (Jinja parses and
# generates Python in Python, then CPython compiles it holding the GIL), before any bound
# of the render applies: a 20,000-character template of tags took 0.7 s. Real templates
# have tens of tags.
MAX_TAGS = 200
MAX_TAG_CHARS = 4_000
MAX_NODES = 1_000
# Calls (macros, `loop(…)`) nested in one another: far below Python's recursion limit,
# and it bounds what rewriting a deep traceback into template lines costs.
MAX_DEPTH = 50
MAX_CPU_SECONDS = 0.05
# Characters a C-level string operation handles in the time of one Python-level step.
CHARS_PER_STEP = 256
_CLOCK_EVERY = 64
_WALK_CHUNK = 512


class LimitExceeded(Exception):
    """Rendering went past a bound; the message says which.

    Not a ValueError or TypeError: Jinja's filters swallow those (`int`, `float`).
    """


class Budget:
    """The work one render has done so far; once exceeded, every later step fails too."""

    __slots__ = ("_charges", "depth", "emitted", "exceeded", "started", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.emitted = 0
        self.depth = 0
        self.exceeded: str | None = None
        self.started = time.thread_time()
        self._charges = 0

    def charge(self, steps: int) -> None:
        """Count `steps` of work; raise when the render has done too much."""
        if self.exceeded is not None:
            raise LimitExceeded(self.exceeded)
        self.steps += steps
        if self.steps > MAX_STEPS:
            self.fail(f"more than {MAX_STEPS} steps of work (loops or values too large)")
        self._charges += 1
        if self._charges % _CLOCK_EVERY == 0:
            self.check_clock()

    def check_clock(self) -> None:
        """The CPU-time net: thread time, so a busy machine does not refuse a template."""
        if time.thread_time() - self.started > MAX_CPU_SECONDS:
            self.fail(f"more than {MAX_CPU_SECONDS} s of CPU time")

    def enter(self) -> None:
        """One call deeper."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"calls nested more than {MAX_DEPTH} deep")

    def emit(self, chars: int) -> None:
        """Count characters written anywhere (macros and blocks included)."""
        self.emitted += chars
        if self.emitted > MAX_EMITTED_CHARS:
            self.fail(f"writes more than {MAX_EMITTED_CHARS} characters")
        self.charge(1 + chars // CHARS_PER_STEP)

    def fail(self, message: str) -> NoReturn:
        """Stop the render, and any later step of it."""
        self.exceeded = message
        raise LimitExceeded(message)


_CURRENT: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def rendering() -> Iterator[Budget]:
    """A fresh budget for the render done inside the block."""
    budget = Budget()
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current() -> Budget:
    """The budget of the render under way.

    Template code run outside `rendering()` (constant folding while compiling, a stray
    `Template.render`) is refused: it would have no total to count against.
    """
    budget = _CURRENT.get()
    if budget is None:
        raise LimitExceeded("template code ran outside a render")
    return budget


def int_bits(value: int) -> int:
    """Bits of an integer's magnitude."""
    return abs(value).bit_length()


def check_int(value: object) -> None:
    """Refuse an integer past `MAX_INT_BITS` (about 1,230 digits)."""
    if isinstance(value, int) and int_bits(value) > MAX_INT_BITS:
        current().fail(f"a number over {MAX_INT_BITS} bits")


_FIXED_SIZES = {type(None): 8, bool: 8, float: 8, range: 8}
_TEXT_TYPES = (str, bytes, bytearray)


def _scalar_size(value: object) -> int | None:
    if isinstance(value, Undefined):
        return 0  # `is defined` and `default` look at it; touching it would raise
    kind = type(value)
    if isinstance(value, _TEXT_TYPES):
        return len(value)
    fixed = _FIXED_SIZES.get(kind)
    if fixed is not None:
        return fixed
    if isinstance(value, int):
        return int_bits(value) * 3 // 10 + 1
    if isinstance(value, Decimal):
        return len(value.as_tuple().digits) + 8
    return None


def _children(value: object) -> Any:
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, Mapping):
        return [item for pair in value.items() for item in pair]
    if isinstance(value, list | tuple | set | frozenset) or type(value).__name__.startswith(
        "dict_"
    ):
        return value
    return None


def measure(value: object, limit: int = MAX_VALUE_CHARS) -> int:
    """About how many characters `value` prints as (nested values included).

    Walks containers without recursion (a namespace may hold itself) and stops as soon as
    the total passes `limit`; every element visited is charged as a step.
    """
    budget = current()
    size = _scalar_size(value)
    if size is not None:
        budget.charge(1 + size // CHARS_PER_STEP if isinstance(value, str) else 1)
        return size
    total = 0
    stack = [value]
    visited = 0
    while stack:
        item = stack.pop()
        size = _scalar_size(item)
        if size is not None:
            total += size + 2
            if size > CHARS_PER_STEP and isinstance(item, _TEXT_TYPES):
                visited += size // CHARS_PER_STEP
        else:
            children = _children(item)
            if children is None:
                total += 16  # an object printed by its short repr (macro, undefined, loop)
            else:
                total += 2
                stack.extend(children)
        visited += 1
        if total > limit:
            break
        if visited > _WALK_CHUNK:  # the walk itself is Python-level work: pay as it goes
            budget.charge(visited)
            visited = 0
    budget.charge(visited)
    return total


def work(value: object) -> int:
    """Steps a C-level pass over `value` is worth (its length, not its depth)."""
    if isinstance(value, str | bytes | bytearray):
        return 1 + len(value) // CHARS_PER_STEP
    if isinstance(value, Undefined):
        return 1
    try:
        return 1 + len(value)  # type: ignore[arg-type]  # sized or not, asked at run time
    except TypeError:
        return 1


def check_size(size: int, what: str) -> None:
    """Refuse a value that would print as more than `MAX_VALUE_CHARS`."""
    if size > MAX_VALUE_CHARS:
        current().fail(f"{what} over {MAX_VALUE_CHARS} characters")


class Counted:
    """An iterable that charges one step per item taken from it."""

    __slots__ = ("_iterator", "_source")

    def __init__(self, source: Any) -> None:
        self._source = source
        self._iterator = iter(source)

    def __iter__(self) -> Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._iterator)
        current().charge(1)
        return item

    def __len__(self) -> int:
        # Raises TypeError for a generator, as Jinja's loop expects of an unsized iterable.
        return len(self._source)


def bounded_range(*args: int) -> range:
    """`range`, refused past `MAX_RANGE` items."""
    current().charge(1)
    try:
        numbers = range(*args)
        count = len(numbers)
    except OverflowError:
        current().fail(f"a range over {MAX_RANGE} items")
    if count > MAX_RANGE:
        current().fail(f"a range over {MAX_RANGE} items")
    return numbers
