"""The host's ``__main__`` script, run again inside a worker to find what it defines.

Stdlib only, cheap to import: every worker imports it. A function or class defined in
the host's main script is pickled as ``__main__.name``; a worker that lacks it runs the
script again as ``__mp_main__``, as multiprocessing's spawn does (:class:`_Main`).

While a worker runs the script, :func:`refuse_nested_use` refuses any pool. A script
that used aiointerp there (its ``if __name__ == "__main__":`` guard is missing), or
whose top-level code raised ``SystemExit`` or another :class:`BaseException` that is
not an :class:`Exception`, fails that call with one :class:`UnguardedMainError`; the
worker serves on, and raises the same error again without running the script again.
"""

from __future__ import annotations

import sys

from .._wire._errors import AiointerpError

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from types import FrameType

__all__ = ["UnguardedMainError", "refuse_nested_use"]

#: what this worker is running again right now ("the main script /x.py"), else None
_running: str | None = None
#: this worker, in messages ("worker interpreter", "worker process")
_worker = "worker interpreter"
#: the stack, from the script's top level, where the script used a pool while it ran
_nested_use: tuple[str, str] | None = None  # (traceback text, "line N: code")


class UnguardedMainError(AiointerpError, RuntimeError):
    """The host's main script ran again in a worker and used aiointerp, or exited, there.

    A worker runs the main script again (as ``__mp_main__``) to find the functions
    and classes defined in it; the script's top-level code must therefore be guarded
    by ``if __name__ == "__main__":``. Raised in the host by the call that needed the
    script, instead of the nested pool's confusing failures, or when the script's
    top-level code raised ``SystemExit`` (``sys.exit()``, argparse rejecting the
    command line) or ``KeyboardInterrupt`` there.

    :ivar worker_traceback: inside the worker, where the script used aiointerp or
        exited (the text of the :class:`~aiointerp.RemoteTraceback` chained in the
        host)
    """

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.worker_traceback = worker_traceback


def refuse_nested_use() -> None:
    """Refuse to run a pool while this worker runs the host's main script again.

    Called by the pool at its first use; returns at once everywhere else.

    :raises UnguardedMainError: this interpreter is a worker running the main script
        again, whose unguarded top-level code tries to use aiointerp
    """
    global _nested_use
    if _running is None:
        return
    if _nested_use is None:  # the first use tells where: later ones add nothing
        _nested_use = _where(sys._getframe(1))
    raise UnguardedMainError(
        f"aiointerp cannot be used while this {_worker} runs {_running} "
        "again to find a function of it: guard the script's top-level code with "
        '`if __name__ == "__main__":`'
    )


def _where(frame: FrameType | None) -> tuple[str, str]:
    """The stack from the script's top-level frame to ``frame``, and its first line."""
    import traceback  # the error path only: it imports linecache, textwrap...

    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    # from the script's first frame: runpy's and the worker loop's are noise
    first = next(
        (
            i
            for i, f in enumerate(frames)
            if f.f_globals.get("__name__") == "__mp_main__"
        ),
        None,
    )
    stack = traceback.StackSummary.extract(
        (f, f.f_lineno) for f in frames[first or 0 :]
    )
    text = "".join(
        [
            "Traceback (most recent call last):\n",
            *stack.format(),
            f"aiointerp was used here, inside a worker running {_running} again\n",
        ]
    )
    if first is None:  # from a thread the script started (InterpreterExecutor's...)
        import threading

        return text, f"in its thread {threading.current_thread().name!r}"
    top = stack[0]
    return text, f"line {top.lineno}: {(top.line or '').strip()}"


class _Main:
    """Runs the host's main script as ``__mp_main__`` (like multiprocessing's spawn).

    Done lazily, the first time a pickle names something of ``__main__`` that this
    worker does not have, and once: :attr:`loaded` is set from then on, except
    after :class:`UnguardedMainError`, which :meth:`load` raises again at once.
    """

    def __init__(self, spec: tuple[str, str] | None, kind: str = "interpreter") -> None:
        self.spec = spec
        self.loaded = spec is None
        #: this worker, in messages
        self.worker = f"worker {kind}"
        #: the message and worker traceback of an unguarded script, once it failed
        self.unguarded: tuple[str, str] | None = None

    def load(self) -> None:
        """Run the main script; raise :class:`UnguardedMainError` if it used aiointerp,
        or if its top-level code raised ``SystemExit`` (or another
        :class:`BaseException` that is not an :class:`Exception`)."""
        # Unguarded, the script runs its whole program again in here, its
        # asyncio.run(main()) included, which would open a nested pool whose workers
        # could not find __mp_main__ either: the refusal is turned into one error,
        # whatever the script did with it (caught it, or a task group wrapped it).
        # SystemExit is argparse rejecting the command line, for one: a worker's
        # sys.argv is the host's, but a script may have changed it before the pool
        # started.
        global _running, _nested_use, _worker
        if self.unguarded is not None:
            raise UnguardedMainError(*self.unguarded)
        import runpy
        import types

        self.loaded = True
        assert self.spec is not None
        kind, target = self.spec
        if kind == "module":
            what = f"the main module {target} (python -m {target})"
        else:
            what = f"the main script {target}"
        _running, _nested_use, _worker = what, None, self.worker
        try:
            if kind == "module":
                namespace = runpy.run_module(
                    target, run_name="__mp_main__", alter_sys=False
                )
            else:
                namespace = runpy.run_path(target, run_name="__mp_main__")
        except Exception:
            if _nested_use is None:
                # it failed (a module it imports refused this interpreter...): the
                # next pickle that needs __main__ runs it again, and fails the same
                self.loaded = False
                raise
            # what the refusal became in the script (wrapped, caught...) is noise
        except BaseException as exc:
            from .._wire._errors import Interrupted

            self.loaded = False
            if isinstance(exc, Interrupted):
                raise  # the call was cancelled: the next one runs it again
            if _nested_use is None:
                # SystemExit (argparse rejecting the command line, sys.exit()...):
                # the call fails, saying so, and the worker serves on; the script
                # is not run again (it would exit again, after its side effects)
                self.unguarded = _exited(what, self.worker, exc)
                raise UnguardedMainError(*self.unguarded) from None
            # it used aiointerp, then exited (`except Exception: sys.exit(1)`)
        finally:
            _running = None
        if _nested_use is not None:
            worker_traceback, line = _nested_use
            _nested_use = None
            self.loaded = False  # load() is asked again, and raises this at once
            self.unguarded = (
                _unguarded_message(what, line, self.worker),
                worker_traceback,
            )
            raise UnguardedMainError(*self.unguarded) from None
        module = types.ModuleType("__mp_main__")
        module.__dict__.update(namespace)
        sys.modules["__main__"] = sys.modules["__mp_main__"] = module


def _exited(what: str, worker: str, exc: BaseException) -> tuple[str, str]:
    """The message and worker traceback of a main script whose top-level code raised
    *exc*, a :class:`BaseException` that is not an :class:`Exception`."""
    import traceback

    tb, line = exc.__traceback__, "at its top level"
    while tb is not None and tb.tb_frame.f_globals.get("__name__") != "__mp_main__":
        tb = tb.tb_next  # runpy's frames and ours are noise
    if tb is not None:
        code = traceback.extract_tb(tb, limit=1)[0]
        line = f"line {code.lineno}: {(code.line or '').strip()}"
    name = type(exc).__qualname__
    raised = f"{name}: {exc}" if str(exc) else name
    hint = ""
    if any(
        frame.filename.endswith("argparse.py")
        for frame in traceback.extract_tb(exc.__traceback__)
    ):
        hint = (
            f" (argparse rejected the command line sys.argv={sys.argv!r}, the "
            "host's when the pool started)"
        )
    message = (
        f"{what} ran again inside an aiointerp {worker} (as __mp_main__, to find "
        f"a function or class defined in it), and its top-level code raised "
        f"{raised} ({line}){hint}. A worker runs the main script again as "
        "multiprocessing's spawn does: the code that starts the program (parsing "
        'the command line included) must be guarded by `if __name__ == "__main__":`. '
        "Guard it, or define the functions sent to workers in a module of their own."
    )
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return message, text


def _unguarded_message(what: str, line: str, worker: str) -> str:
    return (
        f"{what} ran again in full inside an aiointerp {worker}, and its "
        f"top-level code used aiointerp there ({line}). A worker runs the main script "
        "again, as __mp_main__, to find the functions and classes defined in it (as "
        "multiprocessing's spawn does): the code that starts the program must be "
        'guarded by `if __name__ == "__main__":`, e.g. `if __name__ == "__main__": '
        "asyncio.run(main())`. Guard it, or define the functions sent to workers in a "
        "module of their own."
    )
