"""Module-level functions that the lifecycle tests send to worker interpreters.

Handshakes with the host go through pipes whose file descriptors are passed as ints
(a pipe is shared by the whole process) and through files; never through sleeps.
"""

from __future__ import annotations

import os
import threading

from aiointerp._wire import _interp

#: Set by :func:`init_record` inside each worker interpreter (per interpreter).
_init_tag: str | None = None
_init_calls = 0


def interp_id() -> int:
    """The id of the interpreter this runs in."""
    return _interp.current_id()


def block(started_w: int, release_r: int) -> int:
    """Tell the host we run (one byte on *started_w*), wait for one byte on *release_r*.

    Returns the interpreter id.
    """
    os.write(started_w, b"s")
    os.read(release_r, 1)
    return _interp.current_id()


def spin(started_w: int) -> int:
    """Tell the host we run, then spin in pure Python until interrupted."""
    os.write(started_w, b"s")
    n = 0
    while True:
        n += 1


def work(n: int) -> int:
    """A little pure-Python CPU work."""
    return sum(i * i for i in range(n))


def init_record(path: str, tag: str) -> None:
    """Initializer: append this interpreter's id to *path*, remember *tag*."""
    global _init_tag, _init_calls
    _init_tag = tag
    _init_calls += 1
    with open(path, "a") as file:
        file.write(f"{_interp.current_id()}\n")


def init_state() -> tuple[int, str | None, int]:
    """What :func:`init_record` left in this interpreter."""
    return _interp.current_id(), _init_tag, _init_calls


class InitError(ValueError):
    """Raised by :func:`init_fail_if_exists` (a picklable user exception type)."""


def init_fail_if_exists(marker: str, attempts: str) -> None:
    """Initializer: record the attempt in *attempts*; fail while *marker* exists."""
    with open(attempts, "a") as file:
        file.write(f"{_interp.current_id()}\n")
    if os.path.exists(marker):
        raise InitError(f"marker {marker} present")


def init_fail_holding(hold_r: int) -> None:
    """Initializer that fails, with a thread that keeps its interpreter alive.

    Destroying an interpreter waits for its non-daemon threads: the interpreter (and
    what it sent) lives until the host writes a byte to *hold_r*'s pipe.
    """
    threading.Thread(target=os.read, args=(hold_r, 1)).start()
    raise InitError("the initializer failed")


def init_fail_after_ack(ready_w: int, ack_r: int) -> None:
    """Initializer that says it is about to fail, waits for the host's go, fails."""
    os.write(ready_w, b"f")
    os.read(ack_r, 1)
    raise InitError("the initializer failed")


def leave_a_thread(hold_r: int) -> int:
    """Start a thread that outlives the call (it waits for a byte on *hold_r*); return.

    The interpreter cannot be destroyed until the host writes that byte.
    """
    threading.Thread(target=os.read, args=(hold_r, 1)).start()
    return _interp.current_id()
