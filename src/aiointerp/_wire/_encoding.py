"""Encoding of calls and results between the host and a worker.

Stdlib only: used on both sides (exceptions: :mod:`aiointerp._wire._exceptions`).
What a job and an outcome hold is defined in
:mod:`aiointerp._wire._protocol`; this module fills their fields.

Arguments and results that are shareable (None, bool, int of at most 64 bits,
float, str, bytes, memoryview and tuples of these) travel as they are; a
``memoryview`` argument is not copied (a result comes back as bytes). Everything else is pickled (protocol 5), with
cloudpickle as a fallback when it is installed.
"""

from __future__ import annotations

import pickle

from ._errors import NotShareableError
from ._protocol import PICKLED, SHARED

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Final

    type Outcome = tuple[int, int, Any, Any, bool]
    """An :class:`aiointerp._wire._protocol.Outcome`, or the plain tuple of its fields."""

_PROTOCOL: Final = 5
_SIMPLE: Final = frozenset({type(None), bool, float, str, bytes, memoryview})
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def is_shareable(obj: object, views: bool = True) -> bool:
    """Deep check that *obj* crosses interpreters as it is, with its exact type.

    With ``views=False`` a memoryview does not count (results: a view into a worker's
    memory must not outlive its interpreter).
    """
    kind = type(obj)
    if kind in _SIMPLE:
        return views or kind is not memoryview
    if kind is int:
        return _INT64_MIN <= obj <= _INT64_MAX  # type: ignore[operator]
    if kind is tuple:
        return all(is_shareable(item, views) for item in obj)  # type: ignore[attr-defined]
    return False


def describe(func: object) -> str:
    """A short name for *func* in messages."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        inner = getattr(func, "func", None)  # functools.partial
        return f"partial({describe(inner)})" if inner is not None else repr(func)
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module else str(name)


#: a worker of each kind of pool, in messages ("auto": the kind is not chosen yet)
RECIPIENT: Final = {
    "interpreter": "an interpreter",
    "process": "a worker process",
    "auto": "a worker",
}
#: the worker of each kind that ran a call, in messages
RAN_IN: Final = {
    "interpreter": "the interpreter",
    "process": "the worker process",
    "auto": "the worker",
}


def _hint(obj: object, to: str) -> str:
    qualname = getattr(obj, "__qualname__", "") or ""
    if "<lambda>" in qualname or "<locals>" in qualname:
        return (
            "; lambdas, closures and functions defined inside other functions are "
            "pickled by reference and cannot be found by the worker: define it at "
            "module level, or install cloudpickle (pip install cloudpickle) to "
            "send it by value"
        )
    return f"; only picklable objects (or the shareable types) can be sent to {to}"


def main_spec() -> tuple[str, str] | None:
    """How a worker re-creates the host's ``__main__``, as multiprocessing's spawn.

    ``("path", file)`` or ``("module", name)``; ``None`` where it cannot: ``python
    -c``, code piped on stdin, the REPL, notebook kernels (IPython's ``__main__`` has
    no file), and ``python -m pkg`` (re-running ``pkg.__main__`` re-runs the program).
    """
    import os
    import sys

    main = sys.modules.get("__main__")
    if main is None:  # embedded interpreters
        return None
    sys.modules.setdefault("__mp_main__", main)  # results pickled by workers name it
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    path = getattr(main, "__file__", None)
    if name and (path is None or getattr(spec, "origin", None) == path):
        return None if name.endswith(".__main__") else ("module", name)
    if path and os.path.exists(path):
        return ("path", os.path.abspath(path))
    return None


def dumps(obj: object, what: str, to: str = RECIPIENT["interpreter"]) -> bytes:
    """Pickle *obj*, falling back to cloudpickle; :class:`NotShareableError` if neither can.

    *what* and *to* name the object and where it goes (:data:`RECIPIENT`), in messages.

    What refers to a ``__main__`` that workers cannot re-create (see
    :func:`main_spec`) goes by value with cloudpickle, or is refused, saying so.
    """
    error: Exception | None
    try:
        blob = pickle.dumps(obj, _PROTOCOL)
    except Exception as exc:
        error = exc
    else:
        if b"__main__" not in blob or main_spec() is not None:
            return blob
        if not _names_main(blob):  # the bytes were only some data's
            return blob
        error = None
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        if error is None:
            raise NotShareableError(
                f"cannot send {what} to {to}: it is defined in (or refers "
                "to) __main__ of a program whose __main__ workers cannot import again "
                "(an interactive session: a notebook, the REPL, python -c or code "
                "piped on stdin). Install cloudpickle (pip install cloudpickle) to "
                "send it by value, or define it in a module"
            ) from None
    else:
        try:
            return bytes(cloudpickle.dumps(obj, _PROTOCOL))
        except Exception as exc:
            error = exc
    assert error is not None
    raise NotShareableError(
        f"cannot send {what} to {to}: {type(error).__name__}: {error}{_hint(obj, to)}"
    ) from error


def _names_main(blob: bytes) -> bool:
    """Does the pickle *blob* load a global from ``__main__``? (the rare path only)"""
    import pickletools

    memo: dict[int, object] = {}
    pushed: list[object] = []  # what each opcode pushed: strings, else None
    for opcode, arg, _ in pickletools.genops(blob):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            if str(arg).split(" ")[0] == "__main__":
                return True
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushed) >= 2 and pushed[-2] == "__main__":
                return True
            pushed.append(None)
        elif "UNICODE" in name:
            pushed.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name.endswith("PUT"):
            memo[int(str(arg))] = pushed[-1] if pushed else None
        elif name.endswith("GET"):
            pushed.append(memo.get(int(str(arg))))
        elif name not in ("FRAME", "PROTO", "STOP"):
            pushed.append(None)
    return False


# -- host side


def encode_call(
    func: object, args: tuple[Any, ...], to: str = RECIPIENT["interpreter"]
) -> tuple[bytes, int, Any]:
    """Serialise a call, before any worker is taken. Raises :class:`NotShareableError`."""
    func_blob = dumps(func, f"function {describe(func)}", to)
    if is_shareable(args):
        return func_blob, SHARED, args
    return func_blob, PICKLED, dumps(args, f"the arguments of {describe(func)}", to)


# -- worker side


def dumps_result(value: object) -> bytes:
    """Pickle a result to send back; raise the error of :func:`pickle.dumps`."""
    try:
        return pickle.dumps(value, _PROTOCOL)
    except (pickle.PicklingError, AttributeError) as error:
        # a class or function not found by name (3.13 says AttributeError for a
        # local one): one the host sent by value (a notebook's...) goes back so
        try:
            import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]

            return bytes(cloudpickle.dumps(value, _PROTOCOL))
        except Exception:
            raise error from None


def user_traceback(tb: TracebackType | None, own_file: str) -> TracebackType | None:
    """``tb`` without its first frames of ``own_file``: the user's frames only."""
    while tb is not None and tb.tb_frame.f_code.co_filename == own_file:
        tb = tb.tb_next
    return tb


def format_remote(exc: BaseException, tb: TracebackType | None) -> str:
    import traceback  # only on the error path: it imports re, textwrap, linecache

    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines)
