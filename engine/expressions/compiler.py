"""Turns the AST into nested Python closures once, so rendering is just function calls.

No Python ``eval``/``exec`` and no ``getattr`` on values: every lookup goes through
:func:`runtime.get_key`, which only reads maps, lists and strings.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from signoff.engine.errors import ExpressionError

from . import nodes as n
from .filters import BUILTIN_FUNCTIONS, FILTERS, TESTS
from .runtime import (
    BINARY_OPS,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT,
    UndefinedError,
    get_key,
    is_list,
    is_map,
    op_neg,
    op_pos,
    to_str,
    truthy,
    type_name,
)

Evaluator = Callable[["Context"], Any]
Emitter = Callable[["Context", list[str]], None]

_EMPTY: Mapping[str, Any] = {}


class Context:
    __slots__ = ("vars", "functions", "scopes", "iterations", "size")

    def __init__(self, variables: Mapping[str, Any] | None, functions: Mapping[str, Callable[..., Any]] | None) -> None:
        self.vars = variables if variables is not None else _EMPTY
        self.functions = functions if functions is not None else _EMPTY
        self.scopes: list[dict[str, Any]] = []
        self.iterations = 0
        self.size = 0  # characters emitted by {{ }} so far in this render


def _at(exc: ExpressionError, position: int, source: str | None = None) -> ExpressionError:
    """``exc`` with ``position`` filled in when it has none; with ``source``, ``exc`` naming the
    expression it happened in (and a position, when it has none) unless it names one already."""
    if (exc.position if source is None else exc.expression) is not None:
        return exc
    cls = type(exc) if type(exc) in (ExpressionError, UndefinedError) else ExpressionError
    new = cls(exc.reason, expression=exc.expression if source is None else source,
              position=exc.position if exc.position is not None else position)
    new.__cause__ = exc.__cause__
    return new


# --------------------------------------------------------------------------- expressions


def compile_expr(node: n.Node, text: str) -> Evaluator:
    if type(node) is n.Const:
        value = node.value
        return lambda ctx: value
    if type(node) is n.Var:
        return _compile_var(node)
    if type(node) is n.Attr:
        return _compile_attr(node, text)
    if type(node) is n.Index:
        return _compile_index(node, text)
    if type(node) is n.Call:
        return _compile_call(node, text)
    if type(node) is n.Unary:
        return _compile_unary(node, text)
    if type(node) is n.Binary:
        return _compile_binary(node, text)
    if type(node) is n.Test:
        return _compile_test(node, text)
    if type(node) is n.Filter:
        return _compile_filter(node, text)
    if type(node) is n.Ternary:
        cond = compile_expr(node.cond, text)
        then = compile_expr(node.then, text)
        otherwise = compile_expr(node.otherwise, text)
        return lambda ctx: then(ctx) if truthy(cond(ctx)) else otherwise(ctx)
    if type(node) is n.ListLit:
        items = [compile_expr(i, text) for i in node.items]
        return lambda ctx: [f(ctx) for f in items]
    if type(node) is n.MapLit:
        return _compile_map(node, text)
    raise ExpressionError(f"cannot compile {type(node).__name__}", position=node.start)  # pragma: no cover


def _compile_var(node: n.Var) -> Evaluator:
    name = node.name
    position = node.start
    message = f"`{name}` is not defined"

    def var(ctx: Context) -> Any:
        scopes = ctx.scopes
        if scopes:
            for scope in reversed(scopes):
                if name in scope:
                    return scope[name]
        try:
            return ctx.vars[name]
        except KeyError:
            raise UndefinedError(message, position=position) from None
        except TypeError:
            raise ExpressionError("variables must be a map", position=position) from None

    return var


def _compile_attr(node: n.Attr, text: str) -> Evaluator:
    obj = compile_expr(node.obj, text)
    name = node.name
    path = text[node.start:node.end]
    position = node.start

    def attr(ctx: Context) -> Any:
        o = obj(ctx)
        if type(o) is dict:
            try:
                return o[name]
            except KeyError:
                pass
        return get_key(o, name, path, position)

    return attr


def _compile_index(node: n.Index, text: str) -> Evaluator:
    obj = compile_expr(node.obj, text)
    key = compile_expr(node.key, text)
    path = text[node.start:node.end]
    position = node.start
    return lambda ctx: get_key(obj(ctx), key(ctx), path, position)


def _compile_call(node: n.Call, text: str) -> Evaluator:
    name = node.name
    position = node.start
    args = [compile_expr(a, text) for a in node.args]
    kwargs = [(k, compile_expr(v, text)) for k, v in node.kwargs]
    builtin = BUILTIN_FUNCTIONS.get(name)

    def call(ctx: Context) -> Any:
        fn = ctx.functions.get(name) or builtin
        if fn is None:
            known = sorted(set(ctx.functions) | set(BUILTIN_FUNCTIONS))
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f", did you mean `{close[0]}`?" if close else f" (available: {', '.join(known)})"
            raise ExpressionError(f"unknown function `{name}`{hint}", position=position)
        values = [a(ctx) for a in args]
        named = {k: v(ctx) for k, v in kwargs}
        try:
            return fn(*values, **named)
        except ExpressionError as exc:
            raise _at(exc, position) from exc
        except TypeError as exc:
            if fn is builtin:
                raise ExpressionError(f"function `{name}` was called with the wrong arguments",
                                      position=position) from None
            raise ExpressionError(f"function `{name}` failed: {exc}", position=position) from exc
        except RecursionError:
            raise
        except Exception as exc:
            raise ExpressionError(f"function `{name}` failed: {exc}", position=position) from exc

    return call


def _compile_unary(node: n.Unary, text: str) -> Evaluator:
    operand = compile_expr(node.operand, text)
    position = node.start
    if node.op == "not":
        return lambda ctx: not truthy(operand(ctx))
    fn = op_neg if node.op == "-" else op_pos

    def unary(ctx: Context) -> Any:
        try:
            return fn(operand(ctx))
        except ExpressionError as exc:
            raise _at(exc, position) from None

    return unary


def _compile_binary(node: n.Binary, text: str) -> Evaluator:
    left = compile_expr(node.left, text)
    right = compile_expr(node.right, text)
    op = node.op
    position = node.start
    if op == "and":
        return lambda ctx: truthy(left(ctx)) and truthy(right(ctx))
    if op == "or":
        return lambda ctx: truthy(left(ctx)) or truthy(right(ctx))
    if op == "??":
        def coalesce(ctx: Context) -> Any:
            try:
                value = left(ctx)
            except UndefinedError:
                return right(ctx)
            return right(ctx) if value is None else value
        return coalesce
    if op == "???":
        def undefined_coalesce(ctx: Context) -> Any:
            try:
                return left(ctx)
            except UndefinedError:
                return right(ctx)
        return undefined_coalesce
    fn = BINARY_OPS[op]

    def binary(ctx: Context) -> Any:
        try:
            return fn(left(ctx), right(ctx))
        except ExpressionError as exc:
            raise _at(exc, position) from None

    return binary


def _compile_test(node: n.Test, text: str) -> Evaluator:
    operand = compile_expr(node.operand, text)
    negated = node.negated
    position = node.start
    if node.name == "defined":
        def defined(ctx: Context) -> bool:
            try:
                operand(ctx)
            except UndefinedError:
                return negated
            return not negated
        return defined
    if node.name == "null":
        def null(ctx: Context) -> bool:
            try:
                value = operand(ctx)
            except UndefinedError:
                return not negated
            return (value is None) != negated
        return null
    test = TESTS[node.name]

    def run_test(ctx: Context) -> bool:
        try:
            return test(operand(ctx)) != negated
        except ExpressionError as exc:
            raise _at(exc, position) from None

    return run_test


def _compile_filter(node: n.Filter, text: str) -> Evaluator:
    operand = compile_expr(node.operand, text)
    spec = FILTERS[node.name]
    fn = spec.fn
    bound = list(node.args)
    while bound and bound[-1] is None:
        bound.pop()
    args = [None if a is None else compile_expr(a, text) for a in bound]
    position = node.start
    lenient = spec.lenient

    def apply(ctx: Context) -> Any:
        if lenient:
            try:
                value = operand(ctx)
            except UndefinedError:
                value = None
        else:
            value = operand(ctx)
        values = [None if a is None else a(ctx) for a in args]
        try:
            return fn(value, *values)
        except ExpressionError as exc:
            raise _at(exc, position) from None

    return apply


def _compile_map(node: n.MapLit, text: str) -> Evaluator:
    pairs = [(compile_expr(k, text), compile_expr(v, text), k.start) for k, v in node.pairs]

    def build(ctx: Context) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for kf, vf, kpos in pairs:
            key = kf(ctx)
            if not (key is None or isinstance(key, (str, int, float, bool))):
                raise ExpressionError(f"a {type_name(key)} cannot be used as a map key", position=kpos)
            result[key] = vf(ctx)
        return result

    return build


# --------------------------------------------------------------------------- statements


def compile_body(body: list[n.Node], text: str) -> Emitter:
    items: list[Any] = []  # text (str) and emitters, told apart by type in the hot loop below
    for node in body:
        if type(node) is n.Text:
            if items and type(items[-1]) is str:
                items[-1] += node.text
            else:
                items.append(node.text)
        else:
            items.append(compile_statement(node, text))
    items_t = tuple(items)
    if len(items_t) == 1:
        only = items_t[0]
        if type(only) is str:
            return lambda ctx, out: out.append(only)
        emitter: Emitter = only
        return emitter

    def run(ctx: Context, out: list[str]) -> None:
        for item in items_t:
            if type(item) is str:
                out.append(item)
            else:
                item(ctx, out)

    return run


def compile_guarded(expr: n.Node, source: str, text: str) -> Evaluator:
    """An evaluator whose errors name ``source`` (the expression as written)."""
    fn = compile_expr(expr, text)
    position = expr.start

    def guarded(ctx: Context) -> Any:
        try:
            return fn(ctx)
        except ExpressionError as exc:
            raise _at(exc, position, source) from None

    return guarded


def compile_statement(node: n.Node, text: str) -> Emitter:
    if type(node) is n.Output:
        value = compile_guarded(node.expr, node.source, text)

        def emit(ctx: Context, out: list[str]) -> None:
            piece = to_str(value(ctx))
            ctx.size += len(piece)
            if ctx.size > MAX_OUTPUT:  # loops of large values must not grow without bound
                raise ExpressionError(f"rendered text is too long (more than {MAX_OUTPUT} characters)")
            out.append(piece)

        return emit
    if type(node) is n.If:
        branches = tuple((compile_guarded(cond, source, text), compile_body(body, text))
                         for cond, source, body in node.branches)
        else_run = compile_body(node.else_body, text) if node.else_body is not None else None

        def run_if(ctx: Context, out: list[str]) -> None:
            for cond, body_run in branches:
                if truthy(cond(ctx)):
                    body_run(ctx, out)
                    return
            if else_run is not None:
                else_run(ctx, out)

        return run_if
    if type(node) is n.For:
        return _compile_for(node, text)
    if type(node) is n.Set:
        value = compile_guarded(node.expr, node.source, text)
        name = node.name

        def run_set(ctx: Context, out: list[str]) -> None:
            result = value(ctx)
            if not ctx.scopes:
                ctx.scopes.append({})
            ctx.scopes[-1][name] = result

        return run_set
    raise ExpressionError(f"cannot compile {type(node).__name__}", position=node.start)  # pragma: no cover


def _compile_for(node: n.For, text: str) -> Emitter:
    iterable = compile_guarded(node.iterable, node.source, text)
    key_var = node.key_var
    value_var = node.value_var
    body_run = compile_body(node.body, text)
    else_run = compile_body(node.else_body, text) if node.else_body is not None else None
    position = node.iterable.start
    source = node.source

    def run_for(ctx: Context, out: list[str]) -> None:
        seq = iterable(ctx)
        if seq is None:
            pairs: list[tuple[Any, Any]] = []
        elif is_map(seq):
            if key_var is None:
                pairs = [(None, {"key": k, "value": v}) for k, v in seq.items()]
            else:
                pairs = list(seq.items())
        elif is_list(seq) or isinstance(seq, (set, frozenset)):
            pairs = list(enumerate(seq))
        else:
            raise ExpressionError(f"cannot loop over a {type_name(seq)}: a list or a map is needed",
                                  expression=source, position=position)
        if not pairs:
            if else_run is not None:
                else_run(ctx, out)
            return
        length = len(pairs)
        scope: dict[str, Any] = {}
        ctx.scopes.append(scope)
        try:
            for index, (key, value) in enumerate(pairs):
                ctx.iterations += 1
                if ctx.iterations > MAX_LOOP_ITERATIONS:
                    raise ExpressionError(f"too many loop iterations (more than {MAX_LOOP_ITERATIONS})",
                                          expression=source, position=position)
                scope.clear()
                scope["loop"] = {"index": index, "length": length, "first": index == 0,
                                 "last": index == length - 1, "revindex": length - index - 1}
                if key_var is not None:
                    scope[key_var] = key
                scope[value_var] = value
                body_run(ctx, out)
        finally:
            ctx.scopes.pop()

    return run_for
