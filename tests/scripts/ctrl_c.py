"""A program that awaits a long call in an interpreter until Ctrl-C stops it.

``python ctrl_c.py BACKEND SHAPE HANDSHAKE_FD PATH``: runs the code shape SHAPE of
benchmarks/_shapes.py with ``aiointerp.run_sync_in_interpreter`` on BACKEND
(asyncio, uvloop or trio); the shape writes to HANDSHAKE_FD once it runs and
records its cleanup in PATH. SIGINT gets Python's default handler first: a child of
a shell's background job starts with SIGINT ignored.
"""

from __future__ import annotations

import signal
import sys

import anyio
from benchmarks import _shapes as shapes

import aiointerp


async def main(name: str, fd: int, path: str) -> None:
    await aiointerp.run_sync_in_interpreter(shapes.run_shape, name, fd, path)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    backend, name, fd, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    library, options = {
        "asyncio": ("asyncio", {}),
        "uvloop": ("asyncio", {"use_uvloop": True}),
        "trio": ("trio", {}),
    }[backend]
    anyio.run(main, name, fd, path, backend=library, backend_options=options)
