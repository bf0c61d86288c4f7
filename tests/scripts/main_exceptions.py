"""A program whose exception class lives in ``__main__``, raised inside a worker.

Workers re-run this file as ``__mp_main__``, so the class they raise is named
``__mp_main__.OverBudget`` there; the caller must catch it as its own
``__main__.OverBudget``, with its attributes.
"""

from __future__ import annotations

import anyio

import aiointerp


class OverBudget(Exception):
    def __init__(self, team: str, spent: int) -> None:
        super().__init__(f"{team} spent {spent}")
        self.team = team
        self.spent = spent


def spend(team: str, spent: int) -> None:
    raise OverBudget(team, spent)


async def main() -> str:
    try:
        await aiointerp.run_sync_in_interpreter(spend, "red", 12)
    except OverBudget as error:
        return f"{type(error).__module__}.{type(error).__qualname__} {error.team} {error.spent} {error}"
    return "not raised"


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        print(backend, anyio.run(main, backend=backend))
