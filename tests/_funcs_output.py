"""Functions that write to sys.stdout and sys.stderr inside workers (tests/inside/test_output.py)."""

from __future__ import annotations

import os
import sys
import threading


def hello(name: str) -> str:
    print("hello", name)
    print("to stderr", name, file=sys.stderr)
    return name.upper()


def partial(text: str) -> int:
    print(text, end="")
    return len(text)


def interleaved(count: int) -> int:
    """Alternate lines and partial lines between stdout and stderr."""
    for i in range(count):
        sys.stdout.write(f"out {i} ")
        sys.stderr.write(f"err {i}\n")
        sys.stdout.write("end\n")
    return count


def from_threads(threads: int, lines: int) -> int:
    """Threads started (and joined) by the call write lines.

    One write per line: ``print()`` writes the text and the newline apart, and
    another thread may write between them (as on any stream).
    """

    def run(n: int) -> None:
        for i in range(lines):
            sys.stdout.write(f"thread {n} line {i}\n")

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return threads * lines


def big(lines: int, blob_size: int) -> int:
    for i in range(lines):
        print(f"line {i:06d}")
    sys.stdout.write("x" * blob_size)
    sys.stdout.write("\n")
    return lines


def flushes(text: str) -> None:
    print(text, end="", flush=True)


def stream_facts() -> tuple[object, ...]:
    """What code inspecting its streams sees."""
    out = sys.stdout
    try:
        out.write(b"bytes")  # type: ignore[arg-type]
    except TypeError as exc:
        refused = str(exc)
    else:  # pragma: no cover - a defect
        refused = ""
    return (
        out.fileno(),
        sys.stderr.fileno(),
        out.isatty(),
        out.writable(),
        out.encoding,
        refused,
        out is sys.__stdout__,
    )


def say_in_initializer() -> None:
    print("initializer ran", end="")


def log_unconfigured(text: str) -> None:
    """Logging left as CPython sets it up: its last resort writes to sys.stderr."""
    import logging

    logging.getLogger("aiointerp_tests.output").warning(text)


#: the thread flood() started (one per worker: a module global of its interpreter)
_flood: threading.Thread | None = None
#: a line of flood(): 70 characters with its newline
FLOOD_LINE = "flood {:07d} " + "x" * 55 + "\n"


def flood(lines: int, go: str, done: str) -> int:
    """Start a thread that prints *lines* lines between calls, and return.

    It waits for a byte on the FIFO *go* (the host writes it once this call has
    returned), prints, then writes a byte to the FIFO *done*. The host holds both
    FIFOs open: opening them never blocks.
    """
    global _flood

    def run() -> None:
        fd = os.open(go, os.O_RDONLY)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
        for i in range(lines):
            sys.stdout.write(FLOOD_LINE.format(i))
        fd = os.open(done, os.O_WRONLY)
        try:
            os.write(fd, b"d")
        finally:
            os.close(fd)

    _flood = threading.Thread(target=run, name="flood")
    _flood.start()
    return lines


def join_flood(name: str) -> str:
    """The next call: wait for the flood's thread to end, print, return."""
    assert _flood is not None
    _flood.join()
    print("joined", name)
    return name.upper()
