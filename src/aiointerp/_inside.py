"""The loop that runs inside each worker interpreter, and its watchdog.

Stdlib only (never anyio, trio or the host modules). The host starts one OS thread per
worker; that thread enters the interpreter once and stays in :func:`serve` until told
to quit. Wake-ups go through pipes, data through cross-interpreter queues:

* ``job_r``: one byte per job (``b"J"``) or ``b"Q"`` to quit; the job is on the job queue
* ``done_w``: ``b"R"`` ready, ``b"F"`` initializer failed, ``b"D"`` one outcome queued
* ``cancel_r``: 8-byte job ids for the watchdog; id 0 stops it

Cancellation: the watchdog thread lives in the same interpreter (an interrupt can only
be arranged from inside it) and has :class:`~aiointerp._interrupt.Interrupter` raise
:class:`~aiointerp.worker.Interrupted` in the loop thread, at most once per job, and
only while that job is the one running (no lock: see :meth:`_Loop.disarm`). How the
exception is raised so that the code's cleanup runs on every Python is the concern of
:mod:`aiointerp._interrupt`. The loop turns the interrupt off when a job ends, so a
late one can never reach a later job or the loop itself.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections import OrderedDict

from . import _interp, _logs, _transport, worker
from ._interrupt import Interrupter, clear_async_exc
from ._mainscript import UnguardedMainError, _Main
from .worker import Interrupted

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

_QUIT_ID = 0
_LOAD_NOTE = (
    "aiointerp: the worker interpreter could not load the function or its arguments. "
    "They must be importable there: defined at module level in a module on sys.path, "
    "or in a __main__ script whose top-level code is guarded by "
    "`if __name__ == '__main__':` (not in `python -c` or the REPL)."
)
_FUNC_CACHE_SIZE = 128


def _watch(cancel_r: int, interrupter: Interrupter, state: worker._JobState) -> None:
    """Watchdog thread: interrupt the job named on the pipe (8-byte ids; 0 stops it)."""
    while True:
        data = os.read(cancel_r, 8)
        if len(data) < 8:
            return
        job_id = int.from_bytes(data, "little")
        if job_id == _QUIT_ID:
            return
        # No lock: a lock held by the loop thread when an interrupt lands could never
        # be released. in_flight is raised before job_id is read, so disarm() can
        # wait out an interrupt that saw the old job_id (the GIL orders these steps).
        state.in_flight = True
        try:
            if state.job_id == job_id:
                if not state.cancel_requested:
                    state.cancel_requested = True
                    interrupter.start(job_id)
            else:  # not armed yet (or over): run() checks this before calling
                state.early = job_id
        finally:
            state.in_flight = False


class _Loop:
    def __init__(
        self,
        job_qid: int,
        result_qid: int,
        main_spec: tuple[str, str] | None,
        raise_points: tuple[tuple[int, ...], int],
    ) -> None:
        _, self.get_job = _interp.open_queue(job_qid)
        self.put_outcome, _ = _interp.open_queue(result_qid)
        self.main = _Main(main_spec)
        self.funcs: OrderedDict[bytes, Any] = OrderedDict()
        self.state = worker._JobState()
        self.thread_id = threading.get_ident()
        self.interrupter = Interrupter(self.thread_id, self.state, raise_points)
        self.state.settle = self.interrupter.settle

    def loads(self, blob: bytes) -> Any:
        try:
            return pickle.loads(blob)
        except (AttributeError, ImportError):
            if self.main.loaded:
                raise
        self.main.load()
        return pickle.loads(blob)

    def func(self, blob: bytes) -> Any:
        func = self.funcs.get(blob)
        if func is None:
            func = self.loads(blob)
            self.funcs[blob] = func
            if len(self.funcs) > _FUNC_CACHE_SIZE:
                self.funcs.popitem(last=False)
        return func

    def run(self, job: _transport.Job) -> _transport.Outcome:
        job_id, deadline, func_blob, args_mode, args = job
        state = self.state
        state.deadline = deadline
        state.cancel_requested = False
        state.injected = False
        state.job_id = job_id  # armed: from here the watchdog may interrupt this job
        try:
            func = self.func(func_blob)
            args = _transport.decode_args(args_mode, args, self.loads)
        except Exception as exc:
            if not isinstance(exc, UnguardedMainError):  # that one says it all
                exc.add_note(_LOAD_NOTE)
            return self.failed(job_id, exc)
        try:
            while state.in_flight:  # a cancel read before the job was armed...
                pass
            if state.early == job_id:  # ...was recorded: do not start the call
                state.cancel_requested = True
                raise Interrupted("the call was cancelled before it started")
            value = _call(func, args)
            return _transport.encode_result(job_id, value)
        except BaseException as exc:
            return self.failed(job_id, exc)

    def failed(self, job_id: int, exc: BaseException) -> _transport.Outcome:
        if isinstance(exc, Interrupted):
            # the host discards this text when it cancelled the call; formatting a
            # traceback in a fresh interpreter costs milliseconds of cancel latency
            text = f"{type(exc).__name__}: {exc}"
            return (job_id, _transport.INTERRUPTED, None, text, False)
        if isinstance(exc, UnguardedMainError):  # where the script used aiointerp
            return _transport.encode_exception(job_id, exc, exc.worker_traceback)
        tb = _transport.user_traceback(exc.__traceback__, __file__)
        text = _transport.format_remote(exc, tb)
        return _transport.encode_exception(job_id, exc, text)

    def disarm(self) -> bool:
        """End the current job for the watchdog; clear a pending interrupt.

        Returns whether an interrupt was injected during the job. Retries if the
        pending interrupt fires in here: nothing escapes.
        """
        state = self.state
        while True:
            try:
                state.job_id = 0  # no new interrupt can match from here
                while state.in_flight:  # one that read the old id is finishing
                    pass  # spins for a switch interval at most: the watchdog holds no lock
                self.interrupter.stop()
                clear_async_exc(self.thread_id)
                return state.injected
            except Interrupted:
                continue

    def serve_one(self, job: _transport.Job) -> _transport.Outcome:
        try:
            outcome = self.run(job)
        except Interrupted as exc:  # landed in our own bookkeeping after the call
            outcome = self.failed(job[0], exc)
        finally:
            injected = self.disarm()
        return (*outcome[:4], injected)


def _call(func: Any, args: tuple[Any, ...]) -> Any:
    # A frame of its own around user code, whose exceptions the caller's handlers catch
    # (belt and braces: cpython#139622 made the async exception skip the handlers of
    # the frame it landed in; see _interrupt.py).
    return func(*args)


def serve(
    job_r: int,
    done_w: int,
    cancel_r: int,
    cancel_w: int,
    job_qid: int,
    result_qid: int,
    main_spec: tuple[str, str] | None,
    init_blob: bytes | None,
    switch_interval: float,
    log_qid: int | None,
    levels: _logs.Levels | None,
    raise_points: tuple[tuple[int, ...], int],
) -> None:
    """Serve jobs until told to quit. Called once by the worker's bootstrap code."""
    sys.setswitchinterval(switch_interval)  # per interpreter: fast interrupt delivery
    loop = _Loop(job_qid, result_qid, main_spec, raise_points)
    if log_qid is not None and levels is not None:
        put_log, _ = _interp.open_queue(log_qid)
        logs = _logs.install(put_log, _interp.queue_size(log_qid), done_w, levels)
    worker._state = loop.state
    watchdog = threading.Thread(
        target=_watch,
        args=(cancel_r, loop.interrupter, loop.state),
        name="aiointerp-watchdog",
    )
    watchdog.start()
    try:
        if init_blob is not None and not _initialize(loop, init_blob, done_w):
            return
        os.write(done_w, b"R")
        while (signal := os.read(job_r, 1)) in (b"J", b"V"):
            if signal == b"V":  # the host's logging levels changed
                logs.set_levels(loop.get_job())
                continue
            try:
                outcome = loop.serve_one(loop.get_job())
            except Interrupted:  # fired between the two layers above; only one per job
                loop.disarm()
                outcome = (0, _transport.INTERRUPTED, None, "", True)
            loop.put_outcome(outcome)
            os.write(done_w, b"D")
    finally:
        os.write(cancel_w, _QUIT_ID.to_bytes(8, "little"))
        watchdog.join()


def _initialize(loop: _Loop, init_blob: bytes, done_w: int) -> bool:
    try:
        initializer, initargs = loop.loads(init_blob)
        _call(initializer, initargs)
    except BaseException as exc:
        loop.put_outcome(loop.failed(0, exc))
        os.write(done_w, b"F")
        return False
    return True
