"""The benchmark suites (``python -m benchmarks``) run end to end (web: --quick).

Numbers are not checked (the machine is shared and noisy): only that every scenario
ran, aiointerp produced rows on both event loops, and the files were written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


WEB_CONTENDERS = {
    'aiointerp kind="process"',
    'aiointerp kind="auto"',
    'aiointerp kind="interpreter"',
    "anyio.to_thread",
    "ProcessPoolExecutor",
}


def test_web_benchmarks_quick(tmp_path: Path) -> None:
    """``--suite web --quick``: a real uvicorn server per strategy on 127.0.0.1, loaded,
    probed and stopped; then the bursts on both event loops. Structure, not speed."""
    # --smoke: a small load of tiny calls; the structure is what is checked
    command = [sys.executable, "-X", "faulthandler", "-m", "benchmarks", "--smoke"]
    proc = subprocess.run(
        [*command, "--suite", "web", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    results = json.loads((tmp_path / f"results-web-{tag}.json").read_text())
    assert results["meta"]["suite"] == "web"
    assert tuple(results["scenarios"]) == ("web", "bursts")
    web = results["scenarios"]["web"]
    assert "error" not in web, web
    assert "skipped" not in web, web
    rows = web["rows"]
    loads = {(row["contender"], row["variant"]) for row in rows}
    assert loads == {
        ('aiointerp kind="process"', "mixed"),
        ('aiointerp kind="process"', "pure-Python only"),
        ('aiointerp kind="auto"', "mixed"),
        ('aiointerp kind="interpreter"', "pure-Python only"),
        ("anyio.to_thread", "mixed"),
        ("ProcessPoolExecutor", "mixed"),
    }
    settings = results["meta"]["settings"]
    for row in rows:
        assert "error" not in row, row
        assert row["errors"] == 0, row["first_error"]
        assert row["requests"] == settings["web_requests"] == 24
        assert sum(e["n"] for e in row["endpoints"].values()) == row["requests"]
        assert row["requests_per_s"] > 0
        assert row["health"]["n"] >= 1
        assert row["rss_before"] > 0
        assert row["session_rss_after"] >= row["rss_after"]
        # the server stopped by itself, and left no process behind
        assert not row["killed"], row
        assert row["orphans"] == 0, row
        with pytest.raises(ProcessLookupError):
            os.kill(row["server_pid"], 0)
        if row["contender"].startswith("aiointerp"):
            assert row["starts"] >= 0
        if row["variant"] == "mixed":
            endpoints = set(row["endpoints"])
            assert endpoints == {*web["library_paths"], "/primes"}
        else:
            assert set(row["endpoints"]) == {"/primes"}
    pandas = importlib.util.find_spec("pandas") is not None
    assert ("/pandas" in web["library_paths"]) == pandas
    assert pandas or "pandas is not installed" in web["description"]
    auto = next(r for r in rows if r["contender"] == 'aiointerp kind="auto"')
    assert auto["throughput_vs_process"] > 0
    bursts = results["scenarios"]["bursts"]["rows"]
    assert {(r["contender"], r["backend"]) for r in bursts} == {
        (name, backend)
        for name in ('aiointerp kind="auto"', 'aiointerp kind="process"')
        for backend in ("asyncio", "trio")
    }
    for row in bursts:
        assert "error" not in row, row
        assert len(row["starts_per_burst"]) == settings["burst_reps"]
        assert row["ratio"] > 0
    targets = {t["id"]: t for t in results["targets"]}
    assert set(targets) >= {
        "web_auto_throughput",
        "web_auto_starts",
        "web_auto_health_vs_to_thread",
        "bursts_2_auto_starts",
    }
    assert all(t["all_met"] is not None for t in targets.values()), targets
    report = (tmp_path / f"report-web-{tag}.md").read_text()
    assert "## Targets" in report
    assert "A FastAPI app on uvicorn" in report
    assert "Mixed bursts without a web stack" in report
    assert all(name in report for name in WEB_CONTENDERS)
