"""Memory scenario, run in a fresh process: ``python -m benchmarks._memory NAME N BACKEND [SUITE]``.

Prints one JSON line: RSS before and after starting N idle workers of contender NAME
(of the suite SUITE: ``default`` or ``process``), child processes included.
The module's top level imports only the stdlib, with absolute imports: process
pools (anyio.to_process) re-run the main module in their workers by path.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid: int | str = "self") -> int:
    """Resident set size of a process, in bytes."""
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * _PAGE


def children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def pss(pid: int | str = "self") -> int | None:
    """Proportional set size (shared pages divided among their users), or None."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return None


def _total(pids: list[int]) -> tuple[int, int | None]:
    """RSS and PSS of this process and of *pids* together."""
    total_rss = rss() + sum(rss(pid) for pid in pids)
    sizes = [pss(), *(pss(pid) for pid in pids)]
    total_pss = None if None in sizes else sum(s for s in sizes if s is not None)
    return total_rss, total_pss


async def _settle() -> None:
    import anyio

    gc.collect()
    await anyio.sleep(0.2)


def _find(name: str, suite: str) -> Any:
    from benchmarks._contenders import all_contenders, process_contenders

    contenders = process_contenders() if suite == "process" else all_contenders()
    (contender,) = [c for c in contenders if c.name == name]
    return contender


async def measure(name: str, workers: int, suite: str = "default") -> dict[str, Any]:
    import anyio

    from benchmarks import _work
    from benchmarks._scenarios import OURS, wait_idle

    contender = _find(name, suite)
    before_children = set(children())
    await _settle()
    before, before_pss = _total([])
    if name in OURS:
        async with contender.open(workers, workers) as call:
            pool = call.__self__
            with anyio.fail_after(60):
                await wait_idle(pool, workers)
            await _settle()
            kids = [pid for pid in children() if pid not in before_children]
            after, after_pss = _total(kids)
            started = pool.stats().workers
    else:
        async with contender.open(workers, 0) as call:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(call, _work.sleep, 0.3)
            await _settle()
            kids = [pid for pid in children() if pid not in before_children]
            after, after_pss = _total(kids)
            # each call holds its own worker; a process pool may start helpers
            # beside them (multiprocessing's resource tracker): their memory
            # counts, not as workers
            started = workers
    return {
        "workers": started,
        "rss_before": before,
        "rss_after": after,
        "child_processes": len(kids),
        "per_worker": (after - before) / max(1, started),
        "pss_per_worker": (
            None
            if before_pss is None or after_pss is None
            else (after_pss - before_pss) / max(1, started)
        ),
    }


def main() -> None:
    import anyio

    name, workers, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    suite = sys.argv[4] if len(sys.argv) > 4 else "default"
    print(json.dumps(anyio.run(measure, name, workers, suite, backend=backend)))


if __name__ == "__main__":
    main()
