"""An InterpreterExecutor whose loop thread cannot start, for real (no mocks).

``python executor_cannot_start.py fds``: the process is out of file descriptors when
the first call is submitted (the thread starts; its event loop cannot open one).
``python executor_cannot_start.py threads``: the thread itself cannot start (its
stack does not fit under the address-space limit): ``Thread.start`` raises
``RuntimeError: can't start new thread``. Prints one line per step.
"""

from __future__ import annotations

import operator
import os
import resource
import sys
import threading
from concurrent.futures import BrokenExecutor

import aiointerp


def exhaust_fds() -> list[int]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return held


def address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def submit(executor: aiointerp.InterpreterExecutor) -> str:
    try:
        return str(executor.submit(operator.add, 1, 2).result(timeout=60))
    except BrokenExecutor as exc:
        return f"BrokenExecutor from {type(exc.__cause__).__name__}"


def main(kind: str) -> None:
    executor = aiointerp.InterpreterExecutor(1)
    if kind == "fds":
        held = exhaust_fds()
        print("first", submit(executor), flush=True)
        for fd in held:
            os.close(fd)
    else:
        threading.stack_size(1 << 30)  # 1 GiB stacks for new threads...
        limit = address_space() + (256 << 20)  # ...with 256 MiB to spare
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        print("first", submit(executor), flush=True)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        threading.stack_size(0)
    # the cause is gone: this executor stays broken, says so; a new one works
    print("again", submit(executor), flush=True)
    executor.shutdown()
    print("threads", [t.name for t in threading.enumerate() if t.name != "MainThread"])
    with aiointerp.InterpreterExecutor(1) as fresh:
        print("new", submit(fresh), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
