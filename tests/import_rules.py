"""The import contracts between signoff's layers, checked on a source tree (``.ci/static``).

Two checks, both over the repository's folders (not over whatever copy is installed):

- **Direct imports** (static): every ``import`` statement in every module, at any depth (a lazy
  import inside a function counts as much as one at the top), resolved to an absolute module
  name and held to the rules below.
- **What loading really pulls in** (dynamic): a fresh interpreter imports a part of the tree and
  reports ``sys.modules``; a forbidden package that arrives indirectly fails as well.

The rules:

1. The engine never imports Textual, Rich, click or the console (and loading any engine module,
   the server included, never loads Textual or the console).
2. The HTTP client (``console/remote.py`` and any ``console/transport*`` / ``console/http*``
   module) never imports FastAPI, Starlette or uvicorn, nor the server's own modules: a console
   that talks to a server must not load the server.
3. The console reaches the engine only through the engine's public modules (``PUBLIC_ENGINE``).
   The Textual part of the console (``app.py``, ``screens/``, ``widgets/``) is held tighter: it
   gets at the engine's behaviour only through the ``Backend`` seam (``console/backend.py``), so
   it may import only the engine's value and helper modules (``UI_ENGINE``), never the service,
   the core, the store, the runtime or the server.
4. Nothing imports the bare folder names (``console``, ``engine``, ``themes``, ``sample_flows``):
   installed, they exist only beneath ``signoff``.

Run ``python -m tests.import_rules [REPO]``: one line per finding, exit 1 if there is any.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: the repository's folders and the names they have beneath ``signoff``
PARTS = ("console", "engine", "themes", "sample_flows")

#: The engine's public modules: what the console (and any other client) may import. Everything
#: else in ``engine/`` is internal and may change without notice. A package listed here is
#: public as a package (its ``__init__``), not its submodules.
PUBLIC_ENGINE = frozenset({
    # the facade and its construction: the only way to act on the engine (LocalBackend, the CLI)
    "signoff.engine.service",
    "signoff.engine.core",
    # values, errors and small helpers that appear in the service's signatures and results
    "signoff.engine.errors",
    "signoff.engine.identity",
    "signoff.engine.clock",
    "signoff.engine.durations",
    "signoff.engine.approvals.outcome",
    "signoff.engine.approvals.rows",
    "signoff.engine.audit.actions",
    "signoff.engine.audit.export",
    # request links: their two forms and what `signoff open` accepts
    "signoff.engine.links",
    # the resume form validates and renders in the client exactly as the engine will
    "signoff.engine.inputs",
    "signoff.engine.expressions",
    # configuration files and flow folders, read by the command line and checked by it
    "signoff.engine.policy",
    "signoff.engine.notify.config",
    "signoff.engine.flows.loader",
    # serving, tokens and secrets: the administration commands (signoff serve / token / secret)
    "signoff.engine.server.run",
    "signoff.engine.tokens",
    "signoff.engine.store",
    "signoff.engine.runtime.functions",
    "signoff.engine.runtime.runner",
    # signed decisions: the client builds the canonical statement and the sshsig signature
    # exactly as the engine checks them (console/signing.py, console/sshagent.py)
    "signoff.engine.signing.sshsig",
    "signoff.engine.signing.statement",
})

#: what the Textual part of the console may import from the engine: values, not behaviour
UI_ENGINE = frozenset({
    "signoff.engine.errors",
    "signoff.engine.identity",
    "signoff.engine.clock",
    "signoff.engine.durations",
    "signoff.engine.approvals.outcome",
    "signoff.engine.approvals.rows",
    "signoff.engine.audit.actions",
    "signoff.engine.audit.export",
    "signoff.engine.inputs",
    "signoff.engine.expressions",
})

ENGINE_FORBIDDEN = ("textual", "rich", "click", "signoff.console")
#: what importing the engine must not load even indirectly (click and Rich are not here: httpx
#: itself imports them for its command line, so for those only direct imports are held)
ENGINE_NEVER_LOADED = ("textual", "signoff.console")
HTTP_CLIENT_FORBIDDEN = ("fastapi", "starlette", "uvicorn", "signoff.engine.server.app",
                         "signoff.engine.server.auth", "signoff.engine.server.models",
                         "signoff.engine.server.problems", "signoff.engine.server.runner")
BARE_NAMES = PARTS


@dataclass(frozen=True)
class Finding:
    where: str  # file:line, or the module that was loaded
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _under(name: str, prefixes: Iterable[str]) -> str | None:
    for prefix in prefixes:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def is_http_client(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return module.startswith("signoff.console.") and module.count(".") == 2 and (
        leaf == "remote" or leaf.startswith(("remote_", "transport", "http")))


def is_console_ui(module: str) -> bool:
    return module == "signoff.console.app" or module.startswith(("signoff.console.screens",
                                                                 "signoff.console.widgets"))


def modules(repo: Path) -> Iterator[tuple[str, Path]]:
    """(module name beneath ``signoff``, file) for every Python file of the installed folders."""
    for part in PARTS:
        for path in sorted((repo / part).rglob("*.py")):
            rel = path.relative_to(repo).with_suffix("")
            names = list(rel.parts)
            if names[-1] == "__init__":
                names.pop()
            yield ".".join(["signoff", *names]), path


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute name) for every import in the file; ``from X import y`` yields ``X.y``
    (y may be a submodule or a name in X: the checks resolve it to the module it lives in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, target if alias.name == "*" else f"{target}.{alias.name}"


def _engine_module(name: str, known: set[str]) -> str | None:
    """The engine module an imported name refers to (``from pkg import attr`` gives pkg)."""
    if not name.startswith("signoff.engine"):
        return None
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def check_static(repo: Path) -> list[Finding]:
    found: list[Finding] = []
    table = list(modules(repo))
    known = {name for name, _ in table}
    for module, path in table:
        where_file = path.relative_to(repo)
        for line, name in imports(module, path):
            where = f"{where_file}:{line}"
            if (bare := _under(name, BARE_NAMES)) is not None:
                found.append(Finding(where, f"imports `{name}`: the folders are `signoff.{bare}` once installed"))
            if module.startswith("signoff.engine") and (bad := _under(name, ENGINE_FORBIDDEN)):
                found.append(Finding(where, f"the engine imports `{name}`; it must never import {bad}"))
            if is_http_client(module) and (bad := _under(name, HTTP_CLIENT_FORBIDDEN)):
                found.append(Finding(where, f"the HTTP client imports `{name}`; it must never load {bad}"))
            if module.startswith("signoff.console") and (target := _engine_module(name, known)):
                allowed = UI_ENGINE if is_console_ui(module) else PUBLIC_ENGINE
                if target not in allowed and target != "signoff.engine":
                    why = ("the Textual console reaches engine behaviour only through the Backend seam"
                           if target in PUBLIC_ENGINE else f"`{target}` is internal to the engine")
                    found.append(Finding(where, f"imports `{target}`: {why}"))
    # several names from one module on one line give one finding
    return sorted(set(found), key=lambda f: (f.where, f.message))


# -- what loading really pulls in -------------------------------------------------------------

_PROBE = r"""
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _staging(repo: Path, into: Path) -> Path:
    """A folder where ``import signoff`` finds this tree's parts (not an installed copy)."""
    root = into / "signoff"
    root.mkdir()
    for item in (repo / "src" / "signoff").iterdir():
        if item.suffix == ".py":
            (root / item.name).write_bytes(item.read_bytes())
    for part in PARTS:
        os.symlink(repo / part, root / part)
    return into


def loaded(repo: Path, names: list[str]) -> set[str]:
    """``sys.modules`` of a fresh interpreter after importing ``names`` from the tree at ``repo``."""
    with tempfile.TemporaryDirectory(prefix="signoff-import-rules-") as tmp:
        stage = _staging(repo, Path(tmp))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # -P: no cwd on sys.path; the staging folder goes first so it wins over an installed copy
        code = f"import sys; sys.path.insert(0, {str(stage)!r})\n" + _PROBE
        proc = subprocess.run([sys.executable, "-P", "-c", code, json.dumps(names)], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"importing {names} failed:\n{proc.stderr[-3000:]}")
        return set(json.loads(proc.stdout))


def check_loaded(repo: Path) -> list[Finding]:
    found: list[Finding] = []
    table = [name for name, _ in modules(repo)]
    engine = [n for n in table if n.startswith("signoff.engine") and not n.endswith(".__main__")]
    for name in sorted(loaded(repo, engine)):
        if bad := _under(name, ENGINE_NEVER_LOADED):
            found.append(Finding(name, f"loaded by importing the engine's modules; the engine must never load {bad}"))
    client = [n for n in table if is_http_client(n)]
    for name in sorted(loaded(repo, client)):
        if bad := _under(name, HTTP_CLIENT_FORBIDDEN):
            found.append(Finding(name, f"loaded by importing the HTTP client ({', '.join(client)}); "
                                       f"it must never load {bad}"))
    return found


def check(repo: Path) -> list[Finding]:
    return check_static(repo) + check_loaded(repo)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repo = Path(args[0] if args else Path(__file__).resolve().parents[1]).resolve()
    findings = check(repo)
    for finding in findings:
        print(finding)
    print(f"import contracts: {len(findings)} finding{'s' if len(findings) != 1 else ''}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
