"""The thread of an :class:`~aiointerp.InterpreterExecutor`: an asyncio event loop
that opens the executor's pool and runs the calls submitted from any thread.

The thread starts on the first call (:meth:`LoopThread.ensure_started`), runs every
call as a task that waits for a slot, marks its future running and awaits the pool,
and ends once it was asked to stop and no call is left; the pool is closed then. A
thread or loop that cannot start makes the executor broken
(:class:`~concurrent.futures.BrokenExecutor`) for good.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, CancelledError, Future
from typing import Any

import anyio
import anyio.abc

from ._executor_futures import (
    raised_stop_iteration,
    settle,
    stopping,
)
from ._pool import InterpreterPool
from ._wire._errors import BrokenWorkerError

__all__ = ["Call", "LoopThread"]


class Call:
    """One submitted call; its scopes are touched on the event loop thread only."""

    __slots__ = ("args", "fn", "future", "interrupted", "scope", "wait_scope")

    def __init__(
        self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.interrupted = False
        self.scope: anyio.CancelScope | None = None
        self.wait_scope: anyio.CancelScope | None = None

    def interrupt(self) -> None:
        self.interrupted = True
        if self.scope is not None:
            self.scope.cancel()

    def unqueue(self) -> None:
        if self.wait_scope is not None:
            self.wait_scope.cancel()


class LoopThread:
    """The event loop thread of one executor and the calls it was given.

    ``lock`` guards ``calls``, ``thread`` and ``loop``; :meth:`post` hands an action
    to the loop from any thread.
    """

    def __init__(self, pool: InterpreterPool) -> None:
        self.pool = pool
        self.lock = threading.RLock()  # future.cancel() runs on_done
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.calls: dict[Future[Any], Call] = {}
        # other threads post actions (start a call, interrupt one, stop) to the
        # inbox and wake the loop's main task with call_soon_threadsafe, which never
        # blocks: submit() also works from done-callbacks, which run on this thread;
        # the main task runs them (anyio needs a task, not a bare loop callback)
        self._inbox: deque[Callable[[], object]] = deque()
        self._wakeup: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop_requested = False
        self._active = 0  # call tasks alive
        self._limiter: anyio.CapacityLimiter | None = None
        self._start_error: BaseException | None = None

    def ensure_started(self) -> asyncio.AbstractEventLoop:
        """Start the loop thread (called with ``self.lock`` held); wait until it serves.

        Raises :class:`~concurrent.futures.BrokenExecutor` if the thread or its loop
        cannot start, then and on every later call (see :meth:`submit`).
        """
        if self.loop is not None:
            return self.loop
        if self._start_error is None:
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(ready,), name="aiointerp-executor"
            )
            try:
                thread.start()  # RuntimeError "can't start new thread"
            except Exception as exc:
                self._start_error = exc
            else:
                ready.wait()
                if self.loop is not None:
                    self.thread = thread
                    return self.loop
                # it failed before serving, without taking the lock: join cannot block
                thread.join()
        error = self._start_error
        assert error is not None
        if isinstance(error, BrokenWorkerError):
            # the pool's opening: its first worker could not start
            raise BrokenExecutor(
                f"the executor's workers could not start: {error}; this executor is "
                "broken: shut it down, and remove the cause before you create "
                "another"
            ) from (error.__cause__ or error)  # the initializer's exception...
        raise BrokenExecutor(
            f"the executor's event loop thread failed to start "
            f"({type(error).__name__}: {error}); this executor is broken: shut it down "
            "and create a new one once the cause (too many open files or threads, "
            "not enough memory) is gone"
        ) from error

    def _run_loop(self, ready: threading.Event) -> None:
        try:
            anyio.run(self._serve, ready, backend="asyncio")
        except BaseException as exc:
            if not ready.is_set():  # failed to start (no fds...): the submitter raises
                self._start_error = exc
                ready.set()
                return  # no call was accepted, and the submitter holds the lock
            raise  # a bug of ours: the thread reports it (threading.excepthook)
        finally:
            if self._start_error is None:  # it served: fail what the loop left
                self._fail_leftovers()

    def post(self, action: Callable[[], object]) -> None:
        """Have the loop's main task run ``action`` (from any thread; never blocks).

        Called with ``self.lock`` held, for a call still in ``self.calls`` or
        before ``_request_stop``: the loop runs until both are over.
        """
        assert self.loop is not None
        self._inbox.append(action)
        self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._limiter = anyio.CapacityLimiter(self.pool.max_workers)
        async with self.pool, anyio.create_task_group() as tg:
            self._tg = tg
            self.loop = asyncio.get_running_loop()
            ready.set()
            while True:
                self._wakeup = anyio.Event()
                while self._inbox:
                    self._inbox.popleft()()
                if self._stop_requested and not self._active:
                    break
                await self._wakeup.wait()
        # every call has ended (the inbox stays served until then); the pool closed

    def interrupt_running(self, call: Call) -> None:
        """``cancel()`` of a running call (any thread): have the loop interrupt it."""
        with self.lock:
            if call.future in self.calls:  # else its task is ending: it settles
                self.post(call.interrupt)

    def request_stop(self) -> None:
        self._stop_requested = True

    def spawn(self, call: Call) -> None:
        assert self._tg is not None
        self._active += 1
        self._tg.start_soon(self._run, call)

    async def _run(self, call: Call) -> None:
        future = call.future
        limiter = self._limiter
        assert limiter is not None
        try:
            acquired = False
            with anyio.CancelScope() as call.wait_scope:
                if not future.cancelled():  # else: cancelled before we got here
                    await limiter.acquire()
                    acquired = True
            call.wait_scope = None
            try:
                # False (and wait()/as_completed() notified) if cancelled while queued
                if not future.set_running_or_notify_cancel():
                    return
                with anyio.CancelScope() as call.scope:
                    if call.interrupted:
                        call.scope.cancel()
                    try:
                        result = await self.pool.run_sync(call.fn, *call.args)
                    except Exception as exc:
                        settle(future, raised_stop_iteration(exc), failed=True)
                    else:
                        settle(future, result)
                if call.scope.cancelled_caught:
                    settle(
                        future,
                        CancelledError("the call was interrupted by interrupt()"),
                        failed=True,
                    )
            finally:
                if acquired:
                    limiter.release()
        finally:
            with self.lock:
                self.calls.pop(future, None)
            if not future.done():  # the loop was torn down
                future.set_exception(BrokenExecutor("the executor's event loop ended"))
            self._active -= 1
            self._wake()

    def on_done(self, future: Future[Any]) -> None:
        """Done-callback: a call cancelled while queued leaves the queue at once."""
        if not future.cancelled():
            return
        with self.lock:
            call = self.calls.get(future)
            if call is not None:
                self.post(call.unqueue)

    def _fail_leftovers(self) -> None:
        with self.lock:
            calls = list(self.calls.values())
            self.calls.clear()
            self.loop = None
        for call in calls:  # only if the loop died
            if stopping(call.future):
                call.future._stopped()  # type: ignore[attr-defined]
            elif call.future.set_running_or_notify_cancel():
                call.future.set_exception(
                    BrokenExecutor("the executor's event loop ended")
                )
