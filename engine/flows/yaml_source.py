"""Parse one YAML document into plain data, remembering where every node was written.

:func:`parse_yaml` returns the document as plain Python data (dicts, lists, str, int, float,
bool, None) plus a :class:`YamlLocator` that answers the 1-based ``line:col`` of any node by
its path from the root (mapping keys and list indexes), of a mapping entry's key, and of a
character inside a single-line string (for expression errors).

Scalars follow YAML 1.2's core schema rather than PyYAML's YAML 1.1 defaults, as Kestra does:
only ``true``/``false`` are booleans (``yes``, ``on``... stay strings), dates stay strings, and
mapping keys are always strings. Duplicate keys, syntax errors, an empty file, several
documents or a document that is not a mapping raise :class:`FlowLoadError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from signoff.engine.errors import FlowLoadError, Location, Locator, Problem
from signoff.engine.nul import MESSAGE as NUL_MESSAGE

Path = tuple[Any, ...]

_BaseLoader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null", _BOOL_TAG, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    _STR_TAG,
}


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]  # CSafeLoader where PyYAML has it, else SafeLoader
    """The safe loader, with YAML 1.2 booleans and no implicit timestamps."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


@dataclass(frozen=True)
class _Span:
    line: int  # 0-based, as PyYAML marks
    col: int
    end_line: int
    end_col: int
    style: str | None  # None (plain), "'", '"', "|", ">" for scalars; "map"/"seq" otherwise


class YamlLocator(Locator):
    """Positions of the nodes of one parsed YAML document."""

    def __init__(self, file: str, text: str = "") -> None:
        super().__init__(file)
        self.text = text
        self._values: dict[Path, _Span] = {}
        self._keys: dict[Path, _Span] = {}
        self._strings: dict[Path, str] = {}

    # -- queries -----------------------------------------------------------------------
    def _nearest(self, table: dict[Path, _Span], path: Path) -> _Span | None:
        path = tuple(path)
        while True:
            span = table.get(path)
            if span is not None:
                return span
            if table is not self._values:
                table = self._values  # a key that is missing: fall back to the value positions
                continue
            if not path:
                return None
            path = path[:-1]

    def _loc(self, span: _Span | None) -> Location:
        if span is None:
            return Location(self.file, 1, 1)
        return Location(self.file, span.line + 1, span.col + 1)

    def at(self, path: tuple[str | int, ...]) -> Location:
        """Where the node at ``path`` starts; the nearest existing parent if it is missing."""
        return self._loc(self._nearest(self._values, tuple(path)))

    def key_at(self, path: tuple[str | int, ...]) -> Location:
        """Where the key of the mapping entry at ``path`` is written (else as :meth:`at`)."""
        return self._loc(self._nearest(self._keys, tuple(path)))

    def string_at(self, path: tuple[str | int, ...], offset: int | None) -> Location:
        """Where character ``offset`` of the string at ``path`` is, best effort.

        Exact for single-line plain and quoted scalars without escapes and for literal
        (``|``) block scalars; otherwise the position of the node itself.
        """
        path = tuple(path)
        span = self._values.get(path)
        if span is None or offset is None or offset < 0:
            return self.at(path)
        base = self._loc(span)
        lines = self.text.splitlines()
        if span.style in (None, "'", '"') and span.line == span.end_line:
            if span.line >= len(lines):
                return base
            raw = lines[span.line][span.col:span.end_col]
            if span.style is None:
                inner = raw
                shift = 0
            else:
                inner = raw[1:-1]
                shift = 1
                if ("\\" in inner if span.style == '"' else "''" in inner):
                    return base
            if offset > len(inner):
                return base
            return Location(self.file, span.line + 1, span.col + 1 + shift + offset)
        if span.style == "|":
            value = self._value_text(path)
            if value is None:
                return base
            before = value[:offset]
            line_idx = before.count("\n")
            col_in_line = offset - (before.rfind("\n") + 1)
            value_line = value.split("\n")[line_idx]
            src_idx = span.line + 1 + line_idx
            if not value_line or src_idx >= len(lines):
                return base
            pos = lines[src_idx].find(value_line)
            if pos < 0:
                return base
            return Location(self.file, src_idx + 1, pos + 1 + col_in_line)
        return base

    def _value_text(self, path: Path) -> str | None:
        return self._strings.get(path)


def _problem_at(file: str, mark: Any, message: str) -> Problem:
    if mark is None:
        return Problem(Location(file, 1, 1), message)
    return Problem(Location(file, mark.line + 1, mark.column + 1), message)


def _syntax_problem(file: str, err: yaml.YAMLError, text: str = "") -> Problem:
    if isinstance(err, yaml.reader.ReaderError) and isinstance(err.character, int):
        # a character YAML does not allow: where it is, and which (a NUL is refused by every
        # entry point for the same reason, engine.nul). The reader stops at the first one; its
        # ``position`` counts bytes in the C loader, so the character is looked up instead.
        code = err.character
        offset = text.find(chr(code))
        offset = offset if offset >= 0 else max(0, min(int(err.position), len(text)))
        before = text[:offset]
        at = Location(file, before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)
        if code == 0:
            return Problem(at, f"the text {NUL_MESSAGE} (a NUL byte)")
        return Problem(at, f"YAML syntax error: the character U+{code:04X} is not allowed ({err.reason})")
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or "invalid YAML"
        message = f"YAML syntax error: {problem}"
        if err.context:
            cm = err.context_mark
            where = f" started at line {cm.line + 1}, col {cm.column + 1}" if cm is not None else ""
            message += f" ({err.context}{where})"
        return _problem_at(file, err.problem_mark or err.context_mark, message)
    return Problem(Location(file, 1, 1), f"YAML syntax error: {err}")


def _kind_name(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar value"


#: nodes one document may expand to (aliases included); real flows have a few thousand
MAX_NODES = 200_000
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        super().__init__()
        self.node = node


class _Builder:
    def __init__(self, file: str, text: str, loader: Any) -> None:
        self.file = file
        self.loader = loader
        self.locator = YamlLocator(file, text)
        self.problems: list[Problem] = []
        self._active: set[int] = set()
        self._built = 0  # nodes built, aliases counted every time they are expanded

    def _span(self, node: yaml.Node) -> _Span:
        if isinstance(node, yaml.ScalarNode):
            style = node.style or None  # the C parser says '' for plain scalars
        else:
            style = "map" if isinstance(node, yaml.MappingNode) else "seq"
        return _Span(node.start_mark.line, node.start_mark.column,
                     node.end_mark.line, node.end_mark.column, style)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._built += 1
        if self._built > MAX_NODES:  # an alias "billion laughs" must not exhaust memory
            raise _TooLarge(node)
        self.locator._values.setdefault(path, self._span(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.problems.append(_problem_at(self.file, node.start_mark,
                                             "recursive YAML alias; expand the value instead"))
            return None
        self._active.add(id(node))
        try:
            if node.tag not in (_SEQ_TAG, _MAP_TAG):
                self.problems.append(_problem_at(
                    self.file, node.start_mark,
                    f"unsupported YAML tag `{node.tag}`; remove the tag and write a plain value"))
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)  # the composer makes only these three kinds
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _STR_TAG or node.tag not in _SCALAR_TAGS:
            if node.tag not in _SCALAR_TAGS:
                self.problems.append(_problem_at(
                    self.file, node.start_mark,
                    f"unsupported YAML tag `{node.tag}`; remove the tag and write a plain value"))
            self.locator._strings[path] = node.value
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as err:  # pragma: no cover - resolver already matched the form
            self.problems.append(_syntax_problem(self.file, err))
            return node.value

    def _key(self, node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            key: str = node.value
            return key
        self.problems.append(_problem_at(
            self.file, node.start_mark,
            f"a mapping key must be a plain name, found {_kind_name(node)}"))
        return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if isinstance(src, yaml.MappingNode):
                        merged.extend(src.value)
                    else:
                        self.problems.append(_problem_at(
                            self.file, src.start_mark, "a `<<` merge needs a mapping or a list of mappings"))
                continue
            key = self._key(key_node)
            if key is None:
                continue
            if key in seen:
                first = seen[key].start_mark
                self.problems.append(_problem_at(
                    self.file, key_node.start_mark,
                    f"duplicate key `{key}` (already set at line {first.line + 1}, col {first.column + 1}); "
                    "keep only one of them"))
                continue
            seen[key] = key_node
            self.locator._keys[(*path, key)] = self._span(key_node)
            result[key] = self.build(value_node, (*path, key))
        for key_node, value_node in merged:  # explicit keys win over merged ones
            key = self._key(key_node)
            if key is None or key in result:
                continue
            self.locator._keys.setdefault((*path, key), self._span(key_node))
            result[key] = self.build(value_node, (*path, key))
        return result


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], YamlLocator]:
    """Parse ``text`` (the content of ``file``) as one YAML mapping.

    Raises :class:`FlowLoadError` for a syntax error, duplicate keys, an empty file, several
    documents, or a document that is not a mapping.
    """
    loader = _Loader(text)
    try:
        try:
            nodes = []
            while loader.check_node():
                nodes.append(loader.get_node())
        except yaml.YAMLError as err:
            raise FlowLoadError([_syntax_problem(file, err, text)]) from None
        if not nodes:
            raise FlowLoadError([Problem(
                Location(file, 1, 1),
                "the file is empty; a flow needs at least `id`, `namespace` and `tasks`")])
        if len(nodes) > 1:
            raise FlowLoadError([_problem_at(
                file, nodes[1].start_mark,
                "a flow file must hold exactly one YAML document; remove this second document "
                "(or move it to its own file)")])
        root = nodes[0]
        if not isinstance(root, yaml.MappingNode):
            raise FlowLoadError([_problem_at(
                file, root.start_mark,
                f"a flow file must be a mapping (`id: ...`, `namespace: ...`, `tasks: ...`), "
                f"found {_kind_name(root)}")])
        builder = _Builder(file, text, loader)
        try:
            data = builder.build(root, ())
        except _TooLarge as too_large:
            raise FlowLoadError([_problem_at(file, too_large.node.start_mark,
                                             f"the document expands to more than {MAX_NODES} values (YAML aliases "
                                             "repeated too often); write the values out instead")]) from None
        if builder.problems:
            raise FlowLoadError(builder.problems)
        return data, builder.locator
    finally:
        loader.dispose()


def describe_value(value: Any) -> str:
    """A value as a problem message names it: `x`, a mapping, a list, a string..."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str) and (len(value) > 40 or "\n" in value):
        return "a string"
    return f"`{value}`"
