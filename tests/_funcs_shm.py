"""Module-level functions run in process workers by tests/kinds/test_process_bigvalues.py.

Stdlib only at import (numpy is imported by the values that need it, as in any
user's code): the worker imports this module by name.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def pid() -> int:
    return os.getpid()


def echo(value: Any) -> Any:
    return value


def size(value: Any) -> int:
    return len(value)


def kind_and_size(value: Any) -> tuple[str, int]:
    """What the worker received: the exact type name and the length in bytes."""
    return type(value).__name__, memoryview(value).nbytes


def in_shared_memory(value: Any) -> bool:
    """Is *value*'s memory a mapping (a segment), not memory of its own?

    Follows ``.base`` (numpy arrays) down to the buffer the array was made from.
    """
    while getattr(value, "base", None) is not None:
        value = value.base
    return type(value) is memoryview and type(value.obj).__name__ == "mmap"


def describe(value: Any) -> dict[str, Any]:
    """What a numpy array is, as the worker sees it."""
    return {
        "dtype": str(value.dtype),
        "shape": value.shape,
        "fortran": bool(value.flags.f_contiguous and not value.flags.c_contiguous),
        "writeable": bool(value.flags.writeable),
        "shared": in_shared_memory(value),
        "sum": float(value.sum()),
    }


def add_one(array: Any) -> Any:
    """Change the worker's array in place and return it."""
    array += 1
    return array


def arrays(n: int) -> dict[str, Any]:
    """Big numpy arrays of several kinds, and big bytes beside them."""
    import numpy

    readonly = numpy.arange(n, dtype=numpy.int32)
    readonly.flags.writeable = False
    return {
        "c": numpy.arange(n, dtype=numpy.float64),
        "fortran": numpy.asfortranarray(numpy.ones((n // 100, 100), dtype=">f4")),
        "readonly": readonly,
        "strided": numpy.arange(2 * n, dtype=numpy.int64)[::2],
        "small": numpy.arange(10),
        "bools": numpy.zeros(n, dtype=bool),
        "bytes": b"\x07" * n,
    }


def zeros(n: int) -> bytes:
    return bytes(n)


def zeros_bytearray(n: int) -> bytearray:
    return bytearray(n)


def touch_then_size(path: str, value: Any) -> int:
    """Leave a trace that the call ran."""
    Path(path).touch()
    return len(value)


def started(fifo: str) -> None:
    """The handshake: write this process's pid to the test's FIFO."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, os.getpid().to_bytes(8, "little"))
    finally:
        os.close(fd)


def spin_then_zeros(fifo: str, n: int) -> bytes:
    """Spin until interrupted, swallow the interrupt, then return a big result."""
    try:
        started(fifo)
        while True:
            pass
    except BaseException:
        pass
    return bytes(n)


def kill_self(value: Any) -> None:
    """Die while holding *value* (an argument in shared memory)."""
    del value
    os.kill(os.getpid(), signal.SIGKILL)


def result_files() -> int:
    """The result files and segments this process holds open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "aiointerp-" in target:
            count += 1
    return count
