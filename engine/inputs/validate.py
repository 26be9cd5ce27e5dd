"""Validation of input values against their declarations (Kestra's input types).

Message formats (matched on Kestra, ``core/src/main/java/io/kestra/core/models/flows/input/*.java``
and ``core/src/main/java/io/kestra/core/runners/FlowInputOutput.java``; Kestra wraps each reason
as "Invalid input for `id`, <reason>, but received `<value>`"):

* missing:   ``Missing required input:`amount```
* a refusal: ``Invalid input for `amount`, <reason>, but received `<value>```, where reason is
  - INT/FLOAT/DURATION bounds (IntInput/FloatInput/DurationInput): ``it must be less than `10000```
    and ``it must be more than `1``` -- bounds are inclusive, as in Kestra (compareTo < 0 fails);
  - DATE/DATETIME/TIME bounds (DateInput/DateTimeInput/TimeInput): ``it must be after `X```,
    ``it must be before `X``` -- inclusive too (Kestra refuses only isBefore(after)/isAfter(before));
  - STRING/SECRET validator (StringInput): ``it must match the pattern `^[a-z]+$```;
  - SELECT/MULTISELECT (SelectInput): ``it must match the values `[A, B]```;
  - a value of the wrong shape: ``it must be an integer``, ``it must be a number``,
    ``it must be `true` or `false` (or yes/no, 1/0)``, ``it must be a date such as `2026-01-31```,
    ``it must be valid JSON (Expecting value at line 1, column 1)``, ... (Kestra says
    "Expected `INT` but received `abc`"; we say what to write instead).
* ARRAY items are named by index: ``Invalid input for `tags[1]`, it must be an integer, but received `x```.
* SECRET values are never echoed: ``but received `***```.
* unknown keys: ``Unknown input `foo`; the flow declares: a, b``.

The received value is shown truncated to 80 characters, newlines escaped.
"""
from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from signoff.engine.durations import format_duration, parse_duration
from signoff.engine.errors import UsageError
from signoff.engine.inputs import uploads
from signoff.engine.inputs.spec import InputSpec

__all__ = ["InputError", "ValidationResult", "validate_inputs", "coerce_value", "nest_values",
           "select_choices", "show_value"]


class InputError(UsageError):
    """One value refused; ``message`` is the full, user-facing sentence."""


class _Bad(Exception):
    """A reason a value is refused, before it is wrapped into Kestra's sentence."""

    def __init__(self, reason: str, shown: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.shown = shown


@dataclass
class ValidationResult:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    visible: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- display ----------------------------------------------------------------------------------

_SHOW_LIMIT = 80


def show_value(value: Any, limit: int = _SHOW_LIMIT) -> str:
    """How a received value appears in a message: text as is, other values as JSON, truncated."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = str(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _s(value: Any) -> str:
    """String form used to compare SELECT values and show lists like Java's List.toString."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _refusal(input_id: str, reason: str, shown: str) -> str:
    return f"Invalid input for `{input_id}`, {reason}, but received `{shown}`"


# --- scalar parsers (shared with parse.py for min/max/after/before) ---------------------------

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME_RE = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?")
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?")
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

INT_REASON = "it must be an integer"
FLOAT_REASON = "it must be a number"
BOOL_REASON = "it must be `true` or `false` (or yes/no, 1/0)"
DATE_REASON = "it must be a date such as `2026-01-31`"
DATETIME_REASON = "it must be a date-time such as `2026-01-31T10:15:00Z`"
NAIVE_REASON = "it must include a time zone: add `Z` for UTC or an offset such as `+02:00`"
TIME_REASON = "it must be a time such as `10:15` or `10:15:30`"
DURATION_REASON = "it must be an ISO-8601 duration such as `PT1H`, `PT30M` or `P1D`"
URI_REASON = "it must be a URI with a scheme, such as `https://example.com/path`"
EMAIL_REASON = "it must be an email address such as `name@example.com`"
STRING_REASON = "it must be a text value"
LIST_REASON = "it must be a list, a JSON array or comma-separated values"


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad(INT_REASON)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Bad(INT_REASON)
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        try:
            return int(value.strip())
        except ValueError:  # more digits than Python converts
            raise _Bad(INT_REASON) from None
    raise _Bad(INT_REASON)


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad(FLOAT_REASON)
    try:
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            out = float(value.strip())
        else:
            raise _Bad(FLOAT_REASON)
    except OverflowError:
        raise _Bad(FLOAT_REASON) from None
    if not math.isfinite(out):
        raise _Bad(FLOAT_REASON)
    return out


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise _Bad(DATE_REASON)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        m = _DATE_RE.fullmatch(value.strip())
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                pass
    raise _Bad(DATE_REASON)


def to_datetime(value: Any) -> datetime:
    """An aware datetime, in UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _Bad(NAIVE_REASON)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise _Bad(DATETIME_REASON) from None
    if not isinstance(value, str):
        raise _Bad(DATETIME_REASON)
    m = _DATETIME_RE.fullmatch(value.strip())
    if m is None:
        raise _Bad(DATETIME_REASON)
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    if z is None and sign is None:
        raise _Bad(NAIVE_REASON)
    try:
        tz = UTC
        if sign is not None:
            off = timedelta(hours=int(oh), minutes=int(om or 0))
            tz = timezone(-off if sign == "-" else off)
        micro = int((frac + "000000")[:6]) if frac else 0
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), micro, tzinfo=tz)
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Bad(DATETIME_REASON) from None


def to_time(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        m = _TIME_RE.fullmatch(value.strip())
        if m:
            h, mi, s, frac = m.groups()
            try:
                micro = int((frac + "000000")[:6]) if frac else 0
                return time(int(h), int(mi), int(s or 0), micro)
            except ValueError:
                pass
    raise _Bad(TIME_REASON)


def to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise _Bad(DURATION_REASON)


def format_datetime(dt: datetime) -> str:
    """UTC ISO form with Z, fraction only when there is one (like java.time.Instant)."""
    dt = dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_time(t: time) -> str:
    text = f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if t.microsecond:
        text += "." + f"{t.microsecond:06d}".rstrip("0")
    return text


def format_bound(type_: str, value: Any) -> str:
    """The canonical text of a min/max/after/before bound (JSON-able, shown in messages)."""
    if type_ == "DATE":
        return to_date(value).isoformat()
    if type_ == "DATETIME":
        return format_datetime(to_datetime(value))
    if type_ == "TIME":
        return format_time(to_time(value))
    if type_ == "DURATION":
        return format_duration(to_duration(value))
    raise ValueError(type_)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Make a parsed YAML/JSON value storable as JSON (dates to ISO text, keys to text)."""
    if depth > 200:
        raise _Bad("it is nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("it must not contain NaN or infinite numbers")
        return value
    if isinstance(value, datetime):
        return format_datetime(value) if value.tzinfo else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {_s(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --- templates (engine.expressions is imported lazily) -----------------------------------------

def _has_template(obj: Any) -> bool:
    from signoff.engine.expressions import contains_template

    return contains_template(obj)


def _render(obj: Any, variables: Mapping[str, Any], functions: Mapping[str, Any] | None) -> Any:
    """Render templates in ``obj``; a text that is one ``{{ expr }}`` gives the native value."""
    from signoff.engine import expressions  # lazy: heavy to import

    if isinstance(obj, str) and expressions.is_template(obj):
        return expressions.evaluate(obj, variables, functions)
    return expressions.render_data(obj, variables, functions)


# Wider than expressions.truthy on purpose: a text result (a form answer) is also false as no/0/null.
_FALSE_TEXTS = frozenset({"", "false", "0", "no", "null", "none"})


def _condition_true(condition: Any, variables: Mapping[str, Any], functions: Mapping[str, Any] | None) -> bool:
    from signoff.engine import expressions

    if isinstance(condition, bool):
        return condition
    if not isinstance(condition, str):
        return expressions.truthy(condition)
    value = _render(condition, variables, functions)
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXTS
    return bool(expressions.truthy(value))


def _error_text(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


# --- per-type coercion --------------------------------------------------------------------------

@dataclass
class _Ctx:
    variables: Mapping[str, Any]
    functions: Mapping[str, Any] | None
    store_file: Callable[[uploads.FileContent], str] | None
    #: may a FILE value be a path on this host (embedded engine, a flow's defaults)?
    local_paths: bool = True


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _Bad(STRING_REASON)


def _check_pattern(spec: InputSpec, text: str, shown: str | None = None) -> None:
    if spec.validator is None:
        return
    try:
        rx = _regex(str(spec.validator))
    except re.error:
        raise _Bad(f"its validator `{spec.validator}` is not a valid regular expression",
                   shown) from None
    if rx.fullmatch(text) is None:
        raise _Bad(f"it must match the pattern `{spec.validator}`", shown)


def _c_string(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    text = _text(value)
    _check_pattern(spec, text)
    return text


def _c_secret(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    try:
        text = _text(value)
    except _Bad as bad:
        raise _Bad(bad.reason, "***") from None
    _check_pattern(spec, text, "***")
    return text


def _check_bounds(spec: InputSpec, value: Any, convert: Callable[[Any], Any],
                  fmt: Callable[[Any], str] | None = None) -> None:
    """Inclusive bounds, as in Kestra (a bound that does not convert is ignored): ``min``/``max``,
    shown as written, without ``fmt``; else ``after``/``before``, shown as ``fmt(bound)``."""
    if fmt is None:
        checks = ((spec.min, "more than", operator.lt), (spec.max, "less than", operator.gt))
    else:
        checks = ((spec.after, "after", operator.lt), (spec.before, "before", operator.gt))
    for bound, word, outside in checks:
        if bound is None:
            continue
        try:
            limit = convert(bound)
        except _Bad:
            continue
        if outside(value, limit):
            raise _Bad(f"it must be {word} `{_s(bound) if fmt is None else fmt(limit)}`")


def _c_int(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_int(value)
    _check_bounds(spec, out, to_float)
    return out


def _c_float(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_float(value)
    _check_bounds(spec, out, to_float)
    return out


def _c_duration(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_duration(value)
    _check_bounds(spec, out, to_duration)
    return format_duration(out)


def _c_bool(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
    raise _Bad(BOOL_REASON)


def _c_date(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_date(value)
    _check_bounds(spec, out, to_date, date.isoformat)
    return out.isoformat()


def _c_datetime(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_datetime(value)
    _check_bounds(spec, out, to_datetime, format_datetime)
    return format_datetime(out)


def _c_time(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    out = to_time(value)
    _check_bounds(spec, out, to_time, format_time)
    return format_time(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _c_json(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, str):
        return _jsonable(value)
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Bad(f"it must be valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"it must be valid JSON ({_error_text(exc)})") from None


def _c_yaml(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    import yaml

    if not isinstance(value, str):
        return _jsonable(value)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise _Bad(f"it must be valid YAML ({problem}{where})") from None
    except Exception as exc:  # noqa: BLE001 - yaml's constructors raise ValueError, RecursionError...
        raise _Bad(f"it must be valid YAML ({_error_text(exc)})") from None
    return _jsonable(parsed)


def _c_uri(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, str):
        raise _Bad(URI_REASON)
    text = value.strip()
    if not text or any(c.isspace() for c in text):
        raise _Bad(URI_REASON)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise _Bad(URI_REASON) from None
    if not parts.scheme or not _SCHEME_RE.fullmatch(parts.scheme) or not (parts.netloc or parts.path):
        raise _Bad(URI_REASON)
    return text


def _c_email(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, str):
        raise _Bad(EMAIL_REASON)
    text = value.strip()
    if len(text) > 254 or not _EMAIL_RE.fullmatch(text):
        raise _Bad(EMAIL_REASON)
    return text


def _c_file(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    """Uploaded content (any caller) or a local path (the embedded engine, a flow's defaults);
    engine.inputs.uploads says why a server never reads a path its caller names."""
    try:
        if uploads.is_upload(value):
            found = uploads.decode_upload(value)
        elif not isinstance(value, str) or not value.strip():
            raise _Bad("it must be the path of a file" if ctx.local_paths else _UPLOAD_ONLY)
        elif not ctx.local_paths:
            raise _Bad(_UPLOAD_ONLY, shown=show_value(value))
        else:
            found = uploads.read_local(value)
    except uploads.FileValueError as bad:
        raise _Bad(bad.reason, shown=bad.shown) from None
    if ctx.store_file is None:
        raise _Bad("files cannot be given here; give the file when you start the flow")
    try:
        return ctx.store_file(found)
    except OSError as exc:
        raise _Bad(f"the file could not be stored ({exc.strerror or exc})", shown=found.name) from None
    except Exception as exc:  # noqa: BLE001 - a storage failure is reported, never raised
        raise _Bad(f"the file could not be stored ({_error_text(exc)})", shown=found.name) from None


_UPLOAD_ONLY = ("a path on the server cannot be given here: send the file's content as "
                "{\"name\": ..., \"content_base64\": ...} (the signoff CLI and console do this for you)")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                raise _Bad(LIST_REASON) from None
            if isinstance(parsed, list):
                return parsed
            raise _Bad(LIST_REASON)
        return [part.strip() for part in text.split(",") if part.strip()]
    raise _Bad(LIST_REASON)


def _select_values(spec: InputSpec, ctx: _Ctx) -> list[Any]:
    values = spec.values
    if _has_template(values):
        try:
            values = _render(values, ctx.variables, ctx.functions)
        except Exception as exc:  # noqa: BLE001 - ExpressionError, or engine.expressions missing
            raise _Bad(f"its `values` could not be rendered ({_error_text(exc)})") from None
        if isinstance(values, str):
            try:
                values = _as_list(values)
            except _Bad:
                raise _Bad("its `values` expression did not give a list") from None
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise _Bad("its `values` expression did not give a list")
    return list(values)


def select_choices(spec: InputSpec, *, variables: Mapping[str, Any] | None = None,
                   functions: Mapping[str, Any] | None = None) -> list[Any]:
    """The values a SELECT or MULTISELECT offers, its ``values`` template rendered as the
    validation renders it (so a form shows exactly the choices the engine accepts); raises
    :class:`InputError` when they cannot be rendered."""
    try:
        return _select_values(spec, _Ctx(variables or {}, functions, None))
    except _Bad as bad:
        raise InputError(f"Invalid input for `{spec.id}`, {bad.reason}") from None


def _values_reason(values: list[Any]) -> str:
    return f"it must match the values `[{', '.join(_s(v) for v in values)}]`"


def _pick(values: list[Any], item: Any, allow_custom: bool) -> tuple[bool, Any]:
    if isinstance(item, (dict, list, tuple)):
        return False, None
    key = _s(item)
    for v in values:
        if _s(v) == key:
            return True, v
    if allow_custom:
        return True, key if not isinstance(item, (int, float)) or isinstance(item, bool) else item
    return False, None


def _c_select(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    values = _select_values(spec, ctx)
    ok, picked = _pick(values, value, spec.allow_custom_value)
    if not ok:
        raise _Bad(_values_reason(values))
    return picked


def _c_multiselect(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    items = _as_list(value)
    values = _select_values(spec, ctx)
    out: list[Any] = []
    bad: list[str] = []
    for item in items:
        ok, picked = _pick(values, item, spec.allow_custom_value)
        if not ok:
            bad.append(show_value(item))
        elif picked not in out:
            out.append(picked)
    if bad:
        raise _Bad(_values_reason(values), show_value(", ".join(bad)))
    return out


def _c_array(spec: InputSpec, value: Any, ctx: _Ctx) -> Any:
    items = _as_list(value)
    item_type = (spec.item_type or "").upper()
    convert = _COERCERS.get(item_type)
    if convert is None or item_type in ("ARRAY", "FILE", "SELECT", "MULTISELECT", "SECRET"):
        return [_jsonable(item) for item in items]
    item_spec = InputSpec(id=spec.id, type=item_type)
    out: list[Any] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            out.append(convert(item_spec, item, ctx))
        except _Bad as bad:
            shown = bad.shown if bad.shown is not None else show_value(item)
            problems.append(_refusal(f"{spec.id}[{index}]", bad.reason, shown))
    if problems:
        raise InputError("; ".join(problems))
    return out


_COERCERS: dict[str, Callable[[InputSpec, Any, _Ctx], Any]] = {
    "STRING": _c_string, "SECRET": _c_secret, "INT": _c_int, "FLOAT": _c_float,
    "BOOLEAN": _c_bool, "BOOL": _c_bool, "SELECT": _c_select, "ENUM": _c_select,
    "MULTISELECT": _c_multiselect, "DATE": _c_date, "DATETIME": _c_datetime, "TIME": _c_time,
    "DURATION": _c_duration, "JSON": _c_json, "YAML": _c_yaml, "URI": _c_uri, "EMAIL": _c_email,
    "FILE": _c_file, "ARRAY": _c_array,
}


def coerce_value(spec: InputSpec, raw_value: Any, *, variables: Mapping[str, Any] | None = None,
                 functions: Mapping[str, Any] | None = None,
                 store_file: Callable[[uploads.FileContent], str] | None = None, local_paths: bool = True) -> Any:
    """Check one given (non-missing) value against ``spec``; return its canonical JSON-able form.

    Raises :class:`InputError` with the user-facing message. ``variables``/``functions`` render
    a SELECT's templated ``values``; ``store_file`` stores a FILE input's content and returns
    its URI; ``local_paths`` says whether a FILE value may name a file on this host.
    """
    ctx = _Ctx(variables or {}, functions, store_file, local_paths)
    convert = _COERCERS.get(str(spec.type).upper())
    if convert is None:
        raise InputError(f"Invalid input for `{spec.id}`, its type `{spec.type}` is unknown")
    try:
        return convert(spec, raw_value, ctx)
    except _Bad as bad:
        secret = str(spec.type).upper() == "SECRET"
        shown = "***" if secret else (bad.shown if bad.shown is not None else show_value(raw_value))
        raise InputError(_refusal(spec.id, bad.reason, shown)) from None


# --- the whole form --------------------------------------------------------------------------

def nest_values(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict) and isinstance(value, dict):
            node[last] = {**value, **node[last]}
        elif not isinstance(node.get(last), dict):
            node[last] = value
    return out


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _flatten_raw(raw: Mapping[str, Any], ids: set[str], prefixes: set[str]) -> tuple[dict[str, Any], list[str]]:
    """Raw keys to declared ids: dotted keys as is, nested maps walked; returns (flat, unknown)."""
    flat: dict[str, Any] = {}
    unknown: list[str] = []

    def walk(mapping: Mapping[Any, Any], prefix: str) -> None:
        for key, value in mapping.items():
            full = f"{prefix}{key}"
            if full in ids:
                flat[full] = value
            elif isinstance(value, Mapping) and full in prefixes:
                walk(value, full + ".")
            else:
                unknown.append(full)

    walk(raw, "")
    return flat, unknown


def _order(specs: list[InputSpec]) -> list[InputSpec]:
    """Declaration order, each input after the inputs its dependsOn names."""
    by_id = {s.id: s for s in specs}
    done: set[str] = set()
    active: set[str] = set()
    out: list[InputSpec] = []

    def visit(spec: InputSpec) -> None:
        if spec.id in done or spec.id in active:
            return
        active.add(spec.id)
        for dep in (spec.depends_on.inputs if spec.depends_on else []) or []:
            if isinstance(dep, str) and dep in by_id:
                visit(by_id[dep])
        active.discard(spec.id)
        done.add(spec.id)
        out.append(spec)

    for spec in specs:
        visit(spec)
    return out


def _is_missing(spec: InputSpec, value: Any) -> bool:
    if value is None:
        return True
    t = str(spec.type).upper()
    if isinstance(value, str) and value == "" and t != "STRING":
        return True
    if isinstance(value, str) and not value.strip() and t not in ("STRING", "SECRET"):
        return True
    if t == "MULTISELECT" and isinstance(value, (list, tuple)) and not value:
        return True
    return False


def validate_inputs(specs: list[InputSpec], raw: Mapping[str, Any], *,
                    variables: Mapping[str, Any] | None = None, functions: Mapping[str, Any] | None = None,
                    store_file: Callable[[uploads.FileContent], str] | None = None,
                    local_paths: bool = True) -> ValidationResult:
    """Validate every input at once; never raises for a bad value (see ``ValidationResult.errors``).

    ``raw`` keys are dotted ids or nested maps; values are text (command line) or typed JSON.
    ``defaults`` templates and ``dependsOn.condition`` see ``variables`` with ``inputs`` set to the
    caller's ``inputs`` (if any) merged with the values validated so far (dependency order).
    ``local_paths`` False (a server): a FILE value given by the caller must be uploaded content;
    a flow's own FILE ``defaults`` may still name a file on this host.
    """
    result = ValidationResult()
    base_vars = dict(variables or {})
    given = base_vars.get("inputs")
    base_inputs: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    ids = [s.id for s in specs]
    id_set = set(ids)
    prefixes = {".".join(i.split(".")[:n]) for i in ids for n in range(1, i.count(".") + 1)}
    if not isinstance(raw, Mapping):
        raw = {}
    flat, unknown = _flatten_raw(raw, id_set, prefixes)

    flat_values: dict[str, Any] = {}
    shown: set[str] = set()

    def current_vars() -> dict[str, Any]:
        out = dict(base_vars)
        out["inputs"] = _deep_merge(base_inputs, nest_values(flat_values))
        return out

    for spec in _order(specs):
        try:
            _validate_one(spec, flat, flat_values, shown, result, current_vars, functions, store_file,
                          local_paths)
        except Exception as exc:  # noqa: BLE001 - a form must always get an answer
            result.errors[spec.id] = f"Invalid input for `{spec.id}`, {_error_text(exc)}"

    for key in unknown:
        declared = ", ".join(ids) if ids else "(none)"
        result.errors[key] = f"Unknown input `{key}`; the flow declares: {declared}"

    result.visible = [i for i in ids if i in shown]
    result.values = nest_values({i: flat_values[i] for i in ids if i in flat_values})
    return result


def _validate_one(spec: InputSpec, flat: Mapping[str, Any], flat_values: dict[str, Any],
                  shown: set[str], result: ValidationResult, current_vars: Callable[[], dict[str, Any]],
                  functions: Mapping[str, Any] | None, store_file: Callable[[uploads.FileContent], str] | None,
                  local_paths: bool) -> None:
    dep = spec.depends_on
    if dep is not None:
        for name in dep.inputs or []:
            if name not in shown or name in result.errors:
                return  # hidden: a dependency is hidden or invalid
        if dep.condition not in (None, ""):
            try:
                visible = _condition_true(dep.condition, current_vars(), functions)
            except Exception as exc:  # noqa: BLE001 - ExpressionError or a missing module
                result.errors[spec.id] = (f"Invalid input for `{spec.id}`, its dependsOn condition "
                                          f"`{show_value(dep.condition)}` failed: {_error_text(exc)}")
                return
            if not visible:
                return
    shown.add(spec.id)

    value = flat.get(spec.id)
    from_flow = False
    if _is_missing(spec, value) and spec.defaults is not None:
        value, from_flow = spec.defaults, True
        if _has_template(value):
            try:
                value = _render(value, current_vars(), functions)
            except Exception as exc:  # noqa: BLE001 - ExpressionError or a failing function: reported
                result.errors[spec.id] = (f"Invalid input for `{spec.id}`, its default "
                                          f"`{show_value(spec.defaults)}` could not be rendered: "
                                          f"{_error_text(exc)}")
                return
    if _is_missing(spec, value):
        if spec.required:
            result.errors[spec.id] = f"Missing required input:`{spec.id}`"
        else:
            flat_values[spec.id] = None
        return
    try:
        variables = current_vars() if _has_template(spec.values) else None
        flat_values[spec.id] = coerce_value(spec, value, variables=variables, functions=functions,
                                            store_file=store_file, local_paths=local_paths or from_flow)
    except InputError as exc:
        result.errors[spec.id] = exc.message
