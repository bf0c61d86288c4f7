"""Imports numpy at its top: interpreters refuse to load it."""

from __future__ import annotations

import numpy


def total(n: int) -> int:
    return int(numpy.arange(n).sum())
