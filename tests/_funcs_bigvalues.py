"""Module-level functions and probes for the big-value tests (tests/host/test_bigvalues.py).

Stdlib only: imported again inside worker interpreters. The probes record, in the
interpreter where they run, which thread pickled or unpickled them: the host's
copy of this module keeps what happened on the host.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

#: host side: thread ids of the __reduce__ calls of PickledHere (pickling an argument)
pickled_in: list[int] = []
#: host side: thread ids of the load_probe calls (unpickling a result)
loaded_in: list[int] = []
#: host side: called by load_probe (in the unpickling thread), if set
on_load: Callable[[], None] | None = None
#: host side: called by PickledHere.__reduce__ (in the pickling thread), if set
on_pickle: Callable[[], None] | None = None


def kind_and_size(value: Any) -> tuple[str, int]:
    """What the worker received: the exact type name and the length."""
    return type(value).__name__, len(value)


def mutate(buffer: bytearray) -> tuple[str, int]:
    """Change the worker's copy of *buffer*; return its type name and new first byte."""
    buffer[0] = (buffer[0] + 1) % 256
    return type(buffer).__name__, buffer[0]


def ints(n: int) -> list[int]:
    return list(range(n))


def ints_tuple(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def zeros(n: int) -> bytes:
    return bytes(n)


def zeros_bytearray(n: int) -> bytearray:
    return bytearray(n)


def text(n: int) -> str:
    return "é" * n


def mixed(n: int) -> dict[str, Any]:
    return {"data": bytearray(b"\x01" * n), "ints": list(range(n // 8)), "t": (1, "a")}


class PickledHere:
    """An argument that records the thread that pickles it (on the host)."""

    def __reduce__(self) -> tuple[Any, ...]:
        pickled_in.append(threading.get_ident())
        if on_pickle is not None:
            on_pickle()
        return (PickledHere, ())


def load_probe() -> str:
    """Rebuilds a :class:`LoadProbe`: records the unpickling thread, runs on_load."""
    loaded_in.append(threading.get_ident())
    if on_load is not None:
        on_load()
    return "probe"


class LoadProbe:
    """A result item whose unpickling (on the host) calls :func:`load_probe`."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (load_probe, ())


def probed_ints(n: int) -> list[Any]:
    """A big result with a probe first and last: what unpickles it, and how far."""
    return [LoadProbe(), *range(n), LoadProbe()]


class Blob:
    """Data pickled out of band with protocol 5, as numpy arrays are (stdlib only)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and bytes(self.data) == bytes(other.data)

    __hash__ = None  # type: ignore[assignment]

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        if protocol >= 5:
            return (rebuild_blob, (pickle.PickleBuffer(self.data),))
        return (rebuild_blob, (bytes(self.data),))  # pragma: no cover


def rebuild_blob(buffer: Any) -> Blob:
    """What the unpickler hands over, as it is (in band: bytes or bytearray)."""
    return Blob(buffer)


def make_blob(n: int) -> Blob:
    return Blob(bytearray(b"\x09" * n))


def blob_info(blob: Blob) -> tuple[str, int, bool]:
    """The type of a Blob's buffer, its size, and whether it is a mapping's."""
    data = blob.data
    mapped = type(data) is memoryview and type(data.obj).__name__ == "mmap"
    return type(data).__name__, memoryview(data).nbytes, mapped
