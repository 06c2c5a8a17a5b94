"""The Jinja sandbox templates render in, with the bounds of `template_budget.py` enforced.

An `ImmutableSandboxedEnvironment` (no `append`/`update`: a list cannot double in place)
whose hooks check every step that can cost more than a few microseconds: all binary
operators (`intercepted_binops` + `call_binop`), every call (string methods, macros),
every filter and test, every attribute and item lookup, slices and comparisons, each
value printed, each loop iteration and macro call (weighted by the size of its body).
Constant folding is off, so nothing a template says is computed while it compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from channels.template_budget import (
    MAX_NODES,
    MAX_TAG_CHARS,
    MAX_TAGS,
    Counted,
    LimitExceeded,
    bounded_range,
    check_size,
    current,
    measure,
    rendering,
    work,
)
from channels.template_checks import (
    BINOPS,
    binop,
    check_filter,
    check_str_format,
    check_str_method,
)

# Names a template cannot write (not identifiers), used by the generated code only.
_CHARGE = "budget:charge"
_COUNTED = "budget:counted"
# What Jinja's generated code passes to a call inside a loop or block (not arguments).
_CALL_INTERNALS = frozenset({"_loop_vars", "_block_vars", "caller"})
# A call through these hooks costs about as much as this many plain steps.
_CALL_STEPS = 4


def _too_many_tags(source: str) -> tuple[int, str] | None:
    """`(line, why)` when the tags are too many or too long to compile quickly."""
    count = inside = 0
    at = 0
    while True:
        found = [i for i in (source.find("{{", at), source.find("{%", at)) if i != -1]
        if not found:
            return None
        at = min(found)
        end = source.find("}}" if source.startswith("{{", at) else "%}", at + 2)
        end = len(source) if end == -1 else end
        count, inside = count + 1, inside + end - at
        if count > MAX_TAGS or inside > MAX_TAG_CHARS:
            line = source.count("\n", 0, at) + 1
            return line, f"more than {MAX_TAGS} tags or {MAX_TAG_CHARS} characters in tags"
        at = end + 2


def _weight(body: list[nodes.Node]) -> int:
    return 1 + sum(1 for node in body for _ in node.find_all(nodes.Node))


def _charge_statement(body: list[nodes.Node], lineno: int) -> nodes.ExprStmt:
    weight = nodes.Const(_weight(body), lineno=lineno)
    call = nodes.Filter(nodes.Const(None), _CHARGE, [weight], [], None, None, lineno=lineno)
    return nodes.ExprStmt(call, lineno=lineno)


def _add_charges(tree: nodes.Template) -> None:
    """Each loop iteration, macro and call-block body charges the size of its body."""
    for node in list(tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock))):
        assert isinstance(node, nodes.For | nodes.Macro | nodes.CallBlock)
        node.body = [_charge_statement(node.body, node.lineno), *node.body]
        if isinstance(node, nodes.For):
            node.iter = nodes.Filter(node.iter, _COUNTED, [], [], None, None, lineno=node.lineno)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's compiler, routing the operations the sandbox has no hook for through ours."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _add_charges(node)
        super().visit_Template(node, frame)

    def _output_const_repr(self, group: Any) -> str:
        return f"environment.emitted({super()._output_const_repr(group)})"

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.autoescape else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"{join}(environment.concat_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.walked(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.write(f" {_COMPARE[operand.op]} environment.walked(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        # Jinja writes slices as plain Python (`x[a:b]`), with no environment hook.
        self.write("environment.walked(")
        self.visit(node.node, frame)
        self.write(")[")
        self.visit(node.arg, frame)
        self.write("]")


_COMPARE = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}


def _concrete(value: object) -> Any:
    """A lazy iterable (a `map`, a `select`) as a list, counted item by item and sized."""
    if isinstance(value, Iterator):
        items = []
        size = 0
        for item in Counted(value):
            size += measure(item)
            check_size(size, "a sequence")
            items.append(item)
        return items
    return value


def _lazy(result: object) -> Any:
    return Counted(result) if isinstance(result, Iterator) else result


def _bounded(name: str, function: Callable[..., Any], is_filter: bool) -> Callable[..., Any]:
    """A filter or test that takes concrete, sized values and charges their length."""
    skip = 0 if _PassArg.from_obj(function) is None else 1

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        lead, values = args[:skip], [_concrete(a) for a in args[skip:]]
        kwargs = {key: _concrete(value) for key, value in kwargs.items()}
        size = sum(measure(value) for value in values) + sum(map(measure, kwargs.values()))
        check_size(size, f"the input of {name}")
        budget.charge(_CALL_STEPS + sum(work(value) for value in values))
        if is_filter and values:
            check_filter(name, values[0], tuple(values[1:]), kwargs)
        result = function(*lead, *values, **kwargs)
        if isinstance(result, str):
            check_size(len(result), f"the result of {name}")
        return _lazy(result)

    return bounded


@pass_context
def _finalize(context: Context, value: object) -> Any:
    """Every printed expression: sized before it turns into text, counted as written."""
    size = measure(value)
    check_size(size, "a printed value")
    current().emit(size)
    return value


def _charge(_value: Any, weight: int) -> str:
    current().charge(weight)
    return ""


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every message template renders in."""

    intercepted_binops = frozenset(BINOPS)
    intercepted_unops = frozenset({"-", "+"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        """Jinja's options; constant folding off, bounded filters, tests and globals."""
        super().__init__(optimized=False, finalize=_finalize, **options)
        # Jinja types its registries loosely: every entry is a callable.
        filters: dict[str, Any] = dict(self.filters)
        tests: dict[str, Any] = dict(self.tests)
        self.filters = {n: _bounded(n, f, True) for n, f in filters.items()}
        self.tests = {n: _bounded(n, f, False) for n, f in tests.items()}
        self.filters[_CHARGE] = _charge
        self.filters[_COUNTED] = Counted
        self.globals["range"] = bounded_range
        del self.globals["lipsum"]  # makes up to any number of paragraphs

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, refusing a template too large to compile quickly (a syntax error)."""
        problem = _too_many_tags(source)
        if problem is not None:
            raise TemplateSyntaxError(problem[1], problem[0])
        tree = super()._parse(source, name, filename)
        if sum(1 for _ in tree.find_all(nodes.Node)) > MAX_NODES:
            raise TemplateSyntaxError(f"more than {MAX_NODES} names, values and operators", 1)
        return tree

    def call_binop(self, context: Context, operator: str, left: object, right: object) -> Any:
        """An arithmetic operator, refused when its result would be too large."""
        return binop(operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: object) -> Any:
        """Unary `-` and `+`: cheap, but counted."""
        current().charge(1)
        return self.unop_table[operator](arg)

    def getattr(self, obj: object, attribute: str) -> Any:
        """`obj.attribute`, counted (a miss costs two exceptions: two steps)."""
        current().charge(2)
        return super().getattr(obj, attribute)

    def getitem(self, obj: object, argument: Any) -> Any:
        """`obj[argument]`, counted (a miss costs two exceptions: two steps)."""
        current().charge(2)
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call from a template: sized arguments, string methods estimated first."""
        budget = current()
        budget.charge(_CALL_STEPS)
        args = tuple(_concrete(a) for a in args)
        named = [v for k, v in kwargs.items() if k not in _CALL_INTERNALS]
        size = sum(map(measure, args)) + sum(map(measure, named))
        check_size(size, "the arguments of a call")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            budget.charge(work(owner))
            check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        budget.enter()
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(result, str):
            check_size(len(result), "the result of a call")
        return _lazy(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, with their widths and result bounded."""
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        @wraps(formatter)
        def bounded(*args: Any, **kwargs: Any) -> str:
            named = args[0] if is_map and args else kwargs
            check_str_format(template, () if is_map else args, named)
            return formatter(*args, **kwargs)

        return bounded

    def emitted(self, text: str) -> str:
        """Template text written (inside loops it is written again each time)."""
        current().emit(len(text))
        return text

    def concat_parts(self, parts: tuple[object, ...]) -> tuple[object, ...]:
        """The operands of `~`, sized before they are joined."""
        check_size(sum(map(measure, parts)), "a joined value")
        return parts

    def walked(self, value: object) -> Any:
        """An operand of a comparison or a slice: costs its length."""
        current().charge(work(value))
        return value


def template_line(exc: BaseException) -> str:
    """`line N: ` of the template where `exc` was raised, when the traceback tells."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}: " if line is not None else ""


_TRIAL_TEXT = BoundedEnvironment(undefined=ChainableUndefined)
_TRIAL_HTML = BoundedEnvironment(undefined=ChainableUndefined, autoescape=True)


def trial_render(text: str, html: bool, samples: Mapping[str, object]) -> str | None:
    """Render `text` with sample values: the bound it exceeds (`line N: …`), if any.

    Anything else that fails here may depend on the real values, and is left to the send.
    """
    env = _TRIAL_HTML if html else _TRIAL_TEXT
    try:
        template = env.from_string(text)
        with rendering() as budget:
            for _chunk in template.generate(samples):
                pass
            if budget.exceeded is not None:
                raise LimitExceeded(budget.exceeded)
    except LimitExceeded as exc:
        return f"{template_line(exc)}exceeds a rendering limit: {exc}"
    except Exception:
        return None
    return None


class _Tracking(meta.TrackingCodeGenerator):
    """Jinja's introspection without its constant folding, which would run template code
    (`'x'|center(90000)|groupby('real')`) while compiling, outside any budget."""

    def __init__(self, environment: BoundedEnvironment) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>")
        self.optimizer = None
        self.undeclared_identifiers: set[str] = set()


def undeclared_variables(tree: nodes.Template) -> set[str]:
    """The names a template reads from its context (`meta.find_undeclared_variables`)."""
    codegen = _Tracking(tree.environment)  # type: ignore[arg-type]
    codegen.visit(tree)
    return codegen.undeclared_identifiers
