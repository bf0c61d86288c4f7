"""Host-side helpers of the tests that synchronise with worker code through pipes.

Not imported by workers (it needs anyio): worker functions live in ``_funcs_*.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

#: grace for code that stops when interrupted: releasing the caller means it stopped
LONG_GRACE = 30.0
#: hang guard for handshakes
HANG = 30.0


@contextmanager
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    try:
        yield read_fd, write_fd
    finally:
        os.close(read_fd)
        os.close(write_fd)


async def wait_started(read_fd: int) -> int:
    """Wait for a worker function's handshake; return the interpreter id it sent."""
    with anyio.fail_after(HANG):
        await anyio.wait_readable(read_fd)
    data = os.read(read_fd, 8)
    assert len(data) == 8
    return int.from_bytes(data, "little")


@contextmanager
def fifo(path: Path) -> Iterator[tuple[str, int]]:
    """A FIFO at *path*: its path for worker code (of any kind), and a non-blocking
    fd for the test, which holds both ends: the worker's ``open`` never blocks."""
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield str(path), fd
    finally:
        os.close(fd)


async def wait_byte(fd: int) -> bytes:
    """Wait (with a hang guard) for a byte on the non-blocking *fd*, and read it."""
    with anyio.fail_after(HANG):
        await anyio.wait_readable(fd)
    return os.read(fd, 1)


def ready_byte(fd: int) -> bytes | None:
    """The byte waiting on ``fd`` now, or None (never blocks)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1)
    except BlockingIOError:
        return None


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


class OperatorEvents(logging.Handler):
    """The pool's operator events (``aiointerp`` records with ``record.event``).

    The roster logs them on the event loop's thread: :meth:`wait` is woken by the
    record itself, no polling.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed: anyio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "event"):
            self.records.append(record)
            if self._changed is not None:
                self._changed.set()

    def of(self, event: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.event == event]  # type: ignore[attr-defined]

    async def wait(self, event: str, count: int = 1) -> list[logging.LogRecord]:
        """Wait until *count* records of *event* were logged; return them."""
        with anyio.fail_after(HANG):
            while len(self.of(event)) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.of(event)


@contextmanager
def operator_events() -> Iterator[OperatorEvents]:
    """Collect the operator events logged in the block."""
    logger = logging.getLogger("aiointerp")
    handler = OperatorEvents()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
