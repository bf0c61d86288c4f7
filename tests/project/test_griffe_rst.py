"""docs/_ext/griffe_rst.py: the docstrings' reST, rewritten as Markdown for the site."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "griffe_rst", ROOT / "docs" / "_ext" / "griffe_rst.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("griffe_rst", module)
    spec.loader.exec_module(module)
    return module


griffe_rst = _load()
PUBLIC = {
    "aiointerp.Interrupted",
    "aiointerp.InterpreterPool.run_sync",
    "aiointerp.worker",
}


def fake_resolve(role: str, target: str) -> str | None:
    path = target if target.startswith("aiointerp") else f"aiointerp.{target}"
    return path if path in PUBLIC else None


@pytest.mark.parametrize(
    ("rst", "markdown"),
    [
        (":class:`~aiointerp.Interrupted`", "[`Interrupted`][aiointerp.Interrupted]"),
        (
            ":exc:`aiointerp.Interrupted`",
            "[`aiointerp.Interrupted`][aiointerp.Interrupted]",
        ),
        (
            ":meth:`InterpreterPool.run_sync`",
            "[`InterpreterPool.run_sync()`][aiointerp.InterpreterPool.run_sync]",
        ),
        (":mod:`aiointerp.worker`", "[`aiointerp.worker`][aiointerp.worker]"),
        (":func:`functools.partial`", "`functools.partial()`"),
        (":func:`~time.monotonic`", "`monotonic()`"),
        (":mod:`aiointerp._dask._compat`", "`aiointerp._dask._compat`"),
        (
            ":class:`the pool <InterpreterPool.run_sync>`",
            "[`the pool`][aiointerp.InterpreterPool.run_sync]",
        ),
        (":py:class:`TimeoutError`", "`TimeoutError`"),
        ("``None`` or ``x``", "`None` or `x`"),
        ("``a`b``", "`` a`b ``"),
        ("a :param x: field", "a :param x: field"),
        (".. rubric:: Cancellation", "**Cancellation**"),
    ],
)
def test_inline(rst: str, markdown: str) -> None:
    assert griffe_rst.convert(rst, fake_resolve) == markdown


def test_literal_blocks() -> None:
    rst = "Use it so::\n\n    x = 1\n    if x:\n        pass\n\nThen:\n\n  a tree ::\n\n      ├── no Python\n\nEnd."
    assert griffe_rst.convert(rst, fake_resolve) == (
        "Use it so:\n\n```python\nx = 1\nif x:\n    pass\n```\n\nThen:\n\n"
        "  a tree\n\n  ```text\n  ├── no Python\n  ```\n\nEnd."
    )


def test_roles_in_literal_blocks_stay() -> None:
    rst = "Example::\n\n    s = ':class:`X` ``y``'\n"
    assert "s = ':class:`X` ``y``'" in griffe_rst.convert(rst, fake_resolve)


def test_prose_after_fields_moves_before_them() -> None:
    rst = (
        "Summary.\n\n:param x: the x,\n    on two lines\n:raises ValueError: bad\n\n"
        "**Cancellation**\n\nThe call stops.\n"
    )
    assert griffe_rst.convert(rst, fake_resolve) == (
        "Summary.\n\n**Cancellation**\n\nThe call stops.\n\n"
        ":param x: the x,\n    on two lines\n:raises ValueError: bad"
    )


# -- on the real package, as mkdocs.yml loads it

_ROLE_LEFT = re.compile(
    r":(?:class|func|meth|mod|exc|data|attr|obj):`|``|^\.\. \w+::", re.M
)


@pytest.fixture(scope="module")
def package() -> object:
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    return griffe.load(
        "aiointerp",
        search_paths=[str(ROOT / "src")],
        extensions=griffe.load_extensions(griffe_rst.ReSTDocstrings),
        resolve_aliases=True,
    )


def _docstring(package: object, path: str) -> str:
    return package[path].docstring.value  # type: ignore[index, no-any-return]


def test_public_targets_become_links(package: object) -> None:
    pool = _docstring(package, "InterpreterPool")
    assert "[`Interrupted`][aiointerp.Interrupted]" in pool
    assert "[`run_sync_in_interpreter()`][aiointerp.run_sync_in_interpreter]" in pool
    assert "`os.cpu_count()`" in pool
    # imported into _api.py under its own name: linked under its public one
    run = _docstring(package, "run_sync_in_interpreter")
    assert "[`InterpreterPool.run_sync()`][aiointerp.InterpreterPool.run_sync]" in run
    # a relative reference inside a class is that class's member
    errors = _docstring(package, "_wire._errors")
    assert "[`RemoteTraceback`][aiointerp.RemoteTraceback]" in errors
    dask = _docstring(package, "dask")
    assert "`aiointerp._dask._compat`" in dask
    assert "][aiointerp._" not in dask


def test_no_rest_left_in_public_docstrings(package: object) -> None:
    """Every reST form the docstrings use is converted: the site shows no raw reST."""
    left = {}
    for obj in _public_objects(package):
        text = obj.docstring.value if obj.docstring else ""  # type: ignore[attr-defined]
        if _ROLE_LEFT.search(re.sub(r"```.*?```", "", text, flags=re.S)):
            left[obj.path] = text  # type: ignore[attr-defined]
    assert not left, left


def _public_objects(package: Any) -> list[Any]:
    """The objects the API reference shows: public modules, their names, members."""
    found = []
    for module in (package, package["worker"], package["asgi"], package["dask"]):
        found.append(module)
        for name in module.exports:
            obj = module[name]
            obj = obj.final_target if obj.is_alias else obj
            found.append(obj)
            if obj.is_class:
                found += [
                    member
                    for member_name, member in obj.members.items()
                    if not member_name.startswith("_") and not member.is_alias
                ]
    assert len(found) > 40
    return found
