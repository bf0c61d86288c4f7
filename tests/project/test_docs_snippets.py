"""Every ```` ```python ```` block of README.md and docs/ runs, as a user would run it.

Each block is written to a file in a temporary directory and run there with this
Python, in a subprocess (``conftest.child_env()``): a function it defines is then
importable by the worker interpreters, which re-run the script as ``__mp_main__``,
exactly as for a user's script. The test id is ``FILE:LINE`` of the opening fence.

* A block that compiles as it is (a complete program, or definitions) runs once:
  programs written for one loop (``asyncio.run``, ``trio.run``) run on that loop.
* A block with top-level ``await``, ``async for`` or ``async with`` (a fragment, as
  typed in a notebook or ``python -m asyncio``) runs on asyncio and on trio: its
  imports, functions and classes stay at module level and its other statements
  become the body of an ``async def`` that ``anyio.run`` runs on each backend.
* It must exit with status 0 and print no traceback on stderr.

Markers are HTML comments, one per line, right before the fence (blank lines may
separate them); they are invisible on GitHub and on the built site:

* ``<!-- snippet: skip — REASON -->``: not run, for REASON (a server, a cluster...);
  the reason is required and shows in pytest's summary of skipped tests.
* ``<!-- snippet: continue -->``: the previous Python block of the page is prepended,
  without its ``if __name__ == "__main__":`` block (so a continuation uses the
  definitions of a complete program without running it again).
  ``<!-- snippet: name NAME -->`` names a block, ``<!-- snippet: continue NAME -->``
  continues that one instead.
* ``<!-- snippet: output -->`` before a non-Python block (```` ```text ````): that block
  is the standard output of the Python block before it. Lines are compared one by one,
  ignoring trailing whitespace and blank lines at the ends; a line that is just
  ``...`` matches any number of lines (none included), and ``...`` inside a line
  matches any text within it.

A stand-in ``myapp/cpu.py`` (``count_primes``), the "light module of your own" of
docs/web-frameworks.md, sits beside each program. The blocks of docs/benchmarks/
(generated reports) are not collected. An unknown or misplaced marker fails the test
``test_markers``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _snippets import Snippet, SnippetError, collect, output_matches, wrap_fragment
from conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted(
        path
        for path in (ROOT / "docs").rglob("*.md")
        if path.relative_to(ROOT / "docs").parts[0] not in {"benchmarks", "_ext"}
    ),
]
BACKENDS = ("asyncio", "trio")
TIMEOUT = 100  # a hang guard: each block takes about a second

MYAPP_CPU = '''\
"""Stand-in for the light module of CPU functions of docs/web-frameworks.md."""


def count_primes(n: int) -> int:
    return sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n))
'''


def _collect() -> tuple[list[Snippet], list[str]]:
    snippets: list[Snippet] = []
    errors: list[str] = []
    for page in PAGES:
        try:
            snippets += collect(page, ROOT)
        except SnippetError as exc:
            errors.append(str(exc))
    return snippets, errors


SNIPPETS, ERRORS = _collect()


def _params() -> list[object]:
    params: list[object] = []
    for snippet in SNIPPETS:
        if snippet.skip:
            mark = pytest.mark.skip(reason=f"{snippet.id}: {snippet.skip}")
            params.append(pytest.param(snippet, None, id=snippet.id, marks=mark))
            continue
        try:
            kind = snippet.kind
        except SyntaxError:
            kind = "script"  # the run shows the error
        if kind == "fragment":
            params += [
                pytest.param(snippet, backend, id=f"{snippet.id}-{backend}")
                for backend in BACKENDS
            ]
        else:
            params.append(pytest.param(snippet, None, id=snippet.id))
    return params


@pytest.mark.parametrize(("snippet", "backend"), _params())
def test_snippet(snippet: Snippet, backend: str | None, tmp_path: Path) -> None:
    script = tmp_path / f"{Path(snippet.file).stem.replace('-', '_')}_{snippet.line}.py"
    program = snippet.program if backend is None else wrap_fragment(snippet.program)
    script.write_text(program, encoding="utf-8")
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "myapp" / "cpu.py").write_text(MYAPP_CPU, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, script.name, *([backend] if backend else [])],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    where = f"{snippet.id} ran as:\n{textwrap.indent(program, '    ')}"
    assert done.returncode == 0, f"{where}\nstderr:\n{done.stderr}"
    assert "Traceback (most recent call last)" not in done.stderr, (
        f"{where}\n{done.stderr}"
    )
    if snippet.expected is not None:
        assert output_matches(snippet.expected, done.stdout), (
            f"{where}\nexpected output:\n{snippet.expected}\nstdout:\n{done.stdout}"
        )


def test_markers() -> None:
    assert not ERRORS, "\n".join(ERRORS)


def test_every_page_is_read() -> None:
    files = {snippet.file for snippet in SNIPPETS}
    assert {"README.md", "docs/quickstart.md", "docs/cancellation.md"} <= files
    assert len({snippet.id for snippet in SNIPPETS}) == len(SNIPPETS)


# -- the harness itself


def _parse(tmp_path: Path, markdown: str) -> list[Snippet]:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(markdown), encoding="utf-8")
    return collect(page, tmp_path)


def test_markers_apply(tmp_path: Path) -> None:
    first, second, third, fourth = _parse(
        tmp_path,
        """\
        Text.

        ```python
        def f() -> int:
            return 1

        if __name__ == "__main__":
            print(f())
        ```

        <!-- snippet: output -->
        ```text
        1
        ```

        <!-- snippet: continue -->
        <!-- snippet: name second -->
        ```python
        print(await g(f()))
        ```

        - In a list:

          <!-- snippet: skip — needs a server -->

          ```py
          serve()
          ```

        <!-- snippet: continue second -->
        ```python
        x = 2
        ```
        """,
    )
    assert (first.line, first.expected, first.kind) == (3, "1\n", "script")
    assert second.name == "second"
    assert second.program.startswith("def f() -> int:")
    assert "__main__" not in second.program
    assert second.program.endswith("print(await g(f()))\n")
    assert second.kind == "fragment"
    assert (third.skip, third.source, third.line) == ("needs a server", "serve()\n", 26)
    assert third.program == "serve()\n"
    assert fourth.program.startswith("def f()")
    assert fourth.program.endswith("print(await g(f()))\n\nx = 2\n")


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("<!-- snippet: skip -->\n```python\npass\n```\n", "say why"),
        (
            "<!-- snippet: run twice -->\n```python\npass\n```\n",
            "unknown snippet marker",
        ),
        ("<!-- snippet: continue -->\n```python\npass\n```\n", "no block before it"),
        ("<!-- snippet: continue nope -->\n```python\npass\n```\n", "no block named"),
        ("<!-- snippet: output -->\n```text\n1\n```\n", "without a Python block"),
        ("<!-- snippet: skip — x -->\n```text\n1\n```\n", "not Python"),
        (
            "<!-- snippet: skip — x -->\n\nProse.\n```python\npass\n```\n",
            "not followed",
        ),
        ("<!-- snippet: skip\n  — x -->\n```python\npass\n```\n", "is one line"),
    ],
)
def test_bad_markers(tmp_path: Path, markdown: str, error: str) -> None:
    with pytest.raises(SnippetError, match=error):
        _parse(tmp_path, markdown)


def test_wrap_fragment() -> None:
    script = wrap_fragment(
        "import anyio\n\n@decorated\ndef f(x):\n    return x\n\n"
        "n = 2\nfor i in range(n):\n    total = await f(i)\nprint(total)\n"
    )
    compile(script, "wrapped", "exec")
    module, _, rest = script.partition("async def _snippet_main")
    assert module.strip() == "import anyio\n\n@decorated\ndef f(x):\n    return x"
    assert "    global n, i, total\n    n = 2\n    for i in range(n):" in rest
    assert rest.endswith("_anyio.run(_snippet_main, backend=_sys.argv[1])\n")


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("a\nb\n", "a\nb\n", True),
        ("a\nb\n", "a  \nb\n\n", True),
        ("a\nb\n", "a\nc\n", False),
        ("a\n...\nd\n", "a\nb\nc\nd\n", True),
        ("a\n...\nd\n", "a\nd\n", True),
        ("a\n...\nd\n", "a\nb\n", False),
        ("value: ...\n", "value: 12 ms\n", True),
        ("value: ...\n", "value: 12\nms\n", False),
        ("a.b\n", "aXb\n", False),
    ],
)
def test_output_matches(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches
