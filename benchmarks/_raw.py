"""The raw lower bound: one interpreter per dedicated thread, woken through a pipe.

The least machinery that can run a call in a subinterpreter from async code: the
thread enters its interpreter once and loops there on blocking ``os.read``; a call
is a length-prefixed pickle written to one pipe, its result one read back from
another, awaited with :func:`anyio.wait_readable`. No queues, no cancellation, no
error handling beyond passing an exception's text back, no pool policy: a yardstick
for the overhead of a real library, not something to use. Stdlib + anyio only.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio

_HEADER = 8

_SERVE = """\
import os, pickle, sys
sys.path[:] = {path!r}
job_r, done_w = {job_r}, {done_w}

def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(job_r, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def send(obj):
    data = pickle.dumps(obj, 5)
    data = len(data).to_bytes(8, "little") + data
    while data:
        data = data[os.write(done_w, data):]

send(None)  # ready
while (header := read(8)) and (size := int.from_bytes(header, "little")):
    func, args = pickle.loads(read(size))
    try:
        send((True, func(*args)))
    except Exception as exc:
        send((False, repr(exc)))
"""


if sys.version_info >= (3, 14):
    import concurrent.interpreters as _ci

    def _run_in_new_interpreter(code: str) -> None:
        interp = _ci.create()
        try:
            interp.exec(code)
        finally:
            interp.close()

else:
    import _interpreters

    def _run_in_new_interpreter(code: str) -> None:
        interp = _interpreters.create("isolated")
        try:
            failure = _interpreters.exec(interp, code)
            if failure is not None:
                raise RuntimeError(failure.formatted)
        finally:
            _interpreters.destroy(interp)


class RawWorker:
    """One interpreter on one thread. Not safe to cancel mid-call."""

    def __init__(self) -> None:
        self._job_r, self._job_w = os.pipe()
        self._done_r, self._done_w = os.pipe()
        os.set_blocking(self._done_r, False)
        code = _SERVE.format(path=sys.path, job_r=self._job_r, done_w=self._done_w)
        self._thread = threading.Thread(
            target=_run_in_new_interpreter, args=(code,), name="raw-worker"
        )

    async def start(self) -> None:
        self._thread.start()
        await self._receive()

    async def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = os.read(self._done_r, n - len(data))
            except BlockingIOError:
                await anyio.wait_readable(self._done_r)
                continue
            if not chunk:
                raise RuntimeError("the raw worker died")
            data += chunk
        return data

    async def _receive(self) -> Any:
        size = int.from_bytes(await self._read(_HEADER), "little")
        return pickle.loads(await self._read(size))

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        data = pickle.dumps((func, args), 5)
        os.write(self._job_w, len(data).to_bytes(_HEADER, "little") + data)
        ok, value = await self._receive()
        if not ok:
            raise RuntimeError(f"raised in the raw worker: {value}")
        return value

    async def aclose(self) -> None:
        if self._thread.ident is not None:
            os.write(self._job_w, bytes(_HEADER))
            await anyio.to_thread.run_sync(self._thread.join)
        for fd in (self._job_r, self._job_w, self._done_r, self._done_w):
            os.close(fd)


class RawPool:
    """*workers* raw workers handed out to callers, first come first served."""

    def __init__(self, workers: int = 1) -> None:
        self._workers = [RawWorker() for _ in range(workers)]
        self._free = list(self._workers)
        self._slots = anyio.Semaphore(workers)

    async def __aenter__(self) -> RawPool:
        async with anyio.create_task_group() as tg:
            for worker in self._workers:
                tg.start_soon(worker.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            for worker in self._workers:
                await worker.aclose()

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        async with self._slots:
            worker = self._free.pop()
            try:
                return await worker.call(func, *args)
            finally:
                self._free.append(worker)
