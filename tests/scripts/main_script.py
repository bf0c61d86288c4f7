"""A program whose function and class live in ``__main__``, run through aiointerp.

Run as a file (``python main_script.py``) or as a module (``python -m main_script``
with this directory on ``sys.path``). Workers re-run this file as ``__mp_main__`` to
find ``make_point`` and ``Point``, so the program is guarded by ``__name__``.
"""

from __future__ import annotations

import anyio

import aiointerp
from aiointerp._wire import _interp


class Point:
    def __init__(self, x: int, y: int, where: str, interp: int) -> None:
        self.x = x
        self.y = y
        self.where = where  # the __name__ of the module that made it
        self.interp = interp  # the interpreter that made it


def make_point(x: int, y: int) -> Point:
    return Point(x, y, __name__, _interp.current_id())


async def main() -> list[Point]:
    async with aiointerp.InterpreterPool(1) as pool:
        first = await pool.run_sync(make_point, 1, 2)
    second = await aiointerp.run_sync_in_interpreter(make_point, 3, 4)
    return [first, second]


if __name__ == "__main__":
    host = _interp.current_id()
    for backend in ("asyncio", "trio"):
        for point in anyio.run(main, backend=backend):
            assert type(point) is Point, type(point)
            assert point.interp != host, "ran in the main interpreter"
            kind = type(point)
            print(
                f"{backend} {kind.__module__}.{kind.__qualname__} "
                f"{point.x} {point.y} {point.where}"
            )
