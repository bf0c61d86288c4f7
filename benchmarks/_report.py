"""Targets, the Markdown report and its plots (matplotlib is optional)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._contenders import (
    AIOINTERP,
    AIOINTERP_PROCESS,
    PROCESS_POOL_EXECUTOR,
    RAW,
    TO_INTERPRETER,
    TO_PROCESS,
    TO_THREAD,
)
from ._stats import fmt_bytes, fmt_ratio, fmt_time

Row = dict[str, Any]
Results = dict[str, Any]

# -- targets ----------------------------------------------------------------------


def _rows(results: Results, scenario: str) -> list[Row]:
    rows: list[Row] = results["scenarios"].get(scenario, {}).get("rows", [])
    return rows


def _find(
    results: Results,
    scenario: str,
    contender: str,
    backend: str,
    variant: str | None,
) -> Row | None:
    """The row of *contender*, or None; ``variant=None`` matches the first variant."""
    for row in _rows(results, scenario):
        if (
            row["contender"] == contender
            and row["backend"] == backend
            and variant in (None, row["variant"])
            and "error" not in row
        ):
            return row
    return None


def _target(
    results: Results,
    ident: str,
    text: str,
    measure: Callable[[str], float | None],
    ok: Callable[[float], bool],
    show: Callable[[float], str],
) -> dict[str, Any]:
    values = {}
    for backend in results["meta"]["backends"]:
        value = measure(backend)
        if value is not None and not math.isnan(value):
            values[backend] = value
    return {
        "id": ident,
        "target": text,
        "values": values,
        "shown": {backend: show(value) for backend, value in values.items()},
        "met": {backend: ok(value) for backend, value in values.items()},
        "all_met": all(ok(v) for v in values.values()) if values else None,
    }


def evaluate_targets(results: Results) -> list[dict[str, Any]]:
    """The project's performance targets, met or missed (reported, never asserted)."""

    def ratio(
        scenario: str,
        variant: str | None,
        key: str,
        other: str,
        inverse: bool = False,
    ) -> Callable[[str], float | None]:
        def measure(backend: str) -> float | None:
            mine = _find(results, scenario, AIOINTERP, backend, variant)
            theirs = _find(results, scenario, other, backend, variant)
            if not mine or not theirs or not mine.get(key) or not theirs.get(key):
                return None
            value: float = mine[key] / theirs[key]
            return 1 / value if inverse else value

        return measure

    def value(scenario: str, variant: str, key: str) -> Callable[[str], float | None]:
        def measure(backend: str) -> float | None:
            row = _find(results, scenario, AIOINTERP, backend, variant)
            return None if row is None else row.get(key)

        return measure

    cpu_variant = "8 jobs"
    return [
        _target(
            results,
            "round_trip_vs_to_interpreter",
            "round trip <= 0.4x anyio.to_interpreter",
            ratio("round_trip", "trivial call", "median", TO_INTERPRETER),
            lambda v: v <= 0.4,
            fmt_ratio,
        ),
        _target(
            results,
            "round_trip_vs_raw",
            "round trip <= 1.5x the raw lower bound",
            ratio("round_trip", "trivial call", "median", RAW),
            lambda v: v <= 1.5,
            fmt_ratio,
        ),
        _target(
            results,
            "throughput_vs_to_interpreter",
            "tiny-call throughput >= 3x anyio.to_interpreter",
            ratio("throughput", None, "calls_per_s", TO_INTERPRETER),
            lambda v: v >= 3,
            fmt_ratio,
        ),
        _target(
            results,
            "cpu_8_jobs_vs_to_thread",
            "8 CPU jobs >= 1.85x faster than anyio.to_thread",
            ratio("cpu_scaling", cpu_variant, "median", TO_THREAD, inverse=True),
            lambda v: v >= 1.85,
            fmt_ratio,
        ),
        _target(
            results,
            "loop_lag_saturated_p99",
            "event-loop lag p99 <= 2 ms while the pool is saturated",
            value("loop_lag", "saturated", "p99"),
            lambda v: v <= 0.002,
            fmt_time,
        ),
        _target(
            results,
            "memoryview_100mb_in",
            "100 MB memoryview in under 1 ms",
            value("payloads", "memoryview 100 MB in", "median"),
            lambda v: v < 0.001,
            fmt_time,
        ),
    ]


def evaluate_process_targets(results: Results) -> list[dict[str, Any]]:
    """The targets of the process suite (``InterpreterPool(kind="process")``)."""

    def row_of(scenario: str, contender: str, variant: str | None) -> Any:
        return lambda backend: _find(results, scenario, contender, backend, variant)

    def ratio(
        scenario: str, variant: str | None, key: str, other: str, inverse: bool = False
    ) -> Callable[[str], float | None]:
        """Ours over theirs (*key* is a cost); the passes' paired ratio if any."""

        def measure(backend: str) -> float | None:
            mine = row_of(scenario, AIOINTERP_PROCESS, variant)(backend)
            theirs = row_of(scenario, other, variant)(backend)
            if not mine or not theirs:
                return None
            value: float
            if theirs.get("paired_ratio"):
                value = 1 / theirs["paired_ratio"]
            elif mine.get(key) and theirs.get(key):
                value = mine[key] / theirs[key]
            else:
                return None
            return 1 / value if inverse else value

        return measure

    def value(
        scenario: str, contender: str, variant: str | None, key: str
    ) -> Callable[[str], float | None]:
        def measure(backend: str) -> float | None:
            row = row_of(scenario, contender, variant)(backend)
            return None if row is None else row.get(key)

        return measure

    array_variant = "numpy 100 MB in"
    return [
        _target(
            results,
            "process_round_trip_vs_to_process",
            "round trip <= 0.5x anyio.to_process",
            ratio("round_trip", "trivial call", "median", TO_PROCESS),
            lambda v: v <= 0.5,
            fmt_ratio,
        ),
        _target(
            results,
            "process_throughput_vs_executor",
            "tiny-call throughput >= 2x ProcessPoolExecutor",
            ratio("throughput", None, "s_per_call", PROCESS_POOL_EXECUTOR, True),
            lambda v: v >= 2,
            fmt_ratio,
        ),
        _target(
            results,
            "process_numpy_8_jobs_vs_sequential",
            "8 numpy CPU jobs >= 1.85x faster than sequential",
            value("cpu_numpy", AIOINTERP_PROCESS, "8 jobs", "speedup_vs_sequential"),
            lambda v: v >= 1.85,
            fmt_ratio,
        ),
        _target(
            results,
            "process_cancel_p99",
            "cancel -> code stopped, cleanup run, p99 <= 10 ms (pure-Python shapes)",
            lambda backend: next(
                (
                    row["p99"]
                    for row in _rows(results, "cancellation")
                    if row["contender"] == AIOINTERP_PROCESS
                    and row["backend"] == backend
                    and row["variant"].endswith("pure-Python shapes")
                    and "error" not in row
                    and row.get("cleanup_complete") == row.get("n")
                ),
                None,
            ),
            lambda v: v <= 0.010,
            fmt_time,
        ),
        _target(
            results,
            "process_numpy_100mb_vs_executor",
            "100 MB numpy argument >= 3x faster than ProcessPoolExecutor",
            ratio("big_array", array_variant, "median", PROCESS_POOL_EXECUTOR, True),
            lambda v: v >= 3,
            fmt_ratio,
        ),
        _target(
            results,
            "auto_round_trip_overhead",
            'kind="auto" round trip <= 1.03x kind="interpreter" (function known)',
            value("auto_overhead", 'aiointerp kind="auto"', None, "paired_ratio"),
            lambda v: v <= 1.03,
            lambda v: f"{v:.3f}x",
        ),
    ]


# -- Markdown ---------------------------------------------------------------------

Column = tuple[str, Callable[[Row], str]]


def _get(key: str, fmt: Callable[[Any], str]) -> Callable[[Row], str]:
    return lambda row: fmt(row[key]) if row.get(key) is not None else "-"


def _count(value: Any) -> str:
    return f"{value:,.0f}"


COLUMNS: dict[str, list[Column]] = {
    "round_trip": [
        ("median", _get("median", fmt_time)),
        ("p99", _get("p99", fmt_time)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "throughput": [
        ("calls/s", _get("calls_per_s", _count)),
        ("latency median", _get("median", fmt_time)),
        ("latency p99", _get("p99", fmt_time)),
        ("time/call vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "cpu_scaling": [
        ("wall (median)", _get("median", fmt_time)),
        ("speed-up vs sequential", _get("speedup_vs_sequential", fmt_ratio)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "loop_lag": [
        ("lag p50", _get("median", fmt_time)),
        ("lag p99", _get("p99", fmt_time)),
        ("lag max", _get("max", fmt_time)),
        ("ticks", _get("n", _count)),
        ("p99 vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "cold_start": [
        ("median", _get("median", fmt_time)),
        ("max", _get("max", fmt_time)),
        ("pool ready after", _get("ready_median", fmt_time)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "payloads": [
        ("median", _get("median", fmt_time)),
        ("p99", _get("p99", fmt_time)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "memory": [
        ("RSS per idle worker", _get("per_worker", fmt_bytes)),
        ("PSS per idle worker", _get("pss_per_worker", fmt_bytes)),
        ("workers", _get("workers", str)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    # the process suite
    "cpu_numpy": [
        ("wall (median)", _get("median", fmt_time)),
        ("speed-up vs sequential", _get("speedup_vs_sequential", fmt_ratio)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "big_array": [
        ("median", _get("median", fmt_time)),
        ("p99", _get("p99", fmt_time)),
        ("vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "cancellation": [
        ("stopped p50", _get("median", fmt_time)),
        ("stopped p99", _get("p99", fmt_time)),
        ("stopped max", _get("max", fmt_time)),
        ("released p50", _get("released_median", fmt_time)),
        ("cancels", _get("n", _count)),
        ("cleanup ran", _get("cleanup_runs", _count)),
        ("p99 vs aiointerp", _get("ratio", fmt_ratio)),
    ],
    "auto_overhead": [
        ("median", _get("median", fmt_time)),
        ("p99", _get("p99", fmt_time)),
        ("vs interpreter", _get("ratio", lambda v: f"{v:.3f}x")),
        ("paired ratio", _get("paired_ratio", lambda v: f"{v:.3f}x")),
    ],
}


def _paired(row: Row) -> str:
    return fmt_ratio(row.get("paired_ratio"))


#: the process suite: its time scenarios measure in passes (paired ratios)
PROCESS_COLUMNS: dict[str, list[Column]] = {
    "round_trip": [*COLUMNS["round_trip"], ("paired vs aiointerp", _paired)],
    "throughput": [*COLUMNS["throughput"], ("paired vs aiointerp", _paired)],
    "cpu_numpy": [*COLUMNS["cpu_numpy"], ("paired speed-up vs aiointerp", _paired)],
    "big_array": [*COLUMNS["big_array"], ("paired vs aiointerp", _paired)],
}


def _table(headers: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |"
        for line in lines
    ]
    return "\n".join(out)


def _scenario_table(
    name: str, scenario: dict[str, Any], baseline: str = AIOINTERP
) -> str:
    columns = COLUMNS.get(name, [])
    if baseline == AIOINTERP_PROCESS:
        columns = PROCESS_COLUMNS.get(name, columns)
    lines = []
    for row in scenario["rows"]:
        label = row["contender"]
        if label == scenario.get("baseline", baseline):
            label = f"**{label}**"
        cells = [label, row["backend"], row.get("variant", "")]
        if "error" in row:
            cells += [f"error: {row['error']}"] + ["-"] * (len(columns) - 1)
        else:
            cells += [fmt(row) for _, fmt in columns]
        lines.append(cells)
    return _table(["contender", "backend", "variant", *[h for h, _ in columns]], lines)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        items: list[tuple[str, str]] = []
        for key, value in data.items():
            items += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return items
    if isinstance(data, list) and len(data) > 8:
        return [(prefix, f"[{len(data)} values]")]
    if isinstance(data, float):
        return [(prefix, f"{data:.4g}")]
    return [(prefix, json.dumps(data, default=str))]


def _target_table(results: Results) -> str:
    backends = results["meta"]["backends"]
    lines = []
    for target in results["targets"]:
        cells = [target["target"]]
        for backend in backends:
            shown = target["shown"].get(backend)
            mark = "" if shown is None else (" ✅" if target["met"][backend] else " ❌")
            cells.append("not measured" if shown is None else shown + mark)
        met = target["all_met"]
        cells.append(
            "not measured" if met is None else ("**met**" if met else "**missed**")
        )
        lines.append(cells)
    return _table(["target", *backends, "result"], lines)


def _suite_title(meta: dict[str, Any]) -> str:
    return ", process workers" if meta.get("suite") == "process" else ""


def _baseline_text(meta: dict[str, Any]) -> str:
    baseline = meta.get("baseline", AIOINTERP)
    if baseline == AIOINTERP_PROCESS:
        return f'{baseline} (`InterpreterPool(kind="process")`)'
    return str(baseline)


def write_markdown(
    results: Results, path: Path, plots: dict[str, str], plot_note: str = ""
) -> None:
    meta = results["meta"]
    out = [
        f"# aiointerp benchmarks{_suite_title(meta)}: Python {meta['python']}",
        "",
        f"Generated by `python -m benchmarks{meta['args']}` on {meta['started']} "
        f"({meta['mode']} mode, {meta['duration_s']:.0f} s).",
        "",
        f"- Machine: {meta['platform']}, {meta['cpu_count']} CPUs, load average "
        f"{meta['loadavg_start']} at the start and {meta['loadavg_end']} at the end",
        f"- Python: `{meta['python_full']}`",
        "- Versions: "
        + ", ".join(f"{name} {version}" for name, version in meta["versions"].items()),
        f"- Pools: {meta['workers']} workers each"
        + (
            ""
            if meta.get("suite") == "process"
            else " (anyio.to_thread: anyio's default limiter)"
        )
        + "; every measurement opens and closes its own pool in its own event "
        "loop run",
        "- Contenders not run here: "
        + (
            "; ".join(f"{name} ({why})" for name, why in meta["unavailable"].items())
            or "none"
        ),
        '- Ratios ("vs aiointerp") divide a contender\'s cost (time, lag, memory) by '
        f"{_baseline_text(meta)}'s in the same run, same backend and variant: above "
        "1 means aiointerp is better.",
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
        if "text" in scenario:
            out += ["```", scenario["text"], "```", ""]
        elif "data" in scenario:
            pairs = [list(pair) for pair in _flatten(scenario["data"])]
            out += [_table(["measure", "value (times in seconds)"], pairs), ""]
        if scenario.get("rows"):
            out += [
                _scenario_table(name, scenario, meta.get("baseline", AIOINTERP)),
                "",
            ]
        if name in plots:
            out += [f"![{scenario.get('title', name)}]({plots[name]})", ""]
    if plot_note:
        out += [f"({plot_note})", ""]
    path.write_text("\n".join(out))


# -- plots ------------------------------------------------------------------------


def write_plots(results: Results, out: Path, tag: str) -> dict[str, str]:
    """One PNG per scenario; returns {scenario: file name}. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    scenarios = results["scenarios"]
    backends = results["meta"]["backends"]
    palette = plt.get_cmap("tab10").colors
    order = ["sequential", *results["meta"]["contenders"]]

    def color(contender: str) -> Any:
        """The same colour for a contender in every plot (line style: backend)."""
        if contender == "sequential":
            return "black"
        index = order.index(contender) if contender in order else len(order)
        return palette[index % len(palette)]

    def save(name: str, fig: Any) -> None:
        filename = f"{name}-{tag}.png"
        fig.tight_layout()
        fig.savefig(out / filename, dpi=100)
        plt.close(fig)
        files[name] = filename

    def ok_rows(name: str, variant: str | None = None) -> list[Row]:
        return [
            row
            for row in scenarios.get(name, {}).get("rows", [])
            if "error" not in row and (variant is None or row.get("variant") == variant)
        ]

    def bars(
        name: str, variant: str | None, key: str, scale: float, label: str, log: bool
    ) -> None:
        rows = ok_rows(name, variant)
        if not rows:
            return
        contenders = list(dict.fromkeys(row["contender"] for row in rows))
        fig, ax = plt.subplots(
            figsize=(8, 0.5 + 0.45 * len(contenders) * len(backends))
        )
        height = 0.8 / len(backends)
        for b, backend in enumerate(backends):
            values = []
            for contender in contenders:
                match = [
                    r
                    for r in rows
                    if r["contender"] == contender and r["backend"] == backend
                ]
                values.append(match[0][key] * scale if match else 0)
            positions = [i + b * height for i in range(len(contenders))]
            ax.barh(positions, values, height=height, label=backend)
        ax.set_yticks(
            [i + height * (len(backends) - 1) / 2 for i in range(len(contenders))]
        )
        ax.set_yticklabels(contenders)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        if log:
            ax.set_xscale("log")
        ax.set_title(scenarios[name]["title"] + (f" ({variant})" if variant else ""))
        ax.legend()
        save(name, fig)

    bars("round_trip", "trivial call", "median", 1e6, "median latency (µs, log)", True)
    bars(
        "throughput",
        None,
        "calls_per_s",
        1,
        "calls per second (higher is better)",
        False,
    )
    bars(
        "cold_start",
        "open + first call",
        "median",
        1e3,
        "time to first result (ms, log)",
        True,
    )
    bars(
        "memory", None, "per_worker", 1 / (1 << 20), "RSS per idle worker (MiB)", False
    )
    bars(
        "loop_lag",
        "saturated",
        "p99",
        1e3,
        "p99 loop lag while saturated (ms, log)",
        True,
    )

    rows = ok_rows("cpu_scaling")
    if rows:
        fig, ax = plt.subplots(figsize=(8, 5))
        for contender in dict.fromkeys(row["contender"] for row in rows):
            for backend in dict.fromkeys(r["backend"] for r in rows):
                series = sorted(
                    (r["jobs"], r["median"])
                    for r in rows
                    if r["contender"] == contender and r["backend"] == backend
                )
                if series:
                    style = "--" if backend == "trio" else "-"
                    label = contender if backend == "-" else f"{contender} ({backend})"
                    ax.plot(
                        *zip(*series, strict=True),
                        style,
                        color=color(contender),
                        marker="o",
                        label=label,
                    )
        ax.set_xlabel("concurrent jobs")
        ax.set_ylabel("wall time (s)")
        ax.set_title(scenarios["cpu_scaling"]["title"])
        ax.legend(fontsize="small")
        save("cpu_scaling", fig)

    rows = [
        r for r in ok_rows("payloads") if r["direction"] == "in+out" and r.get("median")
    ]
    if rows:
        kinds = list(dict.fromkeys(r["kind"] for r in rows))
        fig, axes = plt.subplots(
            1, len(kinds), figsize=(5 * len(kinds), 4.5), squeeze=False
        )
        for ax, kind in zip(axes[0], kinds, strict=True):
            for contender in dict.fromkeys(r["contender"] for r in rows):
                for backend in backends:
                    series = sorted(
                        (r["size"], r["median"])
                        for r in rows
                        if (r["kind"], r["contender"], r["backend"])
                        == (kind, contender, backend)
                    )
                    if series:
                        style = "--" if backend == "trio" else "-"
                        ax.plot(
                            *zip(*series, strict=True),
                            style,
                            color=color(contender),
                            marker="o",
                            label=f"{contender} ({backend})",
                        )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("payload size (bytes)")
            ax.set_ylabel("in+out median (s)")
            ax.set_title(f"{kind}: in and back out")
        for ax in axes[0]:
            ax.legend(fontsize="x-small")
        save("payloads", fig)
    return files
