"""The `signoff` command line, run for real as a subprocess (README, "Command line").

Every call goes through :func:`run_cli`, which also checks that nothing the command printed
contains a Python traceback: every mistake a user can make must end in one clear message.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, SIGNOFF, clean_env

FLOWS = REPO / "tests" / "data" / "cli_flows"
SAMPLE_FLOWS = REPO / "sample_flows"

REQUEST_KEYS = {"id", "execution_id", "namespace", "flow_id", "task_id", "kind", "state", "summary",
                "requested_by", "created_at", "due_at", "decided_at", "approvals", "required"}
OUTCOME_KEYS = {"id", "outcome", "message", "state", "by", "errors", "execution_id", "signature"}
EXECUTION_KEYS = {"id", "namespace", "flow_id", "revision", "state", "inputs", "labels", "started_by",
                  "created_at", "updated_at", "ended_at", "error", "task_runs", "outputs", "logs", "requests"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Result:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.args = proc.args

    @property
    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as exc:  # pragma: no cover - diagnostic
            raise AssertionError(f"not JSON on stdout of {self.args}: {self.out!r} (stderr {self.err!r})") from exc

    def __repr__(self) -> str:
        return f"<exit {self.code} stdout={self.out!r} stderr={self.err!r}>"


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None,
            timeout: float = 120) -> Result:
    proc = subprocess.run([*SIGNOFF, *map(str, args)], capture_output=True, text=True, env=env or clean_env(),
                          input=stdin if stdin is not None else "", cwd=cwd or REPO, timeout=timeout)
    result = Result(proc)
    assert "Traceback" not in result.err and "Traceback" not in result.out, result
    return result


class Cli:
    """`signoff` bound to one data directory and flow folder (options written first)."""

    def __init__(self, data_dir: Path, flows: Path = FLOWS, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.flows = flows
        self.env = env or clean_env()

    def __call__(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
        return run_cli("--data-dir", self.data_dir, "--flows", self.flows, *args, env=env or self.env, stdin=stdin)

    def after(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """The same command with the shared options written after the subcommand."""
        return run_cli(*args, "--data-dir", self.data_dir, "--flows", self.flows, env=env or self.env)

    # helpers
    def start(self, namespace: str, flow_id: str, *inputs: str) -> dict:
        args = [x for kv in inputs for x in ("-i", kv)]
        r = self("run", namespace, flow_id, *args, "--json")
        assert r.code == 0, r
        return r.json

    def start_paused(self, namespace: str, flow_id: str, *inputs: str) -> tuple[dict, str]:
        execution = self.start(namespace, flow_id, *inputs)
        assert execution["state"] == "PAUSED", execution
        pending = [q for q in execution["requests"] if q["state"] == "PENDING"]
        assert len(pending) == 1, execution["requests"]
        return execution, pending[0]["id"]

    def execution(self, execution_id: str) -> dict:
        r = self("executions", "show", execution_id, "--json")
        assert r.code == 0, r
        return r.json

    def request(self, request_id: str) -> dict:
        r = self("show", request_id, "--json")
        assert r.code == 0, r
        return r.json


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


# -- shared options -------------------------------------------------------------------------


def test_options_before_and_after_the_subcommand_give_the_same_result(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")

    before = cli("pending", "--json")
    after = cli.after("pending", "--json")
    assert before.code == after.code == 0, (before, after)
    assert before.json == after.json
    assert [r["id"] for r in before.json] == [request_id]

    # mixed: data dir before, flows after
    mixed = run_cli("--data-dir", cli.data_dir, "flows", "list", "--json", "--flows", FLOWS, env=cli.env)
    assert mixed.code == 0, mixed
    assert cli.after("flows", "list", "--json").json == mixed.json

    # run itself with the options after the subcommand lands in the same data directory
    r = cli.after("run", "cli.tests", "no_approval", "--json")
    assert r.code == 0, r
    ids = {e["id"] for e in cli("executions", "list", "--json").json}
    assert {execution["id"], r.json["id"]} <= ids


def test_option_written_last_wins(cli: Cli, tmp_path: Path) -> None:
    _, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    other = tmp_path / "other"
    r = run_cli("--data-dir", other, "pending", "--json", "--data-dir", cli.data_dir, env=cli.env)
    assert r.code == 0, r
    assert [q["id"] for q in r.json] == [request_id]
    r = run_cli("--data-dir", cli.data_dir, "pending", "--json", "--data-dir", other, env=cli.env)
    assert r.code == 0, r
    assert r.json == []


def test_environment_variable_sets_the_data_dir(cli: Cli) -> None:
    _, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    r = run_cli("pending", "--json", env=clean_env(SIGNOFF_DATA_DIR=str(cli.data_dir)))
    assert r.code == 0, r
    assert [q["id"] for q in r.json] == [request_id]


def test_no_subcommand_prints_help_and_unknown_subcommand_is_usage_error(cli: Cli) -> None:
    r = run_cli()  # no terminal here: the console cannot open, the help says what to use
    assert r.code == 2, r
    assert "pending" in r.out and "approve" in r.out
    assert "needs an interactive terminal" in r.err
    r = cli("approvee", "x")
    assert r.code == 2, r
    assert "approvee" in r.err



def test_every_command_is_listed_and_resolves_to_itself() -> None:
    """Commands are imported on first use (console/cli.py, SUBCOMMANDS): each entry must name
    the command it stands for, and the help must list all of them."""
    import click

    from signoff.console.cli import SUBCOMMANDS, LazyGroup

    group = LazyGroup(lazy_subcommands=SUBCOMMANDS)
    ctx = click.Context(group)
    assert group.list_commands(ctx) == sorted(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        command = group.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name
    assert group.get_command(ctx, "approvee") is None
    help_text = run_cli("--help").out
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name} ", help_text, re.M), name


def test_a_command_imports_only_its_own_module(cli: Cli) -> None:
    probe = ("import sys\n"
             "from console.cli import main\n"
             "try:\n"
             "    main(sys.argv[1:])\n"
             "finally:\n"
             "    print(sorted(m for m in sys.modules if m.startswith('signoff.console.cli_')), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe, "--data-dir", str(cli.data_dir), "pending", "--json"],
                          capture_output=True, text=True, env=cli.env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "['signoff.console.cli_approvals']"


# -- flows ----------------------------------------------------------------------------------


def test_flows_list_text_and_json(cli: Cli) -> None:
    r = cli("flows", "list")
    assert r.code == 0, r
    assert "NAMESPACE" in r.out
    for flow_id in ("pause_form", "no_approval", "approval_comment", "kv_reader"):
        assert flow_id in r.out
    assert "cli.tests" in r.out

    r = cli("flows", "list", "--json")
    assert r.code == 0, r
    data = r.json
    assert data["problems"] == []
    by_id = {f["id"]: f for f in data["flows"]}
    assert set(by_id) == {"pause_form", "no_approval", "approval_comment", "kv_reader"}
    pause = by_id["pause_form"]
    assert pause["namespace"] == "cli.tests"
    assert pause["labels"] == {"team": "qa"}
    assert [i["id"] for i in pause["inputs"]] == ["who", "count"]
    assert pause["tasks"] == ["hello", "wait", "done"]
    assert pause["description"].startswith("A tiny Pause")


BAD_FLOW = """\
id: broken
namespace: cli.bad
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pauze
  - id: later
    type: io.kestra.plugin.core.log.Log
    mesage: hi
"""


def test_flows_validate_good_files_and_folders(cli: Cli) -> None:
    r = cli("flows", "validate")  # the --flows folder
    assert r.code == 0, r
    assert "4 flow(s) valid" in r.out
    r = run_cli("flows", "validate", FLOWS / "pause_form.yaml", FLOWS / "no_approval.yaml")
    assert r.code == 0, r
    assert "2 flow(s) valid" in r.out
    assert "cli.tests.pause_form" in r.out


def test_flows_validate_bad_file_reports_every_problem_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FLOW)
    r = run_cli("flows", "validate", bad)
    assert r.code == 2, r
    # file:line:col for both problems, with a suggestion
    assert re.search(rf"{re.escape(str(bad))}:5:\d+: .*Pauze", r.err), r.err
    assert "io.kestra.plugin.core.flow.Pause" in r.err
    assert re.search(rf"{re.escape(str(bad))}:8:\d+: .*mesage", r.err), r.err
    assert "message" in r.err.replace("mesage", "")


def test_flows_validate_mixed_good_and_bad_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FLOW)
    missing = tmp_path / "missing.yaml"
    r = run_cli("flows", "validate", FLOWS / "pause_form.yaml", bad, missing)
    assert r.code == 2, r
    assert "ok" in r.out and "pause_form.yaml" in r.out
    assert f"{bad}:5:" in r.err
    assert str(missing) in r.err


def test_flows_validate_folder_with_unparseable_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "broken.yaml").write_text("id: x\nnamespace: y\ntasks:\n  - id: a\n    type: [unclosed\n")
    r = run_cli("flows", "validate", folder)
    assert r.code == 2, r
    assert re.search(r"broken\.yaml:\d+:\d+", r.err), r.err


def test_flows_list_reports_load_problems_but_lists_the_good_flows(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(FLOWS, folder)
    (folder / "zz_bad.yaml").write_text(BAD_FLOW)
    cli = Cli(tmp_path / "data", flows=folder)
    r = cli("flows", "list", "--json")
    assert r.code == 0, r
    assert "pause_form" in {f["id"] for f in r.json["flows"]}
    assert any("zz_bad.yaml:5:" in p for p in r.json["problems"]), r.json["problems"]
    r = cli("flows", "list")
    assert r.code == 0, r
    assert "zz_bad.yaml:5:" in r.err


# -- run, pending, show -----------------------------------------------------------------------


def test_run_pauses_with_one_request_and_pending_lists_it(cli: Cli) -> None:
    r = cli("run", "cli.tests", "pause_form", "-i", "who=Ann", "-i", "count=3", "--json")
    assert r.code == 0, r
    execution = r.json
    assert set(execution) >= EXECUTION_KEYS
    assert execution["state"] == "PAUSED"
    assert execution["namespace"] == "cli.tests" and execution["flow_id"] == "pause_form"
    assert execution["inputs"] == {"who": "Ann", "count": 3}
    assert execution["labels"] == {"team": "qa"}
    assert execution["revision"] == 1
    assert execution["ended_at"] is None
    assert TIME_RE.match(execution["created_at"]), execution["created_at"]
    assert [(t["path"], t["state"]) for t in execution["task_runs"]] == [("hello", "SUCCESS"), ("wait", "PAUSED")]
    assert any(log["message"].strip() == "hello Ann" for log in execution["logs"])
    assert len(execution["requests"]) == 1
    request = execution["requests"][0]
    assert request["state"] == "PENDING"

    r = cli("pending", "--json")
    assert r.code == 0, r
    items = r.json
    assert len(items) == 1
    item = items[0]
    assert set(item) == REQUEST_KEYS
    assert item["id"] == request["id"]
    assert item["execution_id"] == execution["id"]
    assert (item["namespace"], item["flow_id"], item["task_id"]) == ("cli.tests", "pause_form", "wait")
    assert item["kind"] == "pause"
    assert item["state"] == "PENDING"
    assert item["summary"] == "Ship for Ann?"
    assert item["requested_by"] == execution["started_by"]
    assert TIME_RE.match(item["created_at"])
    assert item["due_at"] is None and item["decided_at"] is None
    assert (item["approvals"], item["required"]) == (0, 1)

    text = cli("pending")
    assert text.code == 0, text
    assert request["id"] in text.out and "Ship for Ann?" in text.out and "0/1" in text.out


def test_pending_filters(cli: Cli) -> None:
    _, pause_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    _, gate_id = cli.start_paused("cli.tests", "approval_comment")
    assert {q["id"] for q in cli("pending", "--json").json} == {pause_id, gate_id}
    assert [q["id"] for q in cli("pending", "--flow", "approval_comment", "--json").json] == [gate_id]
    assert len(cli("pending", "--namespace", "cli.*", "--json").json) == 2
    assert cli("pending", "--namespace", "other", "--json").json == []
    r = cli("pending", "--namespace", "other")
    assert r.code == 0 and "No pending approval requests." in r.out


def test_show_text_and_json(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann", "count=2")

    data = cli.request(request_id)
    assert set(data) >= REQUEST_KEYS | {"context", "form", "rules", "result", "decisions"}
    ctx = data["context"]
    assert set(ctx) >= {"summary", "details", "impact", "inputs", "outputs", "task", "flow", "labels"}
    assert ctx["summary"] == "Ship for Ann?"
    assert ctx["details"] == "count is 2"
    assert ctx["inputs"] == {"who": "Ann", "count": 2}
    assert [(f["id"], f["type"]) for f in data["form"]] == [("ok", "BOOLEAN"), ("note", "STRING"), ("copies", "INT")]
    assert data["form"][2]["max"] == 5
    assert data["decisions"] == []
    assert data["result"] is None
    assert data["execution_id"] == execution["id"]

    r = cli("show", request_id)
    assert r.code == 0, r
    assert request_id in r.out
    assert "Ship for Ann?" in r.out
    assert "count is 2" in r.out
    assert "ok: BOOLEAN" in r.out and "copies: INT" in r.out
    assert "PENDING" in r.out

    # after a decision, show lists it
    r = cli("approve", request_id, "-i", "ok=true", "-i", "note=fine", "-i", "copies=1", "--reason", "looks good")
    assert r.code == 0, r
    data = cli.request(request_id)
    assert data["state"] != "PENDING"
    assert len(data["decisions"]) == 1
    decision = data["decisions"][0]
    assert set(decision) == {"by", "verdict", "reason", "at", "origin", "automatic", "inputs", "signature"}
    assert decision["by"] == execution["started_by"]
    assert decision["verdict"] == "approve"
    assert decision["reason"] == "looks good"
    assert decision["automatic"] is False
    assert decision["inputs"] == {"ok": True, "note": "fine", "copies": 1}
    r = cli("show", request_id)
    assert "Decisions" in r.out and "looks good" in r.out


def test_show_unknown_request(cli: Cli) -> None:
    cli.start_paused("cli.tests", "pause_form", "who=Ann")
    r = cli("show", "nosuchrequest")
    assert r.code == 1, r
    assert "no approval request" in r.err and "nosuchrequest" in r.err


def test_run_flow_without_approval_ends_success(cli: Cli) -> None:
    r = cli("run", "cli.tests", "no_approval", "--json")
    assert r.code == 0, r
    execution = r.json
    assert execution["state"] == "SUCCESS"
    assert execution["requests"] == []
    assert execution["outputs"]["result"] == {"values": {"greeting": "hi"}}
    assert execution["ended_at"] is not None
    assert cli("pending", "--json").json == []

    text = cli("run", "cli.tests", "no_approval")
    assert text.code == 0, text
    assert "SUCCESS" in text.out and "nothing to approve" in text.out


# -- approve / deny / cancel --------------------------------------------------------------------


def test_approve_with_invalid_values_then_valid(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")

    r = cli("approve", request_id, "-i", "ok=maybe", "-i", "copies=9")
    assert r.code == 1, r
    # one message per failing field, every field at once
    assert re.search(r"^\s+ok: .*maybe", r.err, re.M), r.err
    assert re.search(r"^\s+note: .*note", r.err, re.M), r.err
    assert re.search(r"^\s+copies: .*9", r.err, re.M), r.err

    r = cli("approve", request_id, "-i", "ok=maybe", "-i", "copies=9", "--json")
    assert r.code == 1, r
    [outcome] = r.json
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["outcome"] == "invalid_inputs"
    assert outcome["state"] == "PENDING"
    assert set(outcome["errors"]) == {"ok", "note", "copies"}
    assert "maybe" in outcome["errors"]["ok"]
    assert "5" in outcome["errors"]["copies"]

    # nothing was decided
    assert [q["id"] for q in cli("pending", "--json").json] == [request_id]
    assert cli.request(request_id)["decisions"] == []
    assert cli.execution(execution["id"])["state"] == "PAUSED"

    r = cli("approve", request_id, "-i", "ok=yes", "-i", "note=ship it", "-i", "copies=5", "--json")
    assert r.code == 0, r
    [outcome] = r.json
    assert outcome["outcome"] == "decided"
    assert outcome["execution_id"] == execution["id"]
    assert outcome["errors"] == {}

    done = cli.execution(execution["id"])
    assert done["state"] == "SUCCESS"
    assert done["ended_at"] is not None
    assert [(t["path"], t["state"]) for t in done["task_runs"]] == [
        ("hello", "SUCCESS"), ("wait", "SUCCESS"), ("done", "SUCCESS")]
    wait = done["outputs"]["wait"]
    assert wait["onResume"] == {"ok": True, "note": "ship it", "copies": 5}
    assert wait["resumed"]["by"] == execution["started_by"]
    assert done["outputs"]["done"]["values"]["note"] == "ship it"
    assert done["requests"][0]["state"] != "PENDING"
    assert cli("pending", "--json").json == []
    # the audit trail says where the decision came from
    assert [d["origin"] for d in cli.request(request_id)["decisions"]] == ["cli"]


def test_approve_text_output(cli: Cli) -> None:
    _, request_id = cli.start_paused("cli.tests", "approval_comment")
    r = cli("approve", request_id)
    assert r.code == 0, r
    assert request_id in r.out and "approved" in r.out


def test_deny_with_reason_kills_the_execution(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "approval_comment")

    # commentRequired: ON_DENY
    r = cli("deny", request_id)
    assert r.code == 1, r
    assert "comment" in r.err.lower()
    assert [q["id"] for q in cli("pending", "--json").json] == [request_id]

    r = cli("deny", request_id, "--reason", "not during the freeze", "--json")
    assert r.code == 0, r
    [outcome] = r.json
    assert outcome["outcome"] == "decided"
    assert outcome["state"] == "DENIED"

    done = cli.execution(execution["id"])
    assert done["state"] == "KILLED"
    assert "after" not in {t["path"] for t in done["task_runs"]}
    decisions = cli.request(request_id)["decisions"]
    assert [(d["verdict"], d["reason"]) for d in decisions] == [("deny", "not during the freeze")]
    assert cli("pending", "--json").json == []


def test_approval_without_comment_on_approve_succeeds(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "approval_comment")
    r = cli("approve", request_id, "--json")
    assert r.code == 0, r
    done = cli.execution(execution["id"])
    assert done["state"] == "SUCCESS"
    assert done["outputs"]["gate"]["decision"] == "APPROVED"
    assert any("decision APPROVED" in log["message"] for log in done["logs"])


def test_cancel_kills_the_execution(cli: Cli) -> None:
    execution, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    r = cli("cancel", request_id, "--reason", "wrong ticket", "--json")
    assert r.code == 0, r
    [outcome] = r.json
    assert outcome["outcome"] == "cancelled"
    assert cli.execution(execution["id"])["state"] == "KILLED"
    assert cli("pending", "--json").json == []

    r = cli("cancel", request_id)
    assert r.code == 1, r
    assert "already" in r.err


def test_approve_already_decided_and_unknown(cli: Cli) -> None:
    _, request_id = cli.start_paused("cli.tests", "approval_comment")
    assert cli("approve", request_id).code == 0

    r = cli("approve", request_id)
    assert r.code == 1, r
    assert "already" in r.err
    r = cli("approve", request_id, "--json")
    assert r.code == 1, r
    assert r.json[0]["outcome"] == "already_decided"
    assert r.json[0]["by"]  # who decided it

    r = cli("deny", request_id, "--reason", "late")
    assert r.code == 1, r
    assert "already" in r.err

    r = cli("approve", "doesnotexist")
    assert r.code == 1, r
    assert "no approval request" in r.err
    r = cli("approve", "doesnotexist", "--json")
    assert r.code == 1, r
    assert r.json[0]["outcome"] == "not_found"


def test_several_ids_one_bad_others_decided(cli: Cli) -> None:
    first, a = cli.start_paused("cli.tests", "approval_comment")
    second, b = cli.start_paused("cli.tests", "approval_comment")
    r = cli("approve", a, "missing-id", b, "--json")
    assert r.code == 1, r
    outcomes = r.json
    assert [o["id"] for o in outcomes] == [a, "missing-id", b]  # in order
    assert [o["outcome"] for o in outcomes] == ["decided", "not_found", "decided"]
    assert cli.execution(first["id"])["state"] == "SUCCESS"
    assert cli.execution(second["id"])["state"] == "SUCCESS"
    assert cli("pending", "--json").json == []

    # the same in text mode with deny: exit 1, the good one decided
    third, c = cli.start_paused("cli.tests", "approval_comment")
    r = cli("deny", c, "nope", "--reason", "no")
    assert r.code == 1, r
    assert "no approval request" in r.err
    assert cli.execution(third["id"])["state"] == "KILLED"


def test_approve_with_inputs_mixed_valid_and_invalid_requests(cli: Cli) -> None:
    _, good = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    _, other = cli.start_paused("cli.tests", "pause_form", "who=Bob")
    _, done_id = cli.start_paused("cli.tests", "approval_comment")
    assert cli("approve", done_id).code == 0
    r = cli("approve", good, done_id, other, "-i", "ok=no", "-i", "note=n", "-i", "copies=0", "--json")
    assert r.code == 1, r
    assert [o["outcome"] for o in r.json] == ["decided", "already_decided", "decided"]


# -- run input errors ----------------------------------------------------------------------------


def test_run_with_invalid_inputs_is_a_usage_error(cli: Cli) -> None:
    r = cli("run", "cli.tests", "pause_form", "-i", "count=50")
    assert r.code == 2, r
    assert "Missing required input:`who`" in r.err
    assert "Invalid input for `count`" in r.err and "50" in r.err
    assert cli("executions", "list", "--json").json == []

    r = cli("run", "cli.tests", "pause_form", "-i", "who=Ann", "-i", "count=many")
    assert r.code == 2, r
    assert "Invalid input for `count`" in r.err


def test_run_unknown_flow_lists_the_known_ones(cli: Cli) -> None:
    r = cli("run", "cli.tests", "no_such_flow")
    assert r.code != 0, r
    assert "no_such_flow" in r.err
    for flow_id in ("pause_form", "no_approval", "approval_comment"):
        assert flow_id in r.err
    r = cli("run", "other.namespace", "pause_form")
    assert r.code != 0, r
    assert "cli.tests.pause_form" in r.err


def test_input_without_equals_is_a_usage_error(cli: Cli) -> None:
    r = cli("run", "cli.tests", "pause_form", "-i", "who")
    assert r.code == 2, r
    assert "KEY=VALUE" in r.err and "who" in r.err
    _, request_id = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    r = cli("approve", request_id, "-i", "ok")
    assert r.code == 2, r
    assert "KEY=VALUE" in r.err
    assert [q["id"] for q in cli("pending", "--json").json] == [request_id]


def test_bad_arguments_are_usage_errors(cli: Cli) -> None:
    r = cli("approve")  # missing REQUEST_ID
    assert r.code == 2, r
    r = cli("executions", "list", "--limit", "zero")
    assert r.code == 2, r
    r = cli("pending", "--no-such-option")
    assert r.code == 2, r
    assert "--no-such-option" in r.err


def test_executions_list_and_show(cli: Cli) -> None:
    paused, _ = cli.start_paused("cli.tests", "pause_form", "who=Ann")
    ok = cli.start("cli.tests", "no_approval")
    items = cli("executions", "list", "--json").json
    assert {e["id"] for e in items} == {paused["id"], ok["id"]}
    assert [e["id"] for e in cli("executions", "list", "--state", "success", "--json").json] == [ok["id"]]
    r = cli("executions", "list")
    assert r.code == 0 and paused["id"] in r.out and "PAUSED" in r.out
    r = cli("executions", "show", paused["id"])
    assert r.code == 0, r
    assert paused["id"] in r.out and "Waiting for approval" in r.out
    r = cli("executions", "show", "nope")
    assert r.code == 1, r
    assert "no execution" in r.err


# -- kv and secrets --------------------------------------------------------------------------------


def test_kv_set_then_a_flow_reads_it(cli: Cli) -> None:
    r = cli("kv", "set", "--namespace", "cli.tests", "TARGET", "https://example.invalid/api")
    assert r.code == 0, r
    r = cli.after("kv", "set", "--namespace", "cli.tests", "--json", "LIMIT", '{"max": 7}')
    assert r.code == 0, r
    execution = cli.start("cli.tests", "kv_reader")
    assert execution["state"] == "SUCCESS", execution
    assert execution["outputs"]["read"]["values"] == {"endpoint": "https://example.invalid/api", "limit": "7"}

    # overwrite
    assert cli("kv", "set", "--namespace", "cli.tests", "TARGET", "second").code == 0
    assert cli.start("cli.tests", "kv_reader")["outputs"]["read"]["values"]["endpoint"] == "second"


def test_kv_set_bad_json_is_a_usage_error(cli: Cli) -> None:
    r = cli("kv", "set", "--json", "K", "{not json")
    assert r.code == 2, r
    assert "JSON" in r.err


def test_missing_kv_fails_the_execution_with_a_message(cli: Cli) -> None:
    r = cli("run", "cli.tests", "kv_reader", "--json")
    assert r.code == 1, r
    assert r.json["state"] == "FAILED"
    assert "TARGET" in (r.json["error"] or "") + json.dumps(r.json["task_runs"])


def test_secret_set_without_keyring_is_a_clear_usage_error(cli: Cli) -> None:
    env = clean_env(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    r = run_cli("secret", "set", "API_TOKEN", env=env, stdin="s3cret\n")
    assert r.code == 2, r
    assert "keyring" in r.err
    assert "SECRET_API_TOKEN" in r.err  # what to do instead
    assert "s3cret" not in r.err + r.out

    r = run_cli("secret", "set", "API_TOKEN", env=env, stdin="")
    assert r.code == 2, r
    assert "empty" in r.err


def test_secret_set_accepts_the_shared_options_like_every_command(cli: Cli) -> None:
    """README: every command takes --data-dir / --flows, before or after the subcommand."""
    env = clean_env(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    for r in (run_cli("--data-dir", cli.data_dir, "secret", "set", "API_TOKEN", env=env, stdin="s3cret\n"),
              run_cli("secret", "set", "API_TOKEN", "--data-dir", cli.data_dir, env=env, stdin="s3cret\n")):
        assert r.code == 2, r
        assert "No such option" not in r.err, r.err
        assert "SECRET_API_TOKEN" in r.err


# -- worker ---------------------------------------------------------------------------------------


def test_worker_once(cli: Cli) -> None:
    r = cli("worker", "--once")
    assert r.code == 0, r
    assert "processed" in r.out
    cli.start_paused("cli.tests", "pause_form", "who=Ann")
    r = cli.after("worker", "--once")
    assert r.code == 0, r
    assert len(cli("pending", "--json").json) == 1


# -- the seed flow, end to end ---------------------------------------------------------------------


def test_vacation_approval_end_to_end(tmp_path: Path, http_listener) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(SAMPLE_FLOWS / "vacation_approval.yaml", flows / "vacation_approval.yaml")
    webhook = base64.b64encode(f"{http_listener.url}/slack".encode()).decode()
    cli = Cli(tmp_path / "data", flows=flows, env=clean_env(SECRET_SLACK_HR_WEBHOOK=webhook))

    r = cli("kv", "set", "--namespace", "hr.operations", "HR_API_ENDPOINT", f"{http_listener.url}/hr")
    assert r.code == 0, r
    r = cli("flows", "validate")
    assert r.code == 0, r

    # approved
    execution, request_id = cli.start_paused("hr.operations", "vacation_approval", "employee=Ann Example",
                                             "start_date=2026-12-01", "end_date=2026-12-05")
    [slack] = http_listener.wait_for(1, path="/slack")
    assert slack.method == "POST"
    assert slack.json is not None, slack.text
    assert "Ann Example" in slack.json["text"]
    assert "2026-12-01" in slack.json["text"] and "2026-12-05" in slack.json["text"]
    assert slack.json["channel"] == "#vacation-approvals"
    assert http_listener.requests_to("/hr/approvals") == []  # nothing before the decision

    show = cli.request(request_id)
    assert [f["id"] for f in show["form"]] == ["approved", "reason"]

    r = cli("approve", request_id, "-i", "approved=true", "-i", "reason=Enjoy the break")
    assert r.code == 0, r
    [hr] = http_listener.wait_for(1, path="/hr/approvals")
    assert hr.method == "POST"
    assert hr.content_type == "multipart/form-data"
    assert hr.form == {"employee": "Ann Example", "status": "APPROVED", "notes": "Enjoy the break"}
    assert hr.headers.get("Idempotency-Key", "").startswith(execution["id"])
    done = cli.execution(execution["id"])
    assert done["state"] == "SUCCESS", done
    assert [t["path"] for t in done["task_runs"]] == ["notify_manager", "await_decision", "update_hr_system",
                                                      "log_result"]
    assert all(t["state"] == "SUCCESS" for t in done["task_runs"])
    assert done["outputs"]["await_decision"]["onResume"] == {"approved": True, "reason": "Enjoy the break"}

    # rejected
    second, second_request = cli.start_paused("hr.operations", "vacation_approval", "employee=Bob Example",
                                              "start_date=2026-12-10", "end_date=2026-12-12")
    slacks = http_listener.wait_for(2, path="/slack")
    assert "Bob Example" in slacks[1].json["text"]
    r = cli("approve", second_request, "-i", "approved=false", "-i", "reason=Team offsite that week")
    assert r.code == 0, r
    hrs = http_listener.wait_for(2, path="/hr/approvals")
    assert hrs[1].form == {"employee": "Bob Example", "status": "REJECTED", "notes": "Team offsite that week"}
    assert cli.execution(second["id"])["state"] == "SUCCESS"
    assert cli.execution(execution["id"])["state"] == "SUCCESS"
    assert cli("pending", "--json").json == []


def test_vacation_approval_invalid_dates_are_rejected_before_anything_is_sent(tmp_path: Path, http_listener) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(SAMPLE_FLOWS / "vacation_approval.yaml", flows / "vacation_approval.yaml")
    webhook = base64.b64encode(f"{http_listener.url}/slack".encode()).decode()
    cli = Cli(tmp_path / "data", flows=flows, env=clean_env(SECRET_SLACK_HR_WEBHOOK=webhook))
    r = cli("run", "hr.operations", "vacation_approval", "-i", "employee=Ann", "-i", "start_date=tomorrow",
            "-i", "end_date=2026-12-05")
    assert r.code == 2, r
    assert "start_date" in r.err
    assert http_listener.requests == []


# -- demo and packaging --------------------------------------------------------------------


def test_demo_seeds_forty_pending_requests_from_the_installed_package(tmp_path: Path) -> None:
    """`signoff demo` run from outside the checkout, without PYTHONPATH: the sample flows and
    themes must come from the installed package (a plain `pip install .` in CI)."""
    env = clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "config"))
    env.pop("PYTHONPATH", None)
    data_dir = tmp_path / "demo"
    r = run_cli("demo", "--no-console", "--data-dir", data_dir, env=env, cwd=tmp_path)
    assert r.code == 0, r
    assert r.out.strip() == str(data_dir)
    pending = run_cli("--data-dir", data_dir, "--policy", data_dir / "policy.yaml", "pending", "--json",
                      env=env, cwd=tmp_path)
    assert pending.code == 0, pending
    items = pending.json
    assert len(items) == 40
    assert {i["requested_by"] for i in items}.isdisjoint({"root", os.environ.get("USER", "")})
    assert {i["flow_id"] for i in items} >= {"payment_approval", "access_request", "data_deletion"}
    again = run_cli("demo", "--no-console", "--data-dir", data_dir, env=env, cwd=tmp_path)
    assert again.code == 0 and "reusing" in again.err
