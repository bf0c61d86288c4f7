"""One call of a pool, from its encoded job to its result or its exception.

:class:`Calls` routes the job (:mod:`aiointerp._host._routing`), runs it on a
worker of the roster, sends it to another worker when the one it got had died
before it took it, interrupts it when its caller is cancelled, decodes its outcome,
and counts how each call ended (the counters of :meth:`InterpreterPool.stats`).
A call's ``timeout`` and the message of its :class:`TimeoutError`, which says where
the call was when it expired, are here too (:class:`Timeout`).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import anyio

from .._kinds._backends import ki_protected
from .._kinds._worker import Worker
from .._wire import _big, _encoding, _outcomes
from .._wire._errors import BrokenWorkerError, PoolClosedError
from .._wire._protocol import INTERRUPTED, REFUSED, SHARED, Job, Outcome
from .._wire._refusal import refusal_error
from . import _bigvalues
from ._roster import Roster
from ._routing import Router

__all__ = ["Calls", "Timeout"]

logger = logging.getLogger("aiointerp")

_job_ids = itertools.count(1)
#: workers a call tries when each died before it took the call
_UNSTARTED_TRIES = 3


def _pinned(job: Job) -> bool:
    """Must *job* run in an interpreter? A ``memoryview`` argument crosses to one
    without a copy (the function may write into the caller's buffer), and to a
    process as a read-only copy: such a call never moves to another kind."""
    if job.args_mode != SHARED:
        return False
    stack = [job.args]
    while stack:
        for item in stack.pop():
            if type(item) is memoryview:
                return True
            if type(item) is tuple:
                stack.append(item)
    return False


class Timeout:
    """A call's ``timeout=``: its scope, and whether the call reached a worker."""

    __slots__ = ("probing", "scope", "started")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        #: the job was handed to a worker (else it waited for one all along)
        self.started = False
        #: the pool reads what the function imports (its first call, kind="auto")
        self.probing = False


class Calls:
    """The calls of one pool: its roster's workers, its router, its counters."""

    def __init__(
        self,
        roster: Roster,
        router: Router,
        kind: str,
        max_workers: int,
        cancel_grace: float,
    ) -> None:
        self._roster = roster
        self._router = router
        self._kind = kind
        self._max_workers = max_workers
        self._cancel_grace = cancel_grace
        self.completed = self.failed = self.cancelled = self.timed_out = 0

    async def run(
        self, func: object, encoded: tuple[bytes, int, Any], timeout: float | None
    ) -> Any:
        """Run ``func`` with its encoded arguments (``(func_blob, args_mode,
        payload)``) within *timeout* seconds; return its result."""
        func_blob, args_mode, payload = encoded
        if timeout is None:
            job = Job(next(_job_ids), None, func_blob, args_mode, payload)
            return await self._run(job, func, None)
        deadline = time.monotonic() + timeout
        job = Job(next(_job_ids), deadline, func_blob, args_mode, payload)
        with anyio.move_on_after(timeout) as scope:
            timer = Timeout(scope)
            return await self._run(job, func, timer)
        raise self._timeout_error(func, timeout, timer)

    def _timeout_error(
        self, func: object, timeout: float, timer: Timeout
    ) -> TimeoutError:
        """The error of a call whose ``timeout`` expired, saying where it was."""
        label = _encoding.describe(func)
        if timer.started:
            return TimeoutError(
                f"{label} did not finish within {timeout} s and was interrupted"
            )
        if timer.probing:
            return TimeoutError(
                f"{label} did not start within {timeout} s and never ran: the pool "
                "was still finding out where it can run (it probes the modules the "
                "function imports, once)"
            )
        roster = self._roster
        return TimeoutError(
            f"{label} did not start within {timeout} s and never ran: it waited for "
            f"a worker all that time (max_workers={self._max_workers}: "
            f"{len(roster.busy)} busy, {len(roster.starting)} starting, "
            f"{len(roster.quarantined)} quarantined, {len(roster.retiring)} "
            f"retiring; {len(roster.waiters)} callers waiting). Raise max_workers "
            "if cores are free, shed load with max_waiting, or give the call more "
            "time"
        )

    @ki_protected
    async def _run(self, job: Job, func: object, timeout: Timeout | None) -> Any:
        """Run *job* where its function can run (see :mod:`aiointerp._host._routing`)."""
        key = job.func
        route = self._router.route(func, key)
        if route is None:  # kind="auto", a function not seen yet: what it imports
            if timeout is not None:
                timeout.probing = True
            try:
                route = await self._router.foresee(func, key, self._roster.tg)
            except BaseException as exc:  # cancelled, or timed out, while it waited
                self._count_failure(exc, timeout)
                raise
            if timeout is not None:
                timeout.probing = False
        while True:
            if route.by_value is not None:
                job = job._replace(func=route.by_value)
            spill = self._kind == "auto" and route.kind == "interpreter"
            outcome, ran_in = await self._call(
                job,
                func,
                timeout,
                route.kind,
                key if spill and not _pinned(job) else None,
            )
            if outcome.status != REFUSED:
                # no await since the worker was released (see _call)
                return await self._result(outcome, job, func, ran_in)
            stage = outcome.value[3]
            next_route = self._router.after_refusal(func, key, stage, route)
            if next_route is None:
                self.failed += 1
                raise refusal_error(
                    outcome.value,
                    outcome.text,
                    func,
                    route.by_value is not None,
                    self._kind,
                )
            logger.debug(
                "%s: a module refused subinterpreters (%s); sending it to %s%s",
                _encoding.describe(func),
                outcome.value[1],
                next_route.kind,
                " by value" if next_route.by_value else "",
            )
            route = next_route
            job = job._replace(job_id=next(_job_ids), func=key)

    @ki_protected
    async def _call(
        self,
        job: Job,
        func: object,
        timeout: Timeout | None,
        kind: str,
        by_reference: bytes | None = None,
    ) -> tuple[Outcome, str]:
        """Take a worker of *kind*, run *job* there, give the worker back.

        With *by_reference* (``kind="auto"``, a call that loads in an interpreter:
        the function pickled by reference), a process worker that is free when no
        interpreter is runs it as well, the function sent by reference (a pickle by
        value is for interpreters that cannot import its module).

        A worker that turns out to have died before it took the job (its job pipe
        still holds it) is replaced by another one: the job never started.

        Returns the outcome, to be decoded at once (:meth:`_result`): the worker may
        be handed to another caller before that, so nothing may await in between;
        and the kind of the worker that ran it.
        """
        roster = self._roster
        for attempt in itertools.count(1):
            try:
                worker = await roster.acquire(kind, by_reference is not None)
            except BaseException as exc:
                self._count_failure(exc, timeout)
                raise
            worker.job_label = _encoding.describe(func)
            sent = job
            if by_reference is not None and worker.kind != kind:
                sent = job._replace(func=by_reference)
            scope = roster.scope(worker)
            with scope:
                try:
                    worker.send(sent)
                except BaseException:
                    self.failed += 1
                    if worker.job_id:  # in flight after all (a Ctrl-C on asyncio)
                        await self._stop_call(worker)
                    else:  # nothing was sent (NotShareableError): it serves on
                        roster.release(worker)
                    raise
                if timeout is not None:
                    timeout.started = True
                try:
                    outcome = await worker.receive()
                except BrokenWorkerError:
                    roster.release(worker)
                    if worker.unstarted and attempt < _UNSTARTED_TRIES:
                        logger.debug(
                            "%r had died before it took %s: sending it to another",
                            worker,
                            worker.job_label,
                        )
                        if timeout is not None:
                            timeout.started = False
                        continue
                    self.failed += 1
                    raise
                except BaseException as exc:
                    # interrupted by aclose(): the caller gets PoolClosedError, a
                    # failure
                    self._count_failure(exc, timeout, closed=scope.cancel_called)
                    await self._stop_call(worker)
                    raise
            break
        if scope.cancelled_caught:
            raise PoolClosedError(
                f"the InterpreterPool was closed while {worker.job_label} ran; "
                "the call was interrupted"
            )
        roster.release(worker)
        # the worker may be handed to a waiter now: decode_result takes what it needs
        # of the worker (a big result's file) before its first await
        return outcome, worker.kind

    async def _result(self, outcome: Outcome, job: Job, func: object, kind: str) -> Any:
        if outcome.status == INTERRUPTED and job.deadline is not None:
            # the code saw its own deadline pass (checkpoint) before our timer fired
            self.timed_out += 1
            raise TimeoutError(f"{_encoding.describe(func)} reached its deadline")
        try:
            if _big.in_file(outcome):
                # shielded: the code finished, its result must not be lost to a
                # timeout or a cancel that comes while it is decoded (bounded work)
                with anyio.CancelScope(shield=True):
                    value = await _bigvalues.decode_result(outcome, func, kind)
            else:  # the common case: no await, no scope
                value = _outcomes.decode_outcome(outcome, func, kind)
        except BaseException:
            self.failed += 1
            raise
        self.completed += 1
        return value

    def _count_failure(
        self,
        exc: BaseException,
        timeout: Timeout | None,
        closed: bool = False,
    ) -> None:
        if closed or not isinstance(exc, anyio.get_cancelled_exc_class()):
            self.failed += 1
        elif timeout is not None and timeout.scope.cancel_called:
            self.timed_out += 1
        else:
            self.cancelled += 1

    @ki_protected
    async def _stop_call(self, worker: Worker) -> None:
        """The caller is cancelled mid-call: interrupt the code, wait a little, release.

        Waits up to ``cancel_grace`` for the outcome, through further cancellations
        (a second native cancel on asyncio, another Ctrl-C on trio): the caller's own
        exception is re-raised after, and the worker never loses its outcome.
        """
        cancelled = anyio.get_cancelled_exc_class()
        try:
            with anyio.CancelScope(shield=True):
                worker.interrupt()
                with anyio.move_on_after(self._cancel_grace) as grace:
                    while worker.job_id:
                        try:
                            await worker.receive()
                        except BrokenWorkerError:
                            break
                        except (cancelled, KeyboardInterrupt):
                            if grace.cancel_called:
                                raise
        finally:
            if worker.job_id and worker.kill():  # a process: its slot is free now
                self._roster.kill(worker, self._cancel_grace)
            elif worker.job_id:  # still running: quarantine, keep the slot
                self._roster.quarantine(worker, self._cancel_grace)
            else:
                self._roster.release(worker)
