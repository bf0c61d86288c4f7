"""The loop that runs inside every worker, whatever its kind, and its watchdog.

Stdlib only, and unaware of the kind of worker that runs it: :func:`serve` talks to
the host through a *channel* (:mod:`aiointerp._inside._ends`) carrying the messages of
:mod:`aiointerp._wire._protocol`, on the thread that entered the interpreter (an
interpreter worker) or the child's main thread (a process worker).

The watchdog thread interrupts the job named on the cancel channel
(:class:`~aiointerp._inside._interrupt.Interrupter`), at most once, and only while that
job runs: an interrupt never reaches a later job or the loop itself.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections import OrderedDict

from .._wire import (
    _big,
    _encoding,
    _exceptions,
    _frames,
    _interp,
    _pieces,
    _pipes,
    _protocol,
    _spill,
)
from .._wire._errors import Interrupted
from .._wire._protocol import (
    DONE,
    INIT_FAILED,
    JOB,
    LEVELS,
    LINGER,
    READY,
    Job,
    Outcome,
)
from . import _ends, _job
from ._interrupt import Interrupter, clear_async_exc
from ._mainscript import UnguardedMainError, _Main

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Channel(Protocol):
        """The worker end of a kind's channels (see :mod:`aiointerp._inside._ends`)."""

        cancel_fd: int
        #: the worker kind, as in ``InterpreterPool(kind=...)``: named in messages
        kind: str
        #: the host can open this worker's result files (their fds reach it)
        shares_fds: bool
        #: an isolated subinterpreter, where extension modules may refuse to load
        isolated: bool

        def receive(self) -> tuple[bytes, Any]: ...
        def send(
            self, signal: bytes, payload: tuple[Any, ...] | None = None
        ) -> None: ...
        def stop_watchdog(self) -> None: ...
        def forward_logs(self, levels: Any, output: bool) -> Any: ...


#: The note on an exception raised while a worker loaded a call (``{}``: its kind).
_LOAD_NOTE = (
    "aiointerp: the worker {} could not load the function or its arguments. "
    "They must be importable there: defined at module level in a module on sys.path, "
    "or in a __main__ script whose top-level code is guarded by "
    "`if __name__ == '__main__':` (not in `python -c` or the REPL). The worker's "
    "sys.path is the one the host had when the pool started: a directory added to "
    "sys.path after that is not on it."
)
_FUNC_CACHE_SIZE = 128
#: The note on the exception of a failed ``preload`` import (the host looks for it).
PRELOAD_NOTE = "aiointerp: raised by `import {}` (InterpreterPool(preload=...))"


def _watch(cancel_fd: int, interrupter: Interrupter, state: _job._JobState) -> None:
    """Watchdog thread: interrupt the job named on the cancel channel (0 stops it)."""
    size = _protocol.JOB_ID_SIZE
    while True:
        data = os.read(cancel_fd, size)
        if len(data) < size:
            return
        job_id = int.from_bytes(data, "little")
        if job_id == _protocol.STOP_WATCHDOG:
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


def _own_files() -> frozenset[str]:
    """Files of the worker loop: an interrupt never lands in their frames."""
    from . import _interrupt

    modules = (
        sys.modules[__name__],
        _big,
        _ends,
        _frames,
        _interp,
        _interrupt,
        _pieces,
        _pipes,
        _protocol,
        _spill,
    )
    return frozenset(module.__file__ or "" for module in (*modules, _encoding))


class _Loop:
    def __init__(
        self, config: _protocol.WorkerConfig, spill: bool, isolated: bool, kind: str
    ) -> None:
        #: big results go to a file whose descriptor the host opens
        self.spill = spill
        #: the worker kind ("interpreter", "process"), in messages
        self.kind = kind
        self.main = _Main(config.main_spec, kind)
        self.funcs: OrderedDict[bytes, Any] = OrderedDict()
        self.state = _job._JobState()
        self.thread_id = threading.get_ident()
        self.interrupter = Interrupter(
            self.thread_id, self.state, config.raise_points, _own_files()
        )
        self.state.settle = self.interrupter.settle
        #: threads started by calls: ident -> the function that started it
        self.thread_owners: dict[int, str] = {}
        #: modules may refuse to load here: a subinterpreter, not a process
        self.refusals = isolated

    def loads(self, blob: bytes, buffers: Any = None) -> Any:
        try:
            return pickle.loads(blob, buffers=buffers)
        except (AttributeError, ImportError):
            if self.main.loaded:
                raise
        self.main.load()
        return pickle.loads(blob, buffers=buffers)

    def func(self, blob: bytes) -> Any:
        func = self.funcs.get(blob)
        if func is None:
            func = self.loads(blob)
            self.funcs[blob] = func
            if len(self.funcs) > _FUNC_CACHE_SIZE:
                self.funcs.popitem(last=False)
        return func

    def run(self, job: Job) -> Outcome:
        job_id = job.job_id
        state = self.state
        state.deadline = job.deadline
        state.cancel_requested = False
        state.injected = False
        state.job_id = job_id  # armed: from here the watchdog may interrupt this job
        threads = threading.active_count()
        func = None
        try:
            func = self.func(job.func)
            args = _big.decode_args(job.args_mode, job.args, self.loads)
        except Interrupted:
            raise  # cancelled while it loaded (a main script run again...)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # SystemExit, KeyboardInterrupt... raised by a module imported to
                # load it: this call fails (a RemoteError), the worker serves on
                return self.failed(job_id, exc)
            stage = _protocol.ARGUMENTS if func is not None else _protocol.FUNCTION
            if not isinstance(exc, UnguardedMainError):  # that one says it all
                refused = self.refused(job_id, exc, stage)
                if refused is not None:
                    return refused
                exc.add_note(_LOAD_NOTE.format(self.kind))
            return self.failed(job_id, exc)
        try:
            while state.in_flight:  # a cancel read before the job was armed...
                pass
            if state.early == job_id:  # ...was recorded: do not start the call
                state.cancel_requested = True
                raise Interrupted("the call was cancelled before it started")
            value = _call(func, args)
            return Outcome._make(_spill.encode_result(job_id, value, self.spill))
        except BaseException as exc:
            return self.failed(job_id, exc)
        finally:
            if threading.active_count() > threads:
                self.note_threads(func)

    def note_threads(self, func: object) -> None:
        """*func* started threads that outlive its call: remember who did."""
        label = _encoding.describe(func)
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is not None and ident != self.thread_id:
                self.thread_owners.setdefault(ident, label)

    def lingering(self) -> tuple[str, ...]:
        """The functions whose threads still run (the watchdog has ended)."""
        owners = self.thread_owners
        labels = {
            owners.get(thread.ident or 0, "the pool's initializer")
            for thread in threading.enumerate()
            # a daemon thread (a process's orphan watch...) never keeps it alive
            if thread.ident != self.thread_id
            and thread.is_alive()
            and not thread.daemon
        }
        return tuple(sorted(labels))

    def refused(self, job_id: int, exc: BaseException, stage: str) -> Outcome | None:
        """The outcome of a refusal of subinterpreters by a module; else ``None``."""
        if not self.refusals or not isinstance(exc, Exception):
            return None
        from .._wire import _exceptions, _refusal

        found = _refusal.find(exc)
        if found is None:
            return None
        try:
            encoded = _exceptions.encode(exc)
        except Exception:  # a defect of ours, or of the exception: as any other
            return None
        tb = _encoding.user_traceback(exc.__traceback__, __file__)
        text = _encoding.format_remote(exc, tb)
        value = (encoded, found[0], found[1], stage)
        return Outcome(job_id, _protocol.REFUSED, value, text, False)

    def failed(
        self, job_id: int, exc: BaseException, stage: str = _protocol.CALL
    ) -> Outcome:
        if isinstance(exc, Interrupted):
            # the host discards this text when it cancelled the call; formatting a
            # traceback in a fresh interpreter costs milliseconds of cancel latency
            text = f"{type(exc).__name__}: {exc}"
            return Outcome(job_id, _protocol.INTERRUPTED, None, text, False)
        if isinstance(exc, UnguardedMainError):  # where the script used aiointerp
            text = exc.worker_traceback
            return Outcome._make(_exceptions.encode_exception(job_id, exc, text))
        if isinstance(exc, ImportError):
            refused = self.refused(job_id, exc, stage)
            if refused is not None:
                return refused
        tb = _encoding.user_traceback(exc.__traceback__, __file__)
        text = _encoding.format_remote(exc, tb)
        return Outcome._make(_exceptions.encode_exception(job_id, exc, text))

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

    def serve_one(self, job: Job) -> Outcome:
        try:
            outcome = self.run(job)
        except Interrupted as exc:  # landed in our own bookkeeping after the call
            outcome = self.failed(job.job_id, exc)
        finally:
            injected = self.disarm()
        # encoded with injected=False: replaced (a copy) only after an interrupt
        return outcome._replace(injected=True) if injected else outcome

    def preload(self, modules: tuple[str, ...], channel: Channel) -> bool:
        """Import the pool's ``preload`` modules; on failure, report it and return False."""
        for name in modules:
            try:
                __import__(name)
            except BaseException as exc:
                exc.add_note(PRELOAD_NOTE.format(name))
                channel.send(INIT_FAILED, self.failed(0, exc, _protocol.PRELOAD))
                return False
        return True

    def initialize(self, init_blob: bytes, channel: Channel) -> bool:
        """Run the pool's initializer; on failure, report it and return False."""
        try:
            initializer, initargs = self.loads(init_blob)
            _call(initializer, initargs)
        except BaseException as exc:
            channel.send(INIT_FAILED, self.failed(0, exc, _protocol.INITIALIZER))
            return False
        return True


def _call(func: Any, args: tuple[Any, ...]) -> Any:
    # A frame of its own around user code, whose exceptions the caller's handlers catch
    # (belt and braces: cpython#139622 made the async exception skip the handlers of
    # the frame it landed in; see _interrupt.py).
    return func(*args)


def serve(config: _protocol.WorkerConfig, channel: Channel) -> None:
    """Serve jobs from *channel* until told to quit (or the host is gone)."""
    sys.setswitchinterval(config.switch_interval)  # fast interrupt delivery
    # the host's, as multiprocessing's spawn does: a process's own are the fds of
    # its channels, an interpreter's the command line of the host's start
    sys.argv = list(config.argv)
    loop = _Loop(config, channel.shares_fds, channel.isolated, channel.kind)
    logs = None
    if config.levels is not None or config.output:
        logs = channel.forward_logs(config.levels, config.output)
    _job._state = loop.state
    watchdog = threading.Thread(
        target=_watch,
        args=(channel.cancel_fd, loop.interrupter, loop.state),
        name="aiointerp-watchdog",
    )
    watchdog.start()
    try:
        if config.preload and not loop.preload(config.preload, channel):
            return
        if config.init_blob is not None and not loop.initialize(
            config.init_blob, channel
        ):
            return
        if logs is not None:
            logs.end_call()  # what the initializer wrote comes first
        channel.send(READY)
        while True:
            signal, payload = channel.receive()
            if signal == JOB:
                job = Job._make(payload)
                payload = None
                if logs is not None:
                    logs.begin_call()  # the host reads again: nothing is dropped
                try:
                    outcome = loop.serve_one(job)
                except Interrupted:  # fired between the two layers; one per job
                    loop.disarm()
                    outcome = Outcome(job.job_id, _protocol.INTERRUPTED, None, "", True)
                # the job's values (a memoryview's export of the host's buffer...)
                # are released before the host learns that the call is over
                del job
                if logs is not None:
                    logs.end_call()  # its output is written before its result
                channel.send(DONE, outcome)
            elif signal == LEVELS and logs is not None:  # the host's levels changed
                logs.set_levels(payload)
            else:  # QUIT, or the host is gone
                break
    finally:
        if logs is not None:
            logs.stop()
        channel.stop_watchdog()
        watchdog.join()
        lingering = loop.lingering()
        if lingering:
            channel.send(LINGER, lingering)


def serve_interpreter(config: tuple[Any, ...], ends: _ends.InterpreterEnds) -> None:
    """Entry point of an interpreter worker (run by :meth:`_interp.Interp.run_worker`)."""
    serve(_protocol.WorkerConfig._make(config), _ends.InterpreterChannel(ends))
