"""Telling an extension module's refusal of subinterpreters apart from other errors.

Stdlib only: the worker loop uses it (on its error path only) to report *which*
module refused and *how* the code reached it; ``python -m aiointerp check`` uses the
same pattern. CPython says ``module X does not support loading in subinterpreters``,
PyO3 ``... do not yet support subinterpreters`` and Cython ``Interpreter change
detected - this module can only be loaded into one interpreter per process``; packages
such as numpy wrap that error in an ImportError of their own (``raise ... from exc``).
"""

from __future__ import annotations

from ._encoding import describe
from ._protocol import ARGUMENTS, CALL, FUNCTION, INITIALIZER, PRELOAD
from ._rebuild import rebuild

TYPE_CHECKING = False  # typing costs every worker an import; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Final

__all__ = ["NAMED", "PATTERN", "find", "links", "refusal_error"]

#: What the refusals say (a regular expression, case-insensitive).
PATTERN: Final = (
    r"subinterpreter|interpreter change detected|one interpreter per process"
)
#: CPython's refusal, which names the module
NAMED: Final = r"module (\S+) does not support loading in subinterpreters"
#: modules whose frames never count in an import chain (the worker's own)
_OWN: Final = ("aiointerp", "pickle", "copyreg", "importlib", "cloudpickle")


def links(exc: BaseException) -> Iterator[BaseException]:
    """*exc*, then its causes and contexts (a context raised ``from None`` too)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def find(exc: BaseException) -> tuple[str, tuple[str, ...]] | None:
    """``(refused module, import chain)`` if *exc* comes of a refusal, else ``None``.

    The chain is the modules whose top-level code was running, outermost first, one
    per top-level package (``("myapp.main", "fastapi", "pydantic")``); the refused
    module itself is not in it.
    """
    every = list(links(exc))
    imports = [link for link in every if isinstance(link, ImportError)]
    if not imports:  # the common error: no regular expression compiled for it
        return None
    import re

    refusing = next(
        (link for link in imports if re.search(PATTERN, str(link), re.IGNORECASE)), None
    )
    if refusing is None:
        return None
    modules: list[tuple[str, str | None]] = []  # (__name__, __package__) of <module>s
    for link in every:  # the outermost link's traceback holds the top frames
        tb = link.__traceback__
        found: list[tuple[str, str | None]] = []
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_name == "<module>":
                name = frame.f_globals.get("__name__")
                if name == "__mp_main__":  # the host's __main__, re-run in the worker
                    name = "__main__"
                if isinstance(name, str):
                    found.append((name, frame.f_globals.get("__package__")))
            tb = tb.tb_next
        # an inner link's frames come after the outer ones it was raised under
        modules.extend(item for item in found if item not in modules)
    match = re.search(NAMED, str(refusing))
    short = match.group(1) if match else (refusing.name or "")
    name = _full_name(short, modules[-1][1] if modules else None)
    return name or "an extension module", _chain(modules, name)


def _full_name(short: str, package: str | None) -> str:
    """``msgspec._core`` where the message only said ``_core`` (Cython's, older 3.13)."""
    if not short or "." in short or not package:
        return short
    import sys
    from importlib.machinery import PathFinder

    parent = sys.modules.get(package)  # never imported again: its import just failed
    path = getattr(parent, "__path__", None)
    try:
        if path is not None and PathFinder.find_spec(short, path) is not None:
            return f"{package}.{short}"
    except (ImportError, ValueError):
        pass
    return short


def _chain(modules: list[tuple[str, str | None]], refused: str) -> tuple[str, ...]:
    """One module per top-level package, the user's first; not the refused one's."""
    chain: list[str] = []
    tops: set[str] = set()
    last_top = refused.partition(".")[0]
    for name, _ in modules:
        top = name.partition(".")[0]
        if top in _OWN or top in tops or name == refused:
            continue
        if top == last_top and name != top:
            continue  # pydantic_core, then pydantic_core._pydantic_core: the package
        tops.add(top)
        chain.append(name)
    return tuple(chain)


def refusal_error(
    value: Any, text: str | None, func: object, by_value: bool, kind: str
) -> ImportError:
    """The error a caller gets for a refusal (a REFUSED outcome's value and text).

    An :class:`ImportError` whose message is aiointerp's explanation (which module
    refused, the imports that reached it, what to do), and whose ``__cause__`` is
    the ImportError raised inside the worker, rebuilt. *by_value*: the function was
    sent by value.
    """

    encoded, module, chain, stage = value
    label = describe(func)
    path = " → ".join((*chain, module))
    if stage == INITIALIZER:
        what = f"the pool's initializer imported {module}"
    elif stage == PRELOAD and chain:  # the chain starts with the module of preload
        what = f"preloading {chain[0]} imports {module}"
    elif stage == PRELOAD:
        what = f"the pool's preload imports {module}"
    elif stage == CALL:
        what = f"{label} imported {module} while it ran"
    elif stage == ARGUMENTS:
        what = f"loading the arguments of {label} imports {module}"
    else:
        what = f"loading {label} imports {module}"
        if by_value:
            what += " (also when sent by value: the globals it uses import it)"
    lines = [f"{what}, which does not support subinterpreters (import chain: {path})."]
    if stage in (INITIALIZER, PRELOAD):
        lines.append(
            "Workers that must import it need InterpreterPool(kind='process')."
        )
    elif kind == "auto":
        lines.append("Later calls of it run in a process.")
    elif stage == FUNCTION and not by_value:
        lines.append(
            "Run it in a process with InterpreterPool(kind='auto') or "
            "kind='process', or move the function into a module that does not "
            f"import {chain[1] if len(chain) > 1 else module}"
            + (
                "."
                if _has_cloudpickle()
                else ", or install cloudpickle (pip install cloudpickle) so that "
                "aiointerp sends it by value."
            )
        )
    else:
        lines.append(
            "Run it in a process with InterpreterPool(kind='auto') or "
            f"kind='process'; in an interpreter, it cannot import {module}."
        )
    error = ImportError(" ".join(lines), name=module)
    error.__cause__ = rebuild(encoded, text or "")
    return error


def _has_cloudpickle() -> bool:
    import importlib.util

    return importlib.util.find_spec("cloudpickle") is not None
