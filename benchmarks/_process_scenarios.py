"""The process suite: ``InterpreterPool(kind="process")`` beside the process pools.

``python -m benchmarks --suite process`` runs these scenarios, every contender of
:func:`benchmarks._contenders.process_contenders` in the same run, each measurement
in its own event loop run as in the default suite. The baseline of the ratios is
``aiointerp process``. Scenarios that need numpy are skipped, with a line saying
so, when it is not installed; the ``kind="auto"`` one is skipped while
``InterpreterPool(kind="auto")`` raises :exc:`NotImplementedError`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import aiointerp

from . import _shapes, _work
from ._contenders import (
    AIOINTERP,
    AIOINTERP_PROCESS,
    PEBBLE,
    PROCESS_POOL_EXECUTOR,
    TO_PROCESS,
    TRIO_PARALLEL,
    Contender,
)
from ._scenarios import (
    Row,
    Runner,
    Settings,
    _cold,
    _round_trip,
    _throughput,
    describe_error,
    memory,
)
from ._stats import fmt_time, size_label, summarize

#: the contenders of the time scenarios (aiointerp's interpreters only in memory)
POOLS = (AIOINTERP_PROCESS, TO_PROCESS, PROCESS_POOL_EXECUTOR, PEBBLE, TRIO_PARALLEL)
AIOINTERP_AUTO = 'aiointerp kind="auto"'
AIOINTERP_INTERPRETER = 'aiointerp kind="interpreter"'
#: the code shapes of the cancellation target: all but the blocking C calls
PURE_PYTHON_SHAPES = tuple(
    name for name in _shapes.SHAPES if name != "blocking_c_calls"
)
#: the shape the peers run (they kill the process: the shape does not matter)
PEER_SHAPE = "while_true_pass"

Call = Callable[..., Awaitable[Any]]


def _skipped(runner: Runner, name: str, title: str, why: str) -> dict[str, Any]:
    runner.log(f"  [{name}] skipped: {why}")
    return {"title": title, "skipped": why, "rows": []}


def _no_numpy() -> str | None:
    if importlib.util.find_spec("numpy") is None:
        return "numpy is not installed (pip install numpy)"
    return None


async def _warm_numpy(call: Call, workers: int) -> None:
    """Import numpy in every worker: concurrent calls that each hold a worker."""

    async def warm() -> None:
        await call(_work.warm_numpy, 0.05)

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(warm)


def _latency_line(row: Row) -> str:
    return f"median {fmt_time(row['median'])}  p99 {fmt_time(row['p99'])}"


def _in_passes(
    runner: Runner,
    name: str,
    key: str,
    measure: Callable[..., Awaitable[list[Row]]],
    *args: Any,
    line: Callable[[Row], str],
    names: tuple[str, ...] = POOLS,
) -> list[Row]:
    """Measure every contender, then all again, ``process_passes`` times.

    The load of a shared machine drifts over a run: contenders measured one after
    the other see different machines, contenders measured in turns see the same
    drift. Each row is the pass whose *key* is the median of the contender's
    passes; ``pass_values`` holds them all, in pass order, and ``paired_ratio``
    the median over the passes of the row's *key* over aiointerp's in the same
    pass (a cost ratio: above 1 means aiointerp is better; inverted when *key* is
    ``speedup_vs_sequential``).
    """
    passes = runner.settings.process_passes
    results: dict[tuple[str, str, str], list[Row]] = {}
    for number in range(passes):
        label = name if passes == 1 else f"{name} {number + 1}/{passes}"
        for contender, backend in runner.pairs(names):
            for row in runner.attempt(
                label, contender, backend, measure, *args, line=line
            ):
                ident = (row["contender"], row["backend"], row.get("variant", "-"))
                results.setdefault(ident, []).append(row)
    rows = []
    for group in results.values():
        good = [row for row in group if "error" not in row and row.get(key) is not None]
        if not good:
            rows.append(group[0])
            continue
        ordered = sorted(good, key=lambda row: row[key])
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        chosen["pass_values"] = [row[key] for row in good]
        chosen["passes"] = len(group)
        rows.append(chosen)
    _pair(rows, key)
    return rows


def _pair(rows: list[Row], key: str) -> None:
    """``paired_ratio`` of each row against aiointerp's row of the same pass."""
    base = {
        (row["backend"], row.get("variant")): row["pass_values"]
        for row in rows
        if row["contender"] == AIOINTERP_PROCESS and "pass_values" in row
    }
    for row in rows:
        ours = base.get((row["backend"], row.get("variant")))
        theirs = row.get("pass_values")
        if not ours or not theirs or len(ours) != len(theirs) or 0 in ours:
            continue
        pairs = zip(theirs, ours, strict=True)
        if key == "speedup_vs_sequential":  # higher is better
            row["paired_ratio"] = statistics.median(o / t for t, o in pairs if t)
        else:
            row["paired_ratio"] = statistics.median(t / o for t, o in pairs)


def _passes_text(runner: Runner) -> str:
    passes = runner.settings.process_passes
    if passes == 1:
        return ""
    return (
        f" The contenders are measured in turns, {passes} times; each row is the "
        "median pass (`pass_values` in the JSON)."
    )


# -- 1. round trip ----------------------------------------------------------------


def round_trip(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    rows = _in_passes(
        runner, "round_trip", "median", _round_trip, s, line=_latency_line
    )
    return {
        "title": "Round trip of a trivial call",
        "description": (
            f"{s.round_trip_calls} sequential calls of `noop(i)` on a warm pool of "
            f"{s.workers} worker processes, one at a time; latency per call."
            + _passes_text(runner)
        ),
        "cost": "median",
        "rows": rows,
    }


# -- 2. throughput ----------------------------------------------------------------


def throughput(runner: Runner) -> dict[str, Any]:
    s = dataclasses.replace(
        runner.settings, throughput_calls=runner.settings.process_throughput_calls
    )

    def line(row: Row) -> str:
        return f"{row['calls_per_s']:,.0f} calls/s  latency p99 {fmt_time(row['p99'])}"

    rows = _in_passes(runner, "throughput", "s_per_call", _throughput, s, line=line)
    return {
        "title": "Throughput of tiny calls",
        "description": (
            f"{s.throughput_callers} concurrent callers, "
            f"{s.throughput_calls // s.throughput_callers} `noop` calls each, on a warm "
            f"pool of {s.workers} worker processes; median of {s.throughput_rounds} "
            "rounds after one unmeasured round. Latency includes queueing for a "
            "worker. Ratio: time per call." + _passes_text(runner)
        ),
        "cost": "s_per_call",
        "rows": rows,
    }


# -- 3. numpy CPU jobs --------------------------------------------------------------


async def _cpu_numpy(
    contender: Contender, s: Settings, rounds: int, expected: float
) -> list[Row]:
    """Per repetition: the jobs one after the other in the host, then concurrently.

    The sequential time is measured beside the batch, so that both see the same
    load of the machine.
    """
    walls = []
    sequential = []
    async with contender.open(s.workers, 0) as call:
        await _warm_numpy(call, s.workers)
        for _ in range(s.numpy_reps):
            start = time.perf_counter()
            for _ in range(s.numpy_jobs):  # on the loop thread: nothing else runs
                _work.numpy_job(rounds)
            sequential.append(time.perf_counter() - start)
            results: list[float] = []

            async def job() -> None:
                results.append(await call(_work.numpy_job, rounds))  # noqa: B023

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(s.numpy_jobs):
                    tg.start_soon(job)
            walls.append(time.perf_counter() - start)
            if results != [expected] * s.numpy_jobs:
                raise AssertionError(f"wrong results: {results}")
    wall = statistics.median(walls)
    alone = statistics.median(sequential)
    return [
        {
            "variant": f"{s.numpy_jobs} jobs",
            "jobs": s.numpy_jobs,
            **summarize(walls),
            "sequential_median": alone,
            "speedup_vs_sequential": alone / wall,
        }
    ]


def cpu_numpy(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    title = "numpy CPU jobs"
    why = _no_numpy()
    if why:
        return _skipped(runner, "cpu_numpy", title, why)
    rounds = _work.calibrate_numpy(s.numpy_job_s)
    expected = _work.numpy_job(rounds)
    start = time.perf_counter()
    _work.numpy_job(rounds)
    single = time.perf_counter() - start
    runner.log(
        f"  [cpu_numpy] one job: numpy_job({rounds}) takes {fmt_time(single)} here"
    )

    def line(row: Row) -> str:
        return (
            f"wall {fmt_time(row['median'])}, sequential beside it "
            f"{fmt_time(row['sequential_median'])}: "
            f"{row['speedup_vs_sequential']:.2f}x"
        )

    rows = _in_passes(
        runner,
        "cpu_numpy",
        "speedup_vs_sequential",
        _cpu_numpy,
        s,
        rounds,
        expected,
        line=line,
    )
    alone = [row["sequential_median"] for row in rows if "sequential_median" in row]
    if alone:
        rows.insert(
            0,
            {
                "contender": "sequential",
                "backend": "-",
                "variant": f"{s.numpy_jobs} jobs",
                "jobs": s.numpy_jobs,
                "median": statistics.median(alone),
                "speedup_vs_sequential": 1.0,
                "n": len(alone),
            },
        )
    return {
        "title": title,
        "description": (
            f"{s.numpy_jobs} concurrent numpy jobs (`numpy_job({rounds})`: sorting a "
            f"shuffled array of {_work.NUMPY_SORT_SIZE} floats, about "
            f"{fmt_time(single)} each, one core: no BLAS) on a warm pool of "
            f"{s.workers} workers ({os.cpu_count()} CPUs) that imported numpy "
            f"beforehand; wall time of the batch, median of {s.numpy_reps}. Before "
            f"each batch the host runs the {s.numpy_jobs} jobs one after the other "
            "(the same load for both): `speed-up vs sequential` is that time over "
            "the batch's; the `sequential` row is the median of those times."
            + _passes_text(runner)
        ),
        "cost": "median",
        "job_seconds": single,
        "job_rounds": rounds,
        "rows": rows,
    }


# -- 4. a big numpy array argument ----------------------------------------------------


async def _big_array(
    contender: Contender, s: Settings, arrays: dict[int, Any]
) -> list[Row]:
    rows: list[Row] = []
    async with contender.open(s.workers, 0) as call:
        await _warm_numpy(call, s.workers)
        for size, array in arrays.items():
            samples = []
            for _ in range(s.array_reps + 1):  # the first one warms up
                start = time.perf_counter()
                got = await call(_work.nbytes, array)
                samples.append(time.perf_counter() - start)
                if got != size:
                    raise AssertionError(f"nbytes {got} != {size}")
            rows.append(
                {
                    "variant": f"numpy {size_label(size)} in",
                    "size": size,
                    **summarize(samples[1:]),
                }
            )
    return rows


def big_array(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    title = "A big numpy array argument"
    why = _no_numpy()
    if why:
        return _skipped(runner, "big_array", title, why)
    import numpy

    arrays = {size: numpy.ones(size // 8) for size in s.array_sizes}
    rows = _in_passes(
        runner, "big_array", "median", _big_array, s, arrays, line=_latency_line
    )
    return {
        "title": title,
        "description": (
            "`nbytes(array)`: a float64 numpy array of "
            + ", ".join(size_label(size) for size in s.array_sizes)
            + f" goes to a worker process, an int comes back; median of {s.array_reps} "
            "calls after one that warms up, on a pool whose workers imported numpy. "
            "Every contender pickles the array and sends it through a pipe, "
            "aiointerp included, until its process workers share big buffers."
            + _passes_text(runner)
        ),
        "cost": "median",
        "rows": rows,
    }


# -- 5. cancellation ------------------------------------------------------------------


class _Fifos:
    """The named pipes and the file through which a worker process reports."""

    def __init__(self, directory: str) -> None:
        self.start = os.path.join(directory, "start")
        self.stop = os.path.join(directory, "stop")
        self.cleanup = os.path.join(directory, "cleanup")
        os.mkfifo(self.start)
        os.mkfifo(self.stop)

    def reset(self) -> None:
        Path(self.cleanup).write_text("")

    def cleanup_lines(self) -> list[str]:
        """What the shape's cleanup wrote (a small local file: read on the loop)."""
        return Path(self.cleanup).read_text().splitlines()


async def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, size - len(data))
        except BlockingIOError:
            continue
        if not chunk:
            raise EOFError("the worker closed the start pipe")
        data += chunk
    return data


async def _cancel_once(
    call: Call, func: Any, args: tuple[Any, ...], fifos: _Fifos
) -> Row:
    """Start a call, cancel it once it runs; when did its code stop, its caller return?

    ``stopped``: from ``scope.cancel()`` until the stop FIFO is readable, which is
    either the byte written by the code's last cleanup or the end of file of a
    process that died without running it.
    """
    fifos.reset()
    # O_RDWR: this end never sees end of file (the worker's open never blocks)
    start_fd = os.open(fifos.start, os.O_RDWR | os.O_NONBLOCK)
    stop_fd = os.open(fifos.stop, os.O_RDONLY | os.O_NONBLOCK)
    scope = anyio.CancelScope()
    released: list[float] = []

    async def caller() -> None:
        with scope:
            await call(func, *args)
        released.append(time.perf_counter())

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await _read_exactly(start_fd, 8)
                cancelled_at = time.perf_counter()
                scope.cancel()
                await anyio.wait_readable(stop_fd)
                stopped_at = time.perf_counter()
                try:
                    cleanup_done = os.read(stop_fd, 1) == b"e"
                except BlockingIOError:  # pragma: no cover - readable means data or EOF
                    cleanup_done = False
    finally:
        os.close(start_fd)
        os.close(stop_fd)
    return {
        "stopped": stopped_at - cancelled_at,
        "released": released[0] - cancelled_at,
        "cleanup_done": cleanup_done,
        "lines": fifos.cleanup_lines(),
    }


def _cancel_row(variant: str, samples: list[Row], **extra: Any) -> Row:
    return {
        "variant": variant,
        **summarize([x["stopped"] for x in samples]),
        "released_median": statistics.median(x["released"] for x in samples),
        "released_p99": summarize([x["released"] for x in samples])["p99"],
        "cleanup_runs": sum(x["cleanup_done"] for x in samples),
        **extra,
    }


async def _cancel_ours(contender: Contender, s: Settings) -> list[Row]:
    shapes = s.cancel_shapes or PURE_PYTHON_SHAPES
    by_shape: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory() as directory:
        fifos = _Fifos(directory)
        # one worker: each cancel waits for the replacement of the interrupted
        # process before it starts, so no start overlaps a measurement
        async with contender.open(1, 0) as call:
            await call(_work.noop, 0)
            for shape in shapes:
                for _ in range(s.cancel_samples):
                    args = (shape, fifos.start, fifos.cleanup, fifos.stop)
                    sample = await _cancel_once(call, _work.run_shape_fifo, args, fifos)
                    sample["complete"] = sample["lines"] == _shapes.expected(shape)
                    by_shape.setdefault(shape, []).append(sample)
    every = [sample for samples in by_shape.values() for sample in samples]
    complete = sum(sample["complete"] for sample in every)
    per_shape = {
        shape: {
            key: value
            for key, value in summarize([x["stopped"] for x in samples]).items()
            if key in ("median", "p99", "max")
        }
        for shape, samples in by_shape.items()
    }
    rows = [
        _cancel_row(
            f"{len(shapes)} pure-Python shapes",
            every,
            cleanup_complete=complete,
            shapes=per_shape,
        )
    ]
    if PEER_SHAPE in by_shape:
        peer = by_shape[PEER_SHAPE]
        rows.append(
            _cancel_row(
                PEER_SHAPE,
                peer,
                cleanup_complete=sum(sample["complete"] for sample in peer),
            )
        )
    return rows


async def _cancel_killing_peer(contender: Contender, s: Settings) -> list[Row]:
    samples = []
    with tempfile.TemporaryDirectory() as directory:
        fifos = _Fifos(directory)
        async with contender.open(1, 0) as call:
            await call(_work.noop, 0)
            for _ in range(s.cancel_peer_samples):
                args = (PEER_SHAPE, fifos.start, fifos.cleanup, fifos.stop)
                samples.append(
                    await _cancel_once(call, _work.run_shape_fifo, args, fifos)
                )
    return [_cancel_row(PEER_SHAPE, samples, killed=True)]


async def _cancel_executor(contender: Contender, s: Settings) -> list[Row]:
    samples = []
    with tempfile.TemporaryDirectory() as directory:
        fifos = _Fifos(directory)
        async with contender.open(1, 0) as call:
            await call(_work.noop, 0)
            for _ in range(s.cancel_peer_samples):
                args = (s.cancel_peer_job_s, fifos.start, fifos.stop)
                samples.append(await _cancel_once(call, _work.spin_fifo, args, fifos))
    variant = f"{fmt_time(s.cancel_peer_job_s)} loop"
    return [_cancel_row(variant, samples, killed=False, ran_to_end=True)]


def cancellation(runner: Runner) -> dict[str, Any]:
    s = runner.settings

    def line(row: Row) -> str:
        text = (
            f"stopped p50 {fmt_time(row['median'])}  p99 {fmt_time(row['p99'])}  "
            f"released p50 {fmt_time(row['released_median'])}  "
            f"cleanup ran {row['cleanup_runs']}/{row['n']}"
        )
        if "cleanup_complete" in row:
            text += f" (complete {row['cleanup_complete']}/{row['n']})"
        return text

    rows: list[Row] = []
    for contender, backend in runner.pairs((*POOLS, AIOINTERP)):
        if contender.name in (AIOINTERP_PROCESS, AIOINTERP):
            measure = _cancel_ours
        elif contender.name == PROCESS_POOL_EXECUTOR:
            measure = _cancel_executor
        else:
            measure = _cancel_killing_peer
        rows += runner.attempt(
            "cancellation", contender, backend, measure, s, line=line
        )
    shapes = s.cancel_shapes or PURE_PYTHON_SHAPES
    return {
        "title": "Cancellation: cancel → code stopped",
        "description": (
            "A call runs a code shape of `benchmarks/_shapes.py` in a worker process "
            "(FIFOs carry its start handshake and its last cleanup's byte); the host "
            "calls `scope.cancel()` once it runs. `median`/`p99`: from the cancel "
            "until the code stopped: its last cleanup done (aiointerp) or the "
            "process dead (the peers kill it: the stop FIFO ends with no byte, no "
            "`finally` ran). `released`: until the caller's cancellation returned. "
            f"aiointerp: {s.cancel_samples} cancels of each of {len(shapes)} "
            "pure-Python shapes per event loop on a 1-worker pool (an interrupted "
            "process is replaced before the next cancel); `cleanup_complete`: cancels "
            "whose every `finally`/`__exit__` ran, in order. anyio.to_process "
            "(`cancellable=True`), trio_parallel (`kill_on_cancel=True`) and pebble "
            f"(future cancelled): {s.cancel_peer_samples} cancels of "
            f"`{PEER_SHAPE}`. ProcessPoolExecutor cannot stop a running call: the "
            f"cancel releases the caller and a {fmt_time(s.cancel_peer_job_s)} loop "
            "runs to its end (its `stopped` is when it ended by itself). `aiointerp` "
            "(interpreter workers) runs the same shapes in the same run: its tail "
            "shows what the machine's load adds."
        ),
        "cost": "p99",
        "rows": rows,
    }


# -- 6. cold start, 7. memory -----------------------------------------------------------


def process_cold_start(runner: Runner) -> dict[str, Any]:
    """As the default suite's, with the contenders in turns (one start each)."""
    s = runner.settings
    plan = [
        (contender, backend, variant, min_idle)
        for contender, backend in runner.pairs(POOLS)
        for variant, min_idle in (
            [("open + first call", 0), ("min_idle=1: first call", 1)]
            if contender.name == AIOINTERP_PROCESS
            else [("open + first call", 0)]
        )
    ]
    samples: list[list[Row]] = [[] for _ in plan]
    errors: dict[int, str] = {}
    for _ in range(s.process_cold_reps):
        for index, (contender, backend, _, min_idle) in enumerate(plan):
            if index in errors:
                continue
            try:
                samples[index].append(
                    runner.run(backend, _cold, contender, s, min_idle)
                )
            except Exception as exc:
                errors[index] = describe_error(exc)
    rows: list[Row] = []
    for index, (contender, backend, variant, min_idle) in enumerate(plan):
        row: Row = {"contender": contender.name, "backend": backend, "variant": variant}
        if index in errors:
            row["error"] = errors[index]
            text = f"error: {row['error']}"
        else:
            key = "call" if min_idle else "first"
            row.update(summarize([sample[key] for sample in samples[index]]))
            text = f"median {fmt_time(row['median'])}  max {fmt_time(row['max'])}"
            if min_idle:
                row["ready_median"] = statistics.median(
                    sample["ready"] for sample in samples[index]
                )
                text += f"  (pool ready after {fmt_time(row['ready_median'])})"
        rows.append(row)
        runner.log(
            f"  [cold_start] {backend:<7} {contender.name:<24} {variant:<22} {text}"
        )
    return {
        "title": "Cold start",
        "description": (
            "Time from opening a fresh pool (a fresh event loop for "
            "anyio.to_process) to the first result of `noop`; median of "
            f"{s.process_cold_reps}, the contenders in turns. With `min_idle=1`: the "
            "first call once the pool reports an idle worker (the time until then "
            "is `ready_median`). ProcessPoolExecutor and pebble start their workers "
            "with multiprocessing's `spawn`, as aiointerp and anyio.to_process start "
            "a fresh interpreter; pebble starts all of its workers at once."
        ),
        "cost": "median",
        "rows": rows,
    }


def process_memory(runner: Runner) -> dict[str, Any]:
    result = memory(runner, (*POOLS, AIOINTERP), suite="process")
    result["description"] += (
        " `aiointerp` is an idle interpreter worker, for comparison with an idle "
        "process worker."
    )
    return result


# -- 8. the cost of kind="auto" ---------------------------------------------------------


def _auto_unavailable() -> str | None:
    try:
        aiointerp.InterpreterPool(1, kind="auto")
    except NotImplementedError as exc:
        return f'InterpreterPool(kind="auto") raises NotImplementedError ({exc})'
    return None


async def _auto_overhead(s: Settings) -> list[Row]:
    """Interleaved blocks of sequential calls on two warm pools, in one event loop."""
    samples: dict[str, list[float]] = {AIOINTERP_INTERPRETER: [], AIOINTERP_AUTO: []}
    block_ratios = []
    async with (
        aiointerp.InterpreterPool(s.workers) as plain,
        aiointerp.InterpreterPool(s.workers, kind="auto") as auto,
    ):
        pools = {AIOINTERP_INTERPRETER: plain, AIOINTERP_AUTO: auto}
        for pool in pools.values():  # the function's kind is known from now on
            for i in range(max(10, s.auto_block_calls)):
                await pool.run_sync(_work.noop, i)
        for block in range(s.auto_blocks):
            order = list(pools) if block % 2 == 0 else list(reversed(pools))
            medians = {}
            for name in order:
                pool = pools[name]
                block_samples = []
                for i in range(s.auto_block_calls):
                    start = time.perf_counter()
                    result = await pool.run_sync(_work.noop, i)
                    block_samples.append(time.perf_counter() - start)
                    if result != i:
                        raise AssertionError(f"noop({i}) returned {result!r}")
                samples[name] += block_samples
                medians[name] = statistics.median(block_samples)
            block_ratios.append(
                medians[AIOINTERP_AUTO] / medians[AIOINTERP_INTERPRETER]
            )
    rows = [
        {"contender": name, "variant": "trivial call", **summarize(values)}
        for name, values in samples.items()
    ]
    rows[1]["paired_ratio"] = statistics.median(block_ratios)
    return rows


def auto_overhead(runner: Runner) -> dict[str, Any]:
    s = runner.settings
    title = 'The cost of kind="auto" on the interpreter round trip'
    why = _auto_unavailable()
    if why:
        return _skipped(
            runner, "auto_overhead", title, why + "; it runs once kind='auto' exists"
        )
    rows: list[Row] = []
    for backend in runner.backends:
        try:
            got: list[Row] = runner.run(backend, _auto_overhead, s)
        except Exception as exc:
            got = [{"contender": AIOINTERP_AUTO, "variant": "-"}]
            got[0]["error"] = describe_error(exc)
        for row in got:
            row["backend"] = backend
            text = (
                f"error: {row['error']}"
                if "error" in row
                else _latency_line(row)
                + (
                    f"  (paired ratio {row['paired_ratio']:.3f})"
                    if "paired_ratio" in row
                    else ""
                )
            )
            runner.log(f"  [auto_overhead] {backend:<7} {row['contender']:<24} {text}")
        rows += got
    return {
        "title": title,
        "description": (
            f'`noop(i)` on a warm `kind="interpreter"` pool and a warm '
            f'`kind="auto"` pool, open side by side in one event loop, after '
            "each served the function (its kind is known): "
            f"{s.auto_blocks} interleaved blocks of {s.auto_block_calls} sequential "
            "calls, the order swapped every block. `paired_ratio`: median over the "
            "blocks of auto's median over interpreter's in the same pair (drift "
            'of a noisy machine cancels out). Ratio: vs `kind="interpreter"`.'
        ),
        "cost": "median",
        "baseline": AIOINTERP_INTERPRETER,
        "rows": rows,
    }


PROCESS_SCENARIOS: dict[str, Callable[[Runner], dict[str, Any]]] = {
    "round_trip": round_trip,
    "throughput": throughput,
    "cpu_numpy": cpu_numpy,
    "big_array": big_array,
    "cancellation": cancellation,
    "cold_start": process_cold_start,
    "memory": process_memory,
    "auto_overhead": auto_overhead,
}
