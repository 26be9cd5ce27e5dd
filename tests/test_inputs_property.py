"""Property tests: validation answers for any raw value and never raises."""
from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.engine.durations import format_duration, parse_duration
from signoff.engine.errors import Locator
from signoff.engine.inputs import InputSpec, ValidationResult, parse_input_specs, validate_inputs

SPECS = [
    InputSpec(id="s", type="STRING", validator="^[a-z]{1,5}$"),
    InputSpec(id="i", type="INT", min=0, max=100),
    InputSpec(id="f", type="FLOAT", min=-1.5, max=1.5),
    InputSpec(id="b", type="BOOLEAN"),
    InputSpec(id="bb", type="BOOL", required=False),
    InputSpec(id="sel", type="SELECT", values=["A", "B", 3]),
    InputSpec(id="ms", type="MULTISELECT", values=["A", "B"]),
    InputSpec(id="d", type="DATE", after="2020-01-01", before="2030-01-01"),
    InputSpec(id="dt", type="DATETIME", after="2020-01-01T00:00:00Z"),
    InputSpec(id="t", type="TIME", before="18:00:00"),
    InputSpec(id="du", type="DURATION", min="PT1M", max="P1D"),
    InputSpec(id="j", type="JSON"),
    InputSpec(id="y", type="YAML"),
    InputSpec(id="u", type="URI"),
    InputSpec(id="e", type="EMAIL"),
    InputSpec(id="sec", type="SECRET", validator="^x+$"),
    InputSpec(id="file", type="FILE", required=False),
    InputSpec(id="arr", type="ARRAY", item_type="INT"),
    InputSpec(id="arrd", type="ARRAY", item_type="DATETIME"),
    InputSpec(id="n.deep.v", type="INT", required=False),
]
IDS = [s.id for s in SPECS]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
interesting_text = st.sampled_from([
    "", " ", "0", "1", "-1", "12.5", "1e999", "nan", "true", "FALSE", "yes", "A", "A,B", "A, C", "[\"A\"]", "[",
    "2026-01-31", "2026-02-30", "2026-01-31T10:15:00Z", "2026-01-31T10:15:00", "9999-12-31T23:59:59-23:59",
    "10:15", "24:00", "PT1H", "P99999999999D", "-PT5M", "{\"a\": 1}", "a: [1", "https://x.y", "a@b.co",
    "file:///etc/passwd", "/", "[1, 2]", "1, x", "\x00", "🙂" * 100, "9" * 5000,
])
raw_value = st.one_of(st.text(max_size=60), interesting_text, json_values)


def _store(path: str) -> str:
    return "file:///stored"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(IDS), raw_value, max_size=len(IDS)))
def test_any_values_give_a_result(raw):
    result = validate_inputs(SPECS, raw, store_file=_store)
    assert isinstance(result, ValidationResult)
    json.dumps(result.values)  # always storable
    for message in result.errors.values():
        assert isinstance(message, str) and message
        assert len(message) < 2000
    if "sec" in result.errors:  # a secret is never echoed
        message = result.errors["sec"]
        assert message == "Missing required input:`sec`" or message.endswith(", but received `***`")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SPECS), raw_value)
def test_each_type_alone(spec, value):
    result = validate_inputs([spec], {spec.id: value})
    assert result.ok or spec.id in result.errors
    assert set(result.errors) <= {spec.id}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_keys(raw):
    result = validate_inputs(SPECS[:3], raw)
    assert isinstance(result, ValidationResult)


yaml_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(
        ["STRING", "INT", "SELECT", "ARRAY", "DURATION", "DATE", "id", "type", "PT1H", "[a-"]),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "name", "type", "required", "defaults", "min", "max", "after", "before", "values",
                         "itemType", "validator", "dependsOn", "inputs", "condition", "displayName", "zzz"]),
        c, max_size=6),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(yaml_like, max_size=5) | yaml_like)
def test_parse_never_raises(items):
    specs, problems = parse_input_specs(items, ("inputs",), Locator("f.yml"))
    for spec in specs:
        InputSpec.from_dict(spec.to_dict())
        validate_inputs(specs, {})


@settings(max_examples=200, deadline=None)
@given(st.timedeltas(min_value=timedelta(days=-10**6), max_value=timedelta(days=10**6)))
def test_duration_round_trip(td):
    assert parse_duration(format_duration(td)) == td


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_duration_parse_only_value_error(text):
    try:
        parse_duration(text)
    except ValueError as exc:
        assert str(exc).startswith("invalid duration `")
