"""FILE inputs over the API (engine.inputs.uploads): a real `signoff serve` never reads a path
its caller names - it runs as root here and /etc/shadow is right there - and takes the file's
bytes instead; the real `signoff` CLI in remote mode reads the caller's own file and uploads it.
The same rule on the Unix socket, with real OS accounts, is in tests/test_shared_box.py."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from signoff.engine.inputs import show_value
from tests.server.conftest import Server, make_server, signoff

UPLOAD_FLOW = """\
id: upload
namespace: company.finance
inputs:
  - id: doc
    type: FILE
  - id: note
    type: STRING
    required: false
  - id: copies
    type: INT
    required: false
tasks:
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sha256sum "$(printf %s '{{ inputs.doc }}' | sed 's|^file://||')"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("files")
    srv = make_server(base)
    (base / "flows" / "upload.yaml").write_text(UPLOAD_FLOW)
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log


def encoded(content: bytes, name: str = "report.csv") -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(content).decode()}


def start(server: Server, inputs: object, who: str = "rita"):
    with server.client(who) as c:
        return c.post("/api/v1/executions", json={"namespace": "company.finance", "flow_id": "upload",
                                                  "inputs": inputs})


def executions_started(server: Server) -> int:
    with server.db() as db:
        return db.execute("SELECT COUNT(*) FROM executions WHERE flow_id='upload'").fetchone()[0]


def stored_files(server: Server) -> int:
    with server.db() as db:
        return db.execute("SELECT COUNT(*) FROM input_files").fetchone()[0]


def wait_ended(server: Server, execution_id: str) -> dict:
    deadline = time.monotonic() + 30
    with server.client("root-admin") as c:
        while time.monotonic() < deadline:
            execution = c.get(f"/api/v1/executions/{execution_id}").json()
            if execution["state"] in ("SUCCESS", "FAILED", "KILLED"):
                return execution
            time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not end")


@pytest.mark.parametrize("path", ["/etc/shadow", "file:///etc/shadow", "~root/.bashrc", "../../../../etc/passwd"])
def test_a_path_on_the_server_is_refused_and_never_read(server: Server, path: str) -> None:
    before, files = executions_started(server), stored_files(server)
    r = start(server, {"doc": path})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert set(problem["errors"]) == {"doc"}
    assert problem["errors"]["doc"].startswith("Invalid input for `doc`, a path on the server cannot be given here")
    assert "root:" not in r.text  # nothing of the file came back
    assert executions_started(server) == before and stored_files(server) == files


def test_uploaded_content_is_what_the_flow_reads(server: Server) -> None:
    content = b"id,amount\n1,250\n\x00\xff binary tail\n"
    r = start(server, {"doc": encoded(content, "q3-payments.csv"), "note": "quarterly"})
    assert r.status_code == 201, r.text
    uri = r.json()["inputs"]["doc"]
    assert uri.startswith(server.data_dir.resolve().as_uri() + "/files/") and uri.endswith("/q3-payments.csv")
    execution = wait_ended(server, r.json()["id"])
    assert execution["state"] == "SUCCESS", execution
    import hashlib

    logs = json.dumps(execution.get("logs"))
    assert hashlib.sha256(content).hexdigest() in logs


@pytest.mark.parametrize(("doc", "reason"), [
    ({"name": "a.csv", "content_base64": "%%%"}, "`content_base64` is not valid base64"),
    ({"name": "../../etc/cron.d/evil", "content_base64": ""}, "`name` must be a file name, without folders"),
    ({"name": "a.csv", "content_base64": "", "path": "/etc/shadow"}, "(unknown path)"),
    ({"name": "a.csv"}, "(missing content_base64)"),
    (encoded(bytes(10 * 1024 * 1024 + 1), "big.bin"), "the file is larger than 10 MiB"),
    (17, "a path on the server cannot be given here"),
])
def test_a_bad_upload_is_a_422_naming_the_field(server: Server, doc: object, reason: str) -> None:
    before, files = executions_started(server), stored_files(server)
    r = start(server, {"doc": doc})
    assert r.status_code == 422, r.text
    assert reason in r.json()["errors"]["doc"]
    assert len(r.text) < 2000  # the content is never echoed back
    assert executions_started(server) == before and stored_files(server) == files


def test_a_start_refused_for_another_input_stores_no_file(server: Server) -> None:
    before, files = executions_started(server), stored_files(server)
    r = start(server, {"doc": encoded(b"never kept\n", "kept.txt"), "copies": "many"})
    assert r.status_code == 422, r.text
    assert set(r.json()["errors"]) == {"copies"}
    assert executions_started(server) == before and stored_files(server) == files


def test_a_body_over_the_start_limit_is_a_413(server: Server) -> None:
    r = start(server, {"doc": encoded(bytes(13 * 1024 * 1024))})
    assert r.status_code == 413, r.text
    assert "larger than 16777216 bytes" in r.json()["detail"]
    with server.client("rita") as c:  # other endpoints keep the 1 MiB limit
        r = c.post("/api/v1/approvals/bulk", json={"ids": ["x"], "verdict": "approve", "reason": "r" * 1_100_000})
    assert r.status_code == 413, r.text


def test_the_input_check_takes_uploads_and_refuses_paths(server: Server) -> None:
    with server.client("rita") as c:
        ok = c.post("/api/v1/flows/company.finance/upload/validate", json={"inputs": {"doc": encoded(b"x")}})
        bad = c.post("/api/v1/flows/company.finance/upload/validate", json={"inputs": {"doc": "/etc/hostname"}})
    assert ok.status_code == 200 and ok.json()["errors"] == {}, ok.text
    assert "a path on the server cannot be given here" in bad.json()["errors"]["doc"], bad.text


def test_the_cli_in_remote_mode_uploads_the_callers_own_file(server: Server, tmp_path: Path) -> None:
    report = tmp_path / "change-list.txt"
    report.write_bytes(b"delete host-17\n")
    token_file = tmp_path / "token"
    token_file.write_text(server.tokens["rita"])
    token_file.chmod(0o600)
    remote = ["--server", server.url, "--token-file", str(token_file)]
    done = signoff(["run", "company.finance", "upload", "-i", f"doc={report}", "--json", *remote], server.env)
    assert done.returncode == 0, done.stderr
    execution = json.loads(done.stdout)
    assert execution["inputs"]["doc"].endswith("/change-list.txt")
    assert wait_ended(server, execution["id"])["state"] == "SUCCESS"
    before = executions_started(server)
    missing = tmp_path / "not-there.csv"
    done = signoff(["run", "company.finance", "upload", "-i", f"doc={missing}", *remote], server.env)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert ("Invalid input for `doc`, it must be the path of an existing file, but received "
            f"`{show_value(str(missing))}`") in done.stderr
    assert "Traceback" not in done.stderr
    assert executions_started(server) == before
