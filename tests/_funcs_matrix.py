"""The cleanup matrix's entry point in process workers (tests/_matrix_cell.py).

Stdlib and benchmarks/_shapes.py only. A process worker does not inherit the cell's
pipe, so its handshake goes through a FIFO whose path the cell passes: the worker
opens it and runs the shape with that fd, as an interpreter does with the pipe's.
"""

from __future__ import annotations

import os

from benchmarks import _shapes as shapes


def run_shape_via_fifo(name: str, fifo: str, path: str) -> None:
    """:func:`benchmarks._shapes.run_shape`, its handshake written to *fifo*."""
    fd = os.open(fifo, os.O_WRONLY)  # never blocks: the cell holds a reader
    try:
        shapes.run_shape(name, fd, path)
    finally:
        os.close(fd)
