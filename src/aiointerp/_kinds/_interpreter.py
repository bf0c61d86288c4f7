"""The interpreter kind: a subinterpreter served by one OS thread of its own.

The thread creates the interpreter, runs :func:`aiointerp._inside._loop.serve` in it until
told to quit, and destroys it; the event loop talks to it through pipes and
cross-interpreter queues (:class:`aiointerp._kinds._channels.InterpreterLink`), so a call
costs no thread hop and no polling. Creating and destroying the interpreter happen on
that thread, and starting and joining the thread on anyio's worker threads: the event
loop never blocks on them. An interpreter cannot be killed: code that cannot be
interrupted keeps it (and its thread) until it returns.
"""

from __future__ import annotations

import logging
import threading

import anyio

from .._wire import _interp
from .._wire._protocol import WorkerConfig
from . import _exit
from ._channels import InterpreterLink
from ._worker import Worker

__all__ = ["InterpreterWorker"]

logger = logging.getLogger("aiointerp")


class InterpreterWorker(Worker):
    """One subinterpreter (own GIL) and the OS thread that serves it."""

    kind = "interpreter"
    ident_name = "interp"
    _link: InterpreterLink

    def __init__(self, config: WorkerConfig) -> None:
        super().__init__(config)
        self._config = tuple(config)
        self._link = InterpreterLink(self._forwarding)
        self._thread = threading.Thread(target=self._serve, name="aiointerp-worker")

    def _serve(self) -> None:
        """The worker's thread: create the interpreter, serve, destroy it."""
        link = self._link
        try:
            interp = _interp.create()
        except BaseException as exc:
            self._failure = exc
            link.write_exited()
            return
        self.ident = interp.id
        try:
            interp.run_worker(self._config, link.ends)
        except BaseException as exc:
            self._failure = exc
        finally:
            link.drain()  # what it queued must outlive the interpreter
            try:
                interp.close()  # waits for the threads the calls left running
            except Exception as exc:  # pragma: no cover - a thread of user code lingers
                logger.warning("could not destroy interpreter %s: %r", interp.id, exc)
            link.write_exited()

    async def _launch(self) -> None:
        _exit.register(self)
        try:
            await anyio.to_thread.run_sync(self._thread.start)
        except BaseException:
            if self._thread.ident is None:  # it did not start: nothing will reap it
                _exit.unregister(self)
            raise

    async def _finish(self) -> None:
        # it wrote EXITED as its very last step: the join is short, but not ours to
        # do on the event loop
        await anyio.to_thread.run_sync(self._thread.join)
        self._release()

    def _abandon(self) -> None:
        def reap() -> None:
            self._thread.join()
            self._release()

        if self._thread.ident is None:  # never started
            self._release()
            return
        threading.Thread(target=reap, name="aiointerp-reaper", daemon=True).start()

    def _release(self) -> None:
        _exit.unregister(self)  # first: the exit hook must not write to closed fds
        self._link.close()

    # -- for the process-exit hook (aiointerp._kinds._exit)

    def join(self, timeout: float | None) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()
