"""Handlers that import their package's ``heavy`` module (numpy) relatively, in their body."""

from __future__ import annotations

import os


def relative_module(marker: str, n: int) -> tuple[int, int]:
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    from . import heavy

    return os.getpid(), heavy.total(n)


def relative_from(marker: str, n: int) -> tuple[int, int]:
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    from .heavy import total

    return os.getpid(), total(n)
