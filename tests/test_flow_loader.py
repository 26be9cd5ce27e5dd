"""Flow loading: the seed flow, nested blocks, and every load-time error with file:line:col."""
from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from signoff.engine.errors import FlowLoadError, Location
from signoff.engine.flows.loader import FlowSet, load_flow_dirs, load_flow_file, load_flow_text
from signoff.engine.flows.task_types import ALIASES, TASK_TYPES, resolve_type, suggest_type
from signoff.engine.flows.yaml_source import parse_yaml

DATA = Path(__file__).parent / "data"
GOOD = DATA / "flows_good"
BAD = DATA / "flows_bad"

HEAD = "id: f\nnamespace: t.ns\ntasks:\n"


def problems(text: str, dedent: bool = True) -> list[str]:
    """The problems of loading ``text`` as ``f.yml``, as ``file:line:col: message`` strings."""
    if dedent:
        text = textwrap.dedent(text)
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(text, "f.yml")
    assert info.value.exit_code == 2
    return [str(p) for p in info.value.problems]


def task_yaml(body: str) -> str:
    """A flow whose single task is ``body`` (written with 4-space indent under `- `)."""
    return HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ").replace("    ", "  - ", 1) + "\n"


# --------------------------------------------------------------------------- good flows


def test_seed_vacation_approval_loads():
    path = GOOD / "vacation_approval.yaml"
    text = path.read_text(encoding="utf-8")
    flow = load_flow_file(path)
    assert (flow.namespace, flow.id) == ("hr.operations", "vacation_approval")
    assert flow.key == ("hr.operations", "vacation_approval")
    assert flow.source == text
    assert flow.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert flow.revision == 0
    assert flow.path == str(path)
    assert [(i.id, i.type) for i in flow.inputs] == [
        ("employee", "STRING"), ("start_date", "DATE"), ("end_date", "DATE")]
    assert [t.id for t in flow.tasks] == ["notify_manager", "await_decision", "update_hr_system", "log_result"]
    assert [t.type for t in flow.tasks] == [
        "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
        "io.kestra.plugin.core.flow.Pause",
        "io.kestra.plugin.core.http.Request",
        "io.kestra.plugin.core.log.Log",
    ]
    notify, pause, request, log = flow.tasks
    assert notify.props["url"] == "{{ secret('SLACK_HR_WEBHOOK') }}"
    assert notify.props["payload"].startswith('{\n  "channel": "#vacation-approvals",')
    assert [(i.id, i.type, i.description) for i in pause.form] == [
        ("approved", "BOOLEAN", "Approve this request?"), ("reason", "STRING", "Decision notes")]
    assert pause.blocks == {}
    assert request.props["method"] == "POST"
    assert request.props["contentType"] == "multipart/form-data"
    assert request.props["formData"]["status"] == (
        "{{ outputs.await_decision.onResume.approved ? 'APPROVED' : 'REJECTED' }}")
    assert log.props["message"] == "Decision: {{ outputs.await_decision.onResume }}\n"
    assert flow.errors == []
    assert pause.location == Location(str(path), 22, 5)
    assert pause.prop_locations["onResume"] == Location(str(path), 25, 7)
    assert request.prop_locations["uri"] == Location(str(path), 34, 10)
    assert flow.find_task("log_result") is log


def test_nested_blocks_are_built():
    flow = load_flow_file(GOOD / "nested.yaml")
    assert flow.labels == {"team": "platform", "tier": "1"}
    assert flow.variables == {"env": "prod"}
    # old `name` spelling and ENUM are accepted; dotted ids kept
    assert [(i.id, i.type) for i in flow.inputs] == [("release", "STRING"), ("target.region", "SELECT")]
    gate, check, wait = flow.tasks
    assert gate.type == "io.kestra.plugin.core.flow.Approval"
    assert gate.props["assignment"] == {"users": ["alice"], "groups": ["sre"]}
    assert gate.props["required"] == 2 and gate.props["reminders"] == ["PT1H", "PT3H"]
    assert [i.id for i in gate.form] == ["ticket"]
    assert "inputs" not in gate.props
    assert [t.id for t in gate.blocks["onApprove"]] == ["approved_log"]
    assert gate.blocks["onDeny"][0].type == "io.kestra.plugin.core.log.Log"  # alias resolved

    assert check.type == "io.kestra.plugin.core.flow.If"
    assert set(check.blocks) == {"then", "else"}
    fanout = check.blocks["then"][0]
    assert fanout.type == "io.kestra.plugin.core.flow.Parallel" and fanout.props["concurrent"] == 2
    each, seq = fanout.blocks["tasks"]
    assert each.type == "io.kestra.plugin.core.flow.ForEach"
    assert each.props["values"] == ["eu", "us"]
    assert each.blocks["tasks"][0].props["commands"] == ["echo deploying {{ taskrun.value }}"]
    assert seq.blocks["tasks"][0].type == "io.kestra.plugin.core.debug.Return"
    switch = check.blocks["else"][0]
    assert switch.type == "io.kestra.plugin.core.flow.Switch"
    assert switch.props == {"id": "by_env", "type": "io.kestra.plugin.core.flow.Switch",
                            "value": "{{ vars.env }}"}
    assert set(switch.blocks) == {"cases.prod", "cases.1", "defaults"}
    assert switch.blocks["cases.prod"][0].id == "fail_prod"
    assert switch.blocks["defaults"][0].props["values"] == {"result": "other"}

    assert wait.type == "io.kestra.plugin.core.flow.Pause"
    assert wait.props["pauseDuration"] == "PT5M"  # deprecated `delay` mapped
    assert [t.id for t in wait.blocks["onPause"]] == ["on_pause_log"]
    assert flow.errors[0].props["message"] == ["first line", "second line"]
    ids = [t.id for t in flow.all_tasks()]
    assert ids == ["gate", "approved_log", "denied_log", "check", "fanout", "each_region", "deploy",
                   "seq", "ret", "by_env", "fail_prod", "one", "other", "wait", "on_pause_log", "on_error"]
    assert flow.find_task("deploy").location == Location(str(GOOD / "nested.yaml"), 64, 17)


def test_labels_as_mapping_and_kestra_bookkeeping_keys_are_accepted():
    flow = load_flow_text(textwrap.dedent("""\
        id: f
        namespace: t
        revision: 3
        disabled: false
        labels:
          env: prod
        pluginDefaults: []
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            retry: {type: constant, interval: PT1S, maxAttempts: 2}
            allowFailure: true
            logLevel: INFO
            runIf: "{{ true }}"
            disabled: false
        """), "f.yml")
    assert flow.labels == {"env": "prod"}
    assert flow.revision == 0
    assert flow.tasks[0].props["allowFailure"] is True


def test_keys_not_supported_yet_are_refused_where_written():
    text = textwrap.dedent("""\
        id: f
        namespace: t
        sla: []
        checks: []
        retry: {type: constant}
        workerGroup: {key: g}
        triggers:
          - id: daily
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 9 * * *"
            stopAfter: [FAILED]
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            workerGroup: {key: g}
        """)
    assert problems(text) == [
        "f.yml:3:1: `sla` is not supported yet: signoff would ignore it, so remove it (use a Pause/Approval "
        "`timeout` with `expireBehavior` for deadlines on decisions)",
        "f.yml:4:1: `checks` is not supported yet: signoff would ignore it, so remove it (validate inputs with "
        "`validator`, `min`/`max` or a `dependsOn` condition)",
        "f.yml:5:1: `retry` is not supported yet: signoff would ignore it, so remove it (set `retry` on the "
        "tasks that should be retried (or on a task type in `pluginDefaults`))",
        "f.yml:6:1: `workerGroup` is not supported yet: signoff would ignore it, so remove it (every task runs "
        "on the host of the engine that advances the execution)",
        "f.yml:11:5: `stopAfter` is not supported on a Schedule trigger; allowed: description, disabled, inputs, "
        "cron, timezone, recoverMissedSchedules",
        "f.yml:16:5: `workerGroup` is not supported yet: signoff would ignore it, so remove it (every task runs "
        "on the host of the engine that advances the execution)",
    ]


def test_yaml_12_scalars():
    flow = load_flow_text(HEAD + "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: yes\n"
                          "  - id: b\n    type: io.kestra.plugin.core.log.Log\n    message: 2024-01-01\n", "f.yml")
    assert [t.props["message"] for t in flow.tasks] == ["yes", "2024-01-01"]
    flow = load_flow_text("id: 12\nnamespace: t\ntasks:\n  - id: 1\n    type: io.kestra.plugin.core.log.Log\n"
                          "    message: 3\n", "f.yml")
    assert (flow.id, flow.tasks[0].id, flow.tasks[0].props["id"]) == ("12", "1", "1")


def test_older_task_type_aliases_are_accepted():
    for alias, full in [
        ("io.kestra.core.tasks.log.Log", "io.kestra.plugin.core.log.Log"),
        ("io.kestra.core.tasks.flows.Pause", "io.kestra.plugin.core.flow.Pause"),
        ("io.kestra.core.tasks.debugs.Echo", "io.kestra.plugin.core.debug.Echo"),
        ("io.kestra.core.tasks.outputs.OutputValues", "io.kestra.plugin.core.output.OutputValues"),
        ("io.kestra.core.tasks.executions.Fail", "io.kestra.plugin.core.execution.Fail"),
        ("io.kestra.plugin.fs.http.Request", "io.kestra.plugin.core.http.Request"),
    ]:
        assert resolve_type(alias).name == full
    flow = load_flow_text(HEAD + "  - id: a\n    type: io.kestra.core.tasks.flows.Pause\n"
                                 "    onResume:\n      - name: ok\n        type: BOOLEAN\n", "f.yml")
    assert flow.tasks[0].type == "io.kestra.plugin.core.flow.Pause"
    assert [i.id for i in flow.tasks[0].form] == ["ok"]


def test_governance_extensions_on_pause():
    flow = load_flow_text(task_yaml("""
        id: p
        type: io.kestra.plugin.core.flow.Pause
        when: "{{ inputs.amount > 100 }}"
        behavior: REISSUE
        maxReissues: 2
        timeout: PT1H
        assignment: {users: alice}
        context: {summary: s, details: d, impact: i}
        """), "f.yml")
    assert flow.tasks[0].props["behavior"] == "REISSUE"
    assert flow.tasks[0].props["assignment"] == {"users": "alice"}


def test_registry_is_consistent():
    for name, ttype in TASK_TYPES.items():
        assert ttype.name == name and name.startswith("io.kestra.")
    for alias, canonical in ALIASES.items():
        assert canonical in TASK_TYPES and alias not in TASK_TYPES
    assert suggest_type("Pause") == "io.kestra.plugin.core.flow.Pause"
    assert suggest_type("io.kestra.core.tasks.flows.Pauze") == "io.kestra.plugin.core.flow.Pause"
    assert suggest_type("zzzz") is None


# --------------------------------------------------------------------------- YAML level


def test_yaml_syntax_error_position():
    text = HEAD + "  - id: a\n    type: [io.kestra.plugin.core.log.Log\n    message: hi\n"
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(text, "f.yml")
    (p,) = info.value.problems
    assert p.location == Location("f.yml", 6, 12)
    if yaml.__with_libyaml__:
        assert p.message == ("YAML syntax error: did not find expected ',' or ']' "
                             "(while parsing a flow sequence started at line 5, col 11)")
    assert p.message.startswith("YAML syntax error: ")


def test_yaml_mapping_values_error():
    (p,) = problems("id: a: b\n")
    assert p.startswith("f.yml:1:6: YAML syntax error: mapping values are not allowed")


def test_duplicate_keys():
    found = problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: one
            message: two
        id: g
        """)
    assert found == [
        "f.yml:7:5: duplicate key `message` (already set at line 6, col 5); keep only one of them",
        "f.yml:8:1: duplicate key `id` (already set at line 1, col 1); keep only one of them",
    ]


def test_empty_file_multiple_documents_and_non_mapping():
    assert problems("") == [
        "f.yml:1:1: the file is empty; a flow needs at least `id`, `namespace` and `tasks`"]
    assert problems("# only a comment\n") == [
        "f.yml:1:1: the file is empty; a flow needs at least `id`, `namespace` and `tasks`"]
    assert problems("id: a\n---\nid: b\n") == [
        "f.yml:3:1: a flow file must hold exactly one YAML document; remove this second document "
        "(or move it to its own file)"]
    assert problems("- id: a\n") == [
        "f.yml:1:1: a flow file must be a mapping (`id: ...`, `namespace: ...`, `tasks: ...`), found a list"]


def test_unsupported_tag():
    assert problems(HEAD + "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: !secret x\n") == [
        "f.yml:6:14: unsupported YAML tag `!secret`; remove the tag and write a plain value"]


def test_locator_paths():
    data, loc = parse_yaml("a:\n  - x: 1\n    y: 'ab {{ c }}'\n", "f.yml")
    assert data == {"a": [{"x": 1, "y": "ab {{ c }}"}]}
    assert loc.at(("a", 0, "y")) == Location("f.yml", 3, 8)
    assert loc.key_at(("a", 0, "y")) == Location("f.yml", 3, 5)
    assert loc.at(("a", 0, "nope", 3)) == Location("f.yml", 2, 5)  # nearest parent
    assert loc.at(()) == Location("f.yml", 1, 1)
    assert loc.string_at(("a", 0, "y"), 3) == Location("f.yml", 3, 12)


def test_merge_keys():
    flow = load_flow_text(textwrap.dedent("""\
        id: f
        namespace: t
        variables:
          base: &base {message: shared, level: INFO}
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            <<: *base
            level: WARN
        """), "f.yml")
    assert flow.tasks[0].props["message"] == "shared" and flow.tasks[0].props["level"] == "WARN"


# --------------------------------------------------------------------------- flow level


def test_unknown_top_level_key():
    assert problems(HEAD + "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\ntaks: []\n") == [
        "f.yml:7:1: unknown top-level key `taks`, did you mean `tasks`?"]
    assert problems(HEAD + "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\nzzz: 1\n") == [
        "f.yml:7:1: unknown top-level key `zzz`; a flow has id, namespace, description, labels, "
        "variables, inputs, tasks, errors, finally, afterExecution, outputs, concurrency, pluginDefaults, "
        "taskDefaults, triggers"]


def test_missing_flow_keys():
    assert problems("description: x\n") == [
        "f.yml:1:1: the flow is missing `id`; add `id: <flow_name>`",
        "f.yml:1:1: the flow is missing `namespace`; add e.g. `namespace: company.team`",
        "f.yml:1:1: the flow has no `tasks`; add `tasks:` with at least one task",
    ]
    assert problems("id: f\nnamespace: t\ntasks: []\n") == ["f.yml:3:8: `tasks` needs at least one task"]


def test_bad_flow_id_and_namespace():
    assert problems("id: my flow\nnamespace: a..b\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
                    "    message: hi\n") == [
        "f.yml:1:5: invalid flow id `my flow`: use letters, digits, `_` and `-`, starting with a letter or digit",
        "f.yml:2:12: invalid namespace `a..b`: write dot-separated names of letters, digits, `_` and `-`, "
        "e.g. `company.team`",
    ]


def test_bad_labels_and_variables():
    assert problems("id: f\nnamespace: t\nlabels:\n  - team\nvariables: [1]\ntasks:\n  - id: a\n"
                    "    type: io.kestra.plugin.core.log.Log\n    message: hi\n") == [
        "f.yml:4:5: a label in a list must be a mapping `{key: <name>, value: <text>}`",
        "f.yml:5:12: `variables` expects a mapping, found a list",
    ]


# --------------------------------------------------------------------------- task level


def test_unknown_task_type_suggests_full_name():
    assert problems(task_yaml("id: w\ntype: io.kestra.plugin.core.flow.Pauze\n")) == [
        "f.yml:5:11: unknown task type `io.kestra.plugin.core.flow.Pauze`, "
        "did you mean `io.kestra.plugin.core.flow.Pause`?"]


def test_unknown_task_type_short_name():
    assert problems(task_yaml("id: w\ntype: Pause\n")) == [
        "f.yml:5:11: unknown task type `Pause`, did you mean `io.kestra.plugin.core.flow.Pause`?"]
    assert problems(task_yaml("id: w\ntype: io.kestra.plugin.core.log.Logg\nmessage: x\n")) == [
        "f.yml:5:11: unknown task type `io.kestra.plugin.core.log.Logg`, "
        "did you mean `io.kestra.plugin.core.log.Log`?"]
    assert problems(task_yaml("id: w\ntype: com.example.Zzzqq\n")) == [
        "f.yml:5:11: unknown task type `com.example.Zzzqq`; see the supported types in the documentation"]


def test_missing_id_and_type():
    assert problems(task_yaml("type: io.kestra.plugin.core.log.Log\nmessage: hi\n")) == [
        "f.yml:4:5: task is missing `id`; add `id: <unique_task_name>`"]
    assert problems(task_yaml("id: a\nmessage: hi\n")) == [
        "f.yml:4:5: task `a` is missing `type`; add e.g. `type: io.kestra.plugin.core.log.Log`"]


def test_bad_task_id_and_non_mapping_task():
    assert problems(task_yaml("id: a.b\ntype: io.kestra.plugin.core.log.Log\nmessage: hi\n")) == [
        "f.yml:4:9: invalid task id `a.b`: use letters, digits, `_` and `-`, starting with a letter or digit"]
    assert problems(HEAD + "  - just a string\n") == [
        "f.yml:4:5: expected a task (a mapping with `id` and `type`), found `just a string`"]
    assert problems(HEAD + "  id: a\n  type: io.kestra.plugin.core.log.Log\n") == [
        "f.yml:4:3: `tasks` expects a list of tasks; start the task with `- ` to make it a list item"]


def test_unknown_property_points_at_key_and_suggests():
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.log.Log\nmesage: hi\n")) == [
        "f.yml:4:5: task `a` (Log) is missing required property `message`",
        "f.yml:6:5: unknown property `mesage` for Log (io.kestra.plugin.core.log.Log), did you mean `message`?",
    ]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.debug.Return\nqqq: hi\n")) == [
        "f.yml:6:5: unknown property `qqq` for Return (io.kestra.plugin.core.debug.Return); allowed: "
        "description, disabled, timeout, retry, allowFailure, allowWarning, logLevel, runIf, "
        "format"]


def test_missing_required_property():
    assert problems(task_yaml("id: c\ntype: io.kestra.plugin.core.flow.If\ncondition: '{{ true }}'\n")) == [
        "f.yml:4:5: task `c` (If) is missing required property `then`"]


def test_wrong_kind_of_value():
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.log.Log\nmessage: {text: hi}\n")) == [
        "f.yml:6:14: `message` expects a string or a list, found a mapping"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Parallel\nconcurrent: many\n"
                              "tasks:\n  - id: b\n    type: io.kestra.plugin.core.log.Log\n    message: x\n")) == [
        "f.yml:6:17: `concurrent` expects an integer, found `many`"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\nallowSelfApproval: 1\n")) == [
        "f.yml:6:24: `allowSelfApproval` expects true or false, found `1`"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\nrequired: 0\n")) == [
        "f.yml:6:15: `required` must be at least 1, found 0"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.log.Log\nmessage:\n")) == [
        "f.yml:6:5: `message` needs a value: write a string or a list"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.scripts.shell.Commands\ncommands:\n  - [ls]\n")) == [
        "f.yml:7:9: `commands[0]` expects a string, found a list"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\nonPause:\n  - id: b\n"
                              "    type: io.kestra.plugin.core.log.Log\n    message: x\n")) == [
        "f.yml:7:7: `onPause` expects a single task (a mapping with `id` and `type`), found a list"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Switch\nvalue: x\ncases: [1]\n")) == [
        "f.yml:7:12: `cases` expects a mapping of case values to lists of tasks, found a list"]


def test_templates_allowed_for_typed_props():
    flow = load_flow_text(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\n"
                                    "allowSelfApproval: '{{ inputs.x }}'\npauseDuration: '{{ vars.d }}'\n"), "f.yml")
    assert flow.tasks[0].props["pauseDuration"] == "{{ vars.d }}"


def test_enum_value_not_allowed():
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\nbehavior: resume\n")) == [
        "f.yml:6:15: `behavior` must be one of RESUME, WARN, FAIL, CANCEL, ESCALATE, REISSUE; "
        "found `resume`, did you mean `RESUME`?"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.http.Request\nuri: http://x\nmethod: FETCH\n")) == [
        "f.yml:7:13: `method` must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS; "
        "found `FETCH`, did you mean `PATCH`?"]


def test_unknown_key_in_structured_map():
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Approval\nassignment:\n  user: [bob]\n")) == [
        "f.yml:7:7: unknown key `user` in `assignment`, did you mean `users`?"]


def test_bad_duration():
    from signoff.engine.durations import parse_duration

    with pytest.raises(ValueError) as err:
        parse_duration("1h")
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\npauseDuration: 1h\n")) == [
        f"f.yml:6:20: `pauseDuration`: {err.value}"]
    with pytest.raises(ValueError) as err2:
        parse_duration("soon")
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Approval\nreminders: [PT1H, soon]\n")) == [
        f"f.yml:6:23: `reminders[1]`: {err2.value}"]


def test_delay_and_pause_duration_together():
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\ndelay: PT1M\npauseDuration: PT1M\n")) == [
        "f.yml:6:5: `delay` is the deprecated name of `pauseDuration`; keep only `pauseDuration`"]


def test_duplicate_task_ids_anywhere():
    text = textwrap.dedent("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.flow.If
            condition: "{{ true }}"
            then:
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: x
        errors:
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: y
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: z
        """)
    assert problems(text, dedent=False) == [
        "f.yml:12:9: duplicate task id `b` (also used at f.yml:8:13); task ids must be unique in the flow, "
        "rename one of them",
        "f.yml:15:9: duplicate task id `a` (also used at f.yml:4:9); task ids must be unique in the flow, "
        "rename one of them",
    ]


def test_all_problems_are_reported_together_sorted():
    found = problems(textwrap.dedent("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            messag: x
          - id: b
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: 1h
        """))
    assert [p.split(": ")[0] for p in found] == ["f.yml:4:5", "f.yml:6:5", "f.yml:9:20"]


# --------------------------------------------------------------------------- inputs


def test_input_problems_are_reported():
    found = problems(textwrap.dedent("""\
        id: f
        namespace: t
        inputs:
          - id: x
            type: STRING
          - id: x
            type: STRING
        tasks:
          - id: a
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: ok
                type: BOOLEAN
              - id: ok
                type: BOOLEAN
        """))
    assert found == [
        "f.yml:6:9: duplicate input id `x`: it is already declared at f.yml:4:9; give each input a distinct id",
        "f.yml:14:13: duplicate input id `ok`: it is already declared at f.yml:12:13; "
        "give each input a distinct id",
    ]


def test_unknown_input_type_in_approval_form():
    (found,) = problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Approval\n"
                                  "inputs:\n  - id: ok\n    type: BOOLEN\n"))
    assert found.startswith("f.yml:8:15: unknown input type `BOOLEN` on input `ok`: did you mean `BOOLEAN`?")


def test_inputs_not_a_list():
    assert problems("id: f\nnamespace: t\ninputs: {a: 1}\ntasks:\n  - id: a\n"
                    "    type: io.kestra.plugin.core.log.Log\n    message: hi\n") == [
        "f.yml:3:9: `inputs` expects a list of inputs, found a mapping"]
    assert problems(task_yaml("id: a\ntype: io.kestra.plugin.core.flow.Pause\nonResume: yes please\n")) == [
        "f.yml:6:15: `onResume` expects a list of inputs, found `yes please`"]


# --------------------------------------------------------------------------- expressions


def _expr_error(text: str):
    from signoff.engine.errors import ExpressionError
    from signoff.engine.expressions import parse_template

    with pytest.raises(ExpressionError) as err:
        parse_template(text)
    return err.value


def test_malformed_expression_plain_scalar_column():
    value = "ab {{ inputs.x"
    err = _expr_error(value)
    assert err.position == 3
    assert problems(task_yaml(f"id: a\ntype: io.kestra.plugin.core.log.Log\nmessage: {value}\n")) == [
        f"f.yml:6:17: invalid expression: {err.reason}"]


def test_malformed_expression_quoted_scalar_column():
    bad = "x {{ inputs.x | nosuchfilter }}"
    err = _expr_error(bad)
    assert "nosuchfilter" in err.reason
    assert problems(task_yaml(f"id: a\ntype: io.kestra.plugin.core.log.Log\nmessage: \"{bad}\"\n")) == [
        f"f.yml:6:{14 + 1 + err.position}: invalid expression: {err.reason}"]


def test_malformed_expression_in_block_scalar_and_nested_data():
    bad = "{{ outputs.a | nosuchfilter }}"
    err = _expr_error(bad)
    text = task_yaml(f"id: a\ntype: io.kestra.plugin.core.http.Request\nuri: http://x\n"
                     f"formData:\n  k:\n    - ok\n    - '{bad}'\nbody: |\n  line one\n  two {bad}\n")
    assert problems(text, dedent=False) == [
        f"f.yml:10:{11 + 1 + err.position}: invalid expression: {err.reason}",
        f"f.yml:13:{11 + err.position}: invalid expression: {err.reason}",
    ]


def test_malformed_expression_anywhere_in_flow():
    bad = "{{ vars.x | nosuchfilter }}"
    err = _expr_error(bad)
    text = f"id: f\nnamespace: t\ndescription: '{bad}'\nvariables:\n  v: [1, '{bad}']\n" \
           "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    assert problems(text, dedent=False) == [
        f"f.yml:3:{14 + 1 + err.position}: invalid expression: {err.reason}",
        f"f.yml:5:{10 + 1 + err.position}: invalid expression: {err.reason}",
    ]


# --------------------------------------------------------------------------- files and dirs


def test_load_flow_file_errors(tmp_path):
    with pytest.raises(FlowLoadError) as info:
        load_flow_file(tmp_path / "missing.yml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.yml'}:1:1: cannot read the file")
    (tmp_path / "bin.yml").write_bytes(b"id: \xff\n")
    with pytest.raises(FlowLoadError) as info:
        load_flow_file(tmp_path / "bin.yml")
    assert str(info.value).startswith(f"{tmp_path / 'bin.yml'}:1:1: the file is not UTF-8 text")
    with pytest.raises(FlowLoadError) as info:
        load_flow_file(BAD / "unknown_type.yaml")
    assert str(info.value) == (f"{BAD / 'unknown_type.yaml'}:5:11: unknown task type "
                               "`io.kestra.plugin.core.flow.Pauze`, did you mean `io.kestra.plugin.core.flow.Pause`?")


def test_load_flow_dirs_good_bad_and_duplicate_identity():
    result = load_flow_dirs([GOOD, BAD, DATA / "does_not_exist"])
    assert isinstance(result, FlowSet)
    assert sorted(result.flows) == [("hr.operations", "vacation_approval"), ("ops.deploy", "nested_blocks")]
    assert result.flows[("hr.operations", "vacation_approval")].path == str(GOOD / "vacation_approval.yaml")
    assert [str(p) for p in result.problems] == [
        f"{BAD / 'unknown_type.yaml'}:5:11: unknown task type `io.kestra.plugin.core.flow.Pauze`, "
        "did you mean `io.kestra.plugin.core.flow.Pause`?",
        f"{BAD / 'zz_duplicate_vacation.yaml'}:1:5: flow `hr.operations.vacation_approval` is already defined "
        f"in {GOOD / 'vacation_approval.yaml'}; each namespace + id must be unique, change the `id` or "
        "`namespace` of one of them",
    ]


def test_load_flow_dirs_sorted_and_only_yaml(tmp_path):
    good = (GOOD / "vacation_approval.yaml").read_text(encoding="utf-8")
    (tmp_path / "b.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "a.yml").write_text(good, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a flow", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    shutil.copy(BAD / "unknown_type.yaml", tmp_path / "sub" / "x.yaml")
    result = load_flow_dirs([tmp_path])
    assert list(result.flows) == [("hr.operations", "vacation_approval")]
    assert result.flows[("hr.operations", "vacation_approval")].path == str(tmp_path / "a.yml")
    assert len(result.problems) == 1
    assert result.problems[0].location == Location(str(tmp_path / "b.yaml"), 1, 5)
    assert str(tmp_path / "a.yml") in result.problems[0].message
