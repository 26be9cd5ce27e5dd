"""Input declarations (parse) and values (validate), Kestra's input types."""
from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from signoff.engine.errors import InvalidInputs, Location, Locator
from signoff.engine.inputs import (
    DependsOn,
    InputError,
    InputSpec,
    ValidationResult,
    coerce_value,
    parse_input_specs,
    show_value,
    validate_inputs,
)
from signoff.engine.inputs.files import DeferredFiles
from signoff.engine.inputs.uploads import MAX_FILE_BYTES, FileContent, paths_to_uploads

# ---------------------------------------------------------------------------------------------
# helpers


class PathLocator(Locator):
    """Gives each distinct path its own line, so a test can assert where a problem points."""

    def __init__(self) -> None:
        super().__init__("flow.yml")
        self.lines: dict[tuple, int] = {}

    def at(self, path):
        path = tuple(path)
        if path not in self.lines:
            self.lines[path] = len(self.lines) + 1
        return Location(self.file, self.lines[path], 1)


def parse(text: str, path=("inputs",)):
    loc = PathLocator()
    items = yaml.safe_load(text)
    specs, problems = parse_input_specs(items, path, loc)
    return specs, problems, loc


def only_problem(text: str, path=("inputs",)):
    specs, problems, loc = parse(text, path)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0], loc


def S(type_: str, id: str = "x", **kw: Any) -> InputSpec:
    return InputSpec(id=id, type=type_, **kw)


def accepted(spec: InputSpec, raw: Any, **kw: Any) -> Any:
    result = validate_inputs([spec], {spec.id: raw}, **kw)
    assert result.ok, result.errors
    value = result.values
    for part in spec.id.split("."):
        value = value[part]
    return value


def refused(spec: InputSpec, raw: Any, **kw: Any) -> str:
    result = validate_inputs([spec], {spec.id: raw}, **kw)
    assert not result.ok, result.values
    assert list(result.errors) == [spec.id]
    assert spec.id not in result.values
    return result.errors[spec.id]


def needs_expressions():
    """Tests of templates run once engine.expressions (written concurrently) provides its API."""
    import signoff.engine.expressions as mod

    return mod


# ---------------------------------------------------------------------------------------------
# values: accepted, per type

ACCEPTED = [
    ("STRING", {}, "hello", "hello"),
    ("STRING", {}, "", ""),
    ("STRING", {}, 12, "12"),
    ("STRING", {}, True, "true"),
    ("STRING", {"validator": "^[a-z]+$"}, "abc", "abc"),
    ("STRING", {"validator": "[a-z]+"}, "abc", "abc"),  # fullmatch
    ("INT", {}, "12", 12),
    ("INT", {}, " -7 ", -7),
    ("INT", {}, 12, 12),
    ("INT", {}, 12.0, 12),
    ("INT", {"min": 1, "max": 10}, "10", 10),  # bounds inclusive (Kestra)
    ("INT", {"min": 1, "max": 10}, 1, 1),
    ("FLOAT", {}, "12.5", 12.5),
    ("FLOAT", {}, "1e3", 1000.0),
    ("FLOAT", {}, 3, 3.0),
    ("FLOAT", {"min": 0.5, "max": 1.5}, "1.5", 1.5),
    ("BOOLEAN", {}, True, True),
    ("BOOLEAN", {}, False, False),
    ("BOOLEAN", {}, "true", True),
    ("BOOLEAN", {}, "FALSE", False),
    ("BOOLEAN", {}, "Yes", True),
    ("BOOLEAN", {}, "no", False),
    ("BOOLEAN", {}, "1", True),
    ("BOOLEAN", {}, "0", False),
    ("BOOLEAN", {}, 1, True),
    ("BOOL", {}, 0, False),
    ("SELECT", {"values": ["A", "B"]}, "A", "A"),
    ("SELECT", {"values": [1, 2]}, "2", 2),
    ("SELECT", {"values": ["A"], "allow_custom_value": True}, "Z", "Z"),
    ("MULTISELECT", {"values": ["A", "B", "C"]}, ["A", "C"], ["A", "C"]),
    ("MULTISELECT", {"values": ["A", "B", "C"]}, '["B"]', ["B"]),
    ("MULTISELECT", {"values": ["A", "B", "C"]}, "A, B", ["A", "B"]),
    ("MULTISELECT", {"values": ["A", "B"]}, "A,A", ["A"]),
    ("MULTISELECT", {"values": ["A"], "allow_custom_value": True}, "A,Q", ["A", "Q"]),
    ("DATE", {}, "2026-01-31", "2026-01-31"),
    ("DATE", {"after": "2026-01-01", "before": "2026-12-31"}, "2026-01-01", "2026-01-01"),
    ("DATETIME", {}, "2026-01-31T10:15:00Z", "2026-01-31T10:15:00Z"),
    ("DATETIME", {}, "2026-01-31T12:15:00+02:00", "2026-01-31T10:15:00Z"),
    ("DATETIME", {}, "2026-01-31 10:15Z", "2026-01-31T10:15:00Z"),
    ("DATETIME", {}, "2026-01-31T10:15:00.250-01:00", "2026-01-31T11:15:00.25Z"),
    ("DATETIME", {"after": "2026-01-31T10:15:00Z"}, "2026-01-31T10:15:00Z", "2026-01-31T10:15:00Z"),
    ("TIME", {}, "10:15", "10:15:00"),
    ("TIME", {}, "10:15:30", "10:15:30"),
    ("TIME", {}, "23:59:59.5", "23:59:59.5"),
    ("TIME", {"after": "09:00:00", "before": "17:00:00"}, "17:00", "17:00:00"),
    ("DURATION", {}, "PT1H", "PT1H"),
    ("DURATION", {}, "pt90m", "PT1H30M"),
    ("DURATION", {}, "P1W", "P7D"),
    ("DURATION", {"min": "PT1M", "max": "PT1H"}, "PT60M", "PT1H"),
    ("JSON", {}, '{"a": [1, 2]}', {"a": [1, 2]}),
    ("JSON", {}, "3", 3),
    ("JSON", {}, {"a": 1}, {"a": 1}),
    ("JSON", {}, [1, "x"], [1, "x"]),
    ("YAML", {}, "a: 1\nb: [x, y]", {"a": 1, "b": ["x", "y"]}),
    ("YAML", {}, "when: 2026-01-31", {"when": "2026-01-31"}),
    ("YAML", {}, {"a": 1}, {"a": 1}),
    ("URI", {}, "https://example.com/path?q=1", "https://example.com/path?q=1"),
    ("URI", {}, "mailto:someone@example.com", "mailto:someone@example.com"),
    ("URI", {}, "s3://bucket/key", "s3://bucket/key"),
    ("EMAIL", {}, "name@example.com", "name@example.com"),
    ("EMAIL", {}, " first.last+tag@sub.example.co.uk ", "first.last+tag@sub.example.co.uk"),
    ("SECRET", {}, "s3cr3t", "s3cr3t"),
    ("SECRET", {"validator": "^[a-z0-9]+$"}, "s3cr3t", "s3cr3t"),
    ("ARRAY", {"item_type": "INT"}, [1, "2"], [1, 2]),
    ("ARRAY", {"item_type": "INT"}, "[1, 2, 3]", [1, 2, 3]),
    ("ARRAY", {"item_type": "INT"}, "1, 2", [1, 2]),
    ("ARRAY", {"item_type": "STRING"}, "a,b", ["a", "b"]),
    ("ARRAY", {"item_type": "DATE"}, ["2026-01-31"], ["2026-01-31"]),
    ("ARRAY", {"item_type": "BOOLEAN"}, "yes,no", [True, False]),
    ("ARRAY", {"item_type": "INT"}, [], []),
]


@pytest.mark.parametrize("type_, props, raw, expected", ACCEPTED)
def test_accepted(type_, props, raw, expected):
    value = accepted(S(type_, **props), raw)
    assert value == expected
    assert type(value) is type(expected)


# ---------------------------------------------------------------------------------------------
# values: refused, per type, with the exact message

DT_EX = "it must be a date-time such as `2026-01-31T10:15:00Z`"
REFUSED = [
    ("STRING", {"validator": "^[a-z]+$"}, "ABC",
     "Invalid input for `x`, it must match the pattern `^[a-z]+$`, but received `ABC`"),
    ("STRING", {"validator": "[a-z]+"}, "abc1",
     "Invalid input for `x`, it must match the pattern `[a-z]+`, but received `abc1`"),
    ("STRING", {}, {"a": 1}, 'Invalid input for `x`, it must be a text value, but received `{"a": 1}`'),
    ("INT", {}, "12.5", "Invalid input for `x`, it must be an integer, but received `12.5`"),
    ("INT", {}, "abc", "Invalid input for `x`, it must be an integer, but received `abc`"),
    ("INT", {}, "1_000", "Invalid input for `x`, it must be an integer, but received `1_000`"),
    ("INT", {}, True, "Invalid input for `x`, it must be an integer, but received `true`"),
    ("INT", {}, 12.5, "Invalid input for `x`, it must be an integer, but received `12.5`"),
    ("INT", {"max": 10000}, "25000",
     "Invalid input for `x`, it must be less than `10000`, but received `25000`"),
    ("INT", {"min": 1}, 0, "Invalid input for `x`, it must be more than `1`, but received `0`"),
    ("FLOAT", {}, "abc", "Invalid input for `x`, it must be a number, but received `abc`"),
    ("FLOAT", {}, "nan", "Invalid input for `x`, it must be a number, but received `nan`"),
    ("FLOAT", {}, "1e999", "Invalid input for `x`, it must be a number, but received `1e999`"),
    ("FLOAT", {"max": 1.5}, "1.6", "Invalid input for `x`, it must be less than `1.5`, but received `1.6`"),
    ("FLOAT", {"min": 0.5}, 0.1, "Invalid input for `x`, it must be more than `0.5`, but received `0.1`"),
    ("BOOLEAN", {}, "maybe",
     "Invalid input for `x`, it must be `true` or `false` (or yes/no, 1/0), but received `maybe`"),
    ("BOOLEAN", {}, "tru",
     "Invalid input for `x`, it must be `true` or `false` (or yes/no, 1/0), but received `tru`"),
    ("BOOL", {}, 2, "Invalid input for `x`, it must be `true` or `false` (or yes/no, 1/0), but received `2`"),
    ("SELECT", {"values": ["A", "B"]}, "C",
     "Invalid input for `x`, it must match the values `[A, B]`, but received `C`"),
    ("SELECT", {"values": ["A", "B"], "required": False}, "C",
     "Invalid input for `x`, it must match the values `[A, B]`, but received `C`"),
    ("SELECT", {"values": ["A", "B"]}, ["A"],
     'Invalid input for `x`, it must match the values `[A, B]`, but received `["A"]`'),
    ("MULTISELECT", {"values": ["A", "B"]}, "A,C,D",
     "Invalid input for `x`, it must match the values `[A, B]`, but received `C, D`"),
    ("MULTISELECT", {"values": ["A", "B"]}, '["A", ',
     'Invalid input for `x`, it must be a list, a JSON array or comma-separated values, but received `["A", `'),
    ("MULTISELECT", {"values": ["A", "B"]}, 5,
     "Invalid input for `x`, it must be a list, a JSON array or comma-separated values, but received `5`"),
    ("DATE", {}, "31/01/2026",
     "Invalid input for `x`, it must be a date such as `2026-01-31`, but received `31/01/2026`"),
    ("DATE", {}, "2026-02-30",
     "Invalid input for `x`, it must be a date such as `2026-01-31`, but received `2026-02-30`"),
    ("DATE", {}, "20260131", "Invalid input for `x`, it must be a date such as `2026-01-31`, but received `20260131`"),
    ("DATE", {"after": "2026-01-01"}, "2025-12-31",
     "Invalid input for `x`, it must be after `2026-01-01`, but received `2025-12-31`"),
    ("DATE", {"before": "2026-01-01"}, "2026-01-02",
     "Invalid input for `x`, it must be before `2026-01-01`, but received `2026-01-02`"),
    ("DATETIME", {}, "2026-01-31T10:15:00",
     "Invalid input for `x`, it must include a time zone: add `Z` for UTC or an offset such as `+02:00`, "
     "but received `2026-01-31T10:15:00`"),
    ("DATETIME", {}, "2026-01-31", f"Invalid input for `x`, {DT_EX}, but received `2026-01-31`"),
    ("DATETIME", {}, "yesterday", f"Invalid input for `x`, {DT_EX}, but received `yesterday`"),
    ("DATETIME", {}, "2026-13-01T00:00:00Z", f"Invalid input for `x`, {DT_EX}, but received `2026-13-01T00:00:00Z`"),
    ("DATETIME", {"after": "2026-01-31T10:15:00Z"}, "2026-01-31T11:14:59+01:00",
     "Invalid input for `x`, it must be after `2026-01-31T10:15:00Z`, but received `2026-01-31T11:14:59+01:00`"),
    ("DATETIME", {"before": "2026-01-31T10:15:00Z"}, "2026-01-31T10:15:01Z",
     "Invalid input for `x`, it must be before `2026-01-31T10:15:00Z`, but received `2026-01-31T10:15:01Z`"),
    ("TIME", {}, "25:00",
     "Invalid input for `x`, it must be a time such as `10:15` or `10:15:30`, but received `25:00`"),
    ("TIME", {}, "10h15",
     "Invalid input for `x`, it must be a time such as `10:15` or `10:15:30`, but received `10h15`"),
    ("TIME", {}, 615, "Invalid input for `x`, it must be a time such as `10:15` or `10:15:30`, but received `615`"),
    ("TIME", {"after": "09:00"}, "08:59:59",
     "Invalid input for `x`, it must be after `09:00:00`, but received `08:59:59`"),
    ("TIME", {"before": "17:00"}, "17:00:01",
     "Invalid input for `x`, it must be before `17:00:00`, but received `17:00:01`"),
    ("DURATION", {}, "1h",
     "Invalid input for `x`, it must be an ISO-8601 duration such as `PT1H`, `PT30M` or `P1D`, but received `1h`"),
    ("DURATION", {"max": "PT1H"}, "PT2H", "Invalid input for `x`, it must be less than `PT1H`, but received `PT2H`"),
    ("DURATION", {"min": "PT1M"}, "PT30S", "Invalid input for `x`, it must be more than `PT1M`, but received `PT30S`"),
    ("JSON", {}, '{"a": }',
     "Invalid input for `x`, it must be valid JSON (Expecting value at line 1, column 7), but received `{\"a\": }`"),
    ("JSON", {}, '{\n"a": 1,\n}',
     "Invalid input for `x`, it must be valid JSON (Expecting property name enclosed in double quotes at "
     "line 3, column 1), but received `{\\n\"a\": 1,\\n}`"),
    ("JSON", {}, "NaN", "Invalid input for `x`, it must be valid JSON (NaN is not allowed), but received `NaN`"),
    ("YAML", {}, "a: [1, 2",
     "Invalid input for `x`, it must be valid YAML (expected ',' or ']', but got '<stream end>' at line 1, "
     "column 9), but received `a: [1, 2`"),
    ("URI", {}, "example.com/path",
     "Invalid input for `x`, it must be a URI with a scheme, such as `https://example.com/path`, but received "
     "`example.com/path`"),
    ("URI", {}, "https://",
     "Invalid input for `x`, it must be a URI with a scheme, such as `https://example.com/path`, but received `https://`"),
    ("URI", {}, "http://a b", "Invalid input for `x`, it must be a URI with a scheme, such as "
                              "`https://example.com/path`, but received `http://a b`"),
    ("EMAIL", {}, "not-an-email",
     "Invalid input for `x`, it must be an email address such as `name@example.com`, but received `not-an-email`"),
    ("EMAIL", {}, "a@b",
     "Invalid input for `x`, it must be an email address such as `name@example.com`, but received `a@b`"),
    ("EMAIL", {}, "a b@example.com",
     "Invalid input for `x`, it must be an email address such as `name@example.com`, but received `a b@example.com`"),
    ("SECRET", {"validator": "^[0-9]{6}$"}, "hunter2",
     "Invalid input for `x`, it must match the pattern `^[0-9]{6}$`, but received `***`"),
    ("SECRET", {}, ["hunter2"], "Invalid input for `x`, it must be a text value, but received `***`"),
    ("ARRAY", {"item_type": "INT"}, "1, x, 3",
     "Invalid input for `x[1]`, it must be an integer, but received `x`"),
    ("ARRAY", {"item_type": "INT"}, ["a", 2, "b"],
     "Invalid input for `x[0]`, it must be an integer, but received `a`; "
     "Invalid input for `x[2]`, it must be an integer, but received `b`"),
    ("ARRAY", {"item_type": "DATE"}, '["2026-01-31", "tomorrow"]',
     "Invalid input for `x[1]`, it must be a date such as `2026-01-31`, but received `tomorrow`"),
    ("ARRAY", {"item_type": "INT"}, {"a": 1},
     'Invalid input for `x`, it must be a list, a JSON array or comma-separated values, but received `{"a": 1}`'),
]


@pytest.mark.parametrize("type_, props, raw, message", REFUSED)
def test_refused(type_, props, raw, message):
    assert refused(S(type_, **props), raw) == message


def test_secret_value_never_echoed():
    msg = refused(S("SECRET", validator="^x$"), "topsecretvalue")
    assert "topsecretvalue" not in msg


def test_coerce_value_raises_input_error():
    with pytest.raises(InputError) as exc:
        coerce_value(S("INT", id="amount", max=10000), 25000)
    assert exc.value.message == "Invalid input for `amount`, it must be less than `10000`, but received `25000`"
    assert exc.value.exit_code == 2
    assert coerce_value(S("INT"), "5") == 5


def test_long_values_truncated_to_80():
    raw = "y" * 200
    msg = refused(S("INT"), raw)
    shown = msg.split("but received `", 1)[1][:-1]
    assert len(shown) == 80 and shown.endswith("…") and shown.startswith("yyyy")


def test_bad_validator_from_stored_spec_is_a_message_not_a_crash():
    spec = InputSpec.from_dict({"id": "x", "type": "STRING", "validator": "[a-"})
    assert refused(spec, "abc") == (
        "Invalid input for `x`, its validator `[a-` is not a valid regular expression, but received `abc`")


# --- FILE ----------------------------------------------------------------------------------------

def test_file_is_stored(tmp_path):
    f = tmp_path / "doc.txt"
    f.write_text("hello")
    calls = []

    def store(file: FileContent) -> str:
        calls.append(file)
        return "file:///store/doc.txt"

    assert accepted(S("FILE"), str(f), store_file=store) == "file:///store/doc.txt"
    assert calls == [FileContent("doc.txt", b"hello")]
    assert accepted(S("FILE"), f"file://{f}", store_file=store) == "file:///store/doc.txt"


def test_file_uploaded_content_is_stored_with_its_name():
    calls = []

    def store(file: FileContent) -> str:
        calls.append(file)
        return f"file:///store/{file.name}"

    upload = {"name": "q3 report.csv", "content_base64": base64.b64encode(b"a,b\n1,2\n").decode()}
    for local_paths in (True, False):
        assert accepted(S("FILE"), upload, store_file=store, local_paths=local_paths) == "file:///store/q3 report.csv"
    assert calls == [FileContent("q3 report.csv", b"a,b\n1,2\n")] * 2
    empty = {"name": "empty.txt", "content_base64": ""}
    assert accepted(S("FILE"), empty, store_file=store, local_paths=False) == "file:///store/empty.txt"


def test_a_server_refuses_a_path_and_never_reads_it(tmp_path):
    secret = tmp_path / "secret.key"
    secret.write_text("do not read")
    calls = []
    for given in (str(secret), f"file://{secret}", "/etc/shadow", "~/.ssh/id_ed25519"):
        message = refused(S("FILE"), given, store_file=calls.append, local_paths=False)
        assert message.startswith("Invalid input for `x`, a path on the server cannot be given here: send the "
                                  "file's content as {\"name\": ..., \"content_base64\": ...}")
        assert message.endswith(f"but received `{show_value(given)}`")  # long paths are cut at 80
    assert calls == []


def test_a_flows_own_default_path_is_still_read_by_a_server(tmp_path):
    template = tmp_path / "template.csv"
    template.write_text("id,amount\n")
    spec = InputSpec.from_dict({"id": "x", "type": "FILE", "defaults": str(template)})
    stored: list[FileContent] = []
    result = validate_inputs([spec], {}, store_file=lambda f: stored.append(f) or "file:///t", local_paths=False)
    assert result.ok and result.values == {"x": "file:///t"}
    assert stored == [FileContent("template.csv", b"id,amount\n")]


@pytest.mark.parametrize(("upload", "reason", "shown"), [
    ({"name": "a.txt"}, "an uploaded file must be an object with exactly `name` and `content_base64` "
     "(missing content_base64)", "a.txt"),
    ({"name": "a.txt", "content_base64": "", "path": "/etc/shadow"},
     "an uploaded file must be an object with exactly `name` and `content_base64` (unknown path)", "a.txt"),
    ({"name": "../../etc/cron.d/x", "content_base64": ""}, "`name` must be a file name, without folders "
     "(no / or \\)", "../../etc/cron.d/x"),
    ({"name": "..", "content_base64": ""}, "`name` must be a plain file name (no control characters, "
     "not . or ..)", ".."),
    ({"name": "a\x00b", "content_base64": ""}, "`name` must be a plain file name (no control characters, "
     "not . or ..)", "a\x00b"),
    ({"name": "", "content_base64": ""}, "`name` must be the file's name (text, not empty)", ""),
    ({"name": 7, "content_base64": ""}, "`name` must be the file's name (text, not empty)", "int"),
    ({"name": "x" * 256, "content_base64": ""}, "`name` is longer than 255 bytes", "x" * 80),
    ({"name": "a.txt", "content_base64": "not base64!"}, "`content_base64` is not valid base64", "a.txt"),
    ({"name": "a.txt", "content_base64": 12}, "`content_base64` must be text (the file's bytes in base64)",
     "a.txt"),
    ({"name": "big.bin", "content_base64": "A" * (4 * ((MAX_FILE_BYTES + 2) // 3) + 4)},
     "the file is larger than 10 MiB", "big.bin"),
])
def test_upload_refusals_name_what_is_wrong(upload, reason, shown):
    calls: list[FileContent] = []
    message = refused(S("FILE"), upload, store_file=calls.append, local_paths=False)
    assert message == f"Invalid input for `x`, {reason}, but received `{shown}`"
    assert calls == []


def test_a_file_over_the_limit_is_refused(tmp_path):
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    assert refused(S("FILE"), str(big), store_file=lambda f: "file:///x") == (
        f"Invalid input for `x`, the file is larger than 10 MiB, but received `{show_value(str(big))}`")
    exact = {"name": "max.bin", "content_base64": base64.b64encode(bytes(MAX_FILE_BYTES)).decode()}
    assert accepted(S("FILE"), exact, store_file=lambda f: f"file:///{len(f.content)}") == f"file:///{MAX_FILE_BYTES}"


def test_file_refusals(tmp_path):
    def store(file: FileContent) -> str:
        return "file:///x"

    missing = str(tmp_path / "nope.txt")
    assert refused(S("FILE"), missing, store_file=store) == (
        f"Invalid input for `x`, it must be the path of an existing file, but received `{missing}`")
    assert refused(S("FILE"), str(tmp_path), store_file=store) == (
        f"Invalid input for `x`, it must be a file, not a directory, but received `{tmp_path}`")
    f = tmp_path / "a.txt"
    f.write_text("a")
    assert refused(S("FILE"), str(f)) == (
        "Invalid input for `x`, files cannot be given here; give the file when you start the flow, "
        f"but received `{f}`")
    assert refused(S("FILE"), 5, store_file=store) == (
        "Invalid input for `x`, it must be the path of a file, but received `5`")

    def broken(file: FileContent) -> str:
        raise OSError(28, "No space left on device")

    assert refused(S("FILE"), str(f), store_file=broken) == (
        "Invalid input for `x`, the file could not be stored (No space left on device), but received `a.txt`")


def test_held_files_are_stored_only_when_asked_and_a_failure_names_the_input():
    files = DeferredFiles()
    placeholder = files.take(FileContent("a.csv", b"x"))
    values = {"doc": placeholder, "nested": {"file": files.take(FileContent("b.csv", b"y"))}, "n": 3}
    stored: list[str] = []
    assert files.store_all(values, lambda f: stored.append(f.name) or f"file:///{f.name}") == {
        "doc": "file:///a.csv", "nested": {"file": "file:///b.csv"}, "n": 3}
    assert stored == ["a.csv", "b.csv"]

    def full(file: FileContent) -> str:
        raise OSError(28, "No space left on device")

    with pytest.raises(InvalidInputs) as refused_start:
        files.store_all({"nested": {"file": placeholder}}, full)
    assert refused_start.value.errors == {"nested.file": "Invalid input for `nested.file`, the file could not be "
                                                         "stored (No space left on device), but received `a.csv`"}


def test_file_not_regular(tmp_path):
    assert refused(S("FILE"), str(tmp_path), store_file=lambda p: "file:///x").startswith(
        "Invalid input for `x`, ")


def test_a_client_turns_local_paths_of_file_inputs_into_uploads(tmp_path):
    report = tmp_path / "report.csv"
    report.write_bytes(b"\x00\x01binary")
    sent, errors = paths_to_uploads({"doc", "nested.file"}, {
        "doc": str(report), "note": str(report), "nested": {"file": str(report), "other": 1},
        "missing": "x"})
    upload = {"name": "report.csv", "content_base64": base64.b64encode(b"\x00\x01binary").decode()}
    assert errors == {}
    assert sent == {"doc": upload, "note": str(report), "nested": {"file": upload, "other": 1}, "missing": "x"}
    # the console's live check: the file is checked, its bytes are not sent
    assert paths_to_uploads({"doc"}, {"doc": str(report)}, content=False) == (
        {"doc": {"name": "report.csv", "content_base64": ""}}, {})
    directory = paths_to_uploads({"doc"}, {"doc": str(tmp_path)}, content=False)
    assert directory[1] == {"doc": f"Invalid input for `doc`, it must be a file, not a directory, but received "
                                   f"`{show_value(str(tmp_path))}`"}
    sent, errors = paths_to_uploads({"doc"}, {"doc": str(tmp_path / "gone.csv")})
    assert sent == {} and errors == {"doc": "Invalid input for `doc`, it must be the path of an existing file, "
                                            f"but received `{show_value(str(tmp_path / 'gone.csv'))}`"}


# --- required / missing / unknown ------------------------------------------------------------------

def test_missing_required():
    result = validate_inputs([S("INT", id="amount")], {})
    assert result.errors == {"amount": "Missing required input:`amount`"}
    assert not result.ok


@pytest.mark.parametrize("type_", ["INT", "DATE", "SELECT", "BOOLEAN"])
def test_empty_text_is_missing(type_):
    spec = S(type_, id="a", values=["A"])
    assert validate_inputs([spec], {"a": ""}).errors == {"a": "Missing required input:`a`"}
    assert validate_inputs([spec], {"a": None}).errors == {"a": "Missing required input:`a`"}


def test_empty_string_is_a_string():
    assert accepted(S("STRING"), "") == ""


def test_empty_multiselect_is_missing():
    spec = S("MULTISELECT", id="m", values=["A"])
    assert validate_inputs([spec], {"m": []}).errors == {"m": "Missing required input:`m`"}


def test_optional_missing_is_null():
    result = validate_inputs([S("INT", id="a", required=False)], {})
    assert result.ok and result.values == {"a": None} and result.visible == ["a"]


def test_literal_default_used_and_validated():
    result = validate_inputs([S("INT", id="a", defaults=5), S("INT", id="b", defaults="x"),
                              S("DATE", id="c", defaults="2026-01-31")], {})
    assert result.values == {"a": 5, "c": "2026-01-31"}
    assert result.errors == {"b": "Invalid input for `b`, it must be an integer, but received `x`"}
    # a given value wins over the default
    assert validate_inputs([S("INT", id="a", defaults=5)], {"a": "7"}).values == {"a": 7}


def test_unknown_keys():
    result = validate_inputs([S("STRING", id="a"), S("STRING", id="b")], {"a": "1", "b": "2", "foo": 1})
    assert result.errors == {"foo": "Unknown input `foo`; the flow declares: a, b"}
    assert result.values == {"a": "1", "b": "2"}
    assert validate_inputs([], {"foo": 1}).errors == {"foo": "Unknown input `foo`; the flow declares: (none)"}


def test_every_failing_field_reported_at_once():
    specs = [S("INT", id="amount", max=10000), S("EMAIL", id="mail"), S("DATE", id="when"),
             S("STRING", id="ok"), S("SELECT", id="kind", values=["A"])]
    result = validate_inputs(specs, {"amount": "25000", "mail": "nope", "ok": "fine", "kind": "B", "zzz": 1})
    assert result.errors == {
        "amount": "Invalid input for `amount`, it must be less than `10000`, but received `25000`",
        "mail": "Invalid input for `mail`, it must be an email address such as `name@example.com`, "
                "but received `nope`",
        "when": "Missing required input:`when`",
        "kind": "Invalid input for `kind`, it must match the values `[A]`, but received `B`",
        "zzz": "Unknown input `zzz`; the flow declares: amount, mail, when, ok, kind",
    }
    assert result.values == {"ok": "fine"}
    assert result.visible == ["amount", "mail", "when", "ok", "kind"]
    assert isinstance(result, ValidationResult) and not result.ok


def test_values_are_json_serialisable():
    import json

    specs = [S("DATETIME", id="t"), S("DURATION", id="d"), S("YAML", id="y"), S("TIME", id="h")]
    result = validate_inputs(specs, {"t": "2026-01-31T10:15:00Z", "d": "PT1H", "y": "a: 2026-01-31",
                                     "h": "10:15"})
    assert result.ok
    json.dumps(result.values)


# --- dotted ids ------------------------------------------------------------------------------

def test_dotted_ids_nest():
    specs = [S("INT", id="nested.more.int"), S("STRING", id="nested.string"), S("STRING", id="top")]
    result = validate_inputs(specs, {"nested.more.int": "3", "nested.string": "s", "top": "t"})
    assert result.ok
    assert result.values == {"nested": {"more": {"int": 3}, "string": "s"}, "top": "t"}


def test_nested_raw_maps_are_accepted():
    specs = [S("INT", id="nested.more.int"), S("STRING", id="nested.string")]
    result = validate_inputs(specs, {"nested": {"more": {"int": 3}, "string": "s"}})
    assert result.ok, result.errors
    assert result.values == {"nested": {"more": {"int": 3}, "string": "s"}}
    result = validate_inputs(specs, {"nested.more": {"int": "4"}, "nested": {"string": "s"}})
    assert result.values == {"nested": {"more": {"int": 4}, "string": "s"}}


def test_nested_unknown_and_errors_use_dotted_ids():
    specs = [S("INT", id="nested.more.int")]
    result = validate_inputs(specs, {"nested": {"more": {"int": "x", "other": 1}}})
    assert result.errors == {
        "nested.more.int": "Invalid input for `nested.more.int`, it must be an integer, but received `x`",
        "nested.more.other": "Unknown input `nested.more.other`; the flow declares: nested.more.int",
    }


def test_json_input_keeps_its_dict():
    result = validate_inputs([S("JSON", id="cfg")], {"cfg": {"a": {"b": 1}}})
    assert result.values == {"cfg": {"a": {"b": 1}}}


# --- dependsOn / defaults templates (need engine.expressions) -----------------------------------

def test_depends_on_invalid_dependency_hides_without_expressions():
    specs = [S("INT", id="a"), S("STRING", id="b", depends_on=DependsOn(["a"]))]
    result = validate_inputs(specs, {"a": "x", "b": "given"})
    assert result.visible == ["a"]
    assert list(result.errors) == ["a"]
    assert "b" not in result.values
    result = validate_inputs(specs, {"a": "1"})
    assert result.visible == ["a", "b"]
    assert result.errors == {"b": "Missing required input:`b`"}


def test_depends_on_order_independent_of_declaration():
    specs = [S("STRING", id="b", depends_on=DependsOn(["a"])), S("INT", id="a")]
    result = validate_inputs(specs, {"a": "1", "b": "x"})
    assert result.ok and result.values == {"a": 1, "b": "x"} and result.visible == ["b", "a"]


def test_depends_on_condition_shows_and_hides():
    needs_expressions()
    specs = [
        S("SELECT", id="kind", values=["refund", "other"]),
        S("INT", id="amount", depends_on=DependsOn(["kind"], "{{ inputs.kind == 'refund' }}")),
    ]
    shown = validate_inputs(specs, {"kind": "refund"})
    assert shown.visible == ["kind", "amount"]
    assert shown.errors == {"amount": "Missing required input:`amount`"}
    assert validate_inputs(specs, {"kind": "refund", "amount": "3"}).values == {"kind": "refund", "amount": 3}

    hidden = validate_inputs(specs, {"kind": "other", "amount": "not a number"})
    assert hidden.ok, hidden.errors
    assert hidden.visible == ["kind"]
    assert hidden.values == {"kind": "other"}


def test_depends_on_condition_false_text():
    needs_expressions()
    specs = [S("BOOLEAN", id="flag"),
             S("STRING", id="why", depends_on=DependsOn(["flag"], "{{ inputs.flag }}"))]
    assert validate_inputs(specs, {"flag": "no"}).visible == ["flag"]
    assert validate_inputs(specs, {"flag": "yes"}).visible == ["flag", "why"]


def test_depends_on_condition_error_is_reported():
    needs_expressions()
    specs = [S("STRING", id="a"), S("STRING", id="b", depends_on=DependsOn(["a"], "{{ inputs.a ==  }}"))]
    result = validate_inputs(specs, {"a": "x"})
    assert result.errors["b"].startswith("Invalid input for `b`, its dependsOn condition `{{ inputs.a ==  }}` failed: ")


def test_defaults_template():
    needs_expressions()
    specs = [S("STRING", id="a"), S("STRING", id="b", defaults="{{ inputs.a ~ '-x' }}")]
    result = validate_inputs(specs, {"a": "hello"})
    assert result.ok, result.errors
    assert result.values == {"a": "hello", "b": "hello-x"}
    # a given value wins
    assert validate_inputs(specs, {"a": "hello", "b": "mine"}).values["b"] == "mine"


def test_defaults_template_is_validated():
    needs_expressions()
    specs = [S("STRING", id="a"), S("INT", id="n", defaults="{{ inputs.a ~ '-x' }}")]
    result = validate_inputs(specs, {"a": "hello"})
    assert result.errors == {"n": "Invalid input for `n`, it must be an integer, but received `hello-x`"}


def test_defaults_template_sees_caller_variables():
    needs_expressions()
    spec = S("STRING", id="who", defaults="{{ flow.id }}-{{ inputs.env }}")
    result = validate_inputs([spec], {}, variables={"flow": {"id": "pay"}, "inputs": {"env": "prod"}})
    assert result.values == {"who": "pay-prod"}


def test_select_values_template():
    needs_expressions()
    spec = S("SELECT", id="s", values="{{ vars.choices }}")
    variables = {"vars": {"choices": ["A", "B"]}}
    assert validate_inputs([spec], {"s": "B"}, variables=variables).values == {"s": "B"}
    assert validate_inputs([spec], {"s": "C"}, variables=variables).errors == {
        "s": "Invalid input for `s`, it must match the values `[A, B]`, but received `C`"}


# ---------------------------------------------------------------------------------------------
# parse


def test_parse_full_declaration():
    specs, problems, _ = parse("""
- id: amount
  type: INT
  displayName: Amount
  description: How much
  required: false
  defaults: 5
  min: 1
  max: 10000
- name: kind
  type: ENUM
  values: [A, B]
- id: flag
  type: BOOL
- id: d
  type: DURATION
  min: PT1M
  max: PT2H
- id: when
  type: DATE
  after: 2026-01-01
  before: "2026-12-31"
- id: at
  type: DATETIME
  after: 2026-01-01T10:00:00+02:00
- id: t
  type: TIME
  after: "09:00"
- id: tags
  type: ARRAY
  itemType: STRING
- id: more
  type: STRING
  validator: "^[a-z]+$"
  dependsOn:
    inputs: [kind]
    condition: "{{ inputs.kind == 'A' }}"
- id: nested.more.int
  type: INT
- id: ms
  type: MULTISELECT
  values: "{{ vars.choices }}"
  allowCustomValue: true
""")
    assert problems == []
    by = {s.id: s for s in specs}
    assert [s.id for s in specs] == ["amount", "kind", "flag", "d", "when", "at", "t", "tags", "more",
                                     "nested.more.int", "ms"]
    a = by["amount"]
    assert (a.type, a.display_name, a.description, a.required, a.defaults, a.min, a.max) == (
        "INT", "Amount", "How much", False, 5, 1, 10000)
    assert by["kind"].type == "SELECT" and by["kind"].values == ["A", "B"]
    assert by["flag"].type == "BOOL"
    assert (by["d"].min, by["d"].max) == ("PT1M", "PT2H")
    assert (by["when"].after, by["when"].before) == ("2026-01-01", "2026-12-31")
    assert by["at"].after == "2026-01-01T08:00:00Z"
    assert by["t"].after == "09:00:00"
    assert by["tags"].item_type == "STRING"
    assert by["more"].depends_on == DependsOn(["kind"], "{{ inputs.kind == 'A' }}")
    assert by["ms"].values == "{{ vars.choices }}" and by["ms"].allow_custom_value is True
    # round trip through the plain-data form
    for s in specs:
        again = InputSpec.from_dict(s.to_dict())
        again.location = s.location
        assert again == s


def test_parse_sets_locations():
    specs, problems, loc = parse("- id: a\n  type: STRING\n- id: b\n  type: INT\n", path=("tasks", 2, "inputs"))
    assert [s.location for s in specs] == [loc.at(("tasks", 2, "inputs", 0)), loc.at(("tasks", 2, "inputs", 1))]


def test_parse_empty_and_none():
    assert parse_input_specs(None, ("inputs",), PathLocator()) == ([], [])
    assert parse_input_specs([], ("inputs",), PathLocator()) == ([], [])


def test_parse_not_a_list():
    p, loc = only_problem("{id: a, type: STRING}")
    assert p.location == loc.at(("inputs",))
    assert p.message == "inputs must be a list of input declarations, e.g. `- id: amount` / `  type: INT`"


def test_parse_item_not_a_mapping():
    p, loc = only_problem("- just text", path=("tasks", 1, "onResume"))
    assert p.location == loc.at(("tasks", 1, "onResume", 0))
    assert p.message == "input #1 must be a mapping with `id` and `type`, e.g. `- id: amount` / `  type: INT`"


def test_parse_missing_id_and_type():
    specs, problems, loc = parse("- type: STRING\n- id: a\n")
    assert [str(p.message) for p in problems] == [
        "input #1 has no `id`: add e.g. `id: amount`",
        "input `a` has no `type`: add e.g. `type: STRING` (one of STRING, INT, FLOAT, BOOLEAN, BOOL, SELECT, "
        "MULTISELECT, DATE, DATETIME, TIME, DURATION, JSON, YAML, URI, EMAIL, SECRET, FILE, ARRAY)",
    ]
    assert problems[0].location == loc.at(("inputs", 0))
    assert problems[1].location == loc.at(("inputs", 1))
    assert specs == []


def test_parse_unknown_type_suggests():
    p, loc = only_problem("- id: a\n  type: SELCT\n  values: [A]\n")
    assert p.location == loc.at(("inputs", 0, "type"))
    assert p.message == (
        "unknown input type `SELCT` on input `a`: did you mean `SELECT`? valid types are STRING, INT, FLOAT, "
        "BOOLEAN, BOOL, SELECT, MULTISELECT, DATE, DATETIME, TIME, DURATION, JSON, YAML, URI, EMAIL, SECRET, "
        "FILE, ARRAY")
    p, _ = only_problem("- id: a\n  type: string\n")
    assert "did you mean `STRING`?" in p.message
    p, _ = only_problem("- id: a\n  type: QQQQ\n")
    assert p.message.startswith("unknown input type `QQQQ` on input `a`: valid types are STRING,")


def test_parse_unknown_property_suggests():
    p, loc = only_problem("- id: x\n  type: STRING\n  requried: true\n")
    assert p.location == loc.at(("inputs", 0, "requried"))
    assert p.message == "unknown property `requried` on input `x`, did you mean `required`?"
    p, _ = only_problem("- id: x\n  type: STRING\n  zzzzzz: 1\n")
    assert p.message == ("unknown property `zzzzzz` on input `x`; allowed: id, type, displayName, description, "
                         "required, defaults, dependsOn, validator")


def test_parse_misplaced_property():
    p, loc = only_problem("- id: x\n  type: STRING\n  min: 3\n")
    assert p.location == loc.at(("inputs", 0, "min"))
    assert p.message == "`min` is not allowed on STRING inputs; it applies to INT, FLOAT and DURATION inputs"
    p, _ = only_problem("- id: x\n  type: INT\n  values: [1]\n")
    assert p.message == "`values` is not allowed on INT inputs; it applies to SELECT and MULTISELECT inputs"
    p, _ = only_problem("- id: x\n  type: STRING\n  itemType: INT\n")
    assert p.message == "`itemType` is not allowed on STRING inputs; it applies to ARRAY inputs"


def test_parse_duplicate_id():
    specs, problems, loc = parse("- id: a\n  type: STRING\n- id: a\n  type: INT\n")
    assert len(problems) == 1
    assert problems[0].location == loc.at(("inputs", 1, "id"))
    first = loc.at(("inputs", 0, "id"))
    assert problems[0].message == (f"duplicate input id `a`: it is already declared at {first}; "
                                   "give each input a distinct id")
    assert [s.type for s in specs] == ["STRING"]


@pytest.mark.parametrize("bad_id", ["_a", "a b", "-a", "a/b", "", "a..b", "a."])
def test_parse_bad_ids(bad_id):
    specs, problems, loc = parse(f"- id: '{bad_id}'\n  type: STRING\n")
    assert len(problems) == 1 and specs == []
    assert problems[0].location == loc.at(("inputs", 0, "id"))
    assert problems[0].message.startswith(f"invalid input id `{bad_id}`")


def test_parse_good_ids():
    specs, problems, _ = parse("- id: a.b-c_d\n  type: STRING\n- id: 9lives\n  type: STRING\n")
    assert problems == [] and [s.id for s in specs] == ["a.b-c_d", "9lives"]


def test_parse_name_alias_and_both():
    specs, problems, _ = parse("- name: a\n  type: STRING\n")
    assert problems == [] and specs[0].id == "a"
    p, loc = only_problem("- id: a\n  name: b\n  type: STRING\n")
    assert p.location == loc.at(("inputs", 0, "name"))
    assert p.message == "input `a` has both `id` and `name`: keep only `id`"


def test_parse_bad_regex():
    p, loc = only_problem("- id: x\n  type: SECRET\n  validator: '[a-'\n")
    assert p.location == loc.at(("inputs", 0, "validator"))
    assert p.message == "`validator` on input `x` is not a valid regular expression: unterminated character set"


def test_parse_bad_durations():
    specs, problems, loc = parse("- id: d\n  type: DURATION\n  min: 1h\n  max: PT1H\n")
    assert len(problems) == 1
    assert problems[0].location == loc.at(("inputs", 0, "min"))
    assert problems[0].message == ("invalid duration `1h` for `min` on input `d`: write an ISO-8601 duration "
                                   "such as PT1H, PT30M or P1D")


def test_parse_bad_numbers_and_bounds():
    specs, problems, loc = parse("- id: n\n  type: INT\n  min: abc\n  max: 1.5\n")
    assert [p.message for p in problems] == ["`min` on input `n` must be an integer, not `abc`",
                                             "`max` on input `n` must be an integer, not `1.5`"]
    assert problems[1].location == loc.at(("inputs", 0, "max"))
    p, _ = only_problem("- id: n\n  type: FLOAT\n  min: 5\n  max: 1\n")
    assert p.message == "`max` (`1`) on input `n` is below `min` (`5`): no value could be accepted"


def test_parse_bad_dates():
    specs, problems, loc = parse("""
- id: d
  type: DATE
  after: 31/01/2026
- id: t
  type: TIME
  before: 10:15
- id: dt
  type: DATETIME
  after: 2026-01-01T10:00:00
""")
    assert [p.message for p in problems] == [
        "`after` on input `d` is `31/01/2026`: it must be a date such as `2026-01-31`; e.g. `after: 2026-01-31`",
        "`before` on input `t` is `615`: it must be a time such as `10:15` or `10:15:30` (quote times in YAML: "
        "unquoted 10:15 is read as a number); e.g. `before: \"10:15\"`",
        "`after` on input `dt` is `2026-01-01 10:00:00`: it must include a time zone: add `Z` for UTC or an "
        "offset such as `+02:00`; e.g. `after: 2026-01-31T10:15:00Z`",
    ]
    assert problems[0].location == loc.at(("inputs", 0, "after"))
    assert problems[2].location == loc.at(("inputs", 2, "after"))


def test_parse_select_values_required():
    p, loc = only_problem("- id: s\n  type: SELECT\n")
    assert p.location == loc.at(("inputs", 0))
    assert p.message == "input `s` of type SELECT needs `values`: list the choices, e.g. `values: [APPROVE, REJECT]`"
    p, loc = only_problem("- id: s\n  type: MULTISELECT\n  values: A\n")
    assert p.location == loc.at(("inputs", 0, "values"))
    assert p.message == ("`values` on input `s` must be a list such as `[APPROVE, REJECT]` or an expression "
                         "`{{ ... }}`")
    p, _ = only_problem("- id: s\n  type: SELECT\n  values: []\n")
    assert p.message == "`values` on input `s` must be a non-empty list, e.g. `values: [APPROVE, REJECT]`"


def test_parse_array_item_type():
    p, loc = only_problem("- id: a\n  type: ARRAY\n")
    assert p.location == loc.at(("inputs", 0))
    assert p.message == ("input `a` of type ARRAY needs `itemType`, one of STRING, INT, FLOAT, BOOLEAN, BOOL, "
                         "DATE, DATETIME, TIME, DURATION, JSON, YAML, URI, EMAIL")
    p, loc = only_problem("- id: a\n  type: ARRAY\n  itemType: INTEGER\n")
    assert p.location == loc.at(("inputs", 0, "itemType"))
    assert p.message.startswith("unknown itemType `INTEGER` on input `a`: did you mean `INT`? valid item types are")
    p, _ = only_problem("- id: a\n  type: ARRAY\n  itemType: FILE\n")
    assert p.message.startswith("unknown itemType `FILE` on input `a`: ")


def test_parse_required_must_be_bool():
    p, loc = only_problem("- id: a\n  type: STRING\n  required: 'yes please'\n")
    assert p.location == loc.at(("inputs", 0, "required"))
    assert p.message == "`required` on input `a` must be true or false, not `yes please`"


def test_parse_invalid_literal_default():
    p, loc = only_problem("- id: a\n  type: INT\n  defaults: abc\n")
    assert p.location == loc.at(("inputs", 0, "defaults"))
    assert p.message == ("the default of input `a` is not valid: Invalid input for `a`, it must be an integer, "
                         "but received `abc`")
    specs, problems, _ = parse("- id: a\n  type: DATE\n  defaults: 2026-01-31\n")
    assert problems == [] and specs[0].defaults == "2026-01-31"
    specs, problems, _ = parse("- id: a\n  type: INT\n  defaults: \"{{ 1 + 1 }}\"\n")
    assert problems == []


def test_parse_depends_on_missing_input():
    p, loc = only_problem("- id: a\n  type: STRING\n- id: b\n  type: STRING\n  dependsOn:\n    inputs: [a, c]\n")
    assert p.location == loc.at(("inputs", 1, "dependsOn", "inputs", 1))
    assert p.message == "input `b` depends on `c`, which is not declared; declared inputs: a, b"
    p, _ = only_problem("- id: kind\n  type: STRING\n- id: b\n  type: STRING\n  dependsOn:\n    inputs: [knd]\n")
    assert p.message == "input `b` depends on `knd`, which is not declared; did you mean `kind`?"


def test_parse_depends_on_cycle():
    specs, problems, loc = parse("""
- id: a
  type: STRING
  dependsOn: {inputs: [c]}
- id: b
  type: STRING
  dependsOn: {inputs: [a]}
- id: c
  type: STRING
  dependsOn: {inputs: [b]}
- id: d
  type: STRING
  dependsOn: {inputs: [a]}
""")
    assert len(problems) == 1
    assert problems[0].message == "dependsOn cycle: a -> c -> b -> a; remove one of these dependencies"
    assert problems[0].location == loc.at(("inputs", 0, "dependsOn"))


def test_parse_depends_on_self():
    p, loc = only_problem("- id: a\n  type: STRING\n  dependsOn: {inputs: [a]}\n")
    assert p.location == loc.at(("inputs", 0, "dependsOn", "inputs", 0))
    assert p.message == "input `a` cannot depend on itself (dependsOn cycle: a -> a)"


def test_parse_depends_on_shape():
    p, loc = only_problem("- id: a\n  type: STRING\n- id: b\n  type: STRING\n  dependsOn: {input: [a]}\n")
    assert p.location == loc.at(("inputs", 1, "dependsOn", "input"))
    assert p.message == "unknown property `input` in `dependsOn` of input `b`, did you mean `inputs`?"
    p, _ = only_problem("- id: b\n  type: STRING\n  dependsOn: [a]\n")
    assert p.message.startswith("`dependsOn` on input `b` must be a mapping")


def test_parse_dotted_id_conflict():
    p, loc = only_problem("- id: a\n  type: STRING\n- id: a.b\n  type: STRING\n")
    assert p.location == loc.at(("inputs", 1, "id"))
    assert p.message == "input `a.b` conflicts with input `a`: `a` would be both a value and a group; rename one"


def test_parse_collects_all_problems():
    specs, problems, loc = parse("""
- id: a
  type: STRNG
- id: b
  type: INT
  requird: true
  min: x
- id: b
  type: STRING
- id: c
  type: DURATION
  max: 2h
""")
    assert len(problems) == 5
    lines = {p.location.line for p in problems}
    assert len(lines) == 5  # each at its own place


def test_parse_then_validate_end_to_end():
    specs, problems, _ = parse("""
- id: amount
  type: INT
  max: 10000
- id: approver
  type: EMAIL
- id: due
  type: DATE
  required: false
""")
    assert problems == []
    result = validate_inputs(specs, {"amount": "25000", "approver": "a@example.com"})
    assert result.errors == {"amount": "Invalid input for `amount`, it must be less than `10000`, but received `25000`"}
    assert result.values == {"approver": "a@example.com", "due": None}


def test_defaults_single_expression_keeps_native_type():
    needs_expressions()
    specs = [S("INT", id="n", defaults="{{ 1 + 1 }}"), S("JSON", id="cfg", defaults="{{ vars.cfg }}"),
             S("STRING", id="s", defaults="{{ 1 + 1 }} items")]
    result = validate_inputs(specs, {}, variables={"vars": {"cfg": {"a": [1, 2]}}})
    assert result.ok, result.errors
    assert result.values == {"n": 2, "cfg": {"a": [1, 2]}, "s": "2 items"}


def test_defaults_template_error_is_reported():
    needs_expressions()
    result = validate_inputs([S("STRING", id="s", defaults="{{ 1 + }}")], {})
    assert result.errors["s"].startswith("Invalid input for `s`, its default `{{ 1 + }}` could not be rendered: ")


def test_hidden_input_not_required_and_default_not_rendered():
    needs_expressions()
    specs = [S("BOOLEAN", id="refund"),
             S("INT", id="amount", defaults="{{ 1 + }}", depends_on=DependsOn(["refund"], "{{ inputs.refund }}"))]
    result = validate_inputs(specs, {"refund": False})
    assert result.ok and result.values == {"refund": False} and result.visible == ["refund"]
