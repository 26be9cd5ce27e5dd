"""Property tests: whatever the text and the data, only ExpressionError ever escapes."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.engine.errors import ExpressionError
from signoff.engine.expressions import Template, parse_template, render_data, truthy

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# fragments that make random text look like templates often enough to reach the parser's corners
FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "-", "{{-", "-}}", " ", "'", '"', "\\", "(", ")", "[", "]", "{", "}",
    ",", ":", "?", "??", "???", ".", "..", "|", "~", "+", "*", "/", "%", "==", "!=", "<", ">=", "!", "&&", "||",
    "and", "or", "not", "is", "defined", "null", "empty", "in", "contains", "true", "false", "if", "elseif",
    "else", "endif", "for", "endfor", "set", "=", "raw", "endraw", "x", "y", "inputs", "outputs", "loop",
    "__class__", "_x", "0", "1", "-1", "2.5", "upper", "default", "date", "join", "length", "range", "max",
    "'a'", "'2024-01-01'", "9999999999999999999", "\n",
]

template_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=25).map(" ".join),
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
)
simple_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=5), children, max_size=4)),
    max_leaves=10,
)
variables = st.dictionaries(st.sampled_from(["x", "y", "inputs", "outputs", "loop", "s", "_x"]), simple_values,
                            max_size=5)

# expressions built from the grammar, so evaluation (not just parsing) gets exercised
atoms = st.sampled_from(["x", "y", "inputs", "inputs.a", "x[0]", "x.b", "y['k']", "1", "0", "-2", "2.5", "'s'",
                         "''", "true", "false", "null", "[1, 'a']", "{'k': x}", "range(1, 3)", "max(x, 1)"])
binary_ops = st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "and", "or", "~", "contains", "in",
                              "??", "..", "is defined", "is null", "is empty", "is even", "is not map"])
filters = st.sampled_from(["upper", "lower", "length", "default('d')", "join(',')", "first", "last", "keys",
                           "json", "number", "abs", "round(1)", "split(',')", "slice(0, 1)", "sort", "reverse",
                           "trim", "title", "slugify", "date('yyyy-MM-dd')", "abbreviate(4)", "replace('a', 'b')"])


@st.composite
def expressions(draw, depth=0):
    left = draw(atoms) if depth > 2 or draw(st.booleans()) else draw(expressions(depth=depth + 1))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return left
    if kind == 1:
        op = draw(binary_ops)
        if op.startswith("is"):
            return f"({left} {op})"
        return f"({left} {op} {draw(atoms)})"
    if kind == 2:
        return f"{left} | {draw(filters)}"
    if kind == 3:
        return f"({left} ? {draw(atoms)} : {draw(atoms)})"
    return f"not {left}"


@SETTINGS
@given(template_text)
def test_parse_returns_template_or_expression_error(text):
    try:
        template = parse_template(text)
    except ExpressionError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    assert isinstance(template, Template)
    assert template.source == text


@SETTINGS
@given(template_text, variables)
def test_render_random_text_raises_only_expression_error(text, variables_):
    try:
        template = parse_template(text)
    except ExpressionError:
        return
    try:
        out = template.render(variables_, {})
    except ExpressionError:
        return
    assert isinstance(out, str)


@SETTINGS
@given(expressions(), variables)
def test_evaluate_generated_expressions_raises_only_expression_error(expr, variables_):
    template = parse_template("{{ " + expr + " }}")  # generated expressions are always well-formed
    try:
        template.evaluate(variables_)
        result = template.render(variables_)
    except ExpressionError:
        return
    assert isinstance(result, str)


@SETTINGS
@given(simple_values)
def test_render_data_without_templates_is_identity(value):
    if "{{" in repr(value) or "{%" in repr(value):
        return
    assert render_data(value, {}) == value or value != value


@SETTINGS
@given(simple_values)
def test_truthy_always_returns_a_bool(value):
    assert truthy(value) in (True, False)
