"""AST of the Pebble subset: expression nodes and template (statement) nodes.

Every node records ``start``/``end``, 0-based offsets into the template text, so errors can
point at the exact place and quote what the user wrote.
"""
from __future__ import annotations

from typing import Any


class Node:
    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def children(self) -> tuple[Node, ...]:
        return ()


# --------------------------------------------------------------------------- expressions


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any, start: int, end: int) -> None:
        super().__init__(start, end)
        self.value = value


class Var(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.name = name


class Attr(Node):
    """``obj.name`` - a key lookup on a map (never a Python attribute)."""

    __slots__ = ("obj", "name")

    def __init__(self, obj: Node, name: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.obj = obj
        self.name = name

    def children(self) -> tuple[Node, ...]:
        return (self.obj,)


class Index(Node):
    """``obj[key]`` - a key lookup on a map or an index into a list/string."""

    __slots__ = ("obj", "key")

    def __init__(self, obj: Node, key: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.obj = obj
        self.key = key

    def children(self) -> tuple[Node, ...]:
        return (self.obj, self.key)


class Call(Node):
    __slots__ = ("name", "args", "kwargs")

    def __init__(self, name: str, args: list[Node], kwargs: list[tuple[str, Node]], start: int, end: int) -> None:
        super().__init__(start, end)
        self.name = name
        self.args = args
        self.kwargs = kwargs

    def children(self) -> tuple[Node, ...]:
        return tuple(self.args) + tuple(v for _, v in self.kwargs)


class Unary(Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.op = op
        self.operand = operand

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Node, right: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.op = op
        self.left = left
        self.right = right

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


class Test(Node):
    """``operand is [not] name``."""

    __slots__ = ("operand", "name", "negated")

    def __init__(self, operand: Node, name: str, negated: bool, start: int, end: int) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.name = name
        self.negated = negated

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


class Filter(Node):
    """``operand | name(args)``; ``args`` are already matched to the filter's parameters."""

    __slots__ = ("operand", "name", "args")

    def __init__(self, operand: Node, name: str, args: list[Node | None], start: int, end: int) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.name = name
        self.args = args

    def children(self) -> tuple[Node, ...]:
        return (self.operand,) + tuple(a for a in self.args if a is not None)


class Ternary(Node):
    __slots__ = ("cond", "then", "otherwise")

    def __init__(self, cond: Node, then: Node, otherwise: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.cond = cond
        self.then = then
        self.otherwise = otherwise

    def children(self) -> tuple[Node, ...]:
        return (self.cond, self.then, self.otherwise)


class ListLit(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node], start: int, end: int) -> None:
        super().__init__(start, end)
        self.items = items

    def children(self) -> tuple[Node, ...]:
        return tuple(self.items)


class MapLit(Node):
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Node, Node]], start: int, end: int) -> None:
        super().__init__(start, end)
        self.pairs = pairs

    def children(self) -> tuple[Node, ...]:
        return tuple(n for pair in self.pairs for n in pair)


# --------------------------------------------------------------------------- statements


class Text(Node):
    __slots__ = ("text",)

    def __init__(self, text: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.text = text


class Output(Node):
    """``{{ expr }}``; ``source`` is the expression text as written (for error messages)."""

    __slots__ = ("expr", "source")

    def __init__(self, expr: Node, source: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.expr = expr
        self.source = source


class If(Node):
    __slots__ = ("branches", "else_body")

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.branches: list[tuple[Node, str, list[Node]]] = []  # (condition, source, body)
        self.else_body: list[Node] | None = None


class For(Node):
    __slots__ = ("key_var", "value_var", "iterable", "source", "body", "else_body")

    def __init__(self, key_var: str | None, value_var: str, iterable: Node, source: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.key_var = key_var
        self.value_var = value_var
        self.iterable = iterable
        self.source = source
        self.body: list[Node] = []
        self.else_body: list[Node] | None = None


class Set(Node):
    __slots__ = ("name", "expr", "source")

    def __init__(self, name: str, expr: Node, source: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.name = name
        self.expr = expr
        self.source = source
