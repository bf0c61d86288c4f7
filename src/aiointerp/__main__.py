"""``python -m aiointerp``: will my code work in an interpreter? What is this Python?

::

    python -m aiointerp check MODULE|MODULE:FUNCTION [...] [--json] [--no-submodules]
    python -m aiointerp info [--json]

``check`` imports each module in a fresh isolated interpreter (a package's submodules
too), tells for each function how a pool runs it, and exits with status 0 only when
all of them can run in an interpreter (1 otherwise, 2 for usage errors). ``info``
describes this Python, its subinterpreters and the known CPython defects of this
exact version.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiointerp",
        description=(
            "Check modules and functions against isolated subinterpreters; describe "
            "this Python."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="import modules in fresh isolated interpreters and report what happened",
        description=(
            "Import each MODULE in a fresh isolated interpreter (the kind aiointerp's "
            "pool uses) and report: loads, refused (the extension module that does "
            "not support subinterpreters), failed (another error), or not installed. "
            "A package's submodules are imported too. For MODULE:FUNCTION, report "
            "how a pool runs the function: in an interpreter by reference, in an "
            "interpreter by value (cloudpickle), or only in a process. Exit status: "
            "0 when everything can run in an interpreter, 1 otherwise."
        ),
    )
    check.add_argument(
        "modules",
        nargs="+",
        metavar="MODULE",
        help="module names or module:function, e.g. numpy lxml.etree myapp.cpu:hash",
    )
    check.add_argument("--json", action="store_true", help="print a JSON list")
    check.add_argument(
        "--no-submodules",
        action="store_true",
        help="do not import the submodules of packages",
    )
    info = commands.add_parser(
        "info",
        help="describe this Python, its subinterpreters and known CPython defects",
        description=(
            "Python version and build, whether subinterpreters work, CPU count, the "
            "versions of aiointerp and anyio, and known CPython defects of this "
            "exact Python: include it in bug reports."
        ),
    )
    info.add_argument("--json", action="store_true", help="print a JSON object")
    return parser


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what the checked modules write to file descriptor 1 to stderr instead.

    Interpreters share the process's file descriptors: a module printing at import
    (from C or from Python) must not break the report, ``--json`` above all. A
    function's module imported by this process (to send the function by value)
    prints to ``sys.stdout``: flushed before fd 1 is given back.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    :param argv: the arguments (default: ``sys.argv[1:]``)
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "info":
        from ._cli import _info

        description = _info.info()
        if args.json:
            print(json.dumps(description.as_dict(), indent=2))
        else:
            print(_info.format_info(description))
        return 0
    from ._cli import _check
    from ._host._checks import is_target

    bad = [name for name in args.modules if not is_target(name)]
    if bad:
        parser.error(
            f"not a module name or module:function: {', '.join(map(repr, bad))}"
        )
    try:
        with _stdout_to_stderr():
            results = _check.check(args.modules, submodules=not args.no_submodules)
    except ImportError as exc:  # this Python has no subinterpreters
        print(f"python -m aiointerp: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=2))
    else:
        print(_check.format_results(results))
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
