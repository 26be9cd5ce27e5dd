"""Hand-written lexer and recursive-descent parser for the Pebble subset Kestra flows use.

The template scanner splits text into raw text, ``{{ }}``, ``{% %}`` and ``{# #}``; each tag's
inside is tokenised by :func:`_tokenize` and parsed by :class:`_ExprParser` with Pebble's
operator precedences. Every error is an :class:`ExpressionError` whose ``position`` is the
0-based offset in the template text and whose message says what was expected.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from signoff.engine.errors import ExpressionError

from . import nodes as n
from .filters import FILTERS, TESTS

MAX_NESTING = 64
MAX_AST_DEPTH = 150
MAX_NUMBER_DIGITS = 30

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_SPACE = frozenset(" \t\r\n\f\v")
# longest first
_OPERATORS = ("???", "??", "..", "==", "!=", "<=", ">=", "||", "&&",
              "<", ">", "!", "+", "-", "*", "/", "%", "~", "|", ".", ",", "(", ")", "[", "]",
              "{", "}", ":", "?", "=")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"', "/": "/"}

_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_KEYWORD_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}

# binary operator -> (precedence, node op)
_BINARY = {
    "or": (10, "or"), "||": (10, "or"),
    "and": (15, "and"), "&&": (15, "and"),
    "is": (20, "is"), "contains": (20, "contains"), "in": (20, "in"),
    "==": (30, "=="), "equals": (30, "=="), "!=": (30, "!="),
    "<": (30, "<"), ">": (30, ">"), "<=": (30, "<="), ">=": (30, ">="),
    "+": (40, "+"), "-": (40, "-"),
    "*": (60, "*"), "/": (60, "/"), "%": (60, "%"),
    "|": (100, "|"),
    "~": (110, "~"),
    "..": (120, ".."), "??": (120, "??"), "???": (120, "???"),
}
# operand of `not` is parsed at this precedence: `not a == b` is `not (a == b)`
_NOT_OPERAND_PRECEDENCE = 20
_UNARY_OPERAND_PRECEDENCE = 500

_TAGS = ("if", "elseif", "else", "endif", "for", "endfor", "set", "raw", "endraw", "verbatim", "endverbatim")
_END_RAW = {"raw": re.compile(r"\{%-?\s*endraw\s*-?%\}"), "verbatim": re.compile(r"\{%-?\s*endverbatim\s*-?%\}")}

# token kinds
NAME, STR, NUM, OP, END = "name", "string", "number", "op", "end"


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.75)
    if not close:
        return ""
    if len(close) == 1:
        return f", did you mean `{close[0]}`?"
    return ", did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def _describe(tok: tuple[str, Any, int]) -> str:
    kind, value, _ = tok
    if kind == END:
        return "the end of the tag"
    if kind == STR:
        return f"string {value!r}"
    return f"`{value}`"


def _tokenize(text: str, pos: int, closer: str, opened_at: int,
              what: str) -> tuple[list[tuple[str, Any, int]], int, bool]:
    """Tokens from ``pos`` up to the closing ``closer`` (``}}`` or ``%}``) at bracket depth 0.

    Returns (tokens ending with an END token, offset just after the closer, trim-after flag).
    """
    tokens: list[tuple[str, Any, int]] = []
    depth = 0
    length = len(text)
    i = pos
    close_first = closer[0]
    while True:
        while i < length and text[i] in _SPACE:
            i += 1
        if i >= length:
            raise ExpressionError(f"expected `{closer}` to close the {what} opened at offset {opened_at}",
                                  position=opened_at)
        c = text[i]
        if depth == 0:
            if c == close_first and text.startswith(closer, i):
                tokens.append((END, closer, i))
                return tokens, i + 2, False
            if c == "-" and text.startswith(closer, i + 1):
                tokens.append((END, closer, i))
                return tokens, i + 3, True
        if c in _NAME_START:
            j = i + 1
            while j < length and text[j] in _NAME_CHARS:
                j += 1
            tokens.append((NAME, text[i:j], i))
            i = j
        elif c in _DIGITS:
            j = i + 1
            while j < length and text[j] in _DIGITS:
                j += 1
            is_float = j + 1 < length and text[j] == "." and text[j + 1] in _DIGITS
            if is_float:
                j += 1
                while j < length and text[j] in _DIGITS:
                    j += 1
            literal = text[i:j]
            if len(literal) > MAX_NUMBER_DIGITS:
                raise ExpressionError(f"number literal is too long (more than {MAX_NUMBER_DIGITS} digits)", position=i)
            tokens.append((NUM, float(literal) if is_float else int(literal), i))
            i = j
        elif c == "'" or c == '"':
            j = i + 1
            parts: list[str] = []
            while True:
                if j >= length:
                    raise ExpressionError(f"unterminated string: expected a closing {c} for the string opened "
                                          f"at offset {i}",
                                          position=i)
                d = text[j]
                if d == c:
                    j += 1
                    break
                if d == "\\" and j + 1 < length:
                    e = text[j + 1]
                    if e == "u" and _HEX4.fullmatch(text, j + 2, j + 6):
                        parts.append(chr(int(text[j + 2:j + 6], 16)))
                        j += 6
                        continue
                    if e in _ESCAPES:
                        parts.append(_ESCAPES[e])
                    else:
                        parts.append("\\" + e)
                    j += 2
                    continue
                parts.append(d)
                j += 1
            tokens.append((STR, "".join(parts), i))
            i = j
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    break
            else:
                raise ExpressionError(f"unexpected character `{c}`", position=i)
            # only braces can hide a closing `}}` (nested map literals); the parser checks the rest
            if op == "{":
                depth += 1
            elif op == "}" and depth > 0:
                depth -= 1
            tokens.append((OP, op, i))
            i += len(op)


class _ExprParser:
    """Precedence-climbing parser over one tag's tokens."""

    def __init__(self, text: str, tokens: list[tuple[str, Any, int]], source: str) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.source = source
        self.depth = 0

    # -- helpers
    def error(self, message: str, position: int) -> ExpressionError:
        source = self.source if len(self.source) <= 120 else self.source[:117] + "..."
        return ExpressionError(message, expression=source, position=position)

    def structure_error(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, position=position)

    def peek(self, k: int = 0) -> tuple[str, Any, int]:
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else self.tokens[-1]

    def next(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        if tok[0] != END:
            self.i += 1
        return tok

    def at_op(self, value: str) -> bool:
        tok = self.tokens[self.i]
        return tok[0] == OP and tok[1] == value

    def at_name(self, value: str) -> bool:
        tok = self.tokens[self.i]
        return tok[0] == NAME and tok[1] == value

    def expect_op(self, value: str, context: str) -> tuple[str, Any, int]:
        tok = self.next()
        if tok[0] != OP or tok[1] != value:
            raise self.error(f"expected `{value}` {context}, found {_describe(tok)}", tok[2])
        return tok

    def expect_name(self, context: str) -> tuple[str, Any, int]:
        tok = self.next()
        if tok[0] != NAME:
            raise self.error(f"expected a name {context}, found {_describe(tok)}", tok[2])
        return tok

    def prev_end(self) -> int:
        """Offset just after the last consumed token (trailing spaces trimmed)."""
        if self.i == 0:
            return self.tokens[0][2]
        nxt = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        end = nxt
        while end > 0 and self.text[end - 1] in _SPACE:
            end -= 1
        return end

    def expect_end(self) -> None:
        tok = self.peek()
        if tok[0] != END:
            raise self.error(f"unexpected {_describe(tok)}: expected an operator or `{self.tokens[-1][1]}`", tok[2])

    # -- grammar
    def parse_top(self) -> n.Node:
        """A whole expression, checked to be shallow enough to compile and evaluate."""
        node = self.parse_expression()
        stack = [(node, 1)]
        while stack:
            current, depth = stack.pop()
            if depth > MAX_AST_DEPTH:
                raise self.error(f"expression is too complex (more than {MAX_AST_DEPTH} nested operations)",
                                 current.start)
            stack.extend((child, depth + 1) for child in current.children())
        return node

    def parse_expression(self) -> n.Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression is nested too deeply (more than {MAX_NESTING} levels)", self.peek()[2])
        start = self.peek()[2]
        cond = self.parse_binary(0)
        if self.at_op("?"):
            self.next()
            then = self.parse_expression()
            self.expect_op(":", "after the `?` branch of a conditional expression")
            otherwise = self.parse_expression()
            cond = n.Ternary(cond, then, otherwise, start, self.prev_end())
        self.depth -= 1
        return cond

    def parse_binary(self, min_prec: int) -> n.Node:
        left = self.parse_unary()
        while True:
            kind, value, pos = self.tokens[self.i]
            if kind == OP or kind == NAME:
                entry = _BINARY.get(value)
                if entry is None and kind == NAME and value == "not" and self.peek(1)[:2] == (NAME, "in"):
                    entry = (20, "not in")
            else:
                entry = None
            if entry is None:
                return left
            prec, op = entry
            if prec < min_prec:
                return left
            self.next()
            if op == "not in":
                self.next()
            if op == "is":
                left = self.parse_test(left)
            elif op == "|":
                left = self.parse_filter(left)
            else:
                right = self.parse_binary(prec + 1)
                left = n.Binary(op, left, right, left.start, right.end)

    def parse_test(self, operand: n.Node) -> n.Node:
        negated = False
        if self.at_name("not"):
            self.next()
            negated = True
        tok = self.next()
        if tok[0] != NAME:
            raise self.error(f"expected a test name after `is` (one of {', '.join(sorted(TESTS))}), "
                             f"found {_describe(tok)}", tok[2])
        name = tok[1]
        if name == "none":
            name = "null"
        if name not in TESTS:
            raise self.error(f"unknown test `{name}`{_suggest(name, TESTS)}", tok[2])
        return n.Test(operand, name, negated, operand.start, tok[2] + len(tok[1]))

    def parse_filter(self, operand: n.Node) -> n.Node:
        tok = self.next()
        if tok[0] != NAME:
            raise self.error(f"expected a filter name after `|`, found {_describe(tok)}", tok[2])
        name = tok[1]
        spec = FILTERS.get(name)
        if spec is None:
            raise self.error(f"unknown filter `{name}`{_suggest(name, FILTERS)}", tok[2])
        args: list[n.Node] = []
        kwargs: list[tuple[str, n.Node, int]] = []
        end = tok[2] + len(name)
        if self.at_op("("):
            args, kwargs = self.parse_arguments(f"of filter `{name}`")
            end = self.prev_end()
        params = spec.params
        if len(args) > len(params):
            raise self.error(f"filter `{name}` takes at most {len(params)} argument{'s' if len(params) != 1 else ''}"
                             f", got {len(args)}", tok[2])
        bound: list[n.Node | None] = list(args) + [None] * (len(params) - len(args))
        for key, value, kpos in kwargs:
            if key not in params:
                expected = ", ".join(params) if params else "no arguments"
                raise self.error(f"filter `{name}` has no argument `{key}` (it takes: {expected})", kpos)
            idx = params.index(key)
            if bound[idx] is not None:
                raise self.error(f"argument `{key}` of filter `{name}` given twice", kpos)
            bound[idx] = value
        missing = [p for p, b in zip(params[:spec.required], bound, strict=False) if b is None]
        if missing:
            raise self.error(f"filter `{name}` needs argument `{missing[0]}`", tok[2])
        return n.Filter(operand, name, bound, operand.start, end)

    def parse_arguments(self, context: str) -> tuple[list[n.Node], list[tuple[str, n.Node, int]]]:
        self.expect_op("(", context)
        args: list[n.Node] = []
        kwargs: list[tuple[str, n.Node, int]] = []
        if self.at_op(")"):
            self.next()
            return args, kwargs
        while True:
            tok = self.peek()
            if tok[0] == NAME and self.peek(1)[:2] == (OP, "="):
                self.next()
                self.next()
                kwargs.append((tok[1], self.parse_expression(), tok[2]))
            else:
                if kwargs:
                    raise self.error(f"positional argument after named arguments {context}", tok[2])
                args.append(self.parse_expression())
            tok = self.next()
            if tok[0] == OP and tok[1] == ")":
                return args, kwargs
            if tok[0] != OP or tok[1] != ",":
                raise self.error(f"expected `,` or `)` in the arguments {context}, found {_describe(tok)}", tok[2])

    def parse_unary(self) -> n.Node:
        kind, value, pos = self.tokens[self.i]
        if (kind == NAME and value == "not") or (kind == OP and value == "!"):
            self.next()
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"expression is nested too deeply (more than {MAX_NESTING} levels)", pos)
            operand = self.parse_binary(_NOT_OPERAND_PRECEDENCE)
            self.depth -= 1
            return n.Unary("not", operand, pos, operand.end)
        if kind == OP and (value == "-" or value == "+"):
            self.next()
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"expression is nested too deeply (more than {MAX_NESTING} levels)", pos)
            operand = self.parse_binary(_UNARY_OPERAND_PRECEDENCE)
            self.depth -= 1
            if isinstance(operand, n.Const) and type(operand.value) in (int, float):
                return n.Const(-operand.value if value == "-" else operand.value, pos, operand.end)
            return n.Unary(value, operand, pos, operand.end)
        return self.parse_postfix(self.parse_primary())

    def parse_primary(self) -> n.Node:
        tok = self.next()
        kind, value, pos = tok
        if kind == NUM:
            return n.Const(value, pos, self.prev_end())
        if kind == STR:
            return n.Const(value, pos, self.prev_end())
        if kind == NAME:
            if value in _KEYWORD_CONSTANTS:
                return n.Const(_KEYWORD_CONSTANTS[value], pos, pos + len(value))
            if value in ("and", "or", "is", "contains", "in", "equals", "not"):
                raise self.error(f"expected a value before `{value}`", pos)
            if value.startswith("_"):
                raise self.error(f"access to `{value}` is not allowed: names starting with `_` are private", pos)
            if self.at_op("("):
                args, kwargs = self.parse_arguments(f"of function `{value}`")
                return n.Call(value, args, [(k, v) for k, v, _ in kwargs], pos, self.prev_end())
            return n.Var(value, pos, pos + len(value))
        if kind == OP:
            if value == "(":
                self.depth += 1
                if self.depth > MAX_NESTING:
                    raise self.error(f"expression is nested too deeply (more than {MAX_NESTING} levels)", pos)
                inner = self.parse_expression()
                self.depth -= 1
                self.expect_op(")", f"to close the `(` at offset {pos}")
                return inner
            if value == "[":
                items: list[n.Node] = []
                while not self.at_op("]"):
                    items.append(self.parse_expression())
                    if self.at_op(","):
                        self.next()
                    elif not self.at_op("]"):
                        bad = self.peek()
                        raise self.error(f"expected `,` or `]` in the list opened at offset {pos}, "
                                         f"found {_describe(bad)}",
                                         bad[2])
                self.next()
                return n.ListLit(items, pos, self.prev_end())
            if value == "{":
                pairs: list[tuple[n.Node, n.Node]] = []
                while not self.at_op("}"):
                    ktok = self.peek()
                    if ktok[0] == NAME and ktok[1] not in _KEYWORD_CONSTANTS and self.peek(1)[:2] == (OP, ":"):
                        self.next()  # bare key: {a: 1} means {"a": 1}
                        key: n.Node = n.Const(ktok[1], ktok[2], ktok[2] + len(ktok[1]))
                    else:
                        key = self.parse_expression()
                    self.expect_op(":", f"after a key in the map opened at offset {pos}")
                    pairs.append((key, self.parse_expression()))
                    if self.at_op(","):
                        self.next()
                    elif not self.at_op("}"):
                        bad = self.peek()
                        raise self.error(f"expected `,` or `}}` in the map opened at offset {pos}, "
                                         f"found {_describe(bad)}",
                                         bad[2])
                self.next()
                return n.MapLit(pairs, pos, self.prev_end())
        if kind == END:
            raise self.error("expected an expression, found the end of the tag", pos)
        if kind == OP and value == "=":
            raise self.error("unexpected `=`: use `==` to compare values", pos)
        raise self.error(f"expected an expression, found {_describe(tok)}", pos)

    def parse_postfix(self, node: n.Node) -> n.Node:
        while True:
            kind, value, pos = self.tokens[self.i]
            if kind != OP:
                return node
            if value == ".":
                self.next()
                tok = self.next()
                if tok[0] == NUM and isinstance(tok[1], int):
                    node = n.Index(node, n.Const(tok[1], tok[2], tok[2] + len(str(tok[1]))), node.start,
                                   tok[2] + len(str(tok[1])))
                    continue
                if tok[0] != NAME:
                    raise self.error(f"expected an attribute name after `.`, found {_describe(tok)}", tok[2])
                name = tok[1]
                if name.startswith("_"):
                    raise self.error(f"access to `{name}` is not allowed: names starting with `_` are private", tok[2])
                if self.at_op("("):
                    raise self.error(f"calling `{name}(...)` on a value is not allowed: only functions can be called",
                                     tok[2])
                node = n.Attr(node, name, node.start, tok[2] + len(name))
            elif value == "[":
                self.next()
                self.depth += 1
                if self.depth > MAX_NESTING:
                    raise self.error(f"expression is nested too deeply (more than {MAX_NESTING} levels)", pos)
                key = self.parse_expression()
                self.depth -= 1
                self.expect_op("]", f"to close the `[` at offset {pos}")
                if isinstance(key, n.Const) and isinstance(key.value, str) and key.value.startswith("_"):
                    raise self.error(f"access to `{key.value}` is not allowed: names starting with `_` are private",
                                     key.start)
                node = n.Index(node, key, node.start, self.prev_end())
            elif value == "(":
                raise self.error("only named functions can be called", pos)
            else:
                return node


# --------------------------------------------------------------------------- template structure


def _strip_source(text: str, start: int, end: int) -> str:
    return text[start:end].strip()


def parse(text: str) -> list[n.Node]:
    """Parse template text into a list of statement nodes."""
    root: list[n.Node] = []
    body = root
    # stack entries: (kind, node, opened_at, in_else)
    stack: list[list[Any]] = []
    length = len(text)
    pos = 0
    trim_next = False
    find = text.find
    while pos < length:
        j = find("{", pos)
        while j != -1 and (j + 1 >= length or text[j + 1] not in "{%#"):
            j = find("{", j + 1)
        if j == -1:
            chunk = text[pos:]
            if trim_next:
                chunk = chunk.lstrip()
            if chunk:
                body.append(n.Text(chunk, pos, length))
            break
        chunk = text[pos:j]
        kind = text[j + 1]
        inner = j + 2
        trim_before = inner < length and text[inner] == "-"
        if trim_before:
            inner += 1
            chunk = chunk.rstrip()
        if trim_next:
            chunk = chunk.lstrip()
        if chunk:
            body.append(n.Text(chunk, pos, j))
        trim_next = False
        if kind == "#":
            close = find("#}", inner)
            if close == -1:
                raise ExpressionError(f"expected `#}}` to close the comment opened at offset {j}", position=j)
            trim_next = text[close - 1] == "-" and close - 1 >= inner
            pos = close + 2
            continue
        if kind == "{":
            tokens, after, trim_next = _tokenize(text, inner, "}}", j, "expression")
            source = _strip_source(text, inner, tokens[-1][2])
            parser = _ExprParser(text, tokens, source)
            expr = parser.parse_top()
            parser.expect_end()
            body.append(n.Output(expr, source, j, after))
            pos = after
            continue
        # {% tag %}
        tokens, after, trim_next = _tokenize(text, inner, "%}", j, "tag")
        source = _strip_source(text, inner, tokens[-1][2])
        parser = _ExprParser(text, tokens, source)
        tok = parser.next()
        if tok[0] != NAME:
            openers = ", ".join(t for t in _TAGS if not t.startswith("end"))
            raise parser.error(f"expected a tag name after `{{%` ({openers})"
                               f", found {_describe(tok)}", tok[2])
        tag = tok[1]
        tag_pos = tok[2]
        if tag == "if":
            if_node = n.If(j, after)
            cond = parser.parse_top()
            parser.expect_end()
            if_node.branches.append((cond, _strip_source(text, tokens[1][2], tokens[-1][2]), []))
            body.append(if_node)
            _push(parser, stack, ["if", if_node, j, False])
            body = if_node.branches[-1][2]
        elif tag in ("elseif", "elif"):
            if not stack or stack[-1][0] != "if":
                raise parser.structure_error("unexpected `{% elseif %}`: there is no open `{% if %}`", j)
            if stack[-1][3]:
                raise parser.structure_error(
                    "`{% elseif %}` after `{% else %}`: `{% else %}` must be the last branch", j)
            cond = parser.parse_top()
            parser.expect_end()
            node = stack[-1][1]
            node.branches.append((cond, _strip_source(text, tokens[1][2], tokens[-1][2]), []))
            body = node.branches[-1][2]
        elif tag == "else":
            parser.expect_end()
            if not stack:
                raise parser.structure_error("unexpected `{% else %}`: there is no open `{% if %}` or `{% for %}`", j)
            if stack[-1][3]:
                raise parser.structure_error(
                    f"second `{{% else %}}` in the `{{% {stack[-1][0]} %}}` opened at offset {stack[-1][2]}", j)
            stack[-1][3] = True
            node = stack[-1][1]
            node.else_body = []
            body = node.else_body
        elif tag in ("endif", "endfor"):
            parser.expect_end()
            want = tag[3:]
            if not stack:
                raise parser.structure_error(f"unexpected `{{% {tag} %}}`: there is no open `{{% {want} %}}`", j)
            if stack[-1][0] != want:
                raise parser.structure_error(
                    f"unexpected `{{% {tag} %}}`: expected `{{% end{stack[-1][0]} %}}` to close the "
                    f"`{{% {stack[-1][0]} %}}` opened at offset {stack[-1][2]}", j)
            stack[-1][1].end = after
            stack.pop()
            body = _current_body(root, stack)
        elif tag == "for":
            first = parser.expect_name("after `for`")
            key_var: str | None = None
            value_var = first[1]
            if parser.at_op(","):
                parser.next()
                key_var = value_var
                value_var = parser.expect_name("after `,` in `for`")[1]
            for var in (key_var, value_var):
                if var is not None and (var.startswith("_") or var in _KEYWORD_CONSTANTS):
                    raise parser.error(f"`{var}` cannot be used as a loop variable", first[2])
            tok = parser.next()
            if tok[:2] != (NAME, "in"):
                raise parser.error(f"expected `in` after the loop variable, found {_describe(tok)}", tok[2])
            iter_start = parser.peek()[2]
            iterable = parser.parse_top()
            parser.expect_end()
            for_node = n.For(key_var, value_var, iterable, _strip_source(text, iter_start, tokens[-1][2]), j, after)
            body.append(for_node)
            _push(parser, stack, ["for", for_node, j, False])
            body = for_node.body
        elif tag == "set":
            name_tok = parser.expect_name("after `set`")
            if name_tok[1].startswith("_") or name_tok[1] in _KEYWORD_CONSTANTS:
                raise parser.error(f"`{name_tok[1]}` cannot be assigned", name_tok[2])
            parser.expect_op("=", "after the variable name in `{% set %}`")
            value_start = parser.peek()[2]
            expr = parser.parse_top()
            parser.expect_end()
            body.append(n.Set(name_tok[1], expr, _strip_source(text, value_start, tokens[-1][2]), j, after))
        elif tag in ("raw", "verbatim"):
            parser.expect_end()
            m = _END_RAW[tag].search(text, after)
            if m is None:
                raise parser.structure_error(
                    f"`{{% {tag} %}}` opened at offset {j} is never closed: expected `{{% end{tag} %}}`", j)
            content = text[after:m.start()]
            if trim_next:
                content = content.lstrip()
            if m.group(0).startswith("{%-"):
                content = content.rstrip()
            if content:
                body.append(n.Text(content, after, m.start()))
            trim_next = m.group(0).endswith("-%}")
            pos = m.end()
            continue
        else:
            hint = _suggest(tag, _TAGS) or ": expected one of if, elseif, else, endif, for, endfor, set, raw"
            raise parser.structure_error(f"unknown tag `{tag}`{hint}", tag_pos)
        pos = after
    if stack:
        kind, _node, opened, _ = stack[-1]
        raise ExpressionError(f"`{{% {kind} %}}` opened at offset {opened} is never closed: "
                              f"expected `{{% end{kind} %}}`",
                              position=opened)
    return root


def _push(parser: _ExprParser, stack: list[list[Any]], entry: list[Any]) -> None:
    if len(stack) >= MAX_NESTING:
        raise parser.structure_error(f"blocks are nested too deeply (more than {MAX_NESTING} levels)", entry[2])
    stack.append(entry)


def _current_body(root: list[n.Node], stack: list[list[Any]]) -> list[n.Node]:
    if not stack:
        return root
    kind, node, _, in_else = stack[-1]
    if in_else:
        else_body: list[n.Node] = node.else_body
        return else_body
    if kind == "if":
        branch: list[n.Node] = node.branches[-1][2]
        return branch
    for_body: list[n.Node] = node.body
    return for_body
