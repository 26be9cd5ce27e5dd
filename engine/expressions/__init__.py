"""Kestra's Pebble template language (the subset flows use), sandboxed.

``{{ expr }}``, ``{% if %}``/``{% elseif %}``/``{% else %}``, ``{% for %}``, ``{% set %}``,
``{% raw %}``, ``{# comments #}`` and whitespace control (``{{-``, ``-}}``, ``{%-``, ``-%}``).
Templates are parsed once (cached) into closures; values are only ever read as plain data
(maps, lists, strings), so no template can reach Python objects. Undefined variables are
errors (Kestra's strict mode) except under ``is defined``, ``is null``, ``??`` and ``default``.

    >>> render("Hello {{ inputs.name | upper }}", {"inputs": {"name": "ada"}})
    'Hello ADA'
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from signoff.engine.errors import ExpressionError

from . import nodes as _n
from .compiler import Context, compile_body, compile_guarded
from .filters import BUILTIN_FUNCTIONS, FILTERS, TESTS
from .parser import parse as _parse
from .runtime import UndefinedError, to_str, truthy

__all__ = [
    "parse_template", "Template", "render", "evaluate", "render_data", "is_template", "contains_template", "truthy",
    "ExpressionError", "UndefinedError", "to_str", "FILTERS", "TESTS", "BUILTIN_FUNCTIONS",
]

Functions = Mapping[str, Callable[..., Any]]


class Template:
    """A parsed template. Immutable and shareable across threads."""

    __slots__ = ("source", "_run", "_single", "_names", "_functions", "_constant")

    def __init__(self, source: str, body: list[_n.Node]) -> None:
        self.source = source
        self._run = compile_body(body, source)
        significant = [node for node in body if not (type(node) is _n.Text and not node.text.strip())]
        single = significant[0] if len(significant) == 1 and type(significant[0]) is _n.Output else None
        self._single = compile_guarded(single.expr, single.source, source) if single is not None else None
        self._constant = body[0].text if len(body) == 1 and type(body[0]) is _n.Text else ("" if not body else None)
        self._names: frozenset[str] | None = None  # filled by _scan(), on first use
        self._functions: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def names(self) -> set[str]:
        """Top-level variable names the template reads (loop and ``set`` variables excluded)."""
        return set(self._scan()[0])

    def function_names(self) -> set[str]:
        """Names of the functions the template calls."""
        return set(self._scan()[1])

    def _scan(self) -> tuple[frozenset[str], frozenset[str]]:
        # Rendering never needs these: parse the source again only when asked (the tree is not kept).
        if self._names is None:
            names: set[str] = set()
            functions: set[str] = set()
            _collect(_parse(self.source), frozenset(), names, functions)
            self._functions = frozenset(functions)
            self._names = frozenset(names)
        return self._names, self._functions

    def render(self, variables: Mapping[str, Any], functions: Functions | None = None) -> str:
        if self._constant is not None:
            return self._constant
        ctx = Context(variables, functions)
        out: list[str] = []
        try:
            self._run(ctx, out)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError("template is nested too deeply to evaluate") from None
        except Exception as exc:
            raise ExpressionError(f"cannot evaluate template: unexpected {type(exc).__name__}") from exc
        return "".join(out)

    def evaluate(self, variables: Mapping[str, Any], functions: Functions | None = None) -> Any:
        """The native value when the text is one ``{{ expr }}`` (whitespace around allowed), else the string."""
        if self._single is None:
            return self.render(variables, functions)
        try:
            return self._single(Context(variables, functions))
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError("expression is nested too deeply to evaluate") from None
        except Exception as exc:
            raise ExpressionError(f"cannot evaluate expression: unexpected {type(exc).__name__}") from exc


def _collect(body: list[_n.Node], bound: frozenset[str], names: set[str], functions: set[str]) -> None:
    local = set(bound)
    for node in body:
        if type(node) is _n.Output:
            _collect_expr(node.expr, local, names, functions)
        elif type(node) is _n.If:
            for cond, _src, branch in node.branches:
                _collect_expr(cond, local, names, functions)
                _collect(branch, frozenset(local), names, functions)
            if node.else_body is not None:
                _collect(node.else_body, frozenset(local), names, functions)
        elif type(node) is _n.For:
            _collect_expr(node.iterable, local, names, functions)
            inner = set(local) | {"loop", node.value_var}
            if node.key_var:
                inner.add(node.key_var)
            _collect(node.body, frozenset(inner), names, functions)
            if node.else_body is not None:
                _collect(node.else_body, frozenset(local), names, functions)
        elif type(node) is _n.Set:
            _collect_expr(node.expr, local, names, functions)
            local.add(node.name)


def _collect_expr(node: _n.Node, bound: set[str], names: set[str], functions: set[str]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is _n.Var:
            if current.name not in bound:
                names.add(current.name)
        elif type(current) is _n.Call:
            functions.add(current.name)
        stack.extend(current.children())


def parse_template(text: str) -> Template:
    """Parse (once; cached) template text. Raises ExpressionError with ``position`` on bad syntax."""
    if type(text) is not str:
        if not isinstance(text, str):
            raise ExpressionError(f"a template must be a string, got a {type(text).__name__}")
        text = str.__str__(text)
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Template:
    try:
        return Template(text, _parse(text))
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("template is nested too deeply") from None


# the parse cache's controls, on the public function (tests and the benchmark reset it)
parse_template.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]  # a function attribute
parse_template.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]  # a function attribute


def render(text: str, variables: Mapping[str, Any], functions: Functions | None = None) -> str:
    return parse_template(text).render(variables, functions)


def evaluate(text: str, variables: Mapping[str, Any], functions: Functions | None = None) -> Any:
    return parse_template(text).evaluate(variables, functions)


def is_template(text: Any) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


def contains_template(obj: Any) -> bool:
    """True when any string inside ``obj`` (dict keys and values, list items) is a template."""
    if isinstance(obj, str):
        return "{{" in obj or "{%" in obj
    if isinstance(obj, Mapping):
        return any(contains_template(k) or contains_template(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(contains_template(v) for v in obj)
    return False


def render_data(obj: Any, variables: Mapping[str, Any], functions: Functions | None = None) -> Any:
    """Render every string inside dicts/lists/tuples (keys too); other values are returned as-is."""
    if isinstance(obj, str):
        if "{{" in obj or "{%" in obj:
            return parse_template(obj).render(variables, functions)
        return obj
    if isinstance(obj, dict):
        return {render_data(k, variables, functions): render_data(v, variables, functions) for k, v in obj.items()}
    if isinstance(obj, list):
        return [render_data(v, variables, functions) for v in obj]
    if isinstance(obj, tuple):
        return tuple(render_data(v, variables, functions) for v in obj)
    return obj


