"""Process exit with workers still running: it waits, says why, and Ctrl-C ends it.

A real child process (tests/scripts/exit_wait.py) runs code that does not stop when
interrupted; a first SIGINT ends its program, and the exit hook waits for the code.
Once the hook says so on stderr (the handshake), a second SIGINT must end the
process at once: no traceback, one line naming the code left running, a death by
SIGINT as Python's own on an uncaught KeyboardInterrupt.
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
from conftest import HAVE_UVLOOP, child_env

from aiointerp._kinds import _exit

TESTS = Path(__file__).resolve().parents[1]
BACKENDS = ["asyncio", "trio", *(["uvloop"] if HAVE_UVLOOP else [])]
#: what the issue asks: the second Ctrl-C ends the process at once
EXIT_WITHIN = 2.0
HANG = 60.0
WAITING = "process exit is waiting for"


def read_until(process: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """The child's stderr up to and including the line with *marker* (or to EOF)."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in data or not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break  # hang guard
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", ["sleep_long", "swallow_interrupts"])
def test_second_ctrl_c_at_exit_ends_the_process_quietly(
    backend: str, func: str
) -> None:
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "faulthandler",
                str(TESTS / "scripts" / "exit_wait.py"),
                backend,
                func,
                str(write_fd),
            ],
            pass_fds=[write_fd],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            ready, _, _ = select.select([read_fd], [], [], HANG)
            assert ready, "the call never started"
            process.send_signal(signal.SIGINT)  # the program ends, its call does not
            before = read_until(process, WAITING, HANG)
            assert WAITING in before, before
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=HANG)
            took = time.monotonic() - sent
        finally:
            try:
                process.wait(timeout=EXIT_WITHIN)  # (at once after a success)
            except subprocess.TimeoutExpired:  # hang guard: faulthandler dumps stacks
                process.send_signal(signal.SIGABRT)
                _, stderr = process.communicate(timeout=HANG)
                pytest.fail(f"the child did not exit; its stacks:\n{stderr.decode()}")
        _, rest = process.communicate()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    after = rest.decode(errors="replace")
    waiting = before[before.index(WAITING) :]
    # the waiting message names both reasons code does not stop when interrupted
    assert "a C call" in waiting, waiting
    assert "caught aiointerp.Interrupted" in waiting, waiting
    assert f"_funcs_exit.{func}" in waiting, waiting
    # then one line, no traceback, a death by SIGINT (status 130 in a shell)
    assert "Traceback" not in after, after
    (line,) = after.splitlines()
    assert line.startswith("aiointerp: Ctrl-C during process exit"), line
    assert f"(running _funcs_exit.{func})" in line, line
    assert process.returncode == -signal.SIGINT, (process.returncode, before + after)
    assert took < EXIT_WITHIN, f"exited {took:.2f} s after the second Ctrl-C"


class _FakeWorker:
    """Bookkeeping only (beside the real test above): what the hook calls, when."""

    job_label = "tests.fake"

    def __init__(self) -> None:
        self.lock_held: list[bool] = []

    def stop_at_exit(self) -> None:
        # another thread's unregister() (before it closes the fds) must wait
        self.lock_held.append(not _exit._lock.acquire(blocking=False))

    def join(self, timeout: float | None) -> None:
        pass

    alive = False


def test_the_hook_writes_to_workers_with_the_registry_lock_held() -> None:
    workers = [_FakeWorker(), _FakeWorker()]
    for worker in workers:
        _exit.register(worker)
    try:
        _exit._at_exit()
    finally:
        for worker in workers:
            _exit.unregister(worker)
    assert [worker.lock_held for worker in workers] == [[True], [True]]
    assert not _exit._lock.locked()


class _Broken:
    """A stream that fails as a closed one, or a broken pipe, does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError("stderr is gone")

    def flush(self) -> None:
        raise ValueError("I/O operation on closed file")


def test_a_broken_stream_does_not_keep_the_process_from_ending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # bookkeeping beside test_second_ctrl_c_at_exit_ends_the_process_quietly (a real exit): the line
    # and the flushes fail, and the process still dies
    died: list[bool] = []
    monkeypatch.setattr(_exit, "_die", lambda: died.append(True))
    monkeypatch.setattr(sys, "stdout", _Broken())
    monkeypatch.setattr(sys, "stderr", _Broken())
    _exit._exit_now([_FakeWorker()])
    assert died == [True]


def test_dying_of_sigint_falls_back_to_exit_status_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # bookkeeping beside the real exits above: where the process cannot die of
    # SIGINT (here: raise_signal fails as off the main thread), it exits with 130
    calls: list[object] = []

    def raise_signal(number: int) -> None:
        calls.append(number)
        raise ValueError("signal only works in main thread")

    class Exited(BaseException):
        pass

    def exit_(status: int) -> None:
        calls.append(("exit", status))
        raise Exited

    monkeypatch.setattr(_exit.signal, "signal", lambda *args: None)
    monkeypatch.setattr(_exit.signal, "raise_signal", raise_signal)
    monkeypatch.setattr(_exit.os, "_exit", exit_)
    with pytest.raises(Exited):
        _exit._die()
    assert calls == [signal.SIGINT, ("exit", _exit.INTERRUPTED_STATUS)]
