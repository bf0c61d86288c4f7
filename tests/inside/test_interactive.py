"""Functions typed in a notebook, the REPL, ``python -c`` or a script piped on stdin.

Workers cannot import such a ``__main__`` again, so its functions and classes travel
by value with cloudpickle, or the error says exactly that. Real processes: ``python
-c``, ``python -`` fed on stdin, and an IPython kernel (ipykernel, driven by
jupyter_client over 127.0.0.1) running cells on its asyncio loop.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from conftest import child_env

#: hang guard per process or cell
HANG = 90

PROGRAM = textwrap.dedent(
    """
    import anyio
    import aiointerp

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    def scale(point, factor):
        return Point(point.x * factor, point.y * factor)

    async def main():
        point = await aiointerp.run_sync_in_interpreter(scale, Point(1, 2), 3)
        async with aiointerp.InterpreterPool(1) as pool:
            square = await pool.run_sync(lambda x: x * x, 7)
        print(type(point) is Point, point.x, point.y, square)

    for backend in ("asyncio", "trio"):
        anyio.run(main, backend=backend)
    """
)
EXPECTED = "True 3 6 49\nTrue 3 6 49\n"


def _python(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


def test_python_c() -> None:
    process = _python("-c", PROGRAM)
    assert process.returncode == 0, process.stderr
    assert process.stdout == EXPECTED
    assert process.stderr == ""


def test_script_on_stdin() -> None:
    process = _python("-", stdin=PROGRAM)
    assert process.returncode == 0, process.stderr
    assert process.stdout == EXPECTED


def test_without_cloudpickle_the_error_says_what_to_do() -> None:
    program = textwrap.dedent(
        """
        import sys
        sys.modules["cloudpickle"] = None  # as if it were not installed
        import asyncio
        import aiointerp

        def double(x):
            return 2 * x

        async def main():
            try:
                await aiointerp.run_sync_in_interpreter(double, 1)
            except aiointerp.NotShareableError as exc:
                print(exc)
            print(await aiointerp.run_sync_in_interpreter(abs, -5))

        asyncio.run(main())
        """
    )
    process = _python("-c", program)
    assert process.returncode == 0, process.stderr
    message, result = process.stdout.splitlines()
    assert message.startswith("cannot send function __main__.double")
    assert "notebook, the REPL, python -c or code piped on stdin" in message
    assert "(pip install cloudpickle)" in message
    assert "aiointerp[" not in message  # aiointerp is not on PyPI
    assert result == "5"


# -- an IPython kernel -------------------------------------------------------------


class Kernel:
    """A real ipykernel process, its cells run through jupyter_client."""

    def __init__(self) -> None:
        from jupyter_client.manager import KernelManager

        # "python3" is ipykernel's native kernel: this very Python (sys.executable)
        self.manager = KernelManager(kernel_name="python3", ip="127.0.0.1")
        env = child_env()
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=HANG)

    def run(self, code: str) -> tuple[str, list[dict[str, Any]]]:
        """Execute a cell; return its stdout and its error messages."""
        msg_id = self.client.execute(code)
        out: list[str] = []
        errors: list[dict[str, Any]] = []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=HANG)
            except queue.Empty:  # hang guard
                raise AssertionError(f"no reply to {code!r}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "error":
                errors.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), errors

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


@pytest.fixture
def kernel() -> Any:
    pytest.importorskip("ipykernel")  # in requirements-dev.txt: installed in CI
    started = Kernel()
    try:
        yield started
    finally:
        started.close()


def test_notebook_cells(kernel: Kernel) -> None:
    cells = [
        "import aiointerp",
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y",
        "def norm2(p):\n    return p.x * p.x + p.y * p.y",
        "print(await aiointerp.run_sync_in_interpreter(norm2, Point(3, 4)))",
        # a result of a class defined in the notebook comes back as that class
        "def make(x):\n    return Point(x, -x)",
        "p = await aiointerp.run_sync_in_interpreter(make, 5)\n"
        "print(type(p) is Point, p.x, p.y)",
        # a function redefined in a later cell is the new one
        "def norm2(p):\n    return -1",
        "print(await aiointerp.run_sync_in_interpreter(norm2, Point(3, 4)))",
        # timeouts interrupt code typed in the notebook too
        "def spin():\n    while True:\n        pass",
        "try:\n    await aiointerp.run_sync_in_interpreter(spin, timeout=0.2)\n"
        "except TimeoutError:\n    print('interrupted')",
    ]
    outputs = []
    for cell in cells:
        out, errors = kernel.run(cell)
        assert errors == [], errors
        outputs.append(out)
    assert [out for out in outputs if out] == [
        "25\n",
        "True 5 -5\n",
        "-1\n",
        "interrupted\n",
    ]


def test_worker_prints_show_in_the_cell_output(kernel: Kernel) -> None:
    # forward_output: the worker's sys.stdout writes reach the kernel's sys.stdout,
    # which sends them to the notebook as the output of the running cell
    cells = [
        "import aiointerp",
        "def shout(x):\n    print('from the worker', x)\n    print('partial', end='')\n"
        "    return x + 1",
        "print(await aiointerp.run_sync_in_interpreter(shout, 1))",
        "async with aiointerp.InterpreterPool(1, kind='process') as pool:\n"
        "    print(await pool.run_sync(shout, 2))",
    ]
    outputs = []
    for cell in cells:
        out, errors = kernel.run(cell)
        assert errors == [], errors
        outputs.append(out)
    assert outputs[2:] == [
        "from the worker 1\npartial2\n",
        "from the worker 2\npartial3\n",
    ]
