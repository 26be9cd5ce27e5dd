"""The import contracts (tests/import_rules.py, run by .ci/static) hold on this tree, and breaking
one in a copy of the tree makes the check fail, naming the file and line."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import import_rules
from tests.support import REPO


def copy_tree(into: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in (*import_rules.PARTS, "src"):
        shutil.copytree(REPO / part, into / part, ignore=ignore)
    return into


def add_line(path: Path, line: str, *, after: str | None = None) -> int:
    """Insert ``line`` after the first line starting with ``after`` (else after the module
    docstring's imports, at the top); returns its 1-based line number."""
    lines = path.read_text().splitlines(keepends=True)
    if after is None:
        index = next(i for i, text in enumerate(lines) if text.startswith("from __future__")) + 1
    else:
        index = next(i for i, text in enumerate(lines) if text.lstrip().startswith(after)) + 1
        indent = lines[index - 1][: len(lines[index - 1]) - len(lines[index - 1].lstrip())]
        if lines[index - 1].rstrip().endswith(":"):
            indent += "    "
        line = indent + line
    lines.insert(index, line + "\n")
    path.write_text("".join(lines))
    return index + 1


def test_the_tree_keeps_every_contract():
    proc = subprocess.run([sys.executable, "-m", "tests.import_rules", str(REPO)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("import contracts: 0 findings")


@pytest.mark.parametrize("module, line", [
    ("engine/clock.py", "import textual"),
    ("engine/store/db.py", "from textual.app import App"),
])
def test_textual_in_the_engine_fails_the_check(tmp_path, module, line):
    tree = copy_tree(tmp_path)
    at = add_line(tree / module, line)
    proc = subprocess.run([sys.executable, "-m", "tests.import_rules", str(tree)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{module}:{at}: the engine imports `textual" in proc.stdout, proc.stdout
    # and loading the engine now really pulls Textual in
    assert "textual: loaded by importing the engine's modules" in proc.stdout, proc.stdout


def test_click_or_the_console_in_the_engine_fails_the_check(tmp_path):
    tree = copy_tree(tmp_path)
    click = add_line(tree / "engine/service.py", "import click")
    console = add_line(tree / "engine/tokens.py", "from signoff.console import output")
    assert [str(f) for f in import_rules.check_static(tree)] == [
        f"engine/service.py:{click}: the engine imports `click`; it must never import click",
        f"engine/tokens.py:{console}: the engine imports `signoff.console.output`; "
        "it must never import signoff.console",
    ]


def test_a_lazy_textual_import_inside_an_engine_function_fails_too(tmp_path):
    tree = copy_tree(tmp_path)
    at = add_line(tree / "engine/durations.py", "from textual.widgets import Static",
                  after="def parse_duration(")
    findings = import_rules.check_static(tree)
    assert [str(f) for f in findings] == [
        f"engine/durations.py:{at}: the engine imports `textual.widgets.Static`; it must never import textual"]


def test_the_http_client_may_not_import_the_server(tmp_path):
    tree = copy_tree(tmp_path)
    at = add_line(tree / "console/remote.py", "import fastapi")
    findings = [str(f) for f in import_rules.check(tree)]
    assert f"console/remote.py:{at}: the HTTP client imports `fastapi`; it must never load fastapi" in findings
    assert any(f.startswith("fastapi: loaded by importing the HTTP client") for f in findings), findings


def test_the_console_ui_reaches_engine_behaviour_only_through_the_backend(tmp_path):
    tree = copy_tree(tmp_path)
    ui = add_line(tree / "console/screens/history.py", "from signoff.engine.service import ApprovalService")
    internal = add_line(tree / "console/cli.py", "from signoff.engine.store.db import Database")
    bare = add_line(tree / "console/output.py", "from engine.errors import SignoffError")
    findings = [str(f) for f in import_rules.check_static(tree)]
    assert findings == sorted([
        f"console/screens/history.py:{ui}: imports `signoff.engine.service`: "
        "the Textual console reaches engine behaviour only through the Backend seam",
        f"console/cli.py:{internal}: imports `signoff.engine.store.db`: "
        "`signoff.engine.store.db` is internal to the engine",
        f"console/output.py:{bare}: imports `engine.errors.SignoffError`: "
        "the folders are `signoff.engine` once installed",
    ])


def test_relative_imports_are_resolved(tmp_path):
    tree = copy_tree(tmp_path)
    at = add_line(tree / "console/screens/history.py", "from ...engine.store import db")
    findings = [str(f) for f in import_rules.check_static(tree)]
    assert findings == [f"console/screens/history.py:{at}: imports `signoff.engine.store.db`: "
                        "`signoff.engine.store.db` is internal to the engine"]
