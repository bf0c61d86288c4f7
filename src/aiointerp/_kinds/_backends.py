"""The little that anyio does not cover, per event-loop library.

A task that outlives its caller's scopes, a cheap identity of the running loop, a
reader of worker signals that keeps its fd registered on asyncio, and KeyboardInterrupt
protection on trio.

A pool's watcher must run for as long as the pool lives, also for the default pool
that no ``async with`` opens. On trio it is a system task; on asyncio a task of the
running loop that the pool keeps a reference to. Both are cancelled when the event
loop ends (trio when the main task returns; ``asyncio.run``/``anyio.run`` cancel
remaining tasks), and the watcher then closes the pool.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import sniffio

from .._wire._frames import HEADER

F = TypeVar("F", bound=Callable[..., Any])

#: functions marked with ki_protected, protected once trio runs them
_ki_protected: list[Callable[..., Any]] = []
_ki_protection_applied = False


def ki_protected(func: F) -> F:
    """Mark *func* (sync or async) as host bookkeeping that a Ctrl-C must not tear.

    On trio, a ``KeyboardInterrupt`` can be raised at any bytecode of code that is not
    KI-protected; in a protected function (and what it calls) trio delivers it at the
    next checkpoint instead, as trio's own ``to_thread_run_sync`` and trio-parallel
    do. trio is not imported for this: the marks are applied when the first pool
    starts on trio (trio marks the code objects, so the functions stay as they are).
    On asyncio it changes nothing.
    """
    _ki_protected.append(func)
    if _ki_protection_applied:
        _protect_now(func)
    return func


def _protect_now(func: Callable[..., Any]) -> None:
    import trio

    trio.lowlevel.enable_ki_protection(func)


def apply_ki_protection() -> None:
    """Protect every function marked with :func:`ki_protected` (trio is running)."""
    global _ki_protection_applied
    if _ki_protection_applied:
        return
    _ki_protection_applied = True
    for func in _ki_protected:
        _protect_now(func)


def spawn_detached(async_fn: Callable[[], Awaitable[None]], name: str) -> Any:
    """Start *async_fn* as a task owned by the event loop rather than by a task group.

    Returns a handle that must be kept referenced while the task runs.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.spawn_system_task(async_fn, name=name)
    if library == "asyncio":
        import asyncio

        async def main() -> None:
            await async_fn()

        return asyncio.get_running_loop().create_task(main(), name=name)
    raise RuntimeError(f"aiointerp supports asyncio and trio, not {library}")


def current_loop_getter() -> Callable[[], object]:
    """A cheap function returning an identity of the running event loop.

    It raises :class:`RuntimeError` when no loop of the same library runs in the
    calling thread.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        apply_ki_protection()
        return trio.lowlevel.current_trio_token
    import asyncio

    return asyncio.get_running_loop


def thread_safe_call_soon() -> Callable[[Callable[[], object]], object]:
    """A way to run a callback on the running event loop from any thread (for __del__)."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class SignalReader:
    """Reads the one-byte signals a worker writes to its done pipe (non-blocking fd).

    One consumer at a time. This generic version waits with
    :func:`anyio.wait_readable` for each signal (trio registers fds cheaply).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._peeked: bytes | None = None  # read by ready(), returned by read()

    async def read(self) -> bytes:
        """Return the next signal byte, or ``b""`` at end of file."""
        peeked = self._peeked
        if peeked is not None:
            self._peeked = None
            return peeked
        while True:
            try:
                return os.read(self._fd, 1)
            except BlockingIOError:
                pass
            # awaited outside the handler: a Ctrl-C or a cancel raised while it waits
            # must not carry the BlockingIOError as its context
            await anyio.wait_readable(self._fd)

    def ready(self) -> bool:
        """Is a signal (or the end of file) waiting to be read? Never blocks."""
        if self._peeked is None:
            try:
                self._peeked = os.read(self._fd, 1)
            except BlockingIOError:
                return False
        return True

    def close(self) -> None:
        """Stop watching the fd (it is not closed); call on the event loop thread."""


#: asyncio: what a registered reader reads ahead of its consumer before it stops
#: reading (the rest waits in the pipe, and then the worker's writer): more than a
#: frame (:data:`aiointerp._wire._frames.INLINE_MAX`), so a whole one always fits
READ_AHEAD = 1 << 18


class _Registered:
    """asyncio: the fd stays registered with the loop for the worker's life.

    ``wait_readable`` adds and removes a reader per call, about 9 µs each time; here
    the loop's callback reads what comes into a buffer itself, so the fd is never
    left readable (no busy loop when nobody waits). It reads even while nobody
    waits (between calls), but no more than :data:`READ_AHEAD` ahead: then it stops
    watching the fd until its consumer waits for more, as trio's reader, which
    reads only when asked, leaves the rest in the pipe.
    """

    _fd: int

    def _register(self, chunk: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._chunk = chunk
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._watching = True
        self._paused = False  # watching, but the fd is not registered: READ_AHEAD
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, self._chunk)
        except BlockingIOError:
            return
        except OSError:  # closed under us: its end
            data = b""
        if not data:
            self.close()
        self._buffer += data
        if len(self._buffer) >= READ_AHEAD and self._watching:
            self._paused = True
            self._loop.remove_reader(self._fd)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> bool:
        """Wait until more is buffered; ``False`` at end of file (nothing will come)."""
        if not self._watching:
            return False
        if self._paused:  # read ahead of us: the consumer got this far
            self._paused = False
            self._loop.add_reader(self._fd, self._on_readable)
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True

    def ready(self) -> bool:
        return bool(self._buffer) or not self._watching

    def close(self) -> None:
        if self._watching:
            self._watching = False
            if not self._paused:
                self._loop.remove_reader(self._fd)


class _AsyncioSignalReader(_Registered, SignalReader):
    """asyncio: :class:`SignalReader` over a registered fd (:class:`_Registered`)."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._register(256)

    async def read(self) -> bytes:
        buffer = self._buffer
        while not buffer:
            if not await self._wait():
                return b""
        signal = bytes(buffer[:1])
        del buffer[:1]
        return signal


class FrameReader(SignalReader):
    """Reads the framed messages a process worker writes to its done pipe.

    A frame is a signal byte, a 4-byte little-endian length and that many bytes of
    payload. :meth:`read` returns the next frame's signal and keeps its payload in
    :attr:`payload` (``None`` for none). Partial frames are buffered: the fd is
    non-blocking, the event loop never waits on it, and a cancelled read loses
    nothing. This generic version waits with :func:`anyio.wait_readable`.
    """

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._buffer = bytearray()
        self._eof = False
        #: the signal and the payload of the frame :meth:`read` returned last
        self.last = b""
        self.payload: bytes | None = None

    async def read(self) -> bytes:
        buffer = self._buffer
        while True:
            if len(buffer) >= HEADER:
                size = int.from_bytes(buffer[1:HEADER], "little")
                end = HEADER + size
                if len(buffer) >= end:
                    signal = bytes(buffer[:1])
                    self.payload = bytes(buffer[HEADER:end]) if size else None
                    del buffer[:end]
                    self.last = signal
                    return signal
            if self._eof:
                self.last = b""
                self.payload = None
                return b""
            await self._more()

    def ready(self) -> bool:
        """True: every message is a frame of its own, log items too, that only
        :meth:`read` takes (a drain of log items never has more to take)."""
        return True

    async def _more(self) -> None:
        """Append what the pipe holds to the buffer (at least a byte, or EOF)."""
        while True:
            try:
                data: bytes | None = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                data = None
            if data is None:  # awaited outside the handler, as in SignalReader.read
                await anyio.wait_readable(self._fd)
                continue
            if not data:
                self._eof = True
            self._buffer += data
            return


class _AsyncioFrameReader(_Registered, FrameReader):
    """asyncio: :class:`FrameReader` over a registered fd (:class:`_Registered`)."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._register(_CHUNK)

    async def _more(self) -> None:
        if not await self._wait():
            self._eof = True


_CHUNK = 1 << 16


def frame_reader(fd: int) -> FrameReader:
    """The cheapest :class:`FrameReader` for the running event loop."""
    if sniffio.current_async_library() == "asyncio":
        return _AsyncioFrameReader(fd)
    return FrameReader(fd)


def signal_reader(fd: int) -> SignalReader:
    """The cheapest :class:`SignalReader` for the running event loop."""
    if sniffio.current_async_library() == "asyncio":
        return _AsyncioSignalReader(fd)
    return SignalReader(fd)
