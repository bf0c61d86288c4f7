"""The scenarios: what is measured, how, and with which settings per mode.

Each measurement of one contender on one backend runs in its own event loop run
(``anyio.run``), which opens the contender's pool, measures and closes it, so no
state (idle interpreters, processes, threads) leaks from one to the next. A
scenario returns a dict with its rows; ``ratio`` columns are added afterwards by
comparing each row with aiointerp's row of the same backend and variant.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from . import _work
from ._contenders import (
    AIOINTERP,
    AIOINTERP_PROCESS,
    IPE,
    RAW,
    TO_INTERPRETER,
    TO_PROCESS,
    TO_THREAD,
    TRIO_PARALLEL,
    Contender,
)
from ._stats import fmt_bytes, fmt_time, size_label, summarize

ROOT = Path(__file__).resolve().parent.parent
KB = 1 << 10
MB = 1 << 20
TICK = 0.001
PAYLOAD_KINDS = ("bytes", "memoryview", "object")
#: aiointerp's own pools (the only ones with ``min_idle``)
OURS = (AIOINTERP, AIOINTERP_PROCESS)

Row = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    mode: str
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    round_trip_calls: int = 2000
    throughput_calls: int = 20_000
    throughput_callers: int = 100
    throughput_rounds: int = 3
    cpu_job_s: float = 0.1
    cpu_jobs: tuple[int, ...] = (1, 2, 4, 8)
    cpu_reps: int = 3
    lag_job_s: float = 0.1
    lag_jobs_per_worker: int = 10
    lag_idle_s: float = 0.3
    cold_reps: int = 10
    cold_reps_process: int = 5
    payload_sizes: tuple[int, ...] = (KB, MB, 100 * MB)
    payload_reps: tuple[int, ...] = (200, 30, 3)
    memory_workers: int = 8
    hang_guard: float = 300.0
    # -- the process suite (benchmarks._process_scenarios)
    #: times the time scenarios measure every contender, in turns
    process_passes: int = 3
    #: cold starts per contender, in turns with the others
    process_cold_reps: int = 10
    process_throughput_calls: int = 5000
    numpy_job_s: float = 0.1
    numpy_jobs: int = 8
    numpy_reps: int = 3
    #: cancels per code shape and event loop (aiointerp); None: every pure-Python shape
    cancel_samples: int = 20
    cancel_shapes: tuple[str, ...] | None = None
    #: cancels per event loop of each peer, and the length of the job that
    #: ProcessPoolExecutor (which cannot stop it) runs to its end
    cancel_peer_samples: int = 10
    cancel_peer_job_s: float = 0.5
    array_sizes: tuple[int, ...] = (100 * MB,)
    array_reps: int = 3
    auto_blocks: int = 20
    auto_block_calls: int = 200
    # -- the web suite (benchmarks._web_scenarios)
    #: workers of every contender of the web app (threads for anyio.to_thread)
    web_workers: int = 2
    web_requests: int = 200
    web_concurrency: int = 40
    #: times every contender's server is measured, in turns
    web_passes: int = 3
    #: warm-up requests of each endpoint, per worker
    web_warmup: int = 2
    burst_calls: int = 60
    burst_workers: tuple[int, ...] = (2, 4)
    burst_reps: int = 3
    #: the sizes of the web suite's work, scaled (smoke runs: tiny calls)
    web_scale: float = 1.0


SETTINGS = {
    "full": Settings("full"),
    "quick": Settings(
        "quick",
        round_trip_calls=300,
        throughput_calls=2000,
        throughput_rounds=2,
        cpu_job_s=0.04,
        cpu_reps=1,
        lag_job_s=0.04,
        lag_jobs_per_worker=4,
        lag_idle_s=0.1,
        cold_reps=3,
        cold_reps_process=1,
        payload_sizes=(KB, MB),
        payload_reps=(30, 5),
        memory_workers=4,
        hang_guard=120.0,
        process_passes=1,
        process_cold_reps=2,
        process_throughput_calls=1000,
        numpy_job_s=0.03,
        numpy_reps=1,
        cancel_samples=3,
        cancel_peer_samples=2,
        cancel_peer_job_s=0.2,
        array_sizes=(MB,),
        array_reps=3,
        auto_blocks=4,
        auto_block_calls=50,
        web_requests=40,
        web_concurrency=10,
        web_passes=1,
        web_warmup=1,
        burst_calls=24,
        burst_workers=(2,),
        burst_reps=1,
    ),
    "smoke": Settings(
        "smoke",
        round_trip_calls=30,
        throughput_calls=200,
        throughput_callers=20,
        throughput_rounds=1,
        cpu_job_s=0.01,
        cpu_jobs=(1, 4),
        cpu_reps=1,
        lag_job_s=0.01,
        lag_jobs_per_worker=2,
        lag_idle_s=0.02,
        cold_reps=1,
        cold_reps_process=1,
        payload_sizes=(KB,),
        payload_reps=(3,),
        memory_workers=2,
        hang_guard=60.0,
        process_passes=1,
        process_cold_reps=1,
        process_throughput_calls=200,
        numpy_job_s=0.005,
        numpy_jobs=2,
        numpy_reps=1,
        cancel_samples=1,
        cancel_shapes=("while_true_pass", "with_block"),
        cancel_peer_samples=1,
        cancel_peer_job_s=0.05,
        array_sizes=(64 * KB,),
        array_reps=1,
        auto_blocks=2,
        auto_block_calls=10,
        web_requests=24,
        web_concurrency=6,
        web_passes=1,
        web_warmup=1,
        burst_calls=12,
        burst_workers=(2,),
        burst_reps=1,
        web_scale=0.05,
    ),
}


class Runner:
    """Runs one async measurement per contender and backend, each in a fresh loop."""

    def __init__(
        self,
        settings: Settings,
        contenders: list[Contender],
        backends: tuple[str, ...],
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.contenders = contenders
        self.backends = backends
        self.log = log
        self._calibrated: dict[float, tuple[int, int, float]] = {}

    def pairs(
        self, names: tuple[str, ...] | None = None
    ) -> Iterator[tuple[Contender, str]]:
        for backend in self.backends:
            for contender in self.contenders:
                if names is not None and contender.name not in names:
                    continue
                if contender.supports(backend):
                    yield contender, backend

    def run(self, backend: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async def guarded() -> Any:
            with anyio.fail_after(self.settings.hang_guard):
                return await fn(*args)

        return anyio.run(guarded, backend=backend)

    def attempt(
        self,
        scenario: str,
        contender: Contender,
        backend: str,
        fn: Callable[..., Awaitable[list[Row]]],
        *args: Any,
        line: Callable[[Row], str],
    ) -> list[Row]:
        """Run one measurement; a failure becomes an error row, not a crash."""
        start = time.perf_counter()
        try:
            rows: list[Row] = self.run(backend, fn, contender, *args)
        except Exception as exc:
            rows = [{"variant": "-", "error": describe_error(exc)}]
        elapsed = time.perf_counter() - start
        for row in rows:
            row["contender"] = contender.name
            row["backend"] = backend
            text = f"error: {row['error']}" if "error" in row else line(row)
            variant = row.get("variant", "")
            self.log(
                f"  [{scenario}] {backend:<7} {contender.name:<24} {variant:<22} {text}"
            )
        self.log(
            f"  [{scenario}] {backend:<7} {contender.name:<24} done in {elapsed:.1f} s"
        )
        return rows

    def calibrated(self, target_s: float) -> tuple[int, int, float]:
        """``(n, count_primes(n), seconds)``: a job of about *target_s* on this host."""
        if target_s not in self._calibrated:
            n = _work.calibrate(target_s)
            timings = []
            for _ in range(3):
                start = time.perf_counter()
                expected = _work.count_primes(n)
                timings.append(time.perf_counter() - start)
            self._calibrated[target_s] = (n, expected, statistics.median(timings))
        return self._calibrated[target_s]


def describe_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = (
        f"{type(exc).__name__}: {exc}".splitlines()[0]
        if str(exc)
        else type(exc).__name__
    )
    return text[:200]


def _latency_line(row: Row) -> str:
    return f"median {fmt_time(row['median'])}  p99 {fmt_time(row['p99'])}"


async def _warm(call: Callable[..., Awaitable[Any]], workers: int) -> None:
    """Make every worker of the pool start (concurrent trivial calls)."""
    async with anyio.create_task_group() as tg:
        for i in range(workers):
            tg.start_soon(call, _work.noop, i)


# -- 1. round trip ----------------------------------------------------------------


async def _round_trip(contender: Contender, s: Settings) -> list[Row]:
    async with contender.open(s.workers, 0) as call:
        for i in range(max(10, s.round_trip_calls // 10)):
            await call(_work.noop, i)
        samples = []
        for i in range(s.round_trip_calls):
            start = time.perf_counter()
            result = await call(_work.noop, i)
            samples.append(time.perf_counter() - start)
            if result != i:
                raise AssertionError(f"noop({i}) returned {result!r}")
    return [{"variant": "trivial call", **summarize(samples)}]


def round_trip(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    rows = [
        row
        for contender, backend in runner.pairs()
        for row in runner.attempt(
            "round_trip", contender, backend, _round_trip, s, line=_latency_line
        )
    ]
    return {
        "title": "Round trip of a trivial call",
        "description": (
            f"{s.round_trip_calls} sequential calls of `noop(i)` (an int in, the int "
            "out) on a warm pool, one at a time; latency per call."
        ),
        "cost": "median",
        "rows": rows,
    }


# -- 2. throughput ----------------------------------------------------------------


async def _throughput(contender: Contender, s: Settings) -> list[Row]:
    per_caller = max(1, s.throughput_calls // s.throughput_callers)
    rates: list[float] = []
    latencies: list[float] = []
    async with contender.open(s.workers, 0) as call:
        await _warm(call, s.workers)

        async def caller(record: bool) -> None:
            for i in range(per_caller):
                start = time.perf_counter()
                await call(_work.noop, i)
                if record:
                    latencies.append(time.perf_counter() - start)

        # round 0 warms up at full concurrency (unmeasured, but its rate is kept):
        # some pools grow under it
        for round_ in range(s.throughput_rounds + 1):
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(s.throughput_callers):
                    tg.start_soon(caller, round_ > 0)
            elapsed = time.perf_counter() - start
            rates.append(per_caller * s.throughput_callers / elapsed)
    rate = statistics.median(rates[1:])
    return [
        {
            "variant": f"{s.throughput_callers} callers",
            "calls_per_s": rate,
            "s_per_call": 1 / rate,
            "first_round_calls_per_s": rates[0],
            **summarize(latencies),
        }
    ]


def throughput(runner: Runner) -> dict[str, Any]:
    s = runner.settings

    def line(row: Row) -> str:
        return f"{row['calls_per_s']:,.0f} calls/s  latency p99 {fmt_time(row['p99'])}"

    rows = [
        row
        for contender, backend in runner.pairs()
        for row in runner.attempt(
            "throughput", contender, backend, _throughput, s, line=line
        )
    ]
    return {
        "title": "Throughput of tiny calls",
        "description": (
            f"{s.throughput_callers} concurrent callers, "
            f"{s.throughput_calls // s.throughput_callers} `noop` calls each, on a warm "
            f"pool of {s.workers} workers; median of {s.throughput_rounds} rounds after "
            "one unmeasured round at the same concurrency (its rate is "
            "`first_round_calls_per_s` in the JSON: anyio.to_interpreter creates an "
            "interpreter, on the event loop, for every caller that finds none idle, "
            "whatever its limiter says). Latency includes queueing for a worker. "
            "Ratio: time per call."
        ),
        "cost": "s_per_call",
        "rows": rows,
    }


# -- 3. CPU scaling ---------------------------------------------------------------


def _jobs(jobs: int) -> str:
    return f"{jobs} job" if jobs == 1 else f"{jobs} jobs"


async def _cpu(contender: Contender, s: Settings, n: int, expected: int) -> list[Row]:
    rows = []
    async with contender.open(s.workers, 0) as call:
        await _warm(call, s.workers)
        for jobs in s.cpu_jobs:
            walls = []
            for _ in range(s.cpu_reps):
                results: list[int] = []

                async def job() -> None:
                    results.append(await call(_work.count_primes, n))  # noqa: B023

                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(jobs):
                        tg.start_soon(job)
                walls.append(time.perf_counter() - start)
                if results != [expected] * jobs:
                    raise AssertionError(f"wrong results: {results}")
            rows.append({"variant": _jobs(jobs), "jobs": jobs, **summarize(walls)})
    return rows


def cpu_scaling(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    n, expected, single = runner.calibrated(s.cpu_job_s)
    runner.log(
        f"  [cpu_scaling] one job: count_primes({n}) = {expected}, {fmt_time(single)} here"
    )
    rows: list[Row] = [
        {
            "contender": "sequential",
            "backend": "-",
            "variant": _jobs(jobs),
            "jobs": jobs,
            "median": jobs * single,
            "n": 0,
        }
        for jobs in s.cpu_jobs
    ]

    def line(row: Row) -> str:
        return f"wall {fmt_time(row['median'])}  ({row['jobs'] * single / row['median']:.2f}x sequential)"

    for contender, backend in runner.pairs():
        rows += runner.attempt(
            "cpu_scaling", contender, backend, _cpu, s, n, expected, line=line
        )
    for row in rows:
        if "median" in row:
            row["speedup_vs_sequential"] = row["jobs"] * single / row["median"]
    return {
        "title": "CPU-bound scaling",
        "description": (
            f"1 to {max(s.cpu_jobs)} concurrent pure-Python jobs (`count_primes({n})`, "
            f"{fmt_time(single)} each in the main interpreter) on a warm pool of "
            f"{s.workers} workers ({os.cpu_count()} CPUs); wall time of the batch, "
            f"median of {s.cpu_reps}. `sequential` is jobs x one job's time."
        ),
        "cost": "median",
        "job_seconds": single,
        "job_n": n,
        "rows": rows,
    }


# -- 4. event-loop responsiveness --------------------------------------------------


async def _loop_lag(contender: Contender, s: Settings, n: int) -> list[Row]:
    samples: dict[str, list[float]] = {"idle": [], "cold start": [], "saturated": []}
    phase = "idle"
    stop = anyio.Event()

    async def ticker(task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        while not stop.is_set():
            start = time.perf_counter()
            await anyio.sleep(TICK)
            lag = time.perf_counter() - start - TICK
            samples.setdefault(phase, []).append(max(0.0, lag))

    async def batch(call: Callable[..., Awaitable[Any]], jobs: int) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(jobs):
                tg.start_soon(call, _work.count_primes, n)

    async with anyio.create_task_group() as tg:
        await tg.start(ticker)
        async with contender.open(s.workers, 0) as call:
            await anyio.sleep(s.lag_idle_s)
            phase = "cold start"
            await batch(call, s.workers)
            phase = "saturated"
            await batch(call, s.workers * s.lag_jobs_per_worker)
            phase = "closing"
        stop.set()
    return [
        {"variant": name, **summarize(samples[name])}
        for name in ("idle", "cold start", "saturated")
    ]


def loop_lag(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    n, _, single = runner.calibrated(s.lag_job_s)

    def line(row: Row) -> str:
        return (
            f"lag p50 {fmt_time(row.get('median'))}  p99 {fmt_time(row.get('p99'))}  "
            f"max {fmt_time(row.get('max'))}  ({row['n']} ticks)"
        )

    rows = [
        row
        for contender, backend in runner.pairs()
        for row in runner.attempt(
            "loop_lag", contender, backend, _loop_lag, s, n, line=line
        )
    ]
    return {
        "title": "Event-loop responsiveness",
        "description": (
            f"A task sleeps {TICK * 1e3:g} ms in a loop; its lag is how much later than "
            f"asked it wakes up. Phases: `idle` (pool open, {s.lag_idle_s} s), `cold "
            f"start` ({s.workers} jobs on the fresh pool: workers are created), "
            f"`saturated` ({s.workers * s.lag_jobs_per_worker} jobs of "
            f"{fmt_time(single)} queued on {s.workers} workers). Ratio: p99 lag."
        ),
        "cost": "p99",
        "rows": rows,
    }


# -- 5. cold start ----------------------------------------------------------------


async def wait_idle(pool: Any, idle: int) -> None:
    """Wait until an aiointerp pool has *idle* ready workers.

    The pool has no event for this: poll its stats (the benchmark's own waiting,
    outside any measured interval).
    """
    while pool.stats().idle < idle:  # noqa: ASYNC110
        await anyio.sleep(0.002)


async def _cold(contender: Contender, s: Settings, min_idle: int) -> Row:
    start = time.perf_counter()
    async with contender.open(s.workers, min_idle) as call:
        ready = start
        if min_idle:
            await wait_idle(call.__self__, min_idle)  # type: ignore[attr-defined]
            ready = time.perf_counter()
        before = time.perf_counter()
        await call(_work.noop, 1)
        done = time.perf_counter()
    return {"first": done - start, "ready": ready - start, "call": done - before}


def cold_start(runner: Runner, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    s = runner.settings
    rows: list[Row] = []
    for contender, backend in runner.pairs(names):
        reps = s.cold_reps_process if contender.kind == "process" else s.cold_reps
        variants = [("open + first call", 0)]
        if contender.name in OURS:
            variants.append(("min_idle=1: first call", 1))
        for variant, min_idle in variants:
            samples: list[Row] = []
            error = None
            start = time.perf_counter()
            for _ in range(reps):
                try:
                    samples.append(runner.run(backend, _cold, contender, s, min_idle))
                except Exception as exc:
                    error = describe_error(exc)
                    break
            row: Row = {
                "contender": contender.name,
                "backend": backend,
                "variant": variant,
            }
            if error is not None:
                row["error"] = error
                text = f"error: {error}"
            else:
                key = "call" if min_idle else "first"
                row.update(summarize([sample[key] for sample in samples]))
                text = f"median {fmt_time(row['median'])}  max {fmt_time(row['max'])}"
                if min_idle:
                    row["ready_median"] = statistics.median(x["ready"] for x in samples)
                    text += f"  (pool ready after {fmt_time(row['ready_median'])})"
            rows.append(row)
            runner.log(
                f"  [cold_start] {backend:<7} {contender.name:<24} {variant:<22} {text}"
                f"  ({time.perf_counter() - start:.1f} s)"
            )
    return {
        "title": "Cold start",
        "description": (
            "Time from opening a fresh pool (a fresh event loop for anyio's pools) to "
            "the first result of `noop`; median of "
            f"{s.cold_reps} ({s.cold_reps_process} for processes). With `min_idle=1`: "
            "the first call once the pool reports an idle worker (the time until then "
            "is `ready_median` in the JSON). The first call in a fresh interpreter "
            "also imports the function's module there. aiointerp and the benchmark "
            "modules are byte-compiled beforehand, as an installed package is."
        ),
        "cost": "median",
        "rows": rows,
    }


# -- 6. payloads ------------------------------------------------------------------


def make_payload(kind: str, size: int) -> Any:
    if kind == "bytes":
        return bytes(size)
    if kind == "memoryview":
        return memoryview(bytearray(size))
    chunks = [i.to_bytes(8, "little") * (KB // 8) for i in range(max(1, size // KB))]
    return {"chunks": chunks, "size": size}


async def _payloads(
    contender: Contender, s: Settings, payloads: dict[tuple[str, int], Any]
) -> list[Row]:
    rows: list[Row] = []
    async with contender.open(s.workers, 0) as call:
        await _warm(call, s.workers)
        for (kind, size), payload in payloads.items():
            reps = s.payload_reps[s.payload_sizes.index(size)]
            for direction, func in (("in", _work.size_of), ("in+out", _work.echo)):
                row: Row = {
                    "variant": f"{kind} {size_label(size)} {direction}",
                    "kind": kind,
                    "size": size,
                    "direction": direction,
                }
                samples = []
                try:
                    for _ in range(reps + 1):  # the first one warms up
                        start = time.perf_counter()
                        result = await call(func, payload)
                        samples.append(time.perf_counter() - start)
                        got = result if direction == "in" else _work.size_of(result)
                        if got != size:
                            raise AssertionError(f"size {got} != {size}")
                        del result
                except Exception as exc:
                    row["error"] = describe_error(exc)
                else:
                    row.update(summarize(samples[1:]))
                rows.append(row)
    return rows


def payloads(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    data = {
        (kind, size): make_payload(kind, size)
        for size in s.payload_sizes
        for kind in PAYLOAD_KINDS
    }
    names = tuple(c.name for c in runner.contenders if c.name != RAW)
    rows = [
        row
        for contender, backend in runner.pairs(names)
        for row in runner.attempt(
            "payloads", contender, backend, _payloads, s, data, line=_latency_line
        )
    ]
    return {
        "title": "Payloads",
        "description": (
            "`size_of(x)` (the payload goes in, an int comes out) and `echo(x)` (in "
            "and back out) with `bytes`, a `memoryview` over a `bytearray`, and an "
            "object that must be pickled (a dict holding a list of distinct 1 KB "
            "`bytes`), sizes "
            + ", ".join(size_label(size) for size in s.payload_sizes)
            + "; median of "
            + ", ".join(str(r) for r in s.payload_reps)
            + " calls. An error means the contender cannot send that type. aiointerp "
            "shares `memoryview` arguments without a copy but returns a `memoryview` "
            "result as a `bytes` copy (a view must not outlive the worker's memory)."
        ),
        "cost": "median",
        "rows": rows,
    }


# -- 7. cancellation --------------------------------------------------------------


def cancellation(runner: Runner) -> dict[str, Any]:
    result: dict[str, Any] = {
        "title": "Cancellation latency",
        "description": "Measured by `benchmarks/cancel_latency.py`.",
        "rows": [],
    }
    if importlib.util.find_spec("benchmarks.cancel_latency") is None:
        result["skipped"] = "benchmarks/cancel_latency.py is not present"
    elif runner.settings.mode == "smoke":
        result["skipped"] = "not run in --smoke mode"
    if "skipped" in result:
        runner.log(f"  [cancellation] skipped: {result['skipped']}")
        return result
    module = importlib.import_module("benchmarks.cancel_latency")
    quick = runner.settings.mode != "full"
    start = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(module.run):
            data = anyio.run(module.run, quick)
        else:
            data = module.run(quick)
    except Exception as exc:
        result["error"] = describe_error(exc)
        runner.log(f"  [cancellation] error: {result['error']}")
        return result
    result["data"] = data
    doc = (module.__doc__ or "").strip().split("\n\n")[0]
    if doc:
        result["description"] = " ".join(doc.split())
    text = json.dumps(data, indent=1, default=str)
    if callable(getattr(module, "report", None)):
        try:
            text = result["text"] = module.report(data)
        except Exception as exc:
            runner.log(f"  [cancellation] its report() failed: {describe_error(exc)}")
    runner.log(f"  [cancellation] done in {time.perf_counter() - start:.1f} s")
    for line in text.splitlines()[:40]:
        runner.log(f"  [cancellation] {line}")
    return result


# -- 8. memory --------------------------------------------------------------------

MEMORY_CONTENDERS = (AIOINTERP, TO_INTERPRETER, IPE, TO_THREAD, TO_PROCESS)


def memory(
    runner: Runner, names: tuple[str, ...] = MEMORY_CONTENDERS, suite: str = "default"
) -> dict[str, Any]:
    """RSS per idle worker, each contender measured in a fresh process.

    Each contender runs on asyncio if it can (and this run has it), else on the
    first backend of this run it supports.
    """
    s = runner.settings
    rows: list[Row] = []
    measured: set[str] = set()
    for contender, backend in sorted(
        runner.pairs(names), key=lambda pair: pair[1] != "asyncio"
    ):
        if contender.name in measured:
            continue
        measured.add(contender.name)
        command = [
            sys.executable,
            "-m",
            "benchmarks._memory",
            contender.name,
            str(s.memory_workers),
            backend,
            suite,
        ]
        row: Row = {
            "contender": contender.name,
            "backend": backend,
            "variant": "idle worker",
        }
        try:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=s.hang_guard,
                check=False,
            )
            if proc.returncode:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                raise RuntimeError(f"exit {proc.returncode}: {tail}")
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            text = (
                f"{fmt_bytes(row['per_worker'])} per idle worker "
                f"({row['workers']} workers)"
            )
        except Exception as exc:
            row["error"] = describe_error(exc)
            text = f"error: {row['error']}"
        rows.append(row)
        runner.log(f"  [memory] {backend:<7} {contender.name:<24} {text}")
    return {
        "title": "Memory per idle worker",
        "description": (
            f"RSS (`/proc/self/statm`) of a fresh process before and after starting "
            f"{s.memory_workers} idle workers (aiointerp: `min_idle={s.memory_workers}`; "
            f"others: {s.memory_workers} concurrent calls that sleep, so each starts a "
            "worker), divided by the number of workers. Processes: the RSS of each "
            "worker process (shared pages counted in each) plus the parent's growth; "
            "`pss_per_worker` in the JSON counts shared pages once (PSS, "
            "`/proc/PID/smaps_rollup`). Each contender runs on asyncio when it can."
        ),
        "cost": "per_worker",
        "ratio_any_backend": True,
        "rows": rows,
    }


SCENARIOS: dict[str, Callable[[Runner], dict[str, Any]]] = {
    "round_trip": round_trip,
    "throughput": throughput,
    "cpu_scaling": cpu_scaling,
    "loop_lag": loop_lag,
    "cold_start": cold_start,
    "payloads": payloads,
    "cancellation": cancellation,
    "memory": memory,
}


def add_ratios(scenario: dict[str, Any], baseline: str = AIOINTERP) -> None:
    """``ratio``: this row's cost over the baseline's (same backend, same variant).

    The baseline is aiointerp's row (*baseline* names which aiointerp), unless the
    scenario names its own ``baseline``.
    """
    key = scenario.get("cost")
    if key is None:
        return
    baseline = scenario.get("baseline", baseline)
    base = {
        (row["backend"], row["variant"]): row[key]
        for row in scenario["rows"]
        if row["contender"] == baseline and row.get(key)
    }
    for row in scenario["rows"]:
        reference = base.get((row["backend"], row["variant"]))
        if reference is None and row["backend"] == "-":  # sequential: vs asyncio
            reference = base.get(("asyncio", row["variant"]))
        if reference is None and scenario.get("ratio_any_backend"):
            reference = next(
                (v for (_, variant), v in base.items() if variant == row["variant"]),
                None,
            )
        if reference and row.get(key) is not None:
            row["ratio"] = row[key] / reference


def settings_dict(settings: Settings) -> dict[str, Any]:
    return asdict(settings)


__all__ = [
    "AIOINTERP",
    "IPE",
    "RAW",
    "SCENARIOS",
    "SETTINGS",
    "TO_INTERPRETER",
    "TO_PROCESS",
    "TO_THREAD",
    "TRIO_PARALLEL",
    "Runner",
    "Settings",
    "add_ratios",
    "settings_dict",
]
