"""The web suite's targets and its Markdown report (``report-web-<python>.md``)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._contenders import TO_THREAD
from ._report import _table
from ._stats import fmt_ratio, fmt_time
from ._web_scenarios import BASELINE, MIXED, WEB_AUTO

Row = dict[str, Any]
Results = dict[str, Any]
#: the column of the web scenario's rows (the bursts' are the run's backends)
UVICORN = "uvicorn"
#: auto's throughput (or wall time) against process's
AUTO_THROUGHPUT = 0.9
#: auto's /health p99 against anyio.to_thread's
AUTO_HEALTH = 1 / 5


def _row(results: Results, scenario: str, contender: str, **match: Any) -> Row | None:
    rows: list[Row] = results["scenarios"].get(scenario, {}).get("rows", [])
    for row in rows:
        if (
            row["contender"] == contender
            and "error" not in row
            and all(row.get(key) == value for key, value in match.items())
        ):
            return row
    return None


def _target(
    ident: str,
    text: str,
    values: dict[str, float | None],
    ok: Callable[[float], bool],
    show: Callable[[float], str],
) -> dict[str, Any]:
    """A target as the other suites report them, with the columns it applies to."""
    measured = {
        column: value
        for column, value in values.items()
        if value is not None and not math.isnan(value)
    }
    return {
        "id": ident,
        "target": text,
        "columns": list(values),
        "values": measured,
        "shown": {column: show(value) for column, value in measured.items()},
        "met": {column: ok(value) for column, value in measured.items()},
        "all_met": all(ok(v) for v in measured.values()) if measured else None,
    }


def evaluate_web_targets(results: Results) -> list[dict[str, Any]]:
    """The targets of ``kind="auto"`` under a mixed load (reported, never asserted)."""
    settings = results["meta"]["settings"]
    workers = settings["web_workers"]
    auto = _row(results, "web", WEB_AUTO, variant=MIXED)
    threads = _row(results, "web", TO_THREAD, variant=MIXED)

    throughput = None
    starts = None
    health = None
    if auto is not None:
        throughput = auto.get(
            "paired_throughput_vs_process", auto.get("throughput_vs_process")
        )
        passes = [
            x for x in auto.get("pass_starts", [auto.get("starts")]) if x is not None
        ]
        starts = float(max(passes)) if passes else None
        if threads is not None and threads["health"].get("p99"):
            health = auto["health"]["p99"] / threads["health"]["p99"]
    targets = [
        _target(
            "web_auto_throughput",
            f'web, mixed load: kind="auto" throughput >= {AUTO_THROUGHPUT}x '
            'kind="process"',
            {UVICORN: throughput},
            lambda v: v >= AUTO_THROUGHPUT,
            fmt_ratio,
        ),
        _target(
            "web_auto_starts",
            f'web, mixed load: kind="auto" worker starts during the load <= '
            f"max_workers + 1 ({workers + 1}; worst pass)",
            {UVICORN: starts},
            lambda v: v <= workers + 1,
            lambda v: f"{v:.0f}",
        ),
        _target(
            "web_auto_health_vs_to_thread",
            'web, mixed load: kind="auto" /health p99 <= 1/5 of anyio.to_thread\'s',
            {UVICORN: health},
            lambda v: v <= AUTO_HEALTH,
            fmt_ratio,
        ),
    ]
    backends = results["meta"]["backends"]
    for size in settings["burst_workers"]:
        variant = f"{size} workers"
        counts: dict[str, float | None] = {}
        for backend in backends:
            row = _row(results, "bursts", WEB_AUTO, backend=backend, variant=variant)
            counts[backend] = None if row is None else float(row["max_starts"])
        # the wall time is reported, not a target: over a burst shorter than a start
        # of a process, auto keeps its mix of kinds (a conversion would not pay)
        targets += [
            _target(
                f"bursts_{size}_auto_starts",
                f'bursts, {size} workers: kind="auto" worker starts per burst <= '
                f"max_workers + 1 ({size + 1}; worst burst)",
                counts,
                functools.partial(_at_most, size + 1),
                lambda v: f"{v:.0f}",
            ),
        ]
    return targets


def _at_most(limit: float, value: float) -> bool:
    return value <= limit


# -- Markdown --------------------------------------------------------------------------


def _target_table(results: Results) -> str:
    columns = list(
        dict.fromkeys(
            column for target in results["targets"] for column in target["columns"]
        )
    )
    lines = []
    for target in results["targets"]:
        cells = [target["target"]]
        for column in columns:
            if column not in target["columns"]:
                cells.append("")
            elif column in target["shown"]:
                mark = " ✅" if target["met"][column] else " ❌"
                cells.append(target["shown"][column] + mark)
            else:
                cells.append("not measured")
        met = target["all_met"]
        cells.append(
            "not measured" if met is None else ("**met**" if met else "**missed**")
        )
        lines.append(cells)
    return _table(["target", *columns, "result"], lines)


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / (1 << 20):.0f}"


def _label(row: Row) -> str:
    name = str(row["contender"])
    return f"**{name}**" if name == BASELINE else name


def _web_table(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        cells = [_label(row), row["variant"]]
        if "error" in row:
            lines.append([*cells, f"error: {row['error']}", *["-"] * 11])
            continue
        health = row["health"]
        cells += [
            f"{row['requests_per_s']:.1f}",
            fmt_ratio(row.get("throughput_vs_process")),
            fmt_ratio(row.get("paired_throughput_vs_process")),
            fmt_time(row.get("median")),
            fmt_time(row.get("p99")),
            fmt_time(health.get("p99")),
            fmt_time(health.get("max")),
            fmt_ratio(row.get("health_p99_vs_process")),
            "-" if "starts" not in row else str(row["starts"]),
            f"{_mib(row['rss_before'])} → {_mib(row['rss_after'])}",
            f"{_mib(row['session_rss_before'])} → {_mib(row['session_rss_after'])}",
            str(row["errors"]),
        ]
        lines.append(cells)
    return _table(
        [
            "contender",
            "load",
            "requests/s",
            "throughput vs process",
            "paired",
            "latency p50",
            "latency p99",
            "/health p99",
            "/health max",
            "/health p99 vs process",
            "worker starts",
            "server RSS MiB (before → after)",
            "session RSS MiB",
            "errors",
        ],
        lines,
    )


def _endpoint_table(rows: list[Row]) -> str:
    paths = list(
        dict.fromkeys(path for row in rows for path in row.get("endpoints", {}))
    )
    lines = []
    for row in rows:
        if "error" in row:
            continue
        endpoints = row.get("endpoints", {})
        cells = [_label(row), row["variant"]]
        for path in paths:
            entry = endpoints.get(path)
            cells.append(
                "-"
                if entry is None
                else f"{fmt_time(entry['median'])} / {fmt_time(entry['p99'])}"
            )
        cells.append(
            "-"
            if "pass_starts" not in row
            else ", ".join(str(x) for x in row["pass_starts"])
        )
        lines.append(cells)
    return _table(
        ["contender", "load", *(f"`{p}` p50 / p99" for p in paths), "starts per pass"],
        lines,
    )


def _bursts_table(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        cells = [_label(row), row["backend"], row["variant"]]
        if "error" in row:
            lines.append([*cells, f"error: {row['error']}", *["-"] * 5])
            continue
        cells += [
            fmt_time(row.get("median")),
            fmt_time(row.get("max")),
            fmt_ratio(row.get("ratio")),
            fmt_ratio(row.get("paired_ratio")),
            ", ".join(str(x) for x in row["starts_per_burst"]),
            f"{row['interpreters_after']} / {row['processes_after']}",
        ]
        lines.append(cells)
    return _table(
        [
            "contender",
            "backend",
            "pool",
            "wall p50",
            "wall max",
            "vs process",
            "paired",
            "starts per burst",
            "interpreters / processes after",
        ],
        lines,
    )


def write_web_markdown(
    results: Results, path: Path, plots: dict[str, str], plot_note: str = ""
) -> None:
    """The web suite's report (it draws no plots: *plots* and *plot_note* unused)."""
    meta = results["meta"]
    settings = meta["settings"]
    out = [
        f"# aiointerp benchmarks, a web app under mixed load: Python {meta['python']}",
        "",
        f"Generated by `python -m benchmarks{meta['args']}` on {meta['started']} "
        f"({meta['mode']} mode, {meta['duration_s']:.0f} s).",
        "",
        f"- Machine: {meta['platform']}, {meta['cpu_count']} CPUs, load average "
        f"{meta['loadavg_start']} at the start and {meta['loadavg_end']} at the end",
        f"- Python: `{meta['python_full']}`",
        "- Versions: "
        + ", ".join(f"{name} {version}" for name, version in meta["versions"].items()),
        f"- Web app: {settings['web_workers']} workers for every contender; bursts: "
        "pools of "
        + " and ".join(str(w) for w in settings["burst_workers"])
        + " workers",
        f"- Ratios divide by {BASELINE}'s figure in the same run (same load, same "
        "backend): a throughput ratio above 1 is better than process; a ratio of "
        "/health p99 or of wall time (costs) below 1 is better",
        "",
        "Timings on a shared machine are noisy: compare ratios within one run rather "
        "than absolute numbers across runs.",
        "",
        "## Targets",
        "",
        "Reported, not asserted.",
        "",
        _target_table(results),
        "",
    ]
    for number, (name, scenario) in enumerate(results["scenarios"].items(), 1):
        out += [f"## {number}. {scenario.get('title', name)}", ""]
        out += [scenario.get("description", ""), ""]
        if "skipped" in scenario:
            out += [f"Skipped: {scenario['skipped']}.", ""]
            continue
        if "error" in scenario:
            out += [f"Failed: `{scenario['error']}`", ""]
            continue
        rows = scenario.get("rows", [])
        if name == "web":
            out += [
                _web_table(rows),
                "",
                "Latency per endpoint:",
                "",
                _endpoint_table(rows),
                "",
            ]
            for row in rows:
                if row.get("server_log"):
                    out += [f"Server log of {row['contender']}:", "", "```"]
                    out += [row["server_log"], "```", ""]
        elif name == "bursts":
            out += [_bursts_table(rows), ""]
    path.write_text("\n".join(out))
