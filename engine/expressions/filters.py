"""Filters (``x | name(args)``), tests (``x is name``) and built-in functions.

Each filter declares its parameter names so arguments (positional or ``name=value``) are
checked when the template is parsed, and an unknown filter fails at flow load time.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import functools
import hashlib
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

from signoff.engine.errors import ExpressionError

from .runtime import MAX_STRING, check_string, is_list, is_map, is_number, make_range, to_json, to_str, type_name


class FilterSpec(NamedTuple):
    fn: Callable[..., Any]
    params: tuple[str, ...]
    required: int = 0
    lenient: bool = False  # receives None instead of failing on an undefined input


def _need_str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if is_number(value) or isinstance(value, bool):
        return to_str(value)
    raise ExpressionError(f"filter `{name}` needs a string, got a {type_name(value)}")


def _need_int(value: Any, what: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ExpressionError(f"{what} must be a whole number, got a {type_name(value)}")


def _need_list(value: Any, name: str) -> list[Any]:
    if is_list(value):
        return list(value)
    raise ExpressionError(f"filter `{name}` needs a list, got a {type_name(value)}")


def f_upper(v: Any) -> str:
    return _need_str(v, "upper").upper()


def f_lower(v: Any) -> str:
    return _need_str(v, "lower").lower()


def f_capitalize(v: Any) -> str:
    s = _need_str(v, "capitalize")
    return s[:1].upper() + s[1:]


def f_title(v: Any) -> str:
    s = _need_str(v, "title")
    out = []
    start = True
    for ch in s:
        out.append(ch.upper() if start else ch.lower())
        start = ch.isspace()
    return "".join(out)


def _is_empty(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    if is_map(v) or is_list(v):
        return len(v) == 0
    return False


def f_default(v: Any, default: Any) -> Any:
    return default if _is_empty(v) else v


def f_length(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str) or is_map(v) or is_list(v):
        return len(v)
    raise ExpressionError(f"filter `length` needs a string, list or map, got a {type_name(v)}")


def f_join(v: Any, sep: Any = None) -> str:
    items = _need_list(v, "join")
    sep_s = "" if sep is None else to_str(sep)
    return check_string(sep_s.join(to_str(x) for x in items))


def f_trim(v: Any) -> str:
    return _need_str(v, "trim").strip()


def f_replace(v: Any, old: Any, new: Any = None) -> str:
    s = _need_str(v, "replace")
    if is_map(old):
        if new is not None:
            raise ExpressionError("filter `replace` takes either a map or two strings")
        pairs = [(to_str(k), to_str(r)) for k, r in old.items()]
    else:
        if new is None:
            raise ExpressionError("filter `replace` needs a map ({'old': 'new'}) or two strings ('old', 'new')")
        pairs = [(to_str(old), to_str(new))]
    for a, b in pairs:
        if not a:
            continue
        if b and s.count(a) * len(b) > MAX_STRING:
            raise ExpressionError(f"string is too long (more than {MAX_STRING} characters)")
        s = s.replace(a, b)
    return check_string(s)


def f_json(v: Any) -> str:
    return to_json(v, compact=True)


def f_number(v: Any, kind: Any = None) -> Any:
    if is_number(v):
        result: Any = v
    elif isinstance(v, str):
        text = v.strip().replace("_", "#")
        try:
            result = int(text) if len(text) < 40 else None
        except ValueError:
            result = None
        if result is None:
            try:
                result = float(text)
            except ValueError:
                raise ExpressionError(f"filter `number`: `{v[:50]}` is not a number") from None
    else:
        raise ExpressionError(f"filter `number` needs a string or a number, got a {type_name(v)}")
    if kind is not None:
        k = to_str(kind).upper()
        if k in ("INT", "INTEGER", "LONG", "SHORT", "BYTE"):
            if isinstance(result, float) and not result.is_integer():
                raise ExpressionError(f"filter `number`: `{to_str(v)}` is not a whole number")
            result = int(result)
        elif k in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
            result = float(result)
        else:
            raise ExpressionError(f"filter `number`: unknown type `{to_str(kind)}` (INT, LONG, FLOAT, DOUBLE)")
    return result


def f_first(v: Any) -> Any:
    if isinstance(v, str) or is_list(v):
        return v[0] if len(v) else None
    if is_map(v):
        for key in v:
            return v[key]
        return None
    raise ExpressionError(f"filter `first` needs a list or string, got a {type_name(v)}")


def f_last(v: Any) -> Any:
    if isinstance(v, str) or is_list(v):
        return v[-1] if len(v) else None
    if is_map(v):
        result = None
        for key in v:
            result = v[key]
        return result
    raise ExpressionError(f"filter `last` needs a list or string, got a {type_name(v)}")


def f_keys(v: Any) -> list[Any]:
    if is_map(v):
        return list(v.keys())
    raise ExpressionError(f"filter `keys` needs a map, got a {type_name(v)}")


def f_values(v: Any) -> list[Any]:
    if is_map(v):
        return list(v.values())
    raise ExpressionError(f"filter `values` needs a map, got a {type_name(v)}")


_SLUG_STRIP = re.compile(r"[^a-z0-9]+")


def f_slugify(v: Any) -> str:
    s = unicodedata.normalize("NFKD", _need_str(v, "slugify")).encode("ascii", "ignore").decode("ascii")
    return _SLUG_STRIP.sub("-", s.lower()).strip("-")


def f_abs(v: Any) -> Any:
    if not is_number(v):
        raise ExpressionError(f"filter `abs` needs a number, got a {type_name(v)}")
    return abs(v)


def f_round(v: Any, precision: Any = None) -> Any:
    if not is_number(v):
        raise ExpressionError(f"filter `round` needs a number, got a {type_name(v)}")
    digits = 0 if precision is None else _need_int(precision, "the precision of `round`")
    if not -20 <= digits <= 20:
        raise ExpressionError("the precision of `round` must be between -20 and 20")
    if type(v) is int and digits >= 0:
        return v
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return v
    try:
        rounded = Decimal(str(v)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ExpressionError("filter `round`: the number is too large") from None
    if digits <= 0:
        return int(rounded)
    return float(rounded)


def f_split(v: Any, sep: Any, limit: Any = None) -> list[str]:
    s = _need_str(v, "split")
    sep_s = to_str(sep)
    if not sep_s:
        raise ExpressionError("filter `split` needs a non-empty separator")
    if limit is None:
        return s.split(sep_s)
    n = _need_int(limit, "the limit of `split`")
    if n <= 0:
        return s.split(sep_s)
    return s.split(sep_s, n - 1)


def f_slice(v: Any, start: Any = None, end: Any = None) -> Any:
    if not (isinstance(v, str) or is_list(v)):
        raise ExpressionError(f"filter `slice` needs a string or a list, got a {type_name(v)}")
    a = 0 if start is None else _need_int(start, "the start of `slice`")
    b = len(v) if end is None else _need_int(end, "the end of `slice`")
    result = v[a:b]
    return list(result) if is_list(v) else result


def _sort_key(x: Any) -> Any:
    if is_number(x):
        return (0, x)
    if isinstance(x, str):
        return (1, x)
    raise ExpressionError(f"filter `sort` can only sort numbers and strings, got a {type_name(x)}")


def f_sort(v: Any) -> list[Any]:
    return sorted(_need_list(v, "sort"), key=_sort_key)


def f_rsort(v: Any) -> list[Any]:
    return sorted(_need_list(v, "rsort"), key=_sort_key, reverse=True)


def f_reverse(v: Any) -> Any:
    if isinstance(v, str):
        return v[::-1]
    return _need_list(v, "reverse")[::-1]


def f_starts_with(v: Any, prefix: Any) -> bool:
    return _need_str(v, "startsWith").startswith(to_str(prefix))


def f_ends_with(v: Any, suffix: Any) -> bool:
    return _need_str(v, "endsWith").endswith(to_str(suffix))


def f_abbreviate(v: Any, width: Any) -> str:
    s = _need_str(v, "abbreviate")
    n = _need_int(width, "the width of `abbreviate`")
    if n < 0:
        raise ExpressionError("the width of `abbreviate` cannot be negative")
    if len(s) <= n:
        return s
    if n < 4:
        return s[:n]
    return s[:n - 3] + "..."


def f_urlencode(v: Any) -> str:
    return urllib.parse.quote_plus(_need_str(v, "urlencode"))


def f_base64encode(v: Any) -> str:
    return base64.b64encode(_need_str(v, "base64encode").encode("utf-8")).decode("ascii")


def f_base64decode(v: Any) -> str:
    try:
        return base64.b64decode(_need_str(v, "base64decode"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ExpressionError("filter `base64decode`: the value is not valid base64 text") from None


def f_sha256(v: Any) -> str:
    return hashlib.sha256(_need_str(v, "sha256").encode("utf-8")).hexdigest()


def f_string(v: Any) -> str:
    return to_str(v)


def f_merge(v: Any, other: Any) -> Any:
    if is_map(v) and is_map(other):
        merged = dict(v)
        merged.update(other)
        return merged
    if is_list(v) and is_list(other):
        return list(v) + list(other)
    raise ExpressionError(f"filter `merge` needs two maps or two lists, got a {type_name(v)} and a {type_name(other)}")


# --------------------------------------------------------------------------- dates

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PATTERN_TOKEN = re.compile(r"'(?:[^']|'')*'?|([A-Za-z])\1*|[^A-Za-z']+")


def _offset(d: _dt.datetime, colon: bool, z_for_zero: bool, hours_only: bool = False) -> str:
    off = d.utcoffset()
    if off is None:
        off = _dt.timedelta(0)
    total = int(off.total_seconds())
    if total == 0 and z_for_zero:
        return "Z"
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    hh, mm = divmod(total // 60, 60)
    if hours_only and mm == 0:
        return f"{sign}{hh:02d}"
    return f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"


def _field(letter: str, count: int) -> Callable[[_dt.datetime], str]:
    if letter in "yu":
        return (lambda d: f"{d.year % 100:02d}") if count == 2 else (lambda d: f"{d.year:0{count}d}")
    if letter in "ML":
        if count >= 4:
            return lambda d: _MONTHS[d.month - 1]
        if count == 3:
            return lambda d: _MONTHS[d.month - 1][:3]
        return lambda d: f"{d.month:0{count}d}"
    if letter == "d":
        return lambda d: f"{d.day:0{count}d}"
    if letter == "D":
        return lambda d: f"{d.timetuple().tm_yday:0{count}d}"
    if letter == "H":
        return lambda d: f"{d.hour:0{count}d}"
    if letter == "k":
        return lambda d: f"{d.hour or 24:0{count}d}"
    if letter == "h":
        return lambda d: f"{(d.hour % 12) or 12:0{count}d}"
    if letter == "K":
        return lambda d: f"{d.hour % 12:0{count}d}"
    if letter == "m":
        return lambda d: f"{d.minute:0{count}d}"
    if letter == "s":
        return lambda d: f"{d.second:0{count}d}"
    if letter == "S":
        return lambda d: f"{d.microsecond:06d}{'0' * max(0, count - 6)}"[:count]
    if letter == "n":
        return lambda d: f"{d.microsecond * 1000:0{count}d}"
    if letter == "E":
        return (lambda d: _DAYS[d.weekday()]) if count >= 4 else (lambda d: _DAYS[d.weekday()][:3])
    if letter == "e":
        return lambda d: f"{d.isoweekday():0{count}d}"
    if letter == "a":
        return lambda d: "AM" if d.hour < 12 else "PM"
    if letter in "Xx":
        z_for_zero = letter == "X"
        if count == 1:
            return lambda d: _offset(d, False, z_for_zero, hours_only=True)
        if count == 2:
            return lambda d: _offset(d, False, z_for_zero)
        return lambda d: _offset(d, True, z_for_zero)
    if letter == "Z":
        return (lambda d: _offset(d, True, True)) if count >= 5 else (lambda d: _offset(d, False, False))
    if letter == "z":
        return lambda d: d.tzname() or "UTC"
    if letter == "V":
        return lambda d: str(getattr(d.tzinfo, "key", None) or d.tzname() or "UTC")
    if letter == "w":
        return lambda d: f"{d.isocalendar()[1]:0{count}d}"
    raise ExpressionError(f"unsupported letter `{letter}` in date format (use yyyy MM dd HH mm ss SSS EEE MMM a XXX Z, "
                          f"quote literal text with '...')")


@functools.lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for m in _PATTERN_TOKEN.finditer(pattern):
        tok = m.group(0)
        if tok.startswith("'"):
            if tok == "''":
                parts.append("'")
            else:
                body = tok[1:-1] if tok.endswith("'") and len(tok) > 1 else tok[1:]
                parts.append(body.replace("''", "'"))
        elif m.group(1):
            parts.append(_field(m.group(1), len(tok)))
        else:
            parts.append(tok)
    return tuple(parts)


_NAMED_FORMATS = {"iso": None, "iso_date_time": None, "sql": "yyyy-MM-dd HH:mm:ss.SSS", "iso_date": "yyyy-MM-dd",
                  "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX", "iso_milli": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"}


def _zone(name: Any) -> _dt.tzinfo:
    key = to_str(name)
    if key.upper() in ("UTC", "Z", "GMT"):
        return _dt.UTC
    if len(key) > 64 or ".." in key or key.startswith("/"):
        raise ExpressionError(f"unknown time zone `{key[:64]}`")
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(key)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError on odd keys
        raise ExpressionError(f"unknown time zone `{key}`") from None


def to_datetime(value: Any) -> tuple[_dt.datetime, bool]:
    """(datetime, is_date_only). Naive datetimes are read as UTC."""
    if isinstance(value, _dt.datetime):
        d = value
    elif isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day), True
    elif is_number(value):
        try:
            d = _dt.datetime.fromtimestamp(float(value), _dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ExpressionError(f"`{value}` is not a valid epoch timestamp") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                d0 = _dt.date.fromisoformat(text)
                return _dt.datetime(d0.year, d0.month, d0.day), True
            d = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ExpressionError(f"`{text[:64]}` is not an ISO date or date-time") from None
    else:
        raise ExpressionError(f"filter `date` needs a date, an ISO date string or an epoch number, "
                              f"got a {type_name(value)}")
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return d, False


def f_date(v: Any, fmt: Any = None, time_zone: Any = None, existing_format: Any = None, locale: Any = None) -> str:
    del existing_format, locale  # accepted for Kestra compatibility; ISO input and English output only
    d, date_only = to_datetime(v)
    if time_zone is not None:
        tz = _zone(time_zone)
        d = d.replace(tzinfo=tz) if date_only else d.astimezone(tz)
    elif date_only:
        d = d.replace(tzinfo=_dt.UTC)
    pattern = None if fmt is None else to_str(fmt)
    if pattern is not None and pattern.lower() in _NAMED_FORMATS:
        pattern = _NAMED_FORMATS[pattern.lower()]
    if pattern is None:
        return d.date().isoformat() if date_only and time_zone is None else d.isoformat()
    if len(pattern) > 200:
        raise ExpressionError("date format is too long")
    return "".join(p if type(p) is str else p(d) for p in _compile_pattern(pattern))


# --------------------------------------------------------------------------- registry

FILTERS: dict[str, FilterSpec] = {
    "upper": FilterSpec(f_upper, ()),
    "lower": FilterSpec(f_lower, ()),
    "capitalize": FilterSpec(f_capitalize, ()),
    "title": FilterSpec(f_title, ()),
    "default": FilterSpec(f_default, ("default",), 1, lenient=True),
    "length": FilterSpec(f_length, ()),
    "join": FilterSpec(f_join, ("separator",)),
    "trim": FilterSpec(f_trim, ()),
    "replace": FilterSpec(f_replace, ("replace_pairs", "replacement"), 1),
    "date": FilterSpec(f_date, ("format", "timeZone", "existingFormat", "locale")),
    "json": FilterSpec(f_json, ()),
    "toJson": FilterSpec(f_json, ()),
    "number": FilterSpec(f_number, ("type",)),
    "first": FilterSpec(f_first, ()),
    "last": FilterSpec(f_last, ()),
    "keys": FilterSpec(f_keys, ()),
    "values": FilterSpec(f_values, ()),
    "slugify": FilterSpec(f_slugify, ()),
    "abs": FilterSpec(f_abs, ()),
    "round": FilterSpec(f_round, ("precision",)),
    "split": FilterSpec(f_split, ("delimiter", "limit"), 1),
    "slice": FilterSpec(f_slice, ("fromIndex", "toIndex")),
    "sort": FilterSpec(f_sort, ()),
    "rsort": FilterSpec(f_rsort, ()),
    "reverse": FilterSpec(f_reverse, ()),
    "startsWith": FilterSpec(f_starts_with, ("prefix",), 1),
    "endsWith": FilterSpec(f_ends_with, ("suffix",), 1),
    "abbreviate": FilterSpec(f_abbreviate, ("length",), 1),
    "urlencode": FilterSpec(f_urlencode, ()),
    "base64encode": FilterSpec(f_base64encode, ()),
    "base64decode": FilterSpec(f_base64decode, ()),
    "sha256": FilterSpec(f_sha256, ()),
    "string": FilterSpec(f_string, ()),
    "merge": FilterSpec(f_merge, ("items",), 1),
}


def _t_empty(v: Any) -> bool:
    return _is_empty(v)


def _t_even(v: Any) -> bool:
    return _need_int(v, "the value tested with `even`") % 2 == 0


def _t_odd(v: Any) -> bool:
    return _need_int(v, "the value tested with `odd`") % 2 == 1


def _t_true(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def _t_false(v: Any) -> bool:
    return v is False or (isinstance(v, str) and v.strip().lower() == "false")


# tests; `defined` and `null` are handled by the compiler because they must see undefined values
TESTS: dict[str, Callable[[Any], bool]] = {
    "defined": lambda v: True,
    "null": lambda v: v is None,
    "empty": _t_empty,
    "even": _t_even,
    "odd": _t_odd,
    "iterable": lambda v: is_list(v) or isinstance(v, (set, frozenset)),
    "map": is_map,
    "true": _t_true,
    "false": _t_false,
}


# --------------------------------------------------------------------------- built-in functions


def fn_range(start: Any, end: Any, step: Any = 1) -> list[int]:
    return make_range(start, end, step)


def _extremes(args: tuple[Any, ...], name: str) -> list[Any]:
    items = list(args[0]) if len(args) == 1 and is_list(args[0]) else list(args)
    if not items:
        raise ExpressionError(f"`{name}()` needs at least one value")
    numbers = all(is_number(x) for x in items)
    strings = all(isinstance(x, str) for x in items)
    if not (numbers or strings):
        raise ExpressionError(f"`{name}()` needs numbers (or strings), got "
                              + ", ".join(sorted({type_name(x) for x in items})))
    return items


def fn_max(*args: Any) -> Any:
    return max(_extremes(args, "max"))


def fn_min(*args: Any) -> Any:
    return min(_extremes(args, "min"))


def fn_from_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise ExpressionError(f"`fromJson()` needs a string, got a {type_name(text)}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ExpressionError(f"`fromJson()`: invalid JSON ({exc})") from None


BUILTIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "range": fn_range,
    "max": fn_max,
    "min": fn_min,
    "fromJson": fn_from_json,
    "json": fn_from_json,
}

