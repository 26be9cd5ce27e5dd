"""One import name: signoff lives beside the public index's ``console`` package in one environment,
and ``pip install .`` puts nothing but ``signoff`` into site-packages.

The test extra installs the index's ``console`` (a terminal utility library) on purpose, so this
environment is the one where a generic top-level ``console`` from signoff would collide. Every
check runs in a fresh interpreter from a temporary directory with no ``PYTHONPATH``: pytest's own
``pythonpath = .`` would otherwise put the repository's ``console/`` folder first.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO, SIGNOFF, clean_env

PARTS = ("console", "engine", "themes", "sample_flows")


def _env(**extra: str) -> dict[str, str]:
    """The test environment as an installed user has it: no checkout on PYTHONPATH."""
    env = clean_env(**extra)
    env.pop("PYTHONPATH")
    return env


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=300)


def test_the_index_console_package_imports_beside_signoff(tmp_path):
    proc = _python(
        "import json, console, signoff.console.app, signoff.engine.service\n"
        "from console import fg\n"
        "print(json.dumps({'console': console.__file__, 'signoff': signoff.console.app.__file__,\n"
        "                  'red': str(fg.red('x')), 'fg': type(fg).__module__}))\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    index_console = Path(seen["console"]).resolve()
    assert "site-packages" in index_console.parts, seen  # the index's, not the repository's folder
    assert not index_console.is_relative_to(REPO / "console"), seen
    assert seen["fg"].startswith("console."), seen  # the index package's own classes
    assert "x" in seen["red"]
    assert Path(seen["signoff"]).parent.name == "console"  # signoff.console: the repository's


def test_signoff_demo_runs_beside_the_index_console_package(tmp_path):
    data_dir = tmp_path / "demo"
    proc = subprocess.run([*SIGNOFF, "demo", "--no-console", "--count", "5", "--data-dir", str(data_dir)],
                          cwd=tmp_path, env=_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "config")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(data_dir)
    assert "5 pending requests" in proc.stderr, proc.stderr

    # the same data, the console under Pilot, in an interpreter that imported the index's console first
    probe = f"""
import asyncio, json, sys
import console
from console import fg
assert "site-packages" in console.__file__, console.__file__

from pathlib import Path
from signoff.console.app import SignoffApp
from signoff.console.backend import LocalBackend
from signoff.console.config import ConsoleConfig
from signoff.console.settings import sample_flows_dir
from signoff.engine.core import Engine
from signoff.engine.policy import load_policy
from signoff.engine.service import ApprovalService

data = Path({str(data_dir)!r})
engine = Engine(data, [sample_flows_dir()], policy=load_policy(data / "policy.yaml"))
backend = LocalBackend(ApprovalService(engine))
expected = backend.list_pending()

async def main():
    app = SignoffApp(backend, config=ConsoleConfig.load(Path({str(tmp_path / 'config.toml')!r})))
    async with app.run_test(size=(120, 40)) as pilot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        shown = lambda: "\\n".join("".join(seg.text for seg in strip)
                                    for strip in app.screen._compositor.render_strips())
        first = expected[0]["summary"][:20]
        while app.pending_view.table.row_count != len(expected) or first not in shown():
            if loop.time() > deadline:
                raise SystemExit(f"rows {{app.pending_view.table.row_count}} of {{len(expected)}}, "
                                 f"{{first!r}} not on the screen:\\n{{shown()}}")
            await pilot.pause(0.05)
        return {{"rows": app.pending_view.table.row_count, "expected": len(expected), "fg": str(fg.green("ok"))}}

print(json.dumps(asyncio.run(main())))
engine.close()
"""
    proc = _python(probe, tmp_path, SIGNOFF_CONFIG_DIR=str(tmp_path / "config"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["rows"] == seen["expected"] >= 5, seen
    assert "ok" in seen["fg"]


def test_pip_install_puts_only_signoff_into_site_packages(tmp_path):
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PARTS, "src"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(src)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheels.glob("signoff-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["signoff"]
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"signoff"}, tops
    # the data folders come along in a plain (not editable) install
    assert any(n.startswith("signoff/themes/") and n.endswith(".toml") for n in names)
    assert "signoff/sample_flows/vacation_approval.yaml" in names
    assert {"signoff/console/app.py", "signoff/engine/service.py", "signoff/__main__.py"} <= set(names)

    # and what pip really installs from it
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                              str(target), str(wheel)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert installed == {"signoff"}, installed
    for generic in PARTS:
        assert not (target / generic).exists() and not (target / f"{generic}.py").exists()
