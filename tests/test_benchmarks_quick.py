"""The benchmark suite (``python -m benchmarks``) runs end to end in its --smoke mode.

Numbers are not checked (the machine is shared and noisy): only that every scenario
ran, aiointerp produced rows on both event loops, and the files were written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESS_SCENARIOS = (
    "round_trip",
    "throughput",
    "cpu_numpy",
    "big_array",
    "cancellation",
    "cold_start",
    "memory",
    "auto_overhead",
)
SCENARIOS = (
    "round_trip",
    "throughput",
    "cpu_scaling",
    "loop_lag",
    "cold_start",
    "payloads",
    "cancellation",
    "memory",
)


#: faulthandler: a crash (seen once, at exit, on 3.13.0) shows its stacks
COMMAND = (sys.executable, "-X", "faulthandler", "-m", "benchmarks", "--smoke", "--out")


def test_benchmarks_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*COMMAND, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    results = json.loads((tmp_path / f"results-{tag}.json").read_text())
    assert results["meta"]["mode"] == "smoke"
    assert tuple(results["scenarios"]) == SCENARIOS
    for name, scenario in results["scenarios"].items():
        assert "error" not in scenario, (name, scenario["error"])
        if name == "cancellation":
            continue
        aiointerp_rows = [r for r in scenario["rows"] if r["contender"] == "aiointerp"]
        assert aiointerp_rows, name
        assert all("error" not in row for row in aiointerp_rows), aiointerp_rows
        backends = {row["backend"] for row in aiointerp_rows}
        assert backends == ({"asyncio"} if name == "memory" else {"asyncio", "trio"})
    # every other contender is compared with aiointerp in the same run
    round_trip = results["scenarios"]["round_trip"]["rows"]
    others = [
        r for r in round_trip if r["contender"] != "aiointerp" and "error" not in r
    ]
    assert others
    assert all(r["ratio"] > 0 for r in others)
    assert {t["id"] for t in results["targets"]} >= {
        "round_trip_vs_to_interpreter",
        "loop_lag_saturated_p99",
    }
    report = (tmp_path / f"report-{tag}.md").read_text()
    assert "## Targets" in report
    assert "Round trip of a trivial call" in report


def test_process_benchmarks_smoke(tmp_path: Path) -> None:
    """``--suite process``: kind="process" beside the process pools, in one run."""
    proc = subprocess.run(
        [*COMMAND, str(tmp_path), "--suite", "process"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    results = json.loads((tmp_path / f"results-process-{tag}.json").read_text())
    assert results["meta"]["suite"] == "process"
    assert tuple(results["scenarios"]) == PROCESS_SCENARIOS
    for name, scenario in results["scenarios"].items():
        assert "error" not in scenario, (name, scenario["error"])
        if name == "auto_overhead" and "skipped" in scenario:
            assert "NotImplementedError" in scenario["skipped"]
            continue
        assert "skipped" not in scenario, (name, scenario["skipped"])
        ours = [
            r
            for r in scenario["rows"]
            if r["contender"].startswith("aiointerp") and r["backend"] != "-"
        ]
        assert ours, name
        assert all("error" not in row for row in ours), ours
        backends = {row["backend"] for row in ours}
        assert backends == ({"asyncio"} if name == "memory" else {"asyncio", "trio"})
    peers = {
        r["contender"]
        for r in results["scenarios"]["round_trip"]["rows"]
        if "error" not in r and r["ratio"] > 0
    }
    assert peers >= {
        "aiointerp process",
        "anyio.to_process",
        "ProcessPoolExecutor",
        "pebble",
        "trio_parallel",
    }
    cancels = results["scenarios"]["cancellation"]["rows"]
    for row in cancels:
        assert "error" not in row, row
        if row["contender"] == "aiointerp process":
            assert row["cleanup_complete"] == row["n"], row
    assert {t["id"] for t in results["targets"]} >= {
        "process_round_trip_vs_to_process",
        "process_cancel_p99",
    }
    report = (tmp_path / f"report-process-{tag}.md").read_text()
    assert "## Targets" in report
