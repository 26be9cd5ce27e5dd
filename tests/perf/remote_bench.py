"""Server figures: remote_approve_p50 and remote_bulk_<n>, through a real `signoff serve` on
127.0.0.1 (a subprocess, single-user mode, a bearer token issued with `signoff token issue`).

The pending requests are created in-process first (the same engine file the server opens);
then one HTTP client approves them one call at a time (median latency), and a second batch in
one bulk call (until the response arrives, i.e. every decision is committed durably).
"""
from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import ROOT, Figure, _k, at_most, identities, make_engine, missing, start_many

CLI = [sys.executable, "-c", "from console.cli import main; main()"]


def unavailable() -> str | None:
    try:
        import httpx  # noqa: F401

        import engine.server.app  # noqa: F401
        import engine.server.run  # noqa: F401
    except ImportError as exc:
        return f"the HTTP server is not available ({exc})"
    return None


def _env(data_dir: Path, flows: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_DATA_DIR=str(data_dir), SIGNOFF_CONFIG_DIR=str(config), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def run(ctx) -> list[Figure]:
    import httpx

    from engine.service import ApprovalService

    bulk_name = f"remote_bulk_{_k(ctx.sizes['remote_bulk'])}"
    base = ctx.fresh_dir("remote")
    data_dir, config = base / "data", base / "config"
    config.mkdir()
    engine = make_engine(data_dir, ctx.flows)
    requester, approver = identities()
    svc = ApprovalService(engine)
    singles = start_many(svc, requester, ctx.sizes["remote_single"])
    bulk_ids = start_many(svc, requester, ctx.sizes["remote_bulk"], offset=len(singles))
    engine.close()

    env = _env(data_dir, ctx.flows, config)
    issued = subprocess.run([*CLI, "--flows", str(ctx.flows), "token", "issue", approver.name], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    if issued.returncode != 0:
        note = f"`signoff token issue` failed: {issued.stderr.strip()[-300:]}"
        return [missing("remote_approve_p50", "ms", "<= 15", note), missing(bulk_name, "s", "<= 3", note)]
    token = issued.stdout.strip().splitlines()[-1]
    log_path = base / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*CLI, "--flows", str(ctx.flows), "serve", "--port", "0", "--single-user",
                                 "--log-level", "warning"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = _wait_listening(proc, log_path)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            _wait_healthy(client)
            times: list[float] = []
            for request_id in singles:
                t0 = time.perf_counter()
                r = client.post(f"/api/v1/approvals/{request_id}/approve", json={"reason": "benchmark"})
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    note = f"approve answered {r.status_code}: {r.text[:300]}"
                    return [missing("remote_approve_p50", "ms", "<= 15", note), missing(bulk_name, "s", "<= 3", note)]
            single = at_most("remote_approve_p50", statistics.median(times), "ms", 15,
                             detail={"calls": len(times), "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1], 2)})
            t0 = time.perf_counter()
            r = client.post("/api/v1/approvals/bulk", json={"ids": bulk_ids, "verdict": "approve",
                                                            "reason": "bulk benchmark"})
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                return [single, missing(bulk_name, "s", "<= 3", f"bulk answered {r.status_code}: {r.text[:300]}")]
            decided = sum(1 for o in r.json()["outcomes"] if o.get("outcome") == "decided")
            if decided != len(bulk_ids):
                return [single, missing(bulk_name, "s", "<= 3", f"{decided} of {len(bulk_ids)} decided")]
            return [single, at_most(bulk_name, elapsed, "s", 3, detail={"requests": len(bulk_ids)})]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        m = re.search(r"listening on (https?)://([\d.]+):(\d+)", text)
        if m:
            return f"{m.group(1)}://127.0.0.1:{m.group(3)}"
        if proc.poll() is not None:
            raise RuntimeError(f"signoff serve exited with {proc.returncode}: {text[-500:]}")
        time.sleep(0.05)
    raise RuntimeError("signoff serve did not say where it listens")


def _wait_healthy(client: Any, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("/healthz never answered")
