"""Server figures: remote_approve_p50 and remote_bulk_<n>, through a real `signoff serve` on
127.0.0.1 (a subprocess, single-user mode, a bearer token issued with `signoff token issue`).

The pending requests are created in-process first (the same engine file the server opens);
then one HTTP client approves them one call at a time (median latency), and a second batch in
one bulk call (until the response arrives, i.e. every decision is committed durably).
"""
from __future__ import annotations

import signal
import statistics
import subprocess
import time
from pathlib import Path

from bench import ROOT, Figure, _k, at_most, identities, make_engine, missing, start_many

from tests.support import SIGNOFF, clean_env, wait_listening

CLI = SIGNOFF  # `python -m signoff`: console.startup.main, what the `signoff` script runs


def _env(data_dir: Path, config: Path) -> dict[str, str]:
    return clean_env(SIGNOFF_DATA_DIR=str(data_dir), SIGNOFF_CONFIG_DIR=str(config), PYTHONUNBUFFERED="1")


def run(ctx) -> list[Figure]:
    import httpx

    from signoff.engine.service import ApprovalService

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

    env = _env(data_dir, config)
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
        # 60 s to say where it listens and 30 s more for /healthz, as before the shared helper
        url = wait_listening(proc, log_path, timeout=90, error=RuntimeError)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            times: list[float] = []
            for request_id in singles:
                t0 = time.perf_counter()
                r = client.post(f"/api/v1/approvals/{request_id}/approve", json={"reason": "benchmark"})
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    note = f"approve answered {r.status_code}: {r.text[:300]}"
                    return [missing("remote_approve_p50", "ms", "<= 15", note), missing(bulk_name, "s", "<= 3", note)]
            single = at_most("remote_approve_p50", statistics.median(times), "ms", 15,
                             detail={"calls": len(times),
                                     "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1], 2)})
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

