"""Ctrl-C of the host process interrupts the code running in an interpreter.

A real child process (tests/scripts/ctrl_c.py) awaits a call that never ends by
itself; once the code runs (a handshake on a pipe) the test sends SIGINT. The program
must end with KeyboardInterrupt within a second, the code's cleanup run.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks import _shapes as shapes
from conftest import HAVE_UVLOOP, child_env

TESTS = Path(__file__).resolve().parents[1]
BACKENDS = ["asyncio", "trio", *(["uvloop"] if HAVE_UVLOOP else [])]
#: what the issue asks: KeyboardInterrupt within a second of Ctrl-C
EXIT_WITHIN = 1.0
HANG = 60.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name", ["c_function_loop", "while_true_pass", "with_block", "nested_frames"]
)
def test_ctrl_c_interrupts_the_call(backend: str, name: str, tmp_path: Path) -> None:
    path = tmp_path / "cleanup"
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "faulthandler",
                str(TESTS / "scripts" / "ctrl_c.py"),
                backend,
                name,
                str(write_fd),
                str(path),
            ],
            pass_fds=[write_fd],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready, _, _ = select.select([read_fd], [], [], HANG)
            assert ready, "the call never started"
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=HANG)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:  # hang guard: faulthandler dumps every thread
                process.send_signal(signal.SIGABRT)
                _, stderr = process.communicate(timeout=HANG)
                pytest.fail(f"no exit after Ctrl-C; the child's stacks:\n{stderr}")
        _, stderr = process.communicate()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    # KeyboardInterrupt ended the program (Python may re-raise SIGINT to die of it)
    assert process.returncode in (1, -signal.SIGINT), stderr
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert path.read_text().splitlines() == shapes.expected(name)
    assert took < EXIT_WITHIN, f"exited {took:.2f} s after Ctrl-C"
