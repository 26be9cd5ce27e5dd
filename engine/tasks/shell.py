"""``io.kestra.plugin.scripts.shell.Commands``: run commands in one local shell process.

Properties: ``commands`` (list of str), ``beforeCommands``, ``env`` (map, added to the
engine's environment), ``interpreter`` (default ``["/bin/sh", "-c"]``), ``failFast``
(default true: the script starts with ``set -e`` when the interpreter is a shell),
``timeout`` (ISO-8601 duration), ``inputFiles`` (map of file name -> content written to
the working directory before the run).

The script runs in a fresh directory under ``<data_dir>/work/<execution_id>/`` (removed
afterwards) in its own process group. Each stdout line is logged INFO, each stderr line
WARN; Kestra's ``::{"outputs":{...}}::`` stdout lines set ``outputs.vars`` (and
``::{"logs":[{"level":..,"message":..}]}::`` lines log). Outputs:
``{"exitCode": n, "vars": {...}}``.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from signoff.engine.durations import duration_seconds
from signoff.engine.flows.task_types import LEVELS
from signoff.engine.tasks.base import RunContext, TaskFailed, handler
from signoff.engine.tasks.log import as_text, param_text

DEFAULT_INTERPRETER = ["/bin/sh", "-c"]
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"}
#: How long to wait for output pipes to close once the shell itself has exited
#: (a background child may hold them open), and for a killed group to go away.
_DRAIN_GRACE = 2.0


def _text_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if isinstance(value, str):
        return [value]
    raise TaskFailed(f"`{what}` must be a list of commands")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "task"


def _pump(stream: IO[bytes], name: str, out: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            # a NUL byte becomes U+FFFD like any undecodable byte: PostgreSQL text cannot hold it
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n").replace("\x00", "\ufffd")
            out.put((name, text))
    except (OSError, ValueError):
        pass
    finally:
        out.put((name, None))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=_DRAIN_GRACE if sig == signal.SIGTERM else None)
        except subprocess.TimeoutExpired:
            continue
        # The shell is gone; make sure nothing else of its group lingers.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return


class _Collector:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.vars: dict[str, Any] = {}

    def line(self, stream: str, text: str) -> None:
        if stream == "stdout" and self._special(text):
            return
        if text.strip():
            self.ctx.log("INFO" if stream == "stdout" else "WARN", text)

    def _special(self, text: str) -> bool:
        stripped = text.strip()
        if len(stripped) < 4 or not (stripped.startswith("::{") and stripped.endswith("}::")):
            return False
        try:
            data = json.loads(stripped[2:-2])
        except ValueError:
            return False
        if not isinstance(data, dict):
            return False
        outputs = data.get("outputs")
        if isinstance(outputs, dict):
            self.vars.update(outputs)
        logs = data.get("logs")
        if isinstance(logs, list):
            for entry in logs:
                if isinstance(entry, dict) and "message" in entry:
                    level = str(entry.get("level", "INFO")).upper()
                    self.ctx.log(level if level in LEVELS else "INFO", as_text(entry["message"]))
        return True


@handler("io.kestra.plugin.scripts.shell.Commands")
def commands(ctx: RunContext) -> dict[str, Any]:
    cmds = _text_list(ctx.prop("commands"), "commands")
    if not cmds:
        raise TaskFailed("Commands task needs at least one command in `commands`")
    before = _text_list(ctx.prop("beforeCommands"), "beforeCommands")
    interpreter = ctx.prop("interpreter") or DEFAULT_INTERPRETER
    if isinstance(interpreter, str):
        interpreter = shlex.split(interpreter)
    interpreter = [as_text(part) for part in interpreter]
    env_prop = ctx.prop("env") or {}
    if not isinstance(env_prop, dict):
        raise TaskFailed("`env` must be a map of variable names to values")
    fail_fast = ctx.prop("failFast", True)
    if isinstance(fail_fast, str):
        fail_fast = fail_fast.strip().lower() not in ("false", "no", "0", "off")
    timeout_raw = ctx.prop("timeout")
    timeout = duration_seconds(timeout_raw, "timeout", TaskFailed)
    input_files = ctx.prop("inputFiles") or {}
    if not isinstance(input_files, dict):
        raise TaskFailed("`inputFiles` must be a map of file names to contents")
    if ctx.task.props.get("outputFiles"):
        ctx.log("WARN", "Commands `outputFiles` are not supported; files are not kept")

    lines = list(before) + list(cmds)
    if fail_fast and Path(interpreter[0]).name in _SHELLS:
        lines.insert(0, "set -e")
    script = "\n".join(lines)

    env = dict(os.environ)
    env.update({str(k): param_text(v) for k, v in env_prop.items()})

    base = Path(ctx.data_dir) / "work" / _safe_name(ctx.execution_id)
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=_safe_name(ctx.task.id) + "-", dir=base))
    try:
        for name, content in input_files.items():
            target = (workdir / str(name)).resolve()
            if workdir.resolve() not in target.parents:
                raise TaskFailed(f"inputFiles name {name!r} points outside the working directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(as_text(content) if not isinstance(content, (dict, list)) else json.dumps(content))
        exit_code, collector = _run(ctx, [*interpreter, script], workdir, env, timeout, timeout_raw)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if exit_code != 0:
        raise TaskFailed(f"Command failed with exit code {exit_code}")
    return {"exitCode": exit_code, "vars": collector.vars}


def _run(ctx: RunContext, argv: list[str], cwd: Path, env: dict[str, str],
         timeout: float | None, timeout_raw: Any) -> tuple[int, _Collector]:
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except FileNotFoundError:
        raise TaskFailed(f"Interpreter not found: {argv[0]}") from None
    except PermissionError:
        raise TaskFailed(f"Interpreter is not executable: {argv[0]}") from None

    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()
    collector = _Collector(ctx)
    deadline = None if timeout is None else time.monotonic() + timeout
    open_streams = 2
    timed_out = False
    exited_at: float | None = None
    try:
        while open_streams:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _DRAIN_GRACE:
                break  # a background child keeps the pipes open; stop waiting for it
            wait = 0.1 if deadline is None else min(0.1, max(deadline - now, 0.001))
            try:
                stream, text = lines.get(timeout=wait)
            except queue.Empty:
                continue
            if text is None:
                open_streams -= 1
            else:
                collector.line(stream, text)
        if timed_out:
            _kill_group(proc)
        else:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
        # Whatever is left of the group (background children) does not outlive the task.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=_DRAIN_GRACE)
        while True:  # lines that arrived after we stopped reading
            try:
                stream, text = lines.get_nowait()
            except queue.Empty:
                break
            if text is not None:
                collector.line(stream, text)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if timed_out:
        shown = timeout_raw if isinstance(timeout_raw, str) else f"{timeout:g}s"
        raise TaskFailed(f"Command timed out after {shown}")
    return proc.returncode, collector
