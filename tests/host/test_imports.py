"""What ``kind="auto"`` reads of a function's code before its first call (no worker).

:func:`aiointerp._host._imports.imports_of` on the shapes of code users write; the pools
that act on it are tested in test_auto.py.
"""

from __future__ import annotations

import functools
import textwrap
import types

import _funcs_imports as funcs
import _imports_pkg.handlers as handlers
import pytest

from aiointerp._host._imports import HELPER_DEPTH, Import, imports_of
from aiointerp._inside._batch import Batch
from aiointerp._offload import _sendable

NUMPY = Import("numpy")


def compiled(source: str, name: str, module: str = "pkg.sub.mod") -> types.FunctionType:
    """Function *name* of *source*, as if defined in the module *module*."""
    namespace = {"__name__": module, "__package__": module.rpartition(".")[0]}
    exec(compile(textwrap.dedent(source), f"<{module}>", "exec"), namespace)
    func = namespace[name]
    assert isinstance(func, types.FunctionType)
    return func


def test_imports_in_the_body_nested_code_and_class_bodies() -> None:
    assert imports_of(funcs.numpy_in_body) == (NUMPY,)
    assert imports_of(funcs.pil_in_body) == (Import("PIL", ("Image",)),)
    assert imports_of(funcs.numpy_in_nested_function) == (NUMPY,)
    assert imports_of(funcs.pil_in_class_body) == (Import("PIL", ("Image",)),)


def test_every_form_of_the_import_statement() -> None:
    func = compiled(
        """
        def f():
            import a.b.c
            import d.e as alias
            from f.g import h, i as j
            from . import sibling
            from .. import uncle
            from .near import thing
            from ...top import other
            g = lambda: __import__("computed")  # a call: not seen
            return [k for k in (1,) if __import__("x")]
        """,
        "f",
    )
    assert imports_of(func) == (
        Import("a.b.c"),
        Import("d.e"),
        Import("f.g", ("h", "i")),
        Import("pkg.sub", ("sibling",)),
        Import("pkg", ("uncle",)),
        Import("pkg.sub.near", ("thing",)),
    )  # ...top is above the top-level package: fails where it runs, no import


def test_relative_imports_of_a_real_package() -> None:
    heavy = Import("_imports_pkg", ("heavy",))
    assert imports_of(handlers.relative_module) == (heavy,)
    assert imports_of(handlers.relative_from) == (
        Import("_imports_pkg.heavy", ("total",)),
    )


def test_the_functions_own_module_is_left_out() -> None:
    func = compiled(
        """
        def f():
            from . import mod
            from .mod import helper
            import pkg.sub
            from . import other
        """,
        "f",
    )
    assert imports_of(func) == (Import("pkg.sub", ("other",)),)


def test_helpers_of_the_same_module_are_followed_to_a_depth() -> None:
    assert imports_of(funcs.numpy_in_helper) == (NUMPY,)
    chain = "\n".join(
        f"def h{i}():\n    return h{i + 1}()" for i in range(HELPER_DEPTH + 1)
    )
    source = f"{chain}\ndef h{HELPER_DEPTH + 1}():\n    import deep\n"
    assert imports_of(compiled(source, "h1")) == (Import("deep"),)
    assert imports_of(compiled(source, "h0")) == ()  # one helper too deep


def test_helpers_of_other_modules_and_methods_are_not_followed() -> None:
    func = compiled(
        """
        import json
        def f(obj):
            obj.method()
            return json.dumps(len(obj))
        """,
        "f",
    )
    assert imports_of(func) == ()


def test_wrappers_of_the_function() -> None:
    ref = _sendable(funcs.offloaded_numpy, funcs.offloaded_numpy.__wrapped__)
    summer = funcs.Summer()
    for wrapped in (
        functools.partial(funcs.numpy_in_body, "marker"),
        functools.partial(functools.partial(funcs.numpy_in_body, "m"), 1),
        Batch(funcs.numpy_in_nested_function),
        ref,
        summer,
        summer.total,
    ):
        assert [found.module for found in imports_of(wrapped)] == ["numpy"], wrapped


def test_decorated_functions_and_classes() -> None:
    func = compiled(
        """
        import functools
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                import wrapping
                return fn(*args)
            return wrapper
        @deco
        def f():
            import wrapped
        class C:
            def __init__(self):
                import constructing
        class D(C):
            def __new__(cls):
                import allocating
                return super().__new__(cls)
        class E(C):
            def __init__(self):  # C's __init__ does not run: not read
                import overriding
        """,
        "f",
    )
    assert imports_of(func) == (Import("wrapping"), Import("wrapped"))
    namespace = func.__globals__
    assert imports_of(namespace["C"]) == (Import("constructing"),)
    assert imports_of(namespace["D"]) == (Import("allocating"), Import("constructing"))
    assert imports_of(namespace["E"]) == (Import("overriding"),)


@pytest.mark.parametrize("func", [len, print, object(), 3, None, "text"])
def test_what_has_no_python_code_imports_nothing(func: object) -> None:
    assert imports_of(func) == ()


def test_many_imports_need_extended_arguments() -> None:
    # more than 256 names: the import's operand takes an EXTENDED_ARG
    names = "\n    ".join(f"v{i} = {i}" for i in range(300))
    source = f"def f():\n    {names}\n    from far.away import v1, v299\n"
    assert imports_of(compiled(source, "f")) == (Import("far.away", ("v1", "v299")),)
