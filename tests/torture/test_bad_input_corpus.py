"""The bad input corpus (issue 6): every file under tests/torture/corpus/*.case is one case, run
through the real entry point (the `signoff` CLI as a subprocess, or the HTTP server).

A case file is a small header, a line ``--- body``, then the body (a flow file, a policy file,
a request body...). Header keys (each value is JSON, so the header is also YAML):

- ``kind``: ``flow`` (the body is a flow file: `flows validate FILE` must reject it, and
  `run` of it must be refused), ``flow_run`` (the body loads, but its execution must fail
  cleanly and quickly: a hostile expression stopped by a limit), ``run`` (flow inputs for the
  corpus flow ``torture.corpus.typed``), ``approve`` (form values for its pending request),
  ``cli`` (raw arguments), ``http`` (a request to `signoff serve`);
- ``exit`` (the exit code) or ``status`` (the HTTP status);
- ``contains``: fragments the message must contain;
- ``about``: what the case is;
- ``timeout``: seconds the command may take (default 60; lower for cases that must be refused
  at once, so a regression fails quickly instead of eating the CI budget).

Placeholders in ``args``/``inputs``: ``{data}`` the data directory, ``{flows}`` the corpus flow
folder, ``{request}`` the pending request, ``{file}`` the body written to a file,
``{big_digits}``/``{big_letters}`` 120,000 characters (one argv string holds at most 128 KiB).

Every case also checks: no traceback, and nothing written (every table's row count and every
request's and execution's state are unchanged; files given to the command are unchanged).
"""
from __future__ import annotations

import json
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.torture.support import db_snapshot, no_traceback, signoff

CORPUS = Path(__file__).resolve().parent / "corpus"
FLOWS = CORPUS / "_flows"
CASES = sorted(p for p in CORPUS.glob("*.case"))
BIG = 120_000
#: a case that hangs or eats memory fails instead of taking the machine down
CASE_TIMEOUT = 60
MEMORY_LIMIT = 2 * 1024 ** 3


def load_case(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n--- body\n")
    assert sep, f"{path.name}: no `--- body` line"
    header = yaml.safe_load(head.decode())
    assert isinstance(header, dict) and "kind" in header, path.name
    return header, body


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.fixture(scope="session")
def base_data(tmp_path_factory) -> tuple[Path, str]:
    """A data directory with one execution of torture.corpus.typed waiting at its Pause."""
    data = tmp_path_factory.mktemp("corpus-base") / "data"
    proc = signoff("run", "torture.corpus", "typed", "--json", data_dir=data, flows=FLOWS)
    assert proc.returncode == 0, proc.stderr
    execution = json.loads(proc.stdout)
    assert execution["state"] == "PAUSED", execution
    return data, execution["requests"][0]["id"]


def test_the_corpus_is_big_enough() -> None:
    kinds = [load_case(p)[0]["kind"] for p in CASES]
    assert len(CASES) >= 60
    assert {"flow", "flow_run", "run", "approve", "cli", "http"} <= set(kinds)


@pytest.fixture(scope="session")
def corpus_server(tmp_path_factory):
    """`signoff serve` for the http cases (started only when one runs)."""
    from tests.torture.http_cases import make_world

    world = make_world(tmp_path_factory.mktemp("corpus-server"), FLOWS)
    yield world
    world.server.stop()


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_input_case(path: Path, base_data: tuple[Path, str], tmp_path: Path, request) -> None:
    header, body = load_case(path)
    kind = header["kind"]
    if kind == "http":
        from tests.torture.http_cases import run_http_case

        run_http_case(header, body, request.getfixturevalue("corpus_server"))
        return
    data = tmp_path / "data"
    shutil.copytree(base_data[0], data)
    request_id = base_data[1]
    body_file = tmp_path / "case-file"
    body_file.write_bytes(body)
    values = {"data": str(data), "flows": str(FLOWS), "request": request_id, "file": str(body_file),
              "big_digits": "9" * BIG, "big_letters": "a" * BIG}

    def fill(items: list[str]) -> list[str]:
        out = []
        for item in items:
            for key, value in values.items():
                item = str(item).replace("{" + key + "}", value)
            out.append(item)
        return out

    before = db_snapshot(data)
    contains = fill(header.get("contains", []))

    timeout = header.get("timeout", CASE_TIMEOUT)

    def run(*args: str, flows: Path = FLOWS, stdin: str = ""):
        try:
            proc = signoff(*args, data_dir=data, flows=flows, timeout=timeout, stdin=stdin,
                           preexec_fn=_limit_memory)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{header.get('about')}: `signoff {args[0]} ...` gave no answer within {timeout} s "
                        "(killed)", pytrace=False)
        no_traceback(proc)
        return proc

    def expect(proc, code: int, fragments: list[str]) -> None:
        # fragments are matched without the temporary paths (a case named "tab" must not pass
        # because its directory is)
        output = (proc.stdout + proc.stderr).replace(str(tmp_path), "<tmp>")
        assert proc.returncode == code, (f"{header.get('about')}: exit {proc.returncode}, wanted {code}\n"
                                         f"{output[-3000:]}")
        for fragment in fragments:
            fragment = fragment.replace(str(tmp_path), "<tmp>")
            assert fragment in output, f"{header.get('about')}: `{fragment}` not in\n{output[-3000:]}"
        if code and "--json" not in proc.args:
            assert proc.stderr.strip(), "a refusal without a message on stderr"

    if kind == "flow":
        flow_dir = tmp_path / "flows"
        flow_dir.mkdir()
        flow_file = flow_dir / "bad.yaml"
        flow_file.write_bytes(body)
        proc = run("flows", "validate", str(flow_file))
        expect(proc, header["exit"], contains)
        assert "bad.yaml" in proc.stderr, "a flow problem without the file it is in"
        # the same flow through `run`: refused (2 for a flow that cannot be loaded, 1 when the
        # file is so broken that no flow of that name exists), and nothing stored
        proc = run("run", "torture.bad", "bad", flows=flow_dir)
        assert proc.returncode in (1, 2), proc
        assert proc.stderr.strip()
        assert flow_file.read_bytes() == body
    elif kind == "flow_run":
        flow_dir = tmp_path / "flows"
        flow_dir.mkdir()
        (flow_dir / "hostile.yaml").write_bytes(body)
        proc = run("flows", "validate", str(flow_dir / "hostile.yaml"))
        assert proc.returncode == 0, proc.stderr  # it loads: the limit is at run time
        proc = run("run", "torture.run", "hostile", "--json", flows=flow_dir)
        assert proc.returncode == header["exit"], proc.stderr[-3000:]
        execution = json.loads(proc.stdout)
        assert execution["state"] == header["state"], execution["state"]
        for fragment in contains:
            assert fragment in (execution["error"] or ""), execution["error"]
        after = db_snapshot(data)
        assert after["executions"] == before["executions"] + 1  # the failed execution, nothing else
        return
    elif kind == "run":
        args = [x for pair in fill(header["inputs"]) for x in ("-i", pair)]
        expect(run("run", "torture.corpus", "typed", *args), header["exit"], contains)
    elif kind == "approve":
        args = [x for pair in fill(header["inputs"]) for x in ("-i", pair)]
        proc = run("approve", request_id, *args, "--json")
        expect(proc, header["exit"], contains)
        [outcome] = json.loads(proc.stdout)
        assert outcome["outcome"] == header["outcome"], outcome
        assert outcome["state"] == "PENDING"
        assert outcome["errors"], outcome
    elif kind == "cli":
        expect(run(*fill(header["args"]), stdin=header.get("stdin", "")), header["exit"], contains)
        assert body_file.read_bytes() == body, "the command changed a file it was given"
    else:  # pragma: no cover - a typo in a case file
        pytest.fail(f"unknown kind {kind!r}")

    assert db_snapshot(data) == before, f"{header.get('about')}: bad input changed the database"
