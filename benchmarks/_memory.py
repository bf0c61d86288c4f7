"""Memory scenario, run in a fresh process: ``python -m benchmarks._memory NAME N BACKEND``.

Prints one JSON line: RSS before and after starting N idle workers of contender NAME.
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


async def _settle() -> None:
    import anyio

    gc.collect()
    await anyio.sleep(0.2)


async def measure(name: str, workers: int) -> dict[str, Any]:
    import anyio

    from benchmarks import _work
    from benchmarks._contenders import AIOINTERP, all_contenders
    from benchmarks._scenarios import wait_idle

    (contender,) = [c for c in all_contenders() if c.name == name]
    before_children = set(children())
    await _settle()
    before = rss()
    if name == AIOINTERP:
        async with contender.open(workers, workers) as call:
            pool = call.__self__  # type: ignore[attr-defined]
            with anyio.fail_after(60):
                await wait_idle(pool, workers)
            await _settle()
            after = rss()
            started = pool.stats().workers
            kids: list[int] = []
    else:
        async with contender.open(workers, 0) as call:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(call, _work.sleep, 0.3)
            await _settle()
            after = rss()
            kids = [pid for pid in children() if pid not in before_children]
            kids_rss = sum(rss(pid) for pid in kids)
            after += kids_rss
            started = len(kids) if kids else workers
    return {
        "workers": started,
        "rss_before": before,
        "rss_after": after,
        "child_processes": len(kids),
        "per_worker": (after - before) / max(1, started),
    }


def main() -> None:
    import anyio

    name, workers, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps(anyio.run(measure, name, workers, backend=backend)))


if __name__ == "__main__":
    main()
