"""Input declarations from YAML (flow ``inputs``, Pause ``onResume``, Approval ``inputs``).

Every problem is collected (never stop at the first), each with where it was written and a
message saying what to write instead.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from signoff.engine.errors import Locator, Problem
from signoff.engine.flows.task_types import suggest  # a leaf module: no import cycle
from signoff.engine.inputs.spec import (
    COMMON_PROPERTIES,
    INPUT_TYPES,
    ITEM_TYPES,
    TYPE_ALIASES,
    TYPE_PROPERTIES,
    DependsOn,
    InputSpec,
    allowed_properties,
)

__all__ = ["parse_input_specs", "ID_PATTERN"]

#: records one problem at a path below the inputs list (index, key, ...)
Report = Callable[[tuple[Any, ...], str], None]

ID_PATTERN = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")
_KNOWN_PROPERTIES = tuple(dict.fromkeys(
    COMMON_PROPERTIES + ("name",) + tuple(p for ps in TYPE_PROPERTIES.values() for p in ps)))
_ALL_TYPES = tuple(INPUT_TYPES) + tuple(TYPE_ALIASES)
_DEPENDS_KEYS = ("inputs", "condition")


def _types_for(prop: str) -> list[str]:
    return [t for t, ps in TYPE_PROPERTIES.items() if prop in ps and t != "BOOL"]


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def parse_input_specs(items: Any, path: tuple[Any, ...], locator: Locator) -> tuple[list[InputSpec], list[Problem]]:
    """Parse a raw YAML list of input declarations.

    ``path`` is the list's path from the document root (e.g. ``("inputs",)``); problems are
    located with ``locator.at(path + (index, key))``. Returns the inputs that could be read
    (those with an id and a known type) and every problem found.
    """
    path = tuple(path)
    problems: list[Problem] = []
    specs: list[InputSpec] = []
    index_of: dict[str, int] = {}

    def problem(sub: tuple[Any, ...], message: str) -> None:
        problems.append(Problem(locator.at(path + sub), message))

    if items is None:
        return [], []
    if not isinstance(items, list):
        problems.append(Problem(locator.at(path), "inputs must be a list of input declarations, "
                                                  "e.g. `- id: amount` / `  type: INT`"))
        return [], problems

    for index, item in enumerate(items):
        spec = _parse_one(item, index, problem)
        if spec is None:
            continue
        spec.location = locator.at(path + (index,))
        if spec.id in index_of:
            key = "id" if isinstance(item, Mapping) and "id" in item else "name"
            problem((index, key), f"duplicate input id `{spec.id}`: it is already declared at "
                                  f"{locator.at(path + (index_of[spec.id], key))}; give each input a distinct id")
            continue
        index_of[spec.id] = index
        specs.append(spec)

    _check_nesting(specs, index_of, problem)
    _check_depends(specs, index_of, problem)
    return specs, problems


def _parse_one(item: Any, index: int, problem: Report) -> InputSpec | None:
    if not isinstance(item, Mapping):
        problem((index,), f"input #{index + 1} must be a mapping with `id` and `type`, "
                          f"e.g. `- id: amount` / `  type: INT`")
        return None

    # -- id --
    id_key = "id" if "id" in item else ("name" if "name" in item else None)
    raw_id = item.get(id_key) if id_key else None
    input_id: str | None = None
    if id_key is None:
        problem((index,), f"input #{index + 1} has no `id`: add e.g. `id: amount`")
    elif "id" in item and "name" in item:
        problem((index, "name"), f"input `{item.get('id')}` has both `id` and `name`: keep only `id`")
    if id_key is not None:
        if not isinstance(raw_id, str) or not ID_PATTERN.fullmatch(raw_id):
            problem((index, id_key), f"invalid input id `{_show(raw_id)}`: use letters, digits, `.`, `_` "
                                     f"and `-`, starting with a letter or digit (e.g. `amount`, `order.id`)")
        elif ".." in raw_id or raw_id.endswith("."):
            problem((index, id_key), f"invalid input id `{raw_id}`: each dotted part must be non-empty "
                                     f"(e.g. `order.id`)")
        else:
            input_id = raw_id
    label = input_id or (raw_id if isinstance(raw_id, str) else f"#{index + 1}")

    # -- type --
    type_ = None
    if "type" not in item:
        problem((index,), f"input `{label}` has no `type`: add e.g. `type: STRING` "
                          f"(one of {', '.join(INPUT_TYPES)})")
    else:
        raw_type = item.get("type")
        if isinstance(raw_type, str) and raw_type in _ALL_TYPES:
            type_ = TYPE_ALIASES.get(raw_type, raw_type)
        else:
            close = suggest(str(raw_type), _ALL_TYPES)
            hint = f"did you mean `{TYPE_ALIASES.get(close, close)}`? " if close else ""
            problem((index, "type"), f"unknown input type `{_show(raw_type)}` on input `{label}`: "
                                     f"{hint}valid types are {', '.join(INPUT_TYPES)}")

    # -- properties --
    allowed = allowed_properties(type_) + ("name",) if type_ else None
    for key in item:
        if key in ("id", "name", "type"):
            continue
        if not isinstance(key, str) or key not in _KNOWN_PROPERTIES:
            choices = allowed if allowed else _KNOWN_PROPERTIES
            close = suggest(str(key), [c for c in choices if c != "name"])
            hint = f", did you mean `{close}`?" if close else \
                f"; allowed: {', '.join(c for c in choices if c != 'name')}"
            problem((index, key), f"unknown property `{_show(key)}` on input `{label}`{hint}")
        elif allowed is not None and key not in allowed:
            where = _join(_types_for(key))
            problem((index, key), f"`{key}` is not allowed on {type_} inputs; it applies to {where} inputs")

    if input_id is None or type_ is None:
        return None

    spec = InputSpec(id=input_id, type=type_)
    spec.display_name = _opt_text(item, "displayName", index, label, problem)
    spec.description = _opt_text(item, "description", index, label, problem)
    if "required" in item:
        if isinstance(item["required"], bool):
            spec.required = item["required"]
        else:
            problem((index, "required"), f"`required` on input `{label}` must be true or false, "
                                         f"not `{_show(item['required'])}`")
    spec.defaults = item.get("defaults")
    spec.depends_on = _parse_depends(item, index, label, problem)
    _parse_type_props(spec, item, index, problem)
    _check_default(spec, index, problem)
    return spec


def _opt_text(item: Mapping[str, Any], key: str, index: int, label: str, problem: Report) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        problem((index, key), f"`{key}` on input `{label}` must be text")
        return None
    return str(value)


def _parse_depends(item: Mapping[str, Any], index: int, label: str, problem: Report) -> DependsOn | None:
    if "dependsOn" not in item or item["dependsOn"] is None:
        return None
    raw = item["dependsOn"]
    if not isinstance(raw, Mapping):
        problem((index, "dependsOn"), f"`dependsOn` on input `{label}` must be a mapping, e.g. "
                                      "`dependsOn: {inputs: [other], condition: \"{{ inputs.other == 'x' }}\"}`")
        return None
    for key in raw:
        if key not in _DEPENDS_KEYS:
            close = suggest(str(key), _DEPENDS_KEYS)
            hint = f", did you mean `{close}`?" if close else "; allowed: inputs, condition"
            problem((index, "dependsOn", key),
                    f"unknown property `{_show(key)}` in `dependsOn` of input `{label}`{hint}")
    names: list[str] = []
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if inputs is None:
        inputs = []
    if not isinstance(inputs, list) or not all(isinstance(n, str) for n in inputs):
        problem((index, "dependsOn", "inputs"), f"`dependsOn.inputs` on input `{label}` must be a list of input ids")
    else:
        names = list(inputs)
    condition = raw.get("condition")
    if condition is not None and not isinstance(condition, (str, bool)):
        problem((index, "dependsOn", "condition"), f"`dependsOn.condition` on input `{label}` must be an "
                                                   "expression such as \"{{ inputs.kind == 'refund' }}\"")
        condition = None
    return DependsOn(names, condition)


def _parse_type_props(spec: InputSpec, item: Mapping[str, Any], index: int, problem: Report) -> None:
    from signoff.engine.expressions import is_template
    from signoff.engine.inputs.validate import _Bad, format_bound, to_float, to_int

    t = spec.type
    if t in ("STRING", "SECRET") and item.get("validator") is not None:
        pattern = item["validator"]
        if not isinstance(pattern, str):
            problem((index, "validator"), f"`validator` on input `{spec.id}` must be a regular expression (text)")
        else:
            try:
                re.compile(pattern)
                spec.validator = pattern
            except (re.error, RecursionError, OverflowError) as exc:
                problem((index, "validator"), f"`validator` on input `{spec.id}` is not a valid regular "
                                              f"expression: {getattr(exc, 'msg', exc)}")

    if t in ("INT", "FLOAT", "DURATION"):
        for key in ("min", "max"):
            if item.get(key) is None:
                continue
            value = item[key]
            try:
                if t == "INT":
                    setattr(spec, key, to_int(value))
                elif t == "FLOAT":
                    number = to_float(value)
                    setattr(spec, key, value if isinstance(value, (int, float)) and not isinstance(value, bool)
                            else number)
                else:
                    setattr(spec, key, format_bound("DURATION", value))
            except _Bad:
                if t == "DURATION":
                    msg = (f"invalid duration `{_show(value)}` for `{key}` on input `{spec.id}`: write an "
                           f"ISO-8601 duration such as PT1H, PT30M or P1D")
                else:
                    kind = "an integer" if t == "INT" else "a number"
                    msg = f"`{key}` on input `{spec.id}` must be {kind}, not `{_show(value)}`"
                problem((index, key), msg)
        _check_order(spec, "min", "max", index, problem)

    if t in ("DATE", "DATETIME", "TIME"):
        examples = {"DATE": "2026-01-31", "DATETIME": "2026-01-31T10:15:00Z", "TIME": "\"10:15\""}
        for key in ("after", "before"):
            if item.get(key) is None:
                continue
            value = item[key]
            try:
                setattr(spec, key, format_bound(t, value))
            except _Bad as bad:
                note = " (quote times in YAML: unquoted 10:15 is read as a number)" if (
                    t == "TIME" and isinstance(value, int)) else ""
                problem((index, key), f"`{key}` on input `{spec.id}` is `{_show(value)}`: "
                                      f"{bad.reason}{note}; e.g. `{key}: {examples[t]}`")
        _check_order(spec, "after", "before", index, problem)

    if t in ("SELECT", "MULTISELECT"):
        values = item.get("values")
        if values is None:
            problem((index,), f"input `{spec.id}` of type {t} needs `values`: list the choices, "
                              f"e.g. `values: [APPROVE, REJECT]`")
        elif isinstance(values, str):
            if not is_template(values):
                problem((index, "values"), f"`values` on input `{spec.id}` must be a list such as "
                                           f"`[APPROVE, REJECT]` or an expression `{{{{ ... }}}}`")
            else:
                spec.values = values  # rendered at validation time
        elif not isinstance(values, list) or not values:
            problem((index, "values"), f"`values` on input `{spec.id}` must be a non-empty list, "
                                       f"e.g. `values: [APPROVE, REJECT]`")
        elif any(isinstance(v, (dict, list)) or v is None for v in values):
            problem((index, "values"), f"`values` on input `{spec.id}` must list plain values (text or numbers)")
        else:
            spec.values = list(values)
        if "allowCustomValue" in item:
            if isinstance(item["allowCustomValue"], bool):
                spec.allow_custom_value = item["allowCustomValue"]
            else:
                problem((index, "allowCustomValue"), f"`allowCustomValue` on input `{spec.id}` must be true or false")

    if t == "ARRAY":
        raw = item.get("itemType")
        if raw is None:
            problem((index,), f"input `{spec.id}` of type ARRAY needs `itemType`, one of {', '.join(ITEM_TYPES)}")
        elif not isinstance(raw, str) or raw not in ITEM_TYPES:
            close = suggest(str(raw), ITEM_TYPES)
            hint = f"did you mean `{close}`? " if close else ""
            problem((index, "itemType"), f"unknown itemType `{_show(raw)}` on input `{spec.id}`: "
                                         f"{hint}valid item types are {', '.join(ITEM_TYPES)}")
        else:
            spec.item_type = raw


def _check_order(spec: InputSpec, low_key: str, high_key: str, index: int, problem: Report) -> None:
    from signoff.engine.inputs.validate import _Bad, to_date, to_datetime, to_duration, to_time

    low, high = getattr(spec, low_key), getattr(spec, high_key)
    if low is None or high is None:
        return
    converters: dict[str, Callable[[Any], Any]] = {"DATE": to_date, "DATETIME": to_datetime, "TIME": to_time,
                                                   "DURATION": to_duration}
    convert = converters.get(spec.type, lambda v: v)
    try:
        if convert(low) > convert(high):
            problem((index, high_key), f"`{high_key}` (`{high}`) on input `{spec.id}` is below "
                                       f"`{low_key}` (`{low}`): no value could be accepted")
    except (_Bad, TypeError):
        pass


def _check_default(spec: InputSpec, index: int, problem: Report) -> None:
    """A literal default must itself be a valid value (templates are checked at validation)."""
    from signoff.engine.inputs.validate import InputError, _has_template, coerce_value

    if spec.defaults is None or spec.type == "FILE" or _has_template(spec.defaults) \
            or _has_template(spec.values):
        return
    try:
        spec.defaults = _plain(spec.defaults)
        coerce_value(spec, spec.defaults)
    except InputError as exc:
        problem((index, "defaults"), f"the default of input `{spec.id}` is not valid: {exc.message}")
    except Exception:  # noqa: BLE001 - checked again at validation time
        pass


def _plain(value: Any) -> Any:
    """YAML dates/times in defaults become ISO text (values are stored as JSON)."""
    from signoff.engine.inputs.validate import _jsonable

    try:
        return _jsonable(value)
    except Exception:  # noqa: BLE001 - kept as written; validation reports what is wrong with it
        return value


def _check_nesting(specs: list[InputSpec], index_of: dict[str, int], problem: Report) -> None:
    ids = set(index_of)
    for spec in specs:
        parts = spec.id.split(".")
        for n in range(1, len(parts)):
            prefix = ".".join(parts[:n])
            if prefix in ids:
                key = "id"
                problem((index_of[spec.id], key), f"input `{spec.id}` conflicts with input `{prefix}`: "
                                                  f"`{prefix}` would be both a value and a group; rename one")
                break


def _check_depends(specs: list[InputSpec], index_of: dict[str, int], problem: Report) -> None:
    graph: dict[str, list[str]] = {}
    for spec in specs:
        if spec.depends_on is None:
            continue
        deps: list[str] = []
        for j, name in enumerate(spec.depends_on.inputs):
            if name == spec.id:
                problem((index_of[spec.id], "dependsOn", "inputs", j),
                        f"input `{spec.id}` cannot depend on itself (dependsOn cycle: {spec.id} -> {spec.id})")
            elif name not in index_of:
                close = suggest(name, list(index_of))
                hint = f"did you mean `{close}`?" if close else \
                    f"declared inputs: {', '.join(index_of) or '(none)'}"
                problem((index_of[spec.id], "dependsOn", "inputs", j),
                        f"input `{spec.id}` depends on `{name}`, which is not declared; {hint}")
            else:
                deps.append(name)
        graph[spec.id] = deps

    # Cycles (self-loops were reported above): depth-first search, each cycle reported once.
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []
    seen_cycles: set[frozenset[Any]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    problem((index_of[dep], "dependsOn"),
                            f"dependsOn cycle: {' -> '.join(cycle)}; remove one of these dependencies")
            elif state.get(dep) is None:
                visit(dep)
        stack.pop()
        state[node] = 2

    for spec in specs:
        if state.get(spec.id) is None:
            visit(spec.id)
