"""A program whose exit has to wait for code that does not stop when interrupted.

``python exit_wait.py BACKEND FUNC HANDSHAKE_FD``: awaits FUNC of tests/_funcs_exit.py
in an :class:`aiointerp.InterpreterPool` on BACKEND (asyncio, uvloop or trio) until
Ctrl-C; FUNC writes to HANDSHAKE_FD once it runs. The call does not stop, so the
process exit hook waits for it, and says so (after 0.2 s instead of 5, for the
tests' sake), until a second Ctrl-C. SIGINT gets Python's default handler first: a
child of a shell's background job starts with SIGINT ignored.
"""

from __future__ import annotations

import signal
import sys

import _funcs_exit as funcs
import anyio

import aiointerp
from aiointerp._kinds import _exit


async def main(name: str, fd: int) -> None:
    async with aiointerp.InterpreterPool(1, cancel_grace=0.1) as pool:
        await pool.run_sync(getattr(funcs, name), fd)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _exit.EXIT_DEADLINE = 0.2
    backend, name, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    library, options = {
        "asyncio": ("asyncio", {}),
        "uvloop": ("asyncio", {"use_uvloop": True}),
        "trio": ("trio", {}),
    }[backend]
    anyio.run(main, name, fd, backend=library, backend_options=options)
