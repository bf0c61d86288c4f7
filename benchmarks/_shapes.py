"""Code shapes users write, interrupted by the cleanup matrix and the latency benchmark.

tests/inside/test_cleanup_matrix.py proves that every cleanup of every shape runs when it is
interrupted; :mod:`benchmarks.cancel_latency` measures how soon each one stops.
Stdlib and :mod:`aiointerp._wire._interp` only: these run inside worker interpreters. Each
shape runs until it is interrupted and records its cleanup, line by line, in a file:
the ``finally`` blocks and ``__exit__`` methods of its own frames, innermost first.
:func:`run_shape` wraps every shape in one more ``with`` and ``finally`` and writes
the handshake (the interpreter id on a pipe) from *inside* the shape's innermost
``try``, so an interrupt that comes after the handshake must run every cleanup.

The shapes are those users write, not only the easy ``while True: pass``: on CPython
3.13 an exception set with ``PyThreadState_SetAsyncExc`` skipped the cleanup of
loops that call C functions (cpython#139622).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from aiointerp._wire import _interp


def write(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def ready(fd: int) -> None:
    """Handshake: the shape is inside its innermost ``try`` now."""
    os.write(fd, _interp.current_id().to_bytes(8, "little"))


class Record:
    """A context manager whose ``__exit__`` records the exception it saw."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name

    def __enter__(self) -> Record:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        write(self.path, f"{self.name}:{getattr(exc_type, '__name__', None)}")


# -- the shapes ---------------------------------------------------------------------------


def spin(fd: int, path: str) -> None:
    try:
        ready(fd)
        while True:
            pass
    finally:
        write(path, "inner")


def range_pass(fd: int, path: str) -> None:
    try:
        ready(fd)
        for _ in range(10**15):
            pass
    finally:
        write(path, "inner")


def c_calls(fd: int, path: str) -> None:
    """The shape of cpython#139622: a loop condition that calls a C function."""
    x = 0
    try:
        ready(fd)
        end = time.monotonic() + 1e9
        while time.monotonic() < end:
            x += 1
    finally:
        write(path, "inner")


def len_abs(fd: int, path: str) -> None:
    data = [1, 2, 3]
    x = 0
    try:
        ready(fd)
        while True:
            x = len(data) + abs(-x) % 7
    finally:
        write(path, "inner")


def _step(x: int) -> int:
    return (x * 31 + 7) % 1_000_003


def python_calls(fd: int, path: str) -> None:
    x = 0
    try:
        ready(fd)
        while True:
            x = _step(x)
    finally:
        write(path, "inner")


def try_except_in_loop(fd: int, path: str) -> None:
    x = 0
    try:
        ready(fd)
        while True:
            try:
                x += 1
                if x < 0:
                    raise ValueError(x)
            except Exception:
                pass
    finally:
        write(path, "inner")


def try_pass_in_loop(fd: int, path: str) -> None:
    """No raise point at all in the loop: a ``try`` that only opens."""
    try:
        ready(fd)
        while True:
            try:
                pass
            except Exception:
                pass
    finally:
        write(path, "inner")


def with_block(fd: int, path: str) -> None:
    x = 0
    with Record(path, "inner"):
        ready(fd)
        while True:
            x += 1


def with_in_loop(fd: int, path: str) -> None:
    """A context manager entered and left on every iteration."""
    with contextlib.ExitStack() as stack:
        stack.callback(write, path, "inner")
        ready(fd)
        x = 0
        while True:
            with contextlib.nullcontext(1) as one:
                x += one


@contextlib.contextmanager
def _resource(path: str) -> Iterator[int]:
    try:
        yield 1
    finally:
        write(path, "inner")


def contextmanager_generator(fd: int, path: str) -> None:
    x = 0
    with _resource(path) as step:
        ready(fd)
        while True:
            x += step


def _squares(n: int) -> Iterator[int]:
    for i in range(n):
        yield i * i


def generator_sum(fd: int, path: str) -> None:
    try:
        ready(fd)
        while True:
            sum(_squares(1000))
    finally:
        write(path, "inner")


def generator_with_finally(fd: int, path: str) -> None:
    """The generator's own finally runs too, before the consumer's."""

    def numbers() -> Iterator[int]:
        try:
            ready(fd)  # from inside the generator: both try blocks are entered
            i = 0
            while True:
                yield i
                i += 1
        finally:
            write(path, "generator")

    try:
        total = 0
        for n in numbers():
            total += n
    finally:
        write(path, "inner")


def list_comprehension(fd: int, path: str) -> None:
    try:
        ready(fd)
        while True:
            [i * 2 for i in range(1000) if i % 3]
    finally:
        write(path, "inner")


def _key(x: int) -> int:
    return -x


def sorted_key(fd: int, path: str) -> None:
    data = list(range(1000))
    try:
        ready(fd)
        while True:
            sorted(data, key=_key)
    finally:
        write(path, "inner")


def dict_str(fd: int, path: str) -> None:
    d: dict[str, str] = {}
    i = 0
    try:
        ready(fd)
        while True:
            d[str(i % 1000)] = f"value {i}"
            i += 1
    finally:
        write(path, "inner")


def _level(n: int, fd: int, path: str) -> None:
    try:
        if n == 0:
            ready(fd)
            x = 0
            while True:
                x += 1
        _level(n - 1, fd, path)
    finally:
        write(path, f"level{n}")


def nested_frames(fd: int, path: str) -> None:
    """Ten frames deep, each with its own finally."""
    _level(9, fd, path)


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def recursion(fd: int, path: str) -> None:
    try:
        ready(fd)
        while True:
            _fib(18)
    finally:
        write(path, "inner")


class _Accumulator:
    def __init__(self, path: str) -> None:
        self.path = path
        self.total = 0

    def add(self, i: int) -> None:
        self.total += i

    def run(self, fd: int) -> None:
        try:
            ready(fd)
            i = 0
            while True:
                self.add(i)
                i += 1
        finally:
            write(self.path, "inner")


def method(fd: int, path: str) -> None:
    _Accumulator(path).run(fd)


class _Handle:
    """An object whose ``__del__`` and weakref callbacks run Python code."""

    closed = 0

    def __del__(self) -> None:
        _Handle.closed += 1


def objects_with_del(fd: int, path: str) -> None:
    """Finalizers run all the time: an exception raised in one would be lost."""
    import weakref

    try:
        ready(fd)
        while True:
            handle = _Handle()
            weakref.finalize(handle, _step, 1)
            del handle
    finally:
        write(path, "inner")


def blocking_c_calls(fd: int, path: str) -> None:
    """C calls that release the GIL (sleep, hashing): interrupted when one returns."""
    data = b"x" * 65536
    try:
        ready(fd)
        while True:
            time.sleep(0.0005)
            hashlib.sha256(data).digest()
    finally:
        write(path, "inner")


#: name -> (shape, the lines its own cleanup writes, in order)
SHAPES: dict[str, tuple[Callable[[int, str], None], tuple[str, ...]]] = {
    "while_true_pass": (spin, ("inner",)),
    "for_range_pass": (range_pass, ("inner",)),
    "c_function_loop": (c_calls, ("inner",)),
    "len_abs_loop": (len_abs, ("inner",)),
    "python_call_loop": (python_calls, ("inner",)),
    "try_except_in_loop": (try_except_in_loop, ("inner",)),
    "try_pass_in_loop": (try_pass_in_loop, ("inner",)),
    "with_block": (with_block, ("inner:Interrupted",)),
    "with_in_loop": (with_in_loop, ("inner",)),
    "contextmanager": (contextmanager_generator, ("inner",)),
    "generator_sum": (generator_sum, ("inner",)),
    "generator_finally": (generator_with_finally, ("generator", "inner")),
    "list_comprehension": (list_comprehension, ("inner",)),
    "sorted_key": (sorted_key, ("inner",)),
    "dict_str": (dict_str, ("inner",)),
    "nested_frames": (nested_frames, tuple(f"level{n}" for n in range(10))),
    "recursion": (recursion, ("inner",)),
    "method": (method, ("inner",)),
    "objects_with_del": (objects_with_del, ("inner",)),
    "blocking_c_calls": (blocking_c_calls, ("inner",)),
}

#: what run_shape itself writes around a shape that was interrupted
OUTER = ("outer:Interrupted", "finally")


def run_shape(name: str, fd: int, path: str, stop_fd: int = -1) -> None:
    """Run the shape *name* inside one more ``with`` and ``finally``.

    With *stop_fd*, the last cleanup also writes a byte there (for the benchmark).
    """
    shape, _ = SHAPES[name]
    try:
        with Record(path, "outer"):
            shape(fd, path)
    finally:
        write(path, "finally")
        if stop_fd >= 0:
            os.write(stop_fd, b"e")


def expected(name: str) -> list[str]:
    """Every line an interrupted run of *name* writes, in order."""
    return [*SHAPES[name][1], *OUTER]
