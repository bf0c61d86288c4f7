"""Starting a pool's workers: launches, start failures and their backoff.

A worker is launched as a task of the watcher's task group and handed over once it
is ready. A start that fails backs the pool off (exponentially, up to
:data:`BACKOFF_MAX`) and fails the first caller that nothing else serves; a start
that a module refuses (a pool of several kinds whose initializer needs a module
that refuses subinterpreters) drops that kind. A worker that can die of something
else than its code (a process: the OOM killer, an operator) is watched while idle,
and replaced if it dies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Final

import anyio

from .._kinds._backends import ki_protected
from .._kinds._config import a_worker
from .._kinds._worker import Worker
from .._wire._errors import BrokenWorkerError
from ._events import event, out_of_fds
from ._handover import Handover
from ._states import IDLE, RETIRING, STARTING
from ._waiters import Waiter

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "Starts"]

BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 5.0


class Starts(Handover):
    """The starts of a pool's workers (see the module doc)."""

    #: makes a worker of a kind (set by the roster)
    make_worker: Callable[[str], Worker]

    def __init__(
        self,
        kinds: tuple[str, ...],
        spills: dict[str, str] | None,
        max_workers: int,
        min_idle: int,
    ) -> None:
        super().__init__(kinds, spills, max_workers, min_idle)
        #: start failures since the last success (logged with a count)
        self.start_failures = 0
        #: the pool's opening, waiting for ``opening_with`` workers (wait_started)
        self.opening: Waiter | None = None

    def _launch(self, kind: str, count: int) -> bool:
        """Start *count* workers of *kind*; False if one could not even be made.

        Each start of a kind stands for a worker of that kind lost for cause, if any
        is to be replaced (whoever it is started for).
        """
        assert self.tg is not None
        if self.replace.get(kind):
            self.replace[kind] = max(0, self.replace[kind] - count)
        for _ in range(count):
            try:
                worker = self.make_worker(kind)
            except OSError as exc:  # out of file descriptors...
                self._start_failed(
                    BrokenWorkerError(
                        f"could not start {a_worker(kind)}: {exc!r}{out_of_fds(exc)}"
                    ),
                    kind,
                )
                return False
            self._move(worker, None, STARTING)
            self.tg.start_soon(self._start_worker, worker)
        return True

    @ki_protected
    async def _start_worker(self, worker: Worker) -> None:
        began = anyio.current_time()
        try:
            await worker.start()
        except Exception as exc:
            if not isinstance(exc, BrokenWorkerError):  # a thread could not start...
                exc = BrokenWorkerError(
                    f"could not start {a_worker(worker.kind)}: {exc!r}{out_of_fds(exc)}"
                )
            self._move(worker, STARTING, RETIRING)
            if worker.refused is not None and worker.kind not in self.kinds:
                pass  # a start that failed as the one that dropped its kind did
            elif worker.refused is not None and self.several:
                self._drop_kind(worker.kind, worker.refused)
            else:
                self._start_failed(exc, worker.kind)
            await self._close(worker, "broken", counted=False)
            return
        except BaseException:
            if worker.killable:  # the pool closes: kill it now (its preload or
                # initializer may be stuck; it serves nothing yet)
                self._move(worker, STARTING, None)
                worker.kill()
                worker.discard()
                event(
                    logging.DEBUG,
                    "worker_retired",
                    worker,
                    "killed %r: the pool closed while it started",
                    worker,
                    reason="pool closed while it started",
                    stopped=False,
                )
                raise
            self._move(worker, STARTING, RETIRING)
            await self._close(worker, "pool closed", counted=False)
            raise
        self.created += 1
        self.start_cost.add(worker.kind, anyio.current_time() - began)
        self.backoff = 0.0
        self.backoff_until = -math.inf
        if self.start_failures:
            event(
                logging.WARNING,
                "worker_started",
                worker,
                "%r started after %d failed attempts",
                worker,
                self.start_failures,
                failures=self.start_failures,
            )
            self.start_failures = 0
        else:
            event(
                logging.DEBUG,
                "worker_started",
                worker,
                "created %r",
                worker,
                failures=0,
            )
        self._hand_off(worker, STARTING)
        if self.opening is not None:
            self.opening.event.set()
        if worker.killable:  # it may die while idle (OOM killer, kill): watch for it
            how = await worker.wait_exited()
            if not worker.alive and self.states.get(worker) == IDLE:
                self._move(worker, IDLE, RETIRING)
                self._replace(worker.kind)
                event(
                    logging.WARNING,
                    "worker_died",
                    worker,
                    "%r died while idle: it %s; a new worker takes its place",
                    worker,
                    how,
                    reason=f"died while idle: it {how}",
                )
                self._stop(worker, f"died while idle: it {how}")

    def _drop_kind(self, kind: str, module: str) -> None:
        """Workers of *kind* cannot start (*module* refuses them): use the others.

        A pool of several kinds (``kind="auto"``) whose initializer needs a module
        that refuses subinterpreters runs everything in processes from then on: the
        callers waiting for *kind* wait for the next kind instead.
        """
        self.kinds = tuple(k for k in self.kinds if k != kind)
        self.several = len(self.kinds) > 1
        now = anyio.current_time()
        self.spills = {k: v for k, v in self.spills.items() if kind not in (k, v)}
        self.waiters.drop_kind(kind, self.kinds[0])
        self.demand.move(kind, self.kinds[0], now)
        self.replace.pop(kind, None)
        event(
            logging.WARNING,
            "kind_dropped",
            None,
            "the pool's initializer or preload needs %s, which refuses "
            'subinterpreters: this kind="auto" pool runs every call in %s from now '
            'on (InterpreterPool(kind="process") starts no interpreter first)',
            module,
            a_worker(self.kinds[0]),
            worker_kind=kind,
            refused_module=module,
        )
        self.wake.set()

    def _start_failed(self, exc: BrokenWorkerError, kind: str) -> None:
        """Back off; fail the first caller waiting for *kind* if nothing else serves it.

        A caller waiting while other workers of its kind run calls or start takes the
        first of them that is ready instead.
        """
        what = a_worker(kind)
        self.backoff = min(max(self.backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        self.backoff_until = anyio.current_time() + self.backoff
        self.start_failures += 1
        fields = {
            "failures": self.start_failures,
            "backoff": self.backoff,
            "error": exc,
        }
        if self.opening is not None and self.opening.error is None:
            # the pool's opening raises it: no retry, and no warning of it here
            self.opening.error = exc
            self.opening.event.set()
            event(
                logging.DEBUG,
                "worker_start_failed",
                None,
                "could not start %s while the pool opened: %s",
                what,
                exc,
                worker_kind=kind,
                **fields,
            )
        elif self.start_failures == 1:
            event(
                logging.WARNING,
                "worker_start_failed",
                None,
                "could not start %s (next try in %.2f s; further failures are "
                "counted, not logged, until one starts): %s",
                what,
                self.backoff,
                exc,
                worker_kind=kind,
                **fields,
            )
        else:
            event(
                logging.DEBUG,
                "worker_start_failed",
                None,
                "could not start %s (%d failures in a row, next try in %.2f s): %s",
                what,
                self.start_failures,
                self.backoff,
                exc,
                worker_kind=kind,
                **fields,
            )
        waiter = self.waiters.unserved(kind, self._serving)
        if waiter is not None:
            self.waiters.remove(waiter)
            waiter.error = exc
            waiter.event.set()
        self.wake.set()
