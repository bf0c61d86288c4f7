"""A program that reads its command line at module level, as many scripts do.

Run as ``python main_argv.py SCALE --label LABEL``: ``SCALE`` and ``ARGS`` are computed
at import, so a worker that runs this file again (as ``__mp_main__``, to find
``seen``) computes them from its own ``sys.argv``: the host's, in both kinds of
worker. With ``--forget``, the program empties its ``sys.argv`` once it parsed it,
before any pool starts: the workers then run the script with an empty command line,
argparse rejects it there (``SystemExit``), and each call says so.
"""

from __future__ import annotations

import argparse
import sys

import anyio

import aiointerp

parser = argparse.ArgumentParser()
parser.add_argument("scale", type=int)
parser.add_argument("--label", default="none")
parser.add_argument("--forget", action="store_true")
ARGS = parser.parse_args()  # at module level: it runs again in every worker
SCALE = int(sys.argv[1])


def seen() -> tuple[int, int, str, list[str]]:
    return SCALE, ARGS.scale, ARGS.label, sys.argv


def scaled(x: int) -> int:
    return SCALE * x


async def main(kind: str) -> None:
    async with aiointerp.InterpreterPool(1, kind=kind) as pool:
        if not ARGS.forget:
            print(kind, *await pool.run_sync(seen))
            return
        for _ in range(2):  # the worker remembers the failure: said twice, run once
            try:
                await pool.run_sync(scaled, 2)
            except aiointerp.AiointerpError as exc:
                print(kind, type(exc).__name__, exc)
        # the worker serves on: a function defined elsewhere than in __main__
        print(kind, "then", await pool.run_sync(abs, -7), pool.stats().created)


if __name__ == "__main__":
    if ARGS.forget:
        del sys.argv[1:]
    print("host", sys.argv)
    for backend in ("asyncio", "trio"):
        for kind in ("interpreter", "process"):
            anyio.run(main, kind, backend=backend)
