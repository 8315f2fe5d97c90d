"""Chat templates: rendering a GGUF's `tokenizer.chat_template` safely.

Templates come from model files, i.e. from strangers, so they render in jinja2's
`ImmutableSandboxedEnvironment` (no attribute access to internals, no mutation of lists/dicts)
with three extra limits, enforced *inside* the render (a thread with a timeout could not be
killed, and a subprocess per chat turn is too dear on a small board):

1. **Work and time.** The template's syntax tree is instrumented before compiling: every
   `{% for %}` body starts with a call to a guard, and every call, attribute/item lookup and
   intercepted operator (`+ - * / // % **`) goes through the sandbox hooks. Each of these
   counts one operation and checks a deadline, so `range()` loops, nested loops over lists,
   runaway recursion and macro ping-pong all stop at `max_ops` or `timeout_s`.
2. **Size.** Every piece of output (constant text and `{{ }}` expressions, also inside macros
   and `{% set %}` blocks, which buffer rather than stream) is measured by a wrapper call, and the
   total produced is capped at `max_output_chars`. Size-multiplying operations (`str * n`,
   `list * n`, `+` on sequences, `%`/`format` widths, `str.center/ljust/rjust/zfill/expandtabs/
   replace`, the `center`/`indent`/`replace`/`format`/`wordwrap` filters) are checked *before*
   they allocate. `lipsum` is removed.
3. **Source size.** Templates larger than `max_template_chars` are refused.

Each template source is parsed, instrumented and compiled once: compiled templates live in a
small LRU cache keyed by the source text, in one shared sandbox environment. The limits above are
per render: the active budget sits in a context variable that the sandbox hooks read, so one
compiled template serves every call (and every thread) under its caller's own limits. Jinja
folds constant sub-expressions while compiling; with no budget active then, every guarded
operation raises, which Jinja takes as "not constant", so nothing guarded runs outside a render.

Any failure (syntax error, `raise_exception(...)` from the template, sandbox violation, limit
hit, RecursionError) becomes `edgegen.TemplateError`.

`render_chat(None, ...)` renders `CHATML_TEMPLATE`, the ChatML format (`<|im_start|>role\\n...
<|im_end|>\\n`). `LLM` never passes None: a model without a template runs chat as a plain
completion, or with its family's template (edgegen.chat_formats).
"""
from __future__ import annotations

import contextvars
import functools
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Optional, Sequence

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from .errors import TemplateError
from .types import validate_messages

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_GUARD = "__edgegen_tick"
_OUT = "__edgegen_out"
_VALUE = "__edgegen_value"
_WIDTH = re.compile(r"\d+")
COMPILED_CACHE_SIZE = 16  # distinct templates kept compiled (a server runs one; tests a handful)
_EXPANDING_STR_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "format", "format_map", "join"}


@dataclass(frozen=True)
class TemplateLimits:
    max_output_chars: int = 1_000_000
    max_ops: int = 1_000_000
    timeout_s: float = 1.0
    max_template_chars: int = 256_000


class _Budget:
    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.ops = 0
        self.produced = 0
        self.deadline = time.monotonic() + limits.timeout_s

    def tick(self, n: int = 1) -> None:
        self.ops += n
        if self.ops > self.limits.max_ops:
            raise TemplateError(f"chat template exceeded {self.limits.max_ops} operations")
        if time.monotonic() > self.deadline:
            raise TemplateError(f"chat template took longer than {self.limits.timeout_s} s")

    def size(self, n: int, what: str = "output") -> None:
        if n > self.limits.max_output_chars:
            raise TemplateError(f"chat template {what} would exceed {self.limits.max_output_chars} characters")

    def produce(self, n: int) -> None:
        self.produced += n
        self.size(self.produced)


def _printed_size(value: Any, cap: int) -> int:
    """About how many characters str(value) has, counting nested containers through (a tuple of
    999 references to a tuple of 999 ... is small in memory and huge printed), or cap + 1 as soon
    as it passes `cap`. Iterative, each object sized once (references share its size), so it costs
    what the value occupies in memory, never what it prints."""
    sizes: dict[int, int] = {}
    keep = []  # objects sized so far stay alive, so their ids stay unique during the walk
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        obj, expanded = stack.pop()
        key = id(obj)
        if key in sizes and not expanded:
            continue
        children = _children(obj)
        if children is None:
            sizes[key] = _leaf_size(obj)
        elif not expanded:
            sizes[key] = 8  # while it is being sized: a cycle through a namespace prints as '...'
            keep.append(obj)
            stack.append((obj, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        else:
            sizes[key] = 16 + sum(sizes[id(c)] + 2 for c in children)
        if sizes[key] > cap:
            return cap + 1
    return sizes[id(value)]


def _children(obj: Any) -> Optional[list[Any]]:
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Mapping):
        return [x for kv in obj.items() for x in kv]
    if isinstance(obj, Namespace):  # prints as <Namespace {its attributes}>
        return _children(obj._Namespace__attrs)  # type: ignore[attr-defined]
    return None


def _leaf_size(obj: Any) -> int:
    if isinstance(obj, (str, bytes)):
        return len(obj) + 2
    if isinstance(obj, int):
        return obj.bit_length() * 3 // 10 + 2  # decimal digits
    return 32  # floats, None, Undefined, functions: short reprs


_ACTIVE_BUDGET: "contextvars.ContextVar[Optional[_Budget]]" = contextvars.ContextVar("edgegen_template_budget", default=None)


def _active_budget() -> _Budget:
    budget = _ACTIVE_BUDGET.get()
    if budget is None:  # compile-time constant folding: refuse, so the operation runs at render time
        raise TemplateError("guarded template operation outside a render")
    return budget


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """Pass-through for HuggingFace's `{% generation %}` tag (as transformers and llama-cpp-python do)."""

    tags = {"generation"}

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _LimitedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

    def __init__(self) -> None:
        super().__init__(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        self.globals.pop("lipsum", None)
        self.globals.update({
            _GUARD: _tick, _OUT: _measure, _VALUE: _checked_value, "raise_exception": _raise_exception, "strftime_now": _strftime_now,
        })
        self.filters["tojson"] = _tojson
        for name in ("center", "indent", "replace", "format", "wordwrap"):
            self.filters[name] = self._guarded_filter(name, self.filters[name])
        for name, fn in list(self.filters.items()):  # e.g. batch(n, fill) repeats a value n times
            self.filters[name] = self._checked_filter(fn)

    @property
    def budget(self) -> _Budget:
        return _active_budget()

    # -- hooks the sandbox calls for every operation of interest -------------------------------
    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.budget.tick()
        self_obj = getattr(__obj, "__self__", None)
        if isinstance(self_obj, str) and getattr(__obj, "__name__", "") in _EXPANDING_STR_METHODS:
            __self._check_str_method(self_obj, __obj.__name__, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        __self._check_result(result)
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.tick()
        result = super().getattr(obj, attribute)
        self._check_result(result)
        return result

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.budget.tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.tick()
        if operator == "*":
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                self.budget.size(self._size_of(seq) * max(n, 0), "repeat")
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            self.budget.size(self._size_of(left) + self._size_of(right), "concatenation")
        elif operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise TemplateError("chat template exponent too large")
        elif operator == "%" and isinstance(left, str):
            self._check_widths(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        # jinja swaps str.format for a sandboxed wrapper at attribute access; check widths first
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            self._check_widths(value.__self__)
        return wrapped

    # -- checks ----------------------------------------------------------------------------------
    def _size_of(self, value: Any) -> int:
        return len(value) if isinstance(value, str) else _printed_size(value, self.budget.limits.max_output_chars)

    def _check_result(self, value: Any) -> None:
        if isinstance(value, str):
            self.budget.size(len(value), "value")
        elif _children(value) is not None:
            limit = self.budget.limits.max_output_chars
            self.budget.size(_printed_size(value, limit), "value")

    def _check_widths(self, fmt: str) -> None:
        for m in _WIDTH.findall(fmt):
            if len(m) > 7 or int(m) > self.budget.limits.max_output_chars:
                raise TemplateError("chat template format width too large")

    def _check_str_method(self, s: str, name: str, args: tuple, kwargs: dict) -> None:
        limit = self.budget.limits.max_output_chars
        if name in ("center", "ljust", "rjust", "zfill"):
            width = args[0] if args else kwargs.get("width", 0)
            if isinstance(width, int) and width > limit:
                raise TemplateError("chat template padding width too large")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                self.budget.size(len(s) * max(size, 1), "expandtabs")
        elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
            self.budget.size(len(s) + (len(s) + 1) * len(args[1]), "replace")
        elif name in ("format", "format_map"):
            self._check_widths(s)

    def _checked_filter(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            if _children(result) is not None:
                _checked_value(result)
            return result

        if hasattr(fn, "jinja_pass_arg"):
            checked.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
        return checked

    def _guarded_filter(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            budget = _active_budget()
            budget.tick()
            # filters that take the environment/eval context get it as the first argument
            values = [a for a in args if not isinstance(a, (jinja2.Environment, jinja2.nodes.EvalContext))]
            value = str(values[0]) if values else ""
            rest = values[1:]
            if name == "center" and rest and isinstance(rest[0], int):
                budget.size(rest[0], "center width")
            elif name == "indent":
                width = rest[0] if rest else kwargs.get("width", 4)
                if isinstance(width, int):
                    budget.size((value.count("\n") + 1) * abs(width) + len(value), "indent")
            elif name == "replace" and len(rest) >= 2:
                budget.size(len(value) + (len(value) + 1) * len(str(rest[1])), "replace")
            elif name == "format":
                self._check_widths(value)
            elif name == "wordwrap":
                budget.size(2 * len(value) + 16, "wordwrap")
            result = fn(*args, **kwargs)
            self._check_result(result)
            return result

        # keep jinja's pass_environment/pass_eval_context marker so arguments line up
        for attr in ("jinja_pass_arg",):
            if hasattr(fn, attr):
                setattr(guarded, attr, getattr(fn, attr))
        return guarded


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
    # transformers' chat-template tojson (no HTML escaping), as llama-cpp-python uses
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _instrument(ast: nodes.Template) -> nodes.Template:
    """Tick at the top of every loop body; route every output piece through the size counter;
    check the printed size of every list, tuple and dict literal and `~` concatenation (nesting
    the same value again and again grows it exponentially without any operator that checks)."""
    ast = _CheckValues().visit(ast)
    for loop in ast.find_all(nodes.For):
        tick = nodes.Output([nodes.Call(nodes.Name(_GUARD, "load"), [], [], None, None)])
        loop.body.insert(0, tick)
    for out in ast.find_all(nodes.Output):
        out.nodes = [
            child if _is_tick(child) else nodes.Call(nodes.Name(_OUT, "load"), [_as_expr(child)], [], None, None)
            for child in out.nodes
        ]
    return ast


class _CheckValues(NodeTransformer):
    """Wraps list, tuple and dict literals and `~` concatenations in a call that checks their
    printed size (innermost first)."""

    def _wrap(self, node: nodes.Expr) -> nodes.Expr:
        node = self.generic_visit(node)
        return nodes.Call(nodes.Name(_VALUE, "load"), [node], [], None, None, lineno=node.lineno)

    visit_List = visit_Dict = visit_Concat = _wrap

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Expr:
        # an assignment target (`{% set a, b = ... %}`, `{% for k, v in ... %}`) is not a value
        return self._wrap(node) if node.ctx == "load" else self.generic_visit(node)


def _is_tick(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == _GUARD


def _as_expr(node: nodes.Node) -> nodes.Expr:
    if isinstance(node, nodes.TemplateData):
        return nodes.Const(node.data)
    return node  # type: ignore[return-value]


def _tick() -> str:
    _active_budget().tick()
    return ""


def _measure(value: Any) -> Any:
    budget = _active_budget()
    if not isinstance(value, str) and _children(value) is not None:  # size it before printing it
        budget.size(budget.produced + _printed_size(value, budget.limits.max_output_chars - budget.produced))
    budget.produce(len(str(value)))
    return value


def _checked_value(value: Any) -> Any:
    budget = _active_budget()
    limit = budget.limits.max_output_chars
    budget.size(len(value) if isinstance(value, str) else _printed_size(value, limit), "value")
    return value


@functools.lru_cache(maxsize=1)
def _sandbox() -> _LimitedSandbox:
    return _LimitedSandbox()


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(source: str) -> jinja2.Template:
    """The instrumented, compiled template for `source` (cached: compiling costs far more than a render)."""
    env = _sandbox()
    return env.from_string(_instrument(env.parse(source)))


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template raised: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def render_chat(
    template: Optional[str],
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    limits: TemplateLimits = TemplateLimits(),
    **extra: Any,
) -> str:
    """Render `messages` with `template` (None -> CHATML_TEMPLATE) under the limits above."""
    if template is None:
        template = CHATML_TEMPLATE
    if not isinstance(template, str):
        raise TemplateError("chat template is not a string")
    if len(template) > limits.max_template_chars:
        raise TemplateError(f"chat template is {len(template)} chars; the limit is {limits.max_template_chars}")
    msgs = validate_messages(messages)
    try:
        compiled = _compile(template)  # before the budget is set: nothing guarded folds into the cache
        token = _ACTIVE_BUDGET.set(_Budget(limits))
        try:
            return "".join(compiled.generate(
                messages=msgs,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
                **extra,
            ))
        finally:
            _ACTIVE_BUDGET.reset(token)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise TemplateError(f"chat template blocked by the sandbox: {exc}") from exc
    except JinjaTemplateError as exc:
        raise TemplateError(f"chat template error: {exc}") from exc
    except RecursionError:
        raise TemplateError("chat template recursed too deeply") from None
    except MemoryError:
        raise TemplateError("chat template ran out of memory") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise TemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from exc
