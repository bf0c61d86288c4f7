"""The wire between the host and every worker, whatever its kind.

Stdlib only: both sides import it (inside a worker it must cost next to nothing).
A worker has three one-way channels; each kind of worker carries them its own way
(:mod:`aiointerp._inside._ends` and the links of :mod:`aiointerp._kinds`), but what travels, and in which order, is defined here.

**Job channel** (host → worker): one signal per message.

========== =========================== ===========================================
signal      payload                     meaning
========== =========================== ===========================================
``JOB``     a :class:`Job`              run it; exactly one signal per queued job
``LEVELS``  a logging level table       the host's logging levels changed
``QUIT``    none                        finish: stop serving, end the worker
``CONFIG``  a :class:`WorkerConfig`     process workers only: their first message
========== =========================== ===========================================

**Done channel** (worker → host).

=============== ===================== ===============================================
signal          payload               meaning
=============== ===================== ===============================================
``READY``       none                  started (initializer done): send jobs
``INIT_FAILED`` an :class:`Outcome`   the initializer, or the import of a module of
                                      ``preload`` (a note of the exception names
                                      it), raised; the worker ends
``DONE``        an :class:`Outcome`   the job whose id the outcome carries ended
``LOG``         log records           records, warnings or output (``_logitems``)
``LINGER``      labels (strs)         stopped serving, but threads started by these
                                      functions still run: it holds no slot now
``EXITED``      none, or ``(why,)``   the worker ended (its very last signal); a
                                      process worker whose loop raised says what
                                      (a str)
=============== ===================== ===============================================

**How a job's arguments travel** (``Job.args_mode``).

=============== ============================== =====================================
args_mode       ``Job.args``                   the worker
=============== ============================== =====================================
``SHARED``      the arguments, shareable       takes them as they are
``PICKLED``     one pickle (``bytes``)         unpickles it
``FRAMES``      a pickle in pieces: ``bytes``  unpickles their concatenation
                and ``memoryview``
``BUFFERS``     ``(pieces, buffers)``: as      copies each buffer (views of the
                FRAMES, and the pickle's       caller's memory), then unpickles
                out-of-band buffers            with them (``buffers=``)
                (``memoryview``)
``MAPPED``      ``(pieces, buffers)``, the     unpickles with the buffers as they
                buffers the worker's own       are: a process worker's are in the
                                               shared memory its link mapped
``ABANDONED``   a reason (``str``), or None    does not run the call: the host gave
                                               it up (None: cancelled) while its
                                               arguments were being sent
=============== ============================== =====================================

The host makes ``FRAMES`` and ``BUFFERS`` (:mod:`aiointerp._host._bigvalues`); a process
link turns ``BUFFERS`` into ``MAPPED`` and sends ``ABANDONED`` in place of a job whose
arguments it stopped writing (:mod:`aiointerp._inside._ends` and the links of :mod:`aiointerp._kinds`).

**Cancel channel** (host → the worker's watchdog): job ids, :data:`JOB_ID_SIZE`
bytes little-endian each; :data:`STOP_WATCHDOG` (0) stops the watchdog. A cancel
names the job it is for, so it can never hit another one.

Every outcome names its job: the host delivers an outcome to the caller only if
its id is the id of the job that caller sent, so a stale outcome is never taken
for another call's.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from typing import Any, Final, NamedTuple

__all__ = [
    "ABANDONED",
    "ARGUMENTS",
    "BUFFERS",
    "CALL",
    "CONFIG",
    "DONE",
    "EXITED",
    "FRAMES",
    "FUNCTION",
    "INITIALIZER",
    "INIT_FAILED",
    "INTERRUPTED",
    "JOB",
    "JOB_ID_SIZE",
    "LEVELS",
    "LINGER",
    "LOG",
    "MAPPED",
    "OK_PICKLED",
    "OK_SHARED",
    "PICKLED",
    "PRELOAD",
    "QUIT",
    "RAISED",
    "RAISED_RAW",
    "READY",
    "REFUSED",
    "SHARED",
    "STOP_WATCHDOG",
    "UNSENDABLE",
    "Job",
    "Outcome",
    "WorkerConfig",
]

# -- job channel signals (host -> worker)
JOB: Final = b"J"
LEVELS: Final = b"V"
QUIT: Final = b"Q"
CONFIG: Final = b"C"

# -- done channel signals (worker -> host)
READY: Final = b"R"
INIT_FAILED: Final = b"F"
DONE: Final = b"D"
LOG: Final = b"L"
LINGER: Final = b"T"
EXITED: Final = b"X"

# -- cancel channel
JOB_ID_SIZE: Final = 8
STOP_WATCHDOG: Final = 0

# -- how a job's arguments travel (Job.args_mode; see the table above)
SHARED: Final = 0  # as they are: shareable values
PICKLED: Final = 1  # one pickle (protocol 5)
FRAMES: Final = 2  # a pickle in pieces (aiointerp._wire._big)
BUFFERS: Final = 3  # pieces and out-of-band buffers of the caller's memory
MAPPED: Final = 4  # pieces and out-of-band buffers that are the worker's own
ABANDONED: Final = 5  # no call: the host gave it up while sending its arguments

# -- Outcome.status
OK_SHARED: Final = 0  # value: the result, shareable
# value: the pickled result; or, for a result in a file (aiointerp._wire._big), the
# file's descriptor, with text (size, inode) or (size, inode, out-of-band buffers)
OK_PICKLED: Final = 1
RAISED: Final = 2  # value: _exceptions.encode(exc), text: the remote traceback
RAISED_RAW: Final = 3  # value: (type name, message), text: the remote traceback
INTERRUPTED: Final = 4  # the code stopped on Interrupted; text: what was raised
UNSENDABLE: Final = 5  # value: (type name, why): the result could not be pickled
#: a module refused subinterpreters; value: (_exceptions.encode(exc), the refused
#: module, the import chain that reached it (module names), the stage), text: the
#: remote traceback
REFUSED: Final = 6

# -- REFUSED: the stage of the call at which the module was imported
FUNCTION: Final = "function"  # loading the function: nothing ran, it may be retried
ARGUMENTS: Final = "arguments"  # loading its arguments: nothing ran either
CALL: Final = "call"  # while the function ran (an import in its body)
INITIALIZER: Final = "initializer"  # the pool's initializer
PRELOAD: Final = "preload"  # a module of the pool's preload


if TYPE_CHECKING:

    class Job(NamedTuple):
        """A call, as the worker receives it."""

        #: unique in the process, never 0
        job_id: int
        #: time.monotonic() deadline of the call's ``timeout=``, or None
        deadline: float | None
        #: the pickled function (the worker caches what it loaded, by this key)
        func: bytes
        #: :data:`SHARED`, :data:`PICKLED`, :data:`FRAMES`... (the table above)
        args_mode: int
        #: the arguments, encoded as ``args_mode`` says
        args: Any

    class Outcome(NamedTuple):
        """How a job ended, as the host receives it."""

        #: the id of the job it answers (0: no job, e.g. the initializer)
        job_id: int
        #: one of the status constants above
        status: int
        value: Any
        #: the remote traceback text, for the statuses that raise
        text: str | None
        #: an interrupt was raised in the code: the worker must be retired
        injected: bool

    class WorkerConfig(NamedTuple):
        """What every worker of a pool starts with (the same for every kind)."""

        #: the host's sys.path when the pool started
        sys_path: tuple[str, ...]
        #: how to re-create the host's ``__main__`` (see _encoding.main_spec)
        main_spec: tuple[str, str] | None
        #: pickled ``(initializer, initargs)``, or None
        init_blob: bytes | None
        #: sys.setswitchinterval() inside the worker: the watchdog needs the GIL
        switch_interval: float
        #: the host's logging level table when forwarding logs, else None
        levels: Any
        #: opcodes before which an interrupt is raised (``_interrupt.raise_points``)
        raise_points: tuple[tuple[int, ...], int]
        #: sys.stdout/sys.stderr writes go to the host's (``forward_output``)
        output: bool
        #: modules imported, in this order, before the initializer runs
        preload: tuple[str, ...]
        #: the host's sys.argv when the pool started: the worker's sys.argv (a main
        #: script run again there, or a module it imports, reads it at import)
        argv: tuple[str, ...]

else:
    from collections import namedtuple

    Job = namedtuple("Job", "job_id deadline func args_mode args")
    Outcome = namedtuple("Outcome", "job_id status value text injected")
    WorkerConfig = namedtuple(
        "WorkerConfig",
        "sys_path main_spec init_blob switch_interval levels raise_points output "
        "preload argv",
    )
