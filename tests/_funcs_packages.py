"""Real numpy, Pillow and pydantic code, run in workers by tests/kinds/test_real_packages.py.

Not stdlib-only, on purpose: like application code, this module imports the three
packages at its top, and isolated interpreters refuse all three (numpy's C
extensions, ``PIL._imaging`` and ``pydantic_core._pydantic_core`` do not support
subinterpreters). Its functions therefore run under ``kind="process"``, and
``kind="auto"`` must send them to a process. Handshakes go through a FIFO whose path
the test passes (a process worker inherits none of the test's pipes): the code
writes its pid, 8 bytes, once it runs; cleanups write to a file.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from pydantic import BaseModel, Field, PositiveInt, TypeAdapter, field_validator


def started(fifo: str) -> None:
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, os.getpid().to_bytes(8, "little"))
    finally:
        os.close(fd)


def write(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def pid() -> int:
    """The worker's pid, through numpy: under kind="auto" it needs a process too."""
    return int(np.int64(os.getpid()))


# -- numpy -------------------------------------------------------------------------------


def summarise(a: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The mean, the column sums and the Gram matrix of *a*."""
    return float(a.mean()), a.sum(axis=0), a.T @ a


def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(a, b)


def scaled(a: np.ndarray, factor: float) -> np.ndarray:
    return a * factor


def numpy_loop(fifo: str, path: str) -> None:
    """A pure-Python loop calling numpy on every iteration, until it is interrupted."""
    a = np.linspace(0.0, 1.0, 256)
    total = 0.0
    try:
        started(fifo)
        while True:
            total += float(np.dot(a, a))
            a = np.sort(np.roll(a, 1))
    except BaseException as exc:
        write(path, f"{type(exc).__name__}\n")
        raise
    finally:
        write(path, "finally\n")


def long_c_call(fifo: str, path: str) -> float:
    """One numpy C call of 400**4 multiply-adds (a minute or so): nothing stops it.

    An interrupt that lands before the C call starts (between the handshake and the
    call) is swallowed and the call started again: the test is about the C call.
    """
    a = np.ones(400)
    announced = False
    try:
        while True:
            try:
                if not announced:
                    announced = True
                    started(fifo)
                return float(np.einsum("i,j,k,l->", a, a, a, a))
            except BaseException:
                pass
    finally:
        write(path, "finally\n")  # never: the process is killed first


# -- Pillow ------------------------------------------------------------------------------


def thumbnail_png(png: bytes, size: tuple[int, int]) -> bytes:
    """Blur, greyscale and shrink a PNG image; return it as PNG."""
    with Image.open(io.BytesIO(png)) as image:
        image = ImageOps.grayscale(image.filter(ImageFilter.GaussianBlur(2)))
    image.thumbnail(size)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def rotated(image: Image.Image, angle: float) -> Image.Image:
    return image.rotate(angle, expand=True)


# -- pydantic ----------------------------------------------------------------------------


class Address(BaseModel):
    city: str
    postcode: str = Field(pattern=r"^\d{5}$")


class User(BaseModel):
    name: str
    age: PositiveInt
    address: Address
    tags: list[str] = []

    @field_validator("name")
    @classmethod
    def name_is_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


def validate_user(data: dict[str, Any]) -> User:
    return User.model_validate(data)


def validate_users_json(text: str) -> list[User]:
    return TypeAdapter(list[User]).validate_json(text)
