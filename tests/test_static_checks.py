""".ci/static fails on what it is there to catch: run on a copy of the tree with a fault put in,
each step names the fault (the tree itself passes: .ci/run runs the same script before the tests).

The type check takes a while on a cold copy (no mypy cache), so one copy carries every typing
fault at once and mypy runs once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

TREE = ("console", "engine", "themes", "sample_flows", "src", "tests", ".ci")


def copy_tree(into: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "__snapshots__", ".hypothesis")
    for name in TREE:
        shutil.copytree(REPO / name, into / name, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", into / "pyproject.toml")
    return into


def static(tree: Path, *steps: str) -> subprocess.CompletedProcess[str]:
    """``bash .ci/static STEPS`` in ``tree``, with this interpreter's tools first on PATH."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", ".ci/static", *steps], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=900)


def replace(path: Path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old``; returns its 1-based line number."""
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def append(path: Path, code: str) -> int:
    """Append ``code`` (one line); returns its line number."""
    text = path.read_text()
    path.write_text(text + code + "\n")
    return text.count("\n") + 1


def test_mypy_holds_the_backends_to_the_protocol_and_the_engine_to_strict(tmp_path):
    tree = copy_tree(tmp_path)
    # a backend whose method no longer matches the Backend Protocol
    wrong = replace(tree / "console/remote.py",
                    "    def cancel(self, request_ids: Sequence[str], reason: str | None = None,\n",
                    "    def cancel(self, request_ids: Sequence[str], reason: int = 0,\n")
    # an unannotated function: an error in the engine (strict), accepted in the console's screens
    engine_line = append(tree / "engine/clock.py", "def untyped(value): return value")
    append(tree / "console/output.py", "def untyped(value): return value")
    # a wrong type where the engine is called
    call_line = append(tree / "engine/durations.py", "WRONG: int = parse_duration('PT1M')")

    proc = static(tree, "types")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert f'console/remote.py:{wrong}: error: Argument 2 of "cancel" is incompatible with supertype ' \
        '"signoff.console.backend.Backend"' \
        in out, out
    assert f"engine/clock.py:{engine_line}: error: Function is missing a type annotation" in out, out
    assert "console/output.py" not in out, out
    assert f'engine/durations.py:{call_line}: error: Incompatible types in assignment (expression has type ' \
        '"timedelta", variable has type "int")' in out, out
    assert "static checks failed: types" in out


def test_ruff_and_unexplained_noqa_or_ignore_fail(tmp_path):
    tree = copy_tree(tmp_path)
    unused = replace(tree / "engine/ids.py", "import os\n", "import os\nimport sys\n") + 1
    noqa = "# " + "noqa"  # spelled apart so that this file itself passes the check
    bare = append(tree / "engine/clock.py", f"X = 1  {noqa}")
    codes_only = append(tree / "console/output.py", f"Y = 2  {noqa}: E501")
    ignore = append(tree / "engine/durations.py", "Z = 3  # type: ignore")

    proc = static(tree, "ruff", "noqa")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "F401" in out and f"engine/ids.py:{unused}:8" in out, out
    assert f"engine/clock.py:{bare}:" in out, out
    assert f"console/output.py:{codes_only}:" in out, out
    assert f"engine/durations.py:{ignore}:" in out, out
    assert "static checks failed: ruff noqa" in out, out


def test_an_unknown_step_is_a_usage_error(tmp_path):
    proc = static(REPO, "lint")
    assert proc.returncode == 2
    assert "unknown step `lint`" in proc.stdout
