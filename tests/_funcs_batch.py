"""Functions sent to worker interpreters by the chunked map and executor tests.
Stdlib only: workers import this module."""

from __future__ import annotations

import os
import threading
from typing import Any


def times_ten(x: int) -> int:
    return 10 * x


def fail_at_five(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad item {x}")
    return 10 * x


def exit_at_two(x: int) -> int:
    if x == 2:
        raise SystemExit(3)
    return x


def unsendable_at_two(x: int) -> Any:
    """A result that cannot be pickled back for item 2."""
    return threading.Lock() if x == 2 else x


def local_instance(x: int) -> Any:
    """An instance of a class local to this function: plain pickle refuses it (3.13
    says AttributeError, 3.14 PicklingError), cloudpickle sends it by value."""

    class Local:
        def __init__(self, value: int) -> None:
            self.value = value

    return Local(x)


def as_view(x: int) -> memoryview:
    return memoryview(bytes([x, x]))


def first_byte(view: memoryview) -> int:
    return view[0]


def add(a: int, b: int) -> int:
    return a + b


def spin_or_square(args: tuple[str, Any]) -> Any:
    """("square", x) returns x * x; ("spin", (started_fd, stopped_fd)) says b"S",
    spins until interrupted, and its finally says b"I"."""
    kind, arg = args
    if kind == "square":
        return arg * arg
    started, stopped = arg
    try:
        os.write(started, b"S")
        while True:
            pass
    finally:
        os.write(stopped, b"I")


def block_on(args: tuple[int, int]) -> int:
    """Say b"B" on ``fds[0]``, then block in ``os.read`` (no interrupt lands in a C
    call) until a byte arrives on ``fds[1]``; return 7."""
    said, go = args
    os.write(said, b"B")
    os.read(go, 1)
    return 7
