"""A script whose class, defined in ``__main__``, pickles big buffers out of band.

Run by tests/kinds/test_process_bigvalues.py. The function is a builtin, so the worker
first meets ``__main__`` in the arguments, and loads the script there then.
"""

from __future__ import annotations

import pickle
from typing import Any

import anyio

import aiointerp


class Holder:
    """Hands its data to pickle as a PickleBuffer: out of band when big."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (Holder, (pickle.PickleBuffer(self.data),))


class Box:
    """Holds a numpy array, pickled as an attribute."""

    def __init__(self, array: Any) -> None:
        self.array = array


async def main() -> None:
    import numpy

    for kind in ("interpreter", "process"):
        async with aiointerp.InterpreterPool(1, kind=kind) as pool:
            data = await pool.run_sync(
                getattr, Holder(bytearray(b"\x01" * 2**20)), "data"
            )
            print(kind, type(data).__name__, len(data), data == b"\x01" * 2**20)
    async with aiointerp.InterpreterPool(1, kind="process") as pool:
        array = await pool.run_sync(getattr, Box(numpy.ones(2**17)), "array")
        print("numpy", type(array).__name__, array.shape, float(array.sum()))


if __name__ == "__main__":
    anyio.run(main)
