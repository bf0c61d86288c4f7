"""A process pool in a process with few file descriptors left, for real (no mocks).

``python few_fds.py BACKEND``: once one process worker runs, the fd limit leaves
room for one or two more of the six the calls want. The calls must all be served by
the workers that could start (none fails), and the warning of the failed starts must
say what to do.
Prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time

import anyio

import aiointerp


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def work(seconds: float) -> int:
    time.sleep(seconds)  # a call that holds its worker a while: more are wanted
    return os.getpid()


async def main() -> None:
    base = fds()
    async with aiointerp.InterpreterPool(1, kind="process") as pool:
        await pool.run_sync(os.getpid)
        per_worker = fds() - base
    warnings: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger("aiointerp").addHandler(Keep())
    failed: list[str] = []
    pids: list[int] = []
    async with aiointerp.InterpreterPool(6, kind="process") as pool:
        await pool.run_sync(os.getpid)  # one worker runs: it can serve every call
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # what starting one more worker takes at its peak, and little more
        resource.setrlimit(resource.RLIMIT_NOFILE, (fds() + per_worker + 14, hard))

        async def call() -> None:
            try:
                pids.append(await pool.run_sync(work, 0.05))
            except Exception as exc:
                failed.append(repr(exc))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(call)
        created = pool.stats().created
    print(
        json.dumps(
            {
                "served": len(pids),
                "workers": len(set(pids)),
                "created": created,
                "failed": failed,
                "warnings": warnings,
            }
        )
    )


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1])
