"""Exceptions of aiointerp.

Hierarchy::

    Exception
     └── AiointerpError                 base of every error raised by aiointerp itself
          ├── BrokenWorkerError         a worker (interpreter or process) failed to
          │                             start or died
          ├── PoolClosedError           (also RuntimeError) the pool is closed
          ├── PoolBusyError             ``max_waiting`` callers already wait for a worker
          ├── NotShareableError         (also TypeError) a function, argument or result
          │                             cannot cross to or from a worker
          └── RemoteError               an exception raised inside a worker that
                                        cannot be re-raised as itself in the caller
    RemoteTraceback                     attached as ``__cause__`` of re-raised exceptions
    BaseException
     └── Interrupted                    raised *inside* a worker when its call is cancelled
                                        (public in :mod:`aiointerp.worker`)

The user's own exceptions are never wrapped: they are re-raised with their own type,
args, attributes, notes, ``__cause__``/``__context__`` chain and group members
(rebuilt without calling their ``__init__``, see :mod:`aiointerp._wire._rebuild`), with
the traceback from inside the worker chained as a :class:`RemoteTraceback`.
"""

from __future__ import annotations

__all__ = [
    "AiointerpError",
    "BrokenWorkerError",
    "NotShareableError",
    "PoolBusyError",
    "PoolClosedError",
    "RemoteError",
    "Interrupted",
    "RemoteTraceback",
]


class AiointerpError(Exception):
    """Base class of the errors raised by aiointerp itself."""

    __module__ = "aiointerp"


class BrokenWorkerError(AiointerpError):
    """Raised by a call whose worker could not be started or died under it.

    Infrastructure only, never the user function's own error: the interpreter or
    process could not be created, the pool's ``initializer`` raised or a ``preload``
    module could not be imported (its exception is the ``__cause__``), the worker
    thread stopped unexpectedly, or a worker process died (killed by a signal,
    ``os._exit()``, a crash of C code: the message says how). The broken worker is
    discarded and replaced; the call did not complete and may be retried. After a
    failed start the pool waits before it tries again, 0.05 s at first, twice as long
    after each further failure, up to 5 s.
    """

    __module__ = "aiointerp"


class PoolClosedError(AiointerpError, RuntimeError):
    """Raised by calls to a pool that is closing or closed.

    Calls made after :meth:`~aiointerp.InterpreterPool.aclose` started get it at
    once, and so do calls still waiting for a worker when the pool closes; calls
    still running when the ``timeout`` of ``aclose`` ends are interrupted and get it
    once their code has stopped.
    """

    __module__ = "aiointerp"


class PoolBusyError(AiointerpError):
    """Raised at once by a call to a pool whose ``max_waiting`` callers already wait.

    The pool sheds the load instead of queueing the call: the callers already waiting
    are unaffected, and the call did not run. A web app turns it into a
    ``503 Service Unavailable`` (see the web frameworks page of the documentation).
    """

    __module__ = "aiointerp"


class NotShareableError(AiointerpError, TypeError):
    """Raised when a function, its arguments or its result cannot reach a worker or return.

    Raised *before* a worker is taken for the function and arguments; raised in the
    caller for a result that could not be sent back. The message names the object
    and what to do (define functions at module level, or install cloudpickle,
    ``pip install cloudpickle``, for lambdas and closures).
    """

    __module__ = "aiointerp"


class RemoteError(AiointerpError):
    """Raised for an exception inside a worker that cannot be re-raised as is.

    Two cases: it is a :class:`BaseException` that must not reach the event loop
    (``SystemExit``, ``KeyboardInterrupt``...), or its class cannot be found in the
    caller's process (a module only the worker imported; a class that cannot be
    pickled by name), or the exception cannot be created there; a note says which,
    after the exception's own notes. The same holds for the exceptions of a chain.
    The worker kept it contained and the pool keeps serving. Its ``str()`` is
    ``"type_name: message"``, and its ``__cause__`` is a :class:`RemoteTraceback`.

    :ivar type_name: qualified name of the original exception type
    :ivar message: ``str()`` of the original exception
    :ivar remote_traceback: the traceback text from inside the worker
    """

    __module__ = "aiointerp"

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(type_name, message, remote_traceback)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


class RemoteTraceback(Exception):
    """The traceback of an exception as it was inside the worker.

    Set as the ``__cause__`` of exceptions re-raised in the caller, so that the
    failing line of user code shows in the caller's traceback. An exception that had
    a ``__cause__`` inside the worker keeps it (rebuilt); the traceback is then
    the ``__cause__`` of the last exception of that chain, the one displayed first.

    :ivar text: the traceback text from inside the worker
    """

    __module__ = "aiointerp"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n{self.text.rstrip()}"


class Interrupted(BaseException):
    """Raised inside a worker when its call was cancelled or timed out.

    The worker's watchdog has the running code raise it before its next load, store,
    call or return (or, in a loop with none, at its backward jump), once per call;
    :func:`checkpoint` raises it explicitly. It derives from :class:`BaseException` so
    that ``except Exception`` does not swallow it; every ``finally`` block and context
    manager ``__exit__`` runs, as for an exception the code raised itself, on every
    supported Python. Do not catch it, or catch it only to re-raise: code that
    swallows it keeps its worker busy until it returns (a process worker is killed
    ``cancel_grace`` seconds after the interrupt).
    """

    __module__ = "aiointerp"
