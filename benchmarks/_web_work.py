"""The web suite's CPU work that needs numpy, pandas, pydantic or Pillow.

Every one of these packages refuses isolated subinterpreters. This module imports
numpy, Pillow and pydantic at its top, so loading any function of it fails in an
interpreter before the function runs: ``kind="auto"`` learns from that refusal to
run them in processes, as it would for an application's own module. pandas is
imported by :func:`pandas_work` only (it is optional: the web suite leaves its
endpoint out when it is not installed, and the bursts, which also use this module,
do not pay for it). The pure-Python work is :func:`benchmarks._work.count_primes`,
in a stdlib-only module that interpreters can load.

Each function builds its input from a seed (nothing big crosses to the worker) and
returns a small number, so what is measured is the work and the offloading, not the
transport of payloads. The default sizes take 10 to 20 ms each on the
reference machine (2 CPUs); the web suite reports their sequential times on the
machine of the run. No anyio, trio or web framework here: workers import this.
"""

from __future__ import annotations

from typing import Any

import numpy
from PIL import Image
from pydantic import BaseModel, Field, TypeAdapter

#: default sizes: each call takes 10 to 20 ms, as a web handler's CPU work may
NUMPY_SIZE = 450
PANDAS_ROWS = 80_000
PYDANTIC_ITEMS = 2_400
PILLOW_SIZE = 520
PRIMES_N = 48_000


def numpy_work(size: int = NUMPY_SIZE) -> float:
    """A matrix product and an FFT of seeded ``size`` x ``size`` random matrices."""
    rng = numpy.random.default_rng(size)
    a = rng.standard_normal((size, size))
    b = rng.standard_normal((size, size))
    product = a @ b
    spectrum = numpy.fft.rfft2(product)
    return float(numpy.abs(spectrum).sum() / size)


def pandas_work(rows: int = PANDAS_ROWS) -> float:
    """Group a generated frame of *rows* rows by two keys and aggregate three ways."""
    import pandas  # type: ignore[import-untyped,unused-ignore]  # optional: see above

    rng = numpy.random.default_rng(rows)
    frame = pandas.DataFrame(
        {
            "shop": rng.integers(0, 50, rows),
            "day": rng.integers(0, 30, rows),
            "price": rng.random(rows) * 100,
            "quantity": rng.integers(1, 10, rows),
        }
    )
    frame["total"] = frame["price"] * frame["quantity"]
    summary = frame.groupby(["shop", "day"]).agg(
        total=("total", "sum"), mean_price=("price", "mean"), orders=("price", "size")
    )
    return float(summary["total"].sum() + summary["orders"].max())


class Address(BaseModel):
    street: str
    city: str
    zip_code: str = Field(pattern=r"^\d{5}$")


class Order(BaseModel):
    id: int
    customer: str = Field(min_length=1)
    email: str
    amount: float = Field(ge=0)
    tags: list[str]
    address: Address


_ORDERS = TypeAdapter(list[Order])


def pydantic_work(items: int = PYDANTIC_ITEMS) -> int:
    """Validate a batch of *items* nested order models from plain dicts, dump them."""
    raw = [
        {
            "id": str(i),
            "customer": f"customer {i}",
            "email": f"c{i}@example.com",
            "amount": f"{i * 1.5:.2f}",
            "tags": [f"t{i % 7}", f"t{i % 11}"],
            "address": {
                "street": f"{i} Main St",
                "city": "Springfield",
                "zip_code": f"{10000 + i % 90000:05d}",
            },
        }
        for i in range(items)
    ]
    orders = _ORDERS.validate_python(raw)
    dumped: list[dict[str, Any]] = _ORDERS.dump_python(orders)
    return sum(int(order["id"]) for order in dumped) + len(orders)


def pillow_work(size: int = PILLOW_SIZE) -> int:
    """Draw a *size* x *size* image, resize it and make a thumbnail of it."""
    image = Image.radial_gradient("L").resize((size, size)).convert("RGB")
    resized = image.resize((size * 3 // 4, size * 3 // 4), Image.Resampling.LANCZOS)
    rotated = resized.rotate(15, resample=Image.Resampling.BICUBIC)
    rotated.thumbnail((128, 128))
    pixels: list[tuple[int, int, int]] = [
        rotated.getpixel((x, x))  # type: ignore[misc]
        for x in range(rotated.width)
    ]
    return sum(pixel[0] for pixel in pixels)
