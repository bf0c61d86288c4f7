"""Functions sent to worker interpreters by the integration tests (map, offload,
executor). Stdlib only: workers import this module."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import aiointerp


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def fail_if_bad(x: int) -> int:
    return fail_on(x, 3)


def time_out_upstream(chained: bool) -> None:
    """Raise the function's own TimeoutError, as a call to a slow upstream does
    (with *chained*, while handling another error: a __context__ chain)."""
    if chained:
        try:
            raise ConnectionError("upstream reset")
        except ConnectionError:
            raise TimeoutError("upstream did not answer")  # noqa: B904 - on purpose
    raise TimeoutError("upstream did not answer")


def signal(fd: int, data: bytes) -> None:
    """Write ``data`` to the pipe ``fd`` (inherited by every interpreter)."""
    os.write(fd, data)


def spin_until_interrupted(fds: tuple[int, int]) -> None:
    """Say b"S" on ``fds[0]``, spin until interrupted, say b"I" on ``fds[1]``.

    Pure Python, so the injected :class:`aiointerp.Interrupted` lands at once.
    """
    started, stopped = fds
    try:  # the interrupt may land as soon as b"S" is out: be inside the try
        os.write(started, b"S")
        while True:
            pass
    finally:
        os.write(stopped, b"I")


def wait_for_byte(fd: int) -> bytes:
    """Block in the worker until one byte arrives on the pipe ``fd``."""
    return os.read(fd, 1)


def handshake_square(args: tuple[int, int, int]) -> int:
    """Say which item started on ``fd_out``; wait for a go byte on ``fd_in``."""
    x, fd_out, fd_in = args
    os.write(fd_out, bytes([x]))
    os.read(fd_in, 1)
    return x * x


@aiointerp.offload
def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


@aiointerp.offload(timeout=30)
def interp_id() -> int:
    from aiointerp._wire import _interp

    return _interp.current_id()


@aiointerp.offload
def spin_offloaded(fds: tuple[int, int]) -> None:
    spin_until_interrupted(fds)


def plain_interp_id() -> int:
    from aiointerp._wire import _interp

    return _interp.current_id()


# offload() without rebinding the name: the original stays the module attribute
offloaded_copy = aiointerp.offload(plain_interp_id)


class Scaler:
    """A module-level class with an offloaded method (self must be picklable)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @aiointerp.offload
    def scale(self, x: int) -> int:
        return x * self.factor


def scenario(args: tuple[str, Any]) -> Any:
    """One map item: ("square", x), ("spin", (started_fd, stopped_fd)),
    ("fail_after", go_fd): wait for a byte on go_fd, then raise ValueError."""
    kind, arg = args
    if kind == "square":
        return arg * arg
    if kind == "spin":
        return spin_until_interrupted(arg)
    if kind == "fail_after":
        os.read(arg, 1)
        raise ValueError("failed on purpose")
    raise AssertionError(kind)


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator stacked above @offload (sets __wrapped__ through functools.wraps)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@logged
@aiointerp.offload
def triple(x: int) -> int:
    return 3 * x


def async_libraries_loaded() -> tuple[str, ...]:
    """Which of anyio, trio, sniffio this interpreter has imported."""
    import sys

    return tuple(name for name in ("anyio", "trio", "sniffio") if name in sys.modules)


@aiointerp.offload
def offloaded_libraries_loaded() -> tuple[str, ...]:
    return async_libraries_loaded()
