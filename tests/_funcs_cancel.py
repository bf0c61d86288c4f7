"""Module-level functions sent to worker interpreters by tests/inside/test_cancellation.py.

Stdlib and :mod:`aiointerp.worker` only. The tests observe these functions through
what they write: a handshake on a pipe (``start_fd``: the 8-byte interpreter id, once
the code runs) and a file (``path``) written by ``finally`` blocks and context
managers, never through timing.
"""

from __future__ import annotations

import hashlib
import os
import select
import sys
import time
from types import TracebackType
from typing import Any

from aiointerp._wire import _interp
from aiointerp.worker import Interrupted, cancelled, checkpoint, deadline


def started(fd: int) -> None:
    """Handshake: tell the test, through a pipe, that the code runs (and where)."""
    os.write(fd, _interp.current_id().to_bytes(8, "little"))


def write(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


class Record:
    """Context manager that writes ``Type:message`` of the exception it saw."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> Record:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        write(self.path, f"{getattr(exc_type, '__name__', None)}:{exc or ''}\n")


# -- pure Python -----------------------------------------------------------------------


def spin(start_fd: int, path: str) -> None:
    """Loop forever in pure Python; the context manager and the finally record."""
    try:
        with Record(path):
            started(start_fd)
            while True:
                pass
    finally:
        write(path, "finally\n")


class RacedMonitoring:
    """``sys.monitoring`` as seen while another thread races the interrupter for tool
    *taken*: it looks free, but using it fails (the other thread took it meanwhile)."""

    def __init__(self, real: Any, taken: int) -> None:
        self._real = real
        self._taken = taken

    def get_tool(self, tool: int) -> str | None:
        return None if tool == self._taken else self._real.get_tool(tool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def spin_with_raced_tool(start_fd: int, path: str, taken: int) -> None:
    """:func:`spin`, tool *taken* in use by the code but shown free to the interrupter."""
    real = sys.monitoring
    real.use_tool_id(taken, "raced")
    sys.monitoring = RacedMonitoring(real, taken)  # type: ignore[assignment]
    try:
        spin(start_fd, path)
    finally:
        sys.monitoring = real
        real.free_tool_id(taken)


def spin_then_stop(start_fd: int, stop_fd: int) -> None:
    """For the benchmark: start byte, loop, stop byte from the finally."""
    try:
        os.write(start_fd, b"s")
        while True:
            pass
    finally:
        os.write(stop_fd, b"e")


def watch_deadline(start_fd: int, path: str) -> None:
    """Record deadline() and the clock, wait for cancelled(), spin until interrupted."""
    write(path, f"{deadline()!r} {time.monotonic()!r} {cancelled()!r}\n")
    try:
        started(start_fd)
        while not cancelled():
            pass
        while True:  # the interrupt follows
            pass
    finally:
        write(path, f"{cancelled()!r}\n")


def write_file(path: str, text: str) -> str:
    write(path, text)
    return text


def interp_id() -> int:
    return _interp.current_id()


def checksum(n: int, seed: int) -> int:
    """Deterministic pure-Python work of adjustable length."""
    total = seed
    for i in range(n):
        total = (total * 31 + i) % 1_000_003
    return total


def checkpoint_state() -> tuple[bool, float | None]:
    checkpoint()
    return cancelled(), deadline()


# -- C calls ---------------------------------------------------------------------------


def hash_loop(start_fd: int, path: str) -> None:
    """Spend the time in C (hashlib, sum) with checkpoint() between the calls."""
    data = b"x" * (1 << 20)
    try:
        with Record(path):
            started(start_fd)
            while True:
                hashlib.sha256(data).digest()
                checkpoint()
                sum(range(10**5))
                checkpoint()
    finally:
        write(path, "finally\n")


def swallow_once_then_checkpoint(start_fd: int, path: str) -> None:
    """Catch the injected interrupt; only checkpoint() can stop the loop after it."""
    with Record(path):
        try:
            started(start_fd)
            while True:
                pass
        except Interrupted as exc:
            write(path, f"caught:{exc}\n")
        while True:
            sum(range(1000))
            checkpoint()


# -- cannot be interrupted -------------------------------------------------------------


def sleeper(start_fd: int, path: str, seconds: float) -> str:
    """Blocked in a C call (time.sleep): the interrupt waits until it returns."""
    end = time.monotonic() + seconds
    try:
        try:
            started(start_fd)
            time.sleep(seconds)
        except Interrupted:
            # The interrupt can come before the sleep begins: the host may cancel as
            # soon as the handshake byte is written. Sleep out the rest anyway, as if
            # it had come a moment later (an interrupt is raised once per call).
            time.sleep(max(0.0, end - time.monotonic()))
        return "slept"
    finally:
        write(path, "slept\n")


def swallow_until_released(start_fd: int, release_fd: int, path: str) -> str:
    """Swallow every BaseException and spin until the test writes to ``release_fd``."""
    announced = False
    try:
        for _ in range(1000):
            try:
                if not announced:  # inside the try: the handshake may be interrupted
                    announced = True
                    started(start_fd)
                while not readable(release_fd):
                    pass
                return "released"
            except BaseException:  # the point of this function
                write(path, "swallowed\n")
        return "gave up"
    finally:
        write(path, "returned\n")


def swallow_and_return(start_fd: int, path: str) -> str:
    """Catch the interrupt and return a value: the caller must not get it."""
    try:
        started(start_fd)
        while True:
            pass
    except BaseException:
        write(path, "swallowed\n")
        return "swallowed"


def nested_view() -> tuple[memoryview, int]:
    """A view into this interpreter's memory, nested in a result: must be refused."""
    return (memoryview(bytearray(b"abc")), 1)
