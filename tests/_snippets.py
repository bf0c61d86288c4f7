"""Find the Python code blocks of README.md and docs/, and turn each into a program.

tests/project/test_docs_snippets.py runs them; the rules are in its module docstring. This
module only reads Markdown and writes Python source: it runs nothing.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

#: info strings of the fences that hold Python
PYTHON = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<body>.*?)\s*-->\s*$")
#: ``skip``, then an em dash, an en dash, a hyphen or a colon, then the reason
_SKIP = re.compile(r"^skip\s*(?:\u2014|\u2013|-|:)\s*(?P<reason>\S.*)$")
_NAME = re.compile(r"^[A-Za-z][\w-]*$")
#: top-level statements that stay at module level when a fragment is wrapped into
#: ``async def``: worker interpreters import functions and classes by name
_HOISTED = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)
MAIN = "_snippet_main"


class SnippetError(Exception):
    """A marker that cannot be used: the message says where and why."""


@dataclass
class Snippet:
    """One ```` ```python ```` block and what its markers say about it."""

    file: str  # relative to the repository, with "/"
    line: int  # of the opening fence, 1-based
    source: str  # the block as shown, dedented
    program: str  # the source with the blocks it continues prepended
    skip: str | None = None
    expected: str | None = None  # the stdout it shows, from an output block
    name: str | None = None
    markers: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def kind(self) -> str:
        """``"script"`` (runs as it is) or ``"fragment"`` (has top-level ``await``)."""
        try:
            compile(self.program, self.id, "exec", dont_inherit=True)
        except SyntaxError:
            flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            compile(self.program, self.id, "exec", flags=flags, dont_inherit=True)
            return "fragment"
        return "script"


def collect(path: Path, root: Path) -> list[Snippet]:
    """The Python blocks of one Markdown file, with their markers applied.

    :raises SnippetError: a marker is unknown, misplaced or incomplete
    """
    rel = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").split("\n")
    snippets: list[Snippet] = []
    named: dict[str, Snippet] = {}
    pending: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            pending.append((i + 1, marker["body"]))
            i += 1
            continue
        if "<!--" in line and "snippet:" in line:
            raise SnippetError(f"{rel}:{i + 1}: a snippet marker is one line: {line!r}")
        opening = _FENCE.match(line)
        if not opening:
            if line.strip():
                _no_dangling(rel, pending)
                pending = []
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [
            row[len(indent) :] if row.startswith(indent) else row.lstrip()
            for row in lines[i + 1 : end]
        ]
        text = textwrap.dedent("\n".join(body)) + "\n"
        language = opening["info"].split()[0] if opening["info"] else ""
        markers, pending = pending, []
        if language in PYTHON:
            snippet = _python_block(rel, i + 1, text, markers, snippets, named)
            snippets.append(snippet)
            if snippet.name:
                named[snippet.name] = snippet
        else:
            _other_block(rel, i + 1, text, markers, snippets)
        i = end + 1
    _no_dangling(rel, pending)
    return snippets


def _no_dangling(rel: str, pending: list[tuple[int, str]]) -> None:
    if pending:
        line, body = pending[0]
        raise SnippetError(
            f"{rel}:{line}: marker {body!r} is not followed by a code block"
        )


def _python_block(
    rel: str,
    line: int,
    text: str,
    markers: list[tuple[int, str]],
    earlier: list[Snippet],
    named: dict[str, Snippet],
) -> Snippet:
    snippet = Snippet(rel, line, text, text, markers=[body for _, body in markers])
    for where, body in markers:
        skip = _SKIP.match(body)
        words = body.split()
        if skip:
            snippet.skip = skip["reason"]
        elif words == ["continue"]:
            if not earlier:
                raise SnippetError(f"{rel}:{where}: 'continue', but no block before it")
            snippet.program = _definitions(earlier[-1].program) + text
        elif len(words) == 2 and words[0] == "continue":
            if words[1] not in named:
                raise SnippetError(
                    f"{rel}:{where}: no block named {words[1]!r} before it"
                )
            snippet.program = _definitions(named[words[1]].program) + text
        elif len(words) == 2 and words[0] == "name" and _NAME.match(words[1]):
            snippet.name = words[1]
        elif words and words[0] == "skip":
            raise SnippetError(
                f"{rel}:{where}: say why: <!-- snippet: skip — REASON -->"
            )
        else:
            raise SnippetError(f"{rel}:{where}: unknown snippet marker {body!r}")
    return snippet


def _other_block(
    rel: str,
    line: int,
    text: str,
    markers: list[tuple[int, str]],
    earlier: list[Snippet],
) -> None:
    for where, body in markers:
        if body != "output":
            raise SnippetError(
                f"{rel}:{where}: {body!r} before a block that is not Python"
            )
        if not earlier or earlier[-1].expected is not None:
            raise SnippetError(
                f"{rel}:{where}: output block without a Python block before it"
            )
        earlier[-1].expected = text


def _parse(program: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree: ast.Module = compile(
        program, "<snippet>", "exec", flags=flags, dont_inherit=True
    )
    return tree


def _definitions(program: str) -> str:
    """``program`` without its ``if __name__ == "__main__":`` blocks, for a continuation."""
    tree = _parse(program)
    lines = program.split("\n")
    for node in reversed(tree.body):
        if _is_main_guard(node):
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines).rstrip("\n") + "\n\n"


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and len(node.test.comparators) == 1
        and isinstance(node.test.comparators[0], ast.Constant)
        and node.test.comparators[0].value == "__main__"
    )


def wrap_fragment(program: str) -> str:
    """A script that runs a top-level-``await`` fragment with anyio on ``argv[1]``.

    Imports, functions and classes stay at module level (workers import functions
    from the script, re-run as ``__mp_main__``); the other statements, in their
    order, become the body of an ``async def``, whose assignments are globals.
    """
    tree = _parse(program)
    lines = program.split("\n")
    hoisted: list[str] = []
    body: list[str] = []
    stored: list[str] = []
    for node in tree.body:
        first = min(
            [node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))]
        )
        segment = "\n".join(lines[first - 1 : node.end_lineno])
        if isinstance(node, _HOISTED):
            hoisted.append(segment)
            continue
        body.append(segment)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                if sub.id not in stored:
                    stored.append(sub.id)
    main = "\n".join(body) or "pass"
    if stored:
        main = f"global {', '.join(stored)}\n{main}"
    return (
        "\n\n".join(hoisted)
        + f"\n\n\nasync def {MAIN}() -> None:\n"
        + textwrap.indent(main, "    ")
        + "\n\n\nif __name__ == '__main__':\n"
        + "    import sys as _sys\n\n    import anyio as _anyio\n\n"
        + f"    _anyio.run({MAIN}, backend=_sys.argv[1])\n"
    )


def output_matches(expected: str, actual: str) -> bool:
    """Compare stdout with an output block, line by line.

    Trailing whitespace and blank lines at the ends do not count. A line that is
    just ``...`` matches any number of lines, none included; ``...`` inside a line
    matches any text within that line.
    """
    pattern = []
    for line in expected.strip("\n").split("\n"):
        line = line.rstrip()
        if line == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(re.escape(line).replace(re.escape("..."), r"[^\n]*") + r"\n")
    text = "\n".join(row.rstrip() for row in actual.strip("\n").split("\n")) + "\n"
    return re.fullmatch("".join(pattern), text) is not None
