"""Functions of a web app's module: it imports FastAPI (so pydantic_core, which refuses
subinterpreters), as the module of a FastAPI app's CPU-bound handler does.

Imported by value or by reference by tests/host/test_auto.py; each function says what
loading it needs.
"""

from __future__ import annotations

import hashlib
import os

import fastapi
import pydantic

import aiointerp

app = fastapi.FastAPI()
SALT = b"aiointerp"


class Item(pydantic.BaseModel):
    """An argument whose class loads only where pydantic loads."""

    name: str
    size: int


def hash_pw(password: str, rounds: int) -> str:
    """Needs nothing of FastAPI: runs in an interpreter when sent by value."""
    digest = hashlib.sha256(SALT + password.encode())
    for _ in range(rounds):
        digest = hashlib.sha256(digest.digest())
    return digest.hexdigest()


@aiointerp.offload
def offloaded_hash(password: str) -> str:
    """``@offload`` in a module that refuses interpreters: sent by value too."""
    return hash_pw(password, 1)


def app_title(suffix: str) -> str:
    """Uses a global of FastAPI's type: loading it imports FastAPI, even by value."""
    return app.title + suffix


def size_of(item: object) -> int:
    """Its argument may be an :class:`Item`: loading that imports pydantic."""
    return int(getattr(item, "size", -1))


def import_in_body(marker: str) -> str:
    """Writes a line to *marker*, then imports pydantic_core: a refusal while it runs."""
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    import pydantic_core

    return pydantic_core.__name__


def where() -> tuple[int, str]:
    """The pid that ran the call, and this module's name there."""
    return os.getpid(), __name__


def spin_with_cleanup(fifo: str, marker: str) -> None:
    """Announce its pid on *fifo*, loop in pure Python; the finally uses FastAPI."""
    try:
        fd = os.open(fifo, os.O_WRONLY)
        try:
            os.write(fd, os.getpid().to_bytes(8, "little"))
        finally:
            os.close(fd)
        while True:
            pass
    finally:
        with open(marker, "a") as file:
            file.write(f"cleanup {app.title}\n")
