"""Server figures: remote_approve_p50 and remote_bulk_<n>, through a real `signoff serve`
(a subprocess, single-user mode) listening on 127.0.0.1 (a bearer token issued with `signoff
token issue`) and on a Unix socket (identity from the kernel) at the same time; the
``_socket`` figures are the same measurements over the socket, each held to "no slower than
TCP in the same run".

The pending requests are created in-process first (the same engine file the server opens);
then one HTTP client per transport approves them one call at a time, the two clients taking
turns call by call so both see the same server and database (median latency), and a batch per
transport in one bulk call (until the response arrives, i.e. every decision is committed
durably); the socket's batch goes first, so the TCP one runs on a database that is no bigger.
"""
from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import tempfile
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
    names = ("remote_approve_p50", bulk_name, "remote_approve_p50_socket", f"{bulk_name}_socket")

    def failed(note: str) -> list[Figure]:
        return [missing(names[0], "ms", "<= 15", note), missing(names[1], "s", "<= 3", note),
                missing(names[2], "ms", "<= TCP", note), missing(names[3], "s", "<= TCP", note)]

    base = ctx.fresh_dir("remote")
    data_dir, config = base / "data", base / "config"
    config.mkdir()
    engine = make_engine(data_dir, ctx.flows)
    requester, approver = identities()
    svc = ApprovalService(engine)
    singles = start_many(svc, requester, 2 * ctx.sizes["remote_single"])
    bulk_tcp = start_many(svc, requester, ctx.sizes["remote_bulk"], offset=len(singles))
    bulk_socket = start_many(svc, requester, ctx.sizes["remote_bulk"], offset=len(singles) + len(bulk_tcp))
    engine.close()

    env = _env(data_dir, config)
    issued = subprocess.run([*CLI, "--flows", str(ctx.flows), "token", "issue", approver.name], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    if issued.returncode != 0:
        return failed(f"`signoff token issue` failed: {issued.stderr.strip()[-300:]}")
    token = issued.stdout.strip().splitlines()[-1]
    log_path = base / "serve.log"
    # a short path: a Unix socket's path is limited to 107 bytes (sun_path), --dir may be deep
    socket_dir = Path(tempfile.mkdtemp(prefix="signoff-bench-"))
    socket_path = socket_dir / "signoff.sock"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*CLI, "--flows", str(ctx.flows), "serve", "--port", "0", "--socket", str(socket_path),
                                 "--single-user", "--log-level", "warning"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        # 60 s to say where it listens and 30 s more for /healthz, as before the shared helper
        url = wait_listening(proc, log_path, timeout=90, error=RuntimeError)
        tcp = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        local = httpx.Client(base_url="http://localhost", timeout=120,
                             transport=httpx.HTTPTransport(uds=str(socket_path)))
        with tcp, local:
            times: dict[str, list[float]] = {"tcp": [], "socket": []}
            for index, request_id in enumerate(singles):
                kind, client = ("tcp", tcp) if index % 2 == 0 else ("socket", local)
                t0 = time.perf_counter()
                r = client.post(f"/api/v1/approvals/{request_id}/approve", json={"reason": "benchmark"})
                times[kind].append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    return failed(f"approve over {kind} answered {r.status_code}: {r.text[:300]}")
            elapsed: dict[str, float] = {}
            for kind, client, ids in (("socket", local, bulk_socket), ("tcp", tcp, bulk_tcp)):
                t0 = time.perf_counter()
                r = client.post("/api/v1/approvals/bulk", json={"ids": ids, "verdict": "approve",
                                                                "reason": "bulk benchmark"})
                elapsed[kind] = time.perf_counter() - t0
                if r.status_code != 200:
                    return failed(f"bulk over {kind} answered {r.status_code}: {r.text[:300]}")
                decided = sum(1 for o in r.json()["outcomes"] if o.get("outcome") == "decided")
                if decided != len(ids):
                    return failed(f"bulk over {kind}: {decided} of {len(ids)} decided")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(socket_dir, ignore_errors=True)

    def p95(values: list[float]) -> float:
        return round(sorted(values)[int(len(values) * 0.95) - 1], 2)

    p50 = {kind: statistics.median(values) for kind, values in times.items()}
    return [
        at_most(names[0], p50["tcp"], "ms", 15, detail={"calls": len(times["tcp"]), "p95_ms": p95(times["tcp"])}),
        at_most(names[1], elapsed["tcp"], "s", 3, detail={"requests": len(bulk_tcp)}),
        _no_slower(names[2], p50["socket"], p50["tcp"], "ms",
                   detail={"calls": len(times["socket"]), "p95_ms": p95(times["socket"])}),
        _no_slower(names[3], elapsed["socket"], elapsed["tcp"], "s", detail={"requests": len(bulk_socket)}),
    ]


def _no_slower(name: str, value: float, tcp: float, unit: str, detail: dict) -> Figure:
    """The socket's figure, held to the TCP figure of the same run."""
    return Figure(name, round(value, 3), unit, f"<= TCP ({tcp:.3g})", value <= tcp,
                  detail={**detail, "tcp": round(tcp, 3), "ratio": round(value / tcp, 3) if tcp else None})
