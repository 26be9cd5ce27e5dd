"""Values at run time: printing, truthiness, sandboxed data access and operators.

Only plain data is ever looked into: maps (``Mapping``), lists/tuples and strings. Nothing here
calls ``getattr`` on a value, so a template can never reach Python internals.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from signoff.engine.errors import ExpressionError

MAX_STRING = 10_000_000          # characters a single produced string may have
MAX_INT = 2 ** 63 - 1            # Pebble numbers are Java longs; we refuse to overflow
MIN_INT = -(2 ** 63)
MAX_RANGE = 100_000              # items a range may produce
MAX_LOOP_ITERATIONS = 1_000_000  # loop iterations per render
MAX_OUTPUT = 10_000_000          # characters one render may emit through {{ }} in total


class UndefinedError(ExpressionError):
    """A variable, key or index that does not exist (or a lookup through null).

    ``is defined``, ``is null``, ``??`` and ``| default`` catch exactly this.
    """


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, (_dt.datetime, _dt.date)):
        return "date"
    return "value"


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return plain_str(value)


def plain_str(value: Any) -> str:
    """``str(value)`` for value types that define their own text (UUID, Path, Enum...); never an
    object's default ``<... object at 0x...>`` repr."""
    own_str: object = type(value).__str__
    if own_str is object.__str__:
        raise ExpressionError("this value cannot be shown: it is not plain data")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value's own __str__ may raise anything
        raise ExpressionError("this value cannot be shown: it is not plain data") from None


def to_json(value: Any, *, compact: bool = True) -> str:
    try:
        if compact:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (ValueError, TypeError, RecursionError):
        raise ExpressionError(f"this {type_name(value)} cannot be written as JSON") from None


def format_float(value: float) -> str:
    """Like Java's ``Double.toString``: ``1.0``, ``0.5``, ``1.0E7``, ``1.5E-4``, ``NaN``."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        if "e" in text or "E" in text:  # pragma: no cover - repr never uses exponent in this range
            text = f"{value:f}"
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    digits_text = "".join(map(str, digits)).rstrip("0") or "0"
    exp10 = len(digits) + exponent - 1  # type: ignore[operator]  # finite here: the exponent is an int
    mantissa = digits_text[0] + "." + (digits_text[1:] or "0")
    return ("-" if sign else "") + mantissa + "E" + str(exp10)


def to_str(value: Any) -> str:
    """How ``{{ value }}`` prints a value."""
    t = type(value)
    if t is str:
        text: str = value
        return text
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return format_float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return format_float(float(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (Mapping, list, tuple)):
        return to_json(value, compact=False)
    return plain_str(value)


def truthy(value: Any) -> bool:
    """Condition truthiness: bools as is; "true"/"false" strings (any case, trimmed) as booleans;
    null, "", 0 and empty collections are false; everything else is true."""
    if value is True:
        return True
    if value is False or value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "false" or not text:
            return False
        return True
    if isinstance(value, (int, float, Decimal)):
        return value != 0
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return len(value) > 0
    return True


def check_string(text: str) -> str:
    if len(text) > MAX_STRING:
        raise ExpressionError(f"string is too long (more than {MAX_STRING} characters)")
    return text


def check_int(value: Any) -> Any:
    if type(value) is int and not (MIN_INT <= value <= MAX_INT):
        raise ExpressionError("integer overflow: the result does not fit in 64 bits")
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return type(value) is list or isinstance(value, (list, tuple))


# --------------------------------------------------------------------------- access


def get_key(obj: Any, key: Any, path: str, position: int) -> Any:
    """``obj.key`` / ``obj[key]`` on plain data only."""
    if type(obj) is dict or isinstance(obj, Mapping):
        if isinstance(key, str) and key.startswith("_"):
            raise ExpressionError(f"access to `{key}` is not allowed: names starting with `_` are private",
                                  position=position)
        try:
            return obj[key]
        except KeyError:
            pass
        except TypeError:
            raise ExpressionError(f"a {type_name(key)} cannot be used as a map key", position=position) from None
        if type(key) is int:
            try:
                return obj[str(key)]
            except KeyError:
                pass
        raise UndefinedError(f"`{path}` is not defined", position=position)
    if type(obj) is list or isinstance(obj, (list, tuple, str)):
        if type(key) is not int:
            if isinstance(key, str) and key.lstrip("-").isdigit() and len(key) < 20:
                key = int(key)
            elif isinstance(key, str):
                raise UndefinedError(f"`{path}` is not defined: a {type_name(obj)} has no key `{key}`",
                                     position=position)
            else:
                raise ExpressionError(f"a {type_name(obj)} index must be a whole number, not a {type_name(key)}",
                                      position=position)
        size = len(obj)
        if -size <= key < size:
            return obj[key]
        raise UndefinedError(f"`{path}` is not defined: index {key} is out of range (length {size})",
                             position=position)
    if obj is None:
        raise UndefinedError(f"`{path}` is not defined: its parent is null", position=position)
    raise UndefinedError(f"`{path}` is not defined: a {type_name(obj)} has no attributes", position=position)


# --------------------------------------------------------------------------- operators


def _num(value: Any, op: str) -> Any:
    if is_number(value):
        return value
    raise ExpressionError(f"`{op}` needs numbers, got a {type_name(value)}")


def _arith_pair(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    a = _num(a, op)
    b = _num(b, op)
    if isinstance(a, Decimal) != isinstance(b, Decimal):
        a, b = float(a), float(b)
    return a, b


def op_add(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        a, b = _arith_pair(a, b, "+")
        return check_int(a + b)
    if isinstance(a, str) and isinstance(b, str):
        return check_string(a + b)
    if is_list(a) and is_list(b):
        if len(a) + len(b) > MAX_RANGE * 10:
            raise ExpressionError("list is too long")
        return list(a) + list(b)
    raise ExpressionError(f"cannot add a {type_name(a)} and a {type_name(b)}")


def op_sub(a: Any, b: Any) -> Any:
    a, b = _arith_pair(a, b, "-")
    return check_int(a - b)


def op_mul(a: Any, b: Any) -> Any:
    a, b = _arith_pair(a, b, "*")
    return check_int(a * b)


def op_div(a: Any, b: Any) -> Any:
    a, b = _arith_pair(a, b, "/")
    if b == 0:
        raise ExpressionError("division by zero")
    if type(a) is int and type(b) is int:
        if a % b == 0:
            return check_int(a // b)
        return a / b
    try:
        return a / b
    except (ArithmeticError, ValueError) as exc:  # Decimal edge cases
        raise ExpressionError(f"cannot divide: {exc}") from None


def op_mod(a: Any, b: Any) -> Any:
    a, b = _arith_pair(a, b, "%")
    if b == 0:
        raise ExpressionError("division by zero in `%`")
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)  # Java semantics: the sign follows the dividend
        return -r if a < 0 else r
    return math.fmod(a, b)


def op_neg(a: Any) -> Any:
    return check_int(-_num(a, "-"))


def op_pos(a: Any) -> Any:
    return _num(a, "+")


def op_eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if a is None or b is None:
        return a is b
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        if not ((is_map(a) and is_map(b)) or (is_list(a) and is_list(b))):
            return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic values: not equal
        return False


def _comparable(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    if is_number(a) and is_number(b):
        if isinstance(a, Decimal) != isinstance(b, Decimal):
            return float(a), float(b)
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, _dt.datetime) and isinstance(b, _dt.datetime):
        if (a.tzinfo is None) == (b.tzinfo is None):
            return a, b
    elif isinstance(a, _dt.date) and isinstance(b, _dt.date) and not isinstance(a, _dt.datetime) \
            and not isinstance(b, _dt.datetime):
        return a, b
    raise ExpressionError(f"cannot compare a {type_name(a)} with a {type_name(b)} using `{op}`")


def op_lt(a: Any, b: Any) -> bool:
    a, b = _comparable(a, b, "<")
    return bool(a < b)


def op_gt(a: Any, b: Any) -> bool:
    a, b = _comparable(a, b, ">")
    return bool(a > b)


def op_le(a: Any, b: Any) -> bool:
    a, b = _comparable(a, b, "<=")
    return bool(a <= b)


def op_ge(a: Any, b: Any) -> bool:
    a, b = _comparable(a, b, ">=")
    return bool(a >= b)


def op_contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        raise ExpressionError(f"a string can only contain a string, not a {type_name(item)}")
    if is_map(container):
        try:
            return item in container
        except TypeError:
            return False
    if is_list(container):
        if is_list(item):  # Pebble: a list contains a list when it contains all its items
            return all(any(op_eq(x, y) for x in container) for y in item)
        return any(op_eq(x, item) for x in container)
    raise ExpressionError(f"`contains` needs a string, list or map on its left, got a {type_name(container)}")


def op_concat(a: Any, b: Any) -> str:
    return check_string(to_str(a) + to_str(b))


def op_range(a: Any, b: Any) -> list[int]:
    return make_range(a, b, 1)


def make_range(a: Any, b: Any, step: Any = 1) -> list[int]:
    for v in (a, b, step):
        if type(v) is not int:
            if isinstance(v, float) and v.is_integer():
                continue
            raise ExpressionError(f"a range needs whole numbers, got a {type_name(v)}")
    a, b, step = int(a), int(b), int(step)
    if step == 0:
        raise ExpressionError("a range step cannot be 0")
    count = (b - a) // step + 1
    if count > MAX_RANGE:
        raise ExpressionError(f"range is too large ({count} items, at most {MAX_RANGE})")
    if count <= 0:
        return []
    return list(range(a, b + (1 if step > 0 else -1), step))


BINARY_OPS = {
    "+": op_add, "-": op_sub, "*": op_mul, "/": op_div, "%": op_mod,
    "==": op_eq, "!=": lambda a, b: not op_eq(a, b),
    "<": op_lt, ">": op_gt, "<=": op_le, ">=": op_ge,
    "contains": op_contains, "in": lambda a, b: op_contains(b, a), "not in": lambda a, b: not op_contains(b, a),
    "~": op_concat, "..": op_range,
}
