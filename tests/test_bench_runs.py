"""The benchmark script runs (CI): `python tests/perf/bench.py --quick` exits 0 and prints one
JSON object per figure with the documented keys, then the summary table and the machine.

No timing is asserted here: CI machines differ; the figures are compared to their targets
only by a person reading the full run (see README, "Performance").
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tests" / "perf" / "bench.py"
KEYS = {"name", "value", "unit", "target", "ok"}
EXPECTED = ("start_rate", "bulk_decide_", "bulk_finish_", "audit_search_", "audit_verify_", "stats_",
            "console_ready_", "console_key_", "console_rss_", "remote_approve_p50", "remote_bulk_",
            "remote_approve_p50_socket", "floor_commit_rate_sqlite", "floor_commit_rate_pg", "floor_bulk_",
            "start_rate_ratio_sqlite", "start_rate_ratio_pg", "bulk_decide_ratio_sqlite", "bulk_decide_ratio_pg",
            "remote_start_rate_sqlite", "remote_start_rate_pg", "remote_bulk_300_pg")


def test_bench_quick_runs_and_prints_figures(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    figures = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            figures.append(json.loads(line))
    assert figures, proc.stdout
    for fig in figures:
        assert KEYS <= set(fig), fig
        assert isinstance(fig["name"], str) and fig["name"]
        assert fig["value"] is None or isinstance(fig["value"], (int, float)), fig
        assert isinstance(fig["ok"], bool), fig
        assert isinstance(fig["unit"], str) and isinstance(fig["target"], str), fig
        if fig["value"] is None:
            assert fig["ok"] is False and fig.get("note"), fig  # a missing figure says why
    names = [f["name"] for f in figures]
    for prefix in EXPECTED:
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    # the summary table and the machine line follow the JSON lines
    assert "name" in proc.stdout and "target" in proc.stdout
    assert "machine:" in proc.stdout and "SQLite" in proc.stdout
    # it cleaned up after itself
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_bench_only_selects_figures(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "audit_verify", "--dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [json.loads(line)["name"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert names and all(n.startswith("audit_verify") for n in names), names
