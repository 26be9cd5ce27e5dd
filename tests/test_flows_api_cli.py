"""`signoff flows push|show|revisions|delete` on the embedded engine: the same rules as over
HTTP (tests/server/test_flows_api.py), and a pushed flow's triggers are live at once."""
from __future__ import annotations

from pathlib import Path

from tests.test_cli import Cli

PUSHED = """id: nightly
namespace: ops.reports
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date ?? 'by hand' }}"
triggers:
  - id: at_two
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""


def test_push_show_revisions_delete_embedded(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    cli = Cli(tmp_path / "data", flows=folder)
    first = tmp_path / "nightly.yaml"
    first.write_text(PUSHED)
    r = cli("flows", "push", str(first), "--json")
    assert r.code == 0, r
    [pushed] = r.json
    assert (pushed["revision"], pushed["origin"], pushed["changed"]) == (1, "api", True)
    # the pushed flow is a flow like any other: listed, startable, its trigger scheduled
    r = cli("flows", "list", "--json")
    assert [f["id"] for f in r.json["flows"]] == ["nightly"] and r.json["flows"][0]["origin"] == "api"
    r = cli("triggers", "list", "--json")
    assert [(t["flow_id"], t["trigger_id"]) for t in r.json] == [("nightly", "at_two")]
    r = cli("run", "ops.reports", "nightly", "--json")
    assert r.code == 0 and r.json["state"] == "SUCCESS" and r.json["revision"] == 1, r

    second = tmp_path / "nightly2.yaml"
    second.write_text(PUSHED.replace('cron: "0 2 * * *"', 'cron: "0 3 * * *"'))
    r = cli("flows", "push", str(second))
    assert r.code == 0 and r.out.strip() == f"ops.reports.nightly  revision 2  from {second}", r
    r = cli("flows", "push", str(second))
    assert r.code == 0 and "revision 2 (unchanged)" in r.out, r
    r = cli("flows", "revisions", "ops.reports", "nightly")
    assert r.code == 0 and r.out.splitlines()[1].split()[:3] == ["1", r.out.splitlines()[1].split()[1], "api"], r
    assert r.out.splitlines()[2].rstrip().endswith("current"), r
    assert cli("flows", "show", "ops.reports", "nightly").out == second.read_text()
    assert cli("flows", "show", "ops.reports", "nightly", "--revision", "1").out == PUSHED
    r = cli("flows", "show", "ops.reports", "nightly", "--revision", "3")
    assert r.code == 1 and "revision 3" in r.err, r

    # a broken file: every problem with file:line:col, exit 2, nothing pushed
    broken = tmp_path / "broken.yaml"
    broken.write_text(PUSHED.replace("cron: \"0 2 * * *\"", "cron: \"0 25 * * *\"").replace("nightly", "other"))
    r = cli("flows", "push", str(broken))
    assert r.code == 2 and f"{broken}:10:11: invalid cron expression" in r.err, r
    r = cli("flows", "push", str(tmp_path / "missing.yaml"))
    assert r.code == 2 and "cannot read" in r.err, r
    assert [f["id"] for f in cli("flows", "list", "--json").json["flows"]] == ["nightly"]

    # a folder flow is read-only through the API
    (folder / "kept.yaml").write_text(PUSHED.replace("id: nightly", "id: kept"))
    copy = tmp_path / "kept.yaml"
    copy.write_text(PUSHED.replace("id: nightly", "id: kept").replace("0 2", "0 4"))
    r = cli("flows", "push", str(copy))
    assert r.code == 1 and "read-only through the API" in r.err, r
    r = cli("flows", "delete", "ops.reports", "kept")
    assert r.code == 1 and "read-only through the API" in r.err, r

    r = cli("flows", "delete", "ops.reports", "nightly")
    assert r.code == 0 and "deleted (last revision 2)" in r.out, r
    r = cli("run", "ops.reports", "nightly")
    assert r.code == 1 and "no flow `nightly`" in r.err, r
    r = cli("flows", "delete", "ops.reports", "nightly")
    assert r.code == 1, r
    history = cli("history", "action:flow.*", "--json").json
    assert [e["action"] for e in history] == ["flow.deleted", "flow.updated", "flow.created"]
