"""Griffe extension: render aiointerp's reST-flavoured docstrings with mkdocstrings.

The docstrings are written for Sphinx: field lists (``:param x:``, which griffe's
``sphinx`` parser reads), roles (``:class:`~aiointerp.Interrupted```), double
backticks, ``.. rubric::`` and ``::`` literal blocks. mkdocstrings renders docstring
text as Markdown, so this extension rewrites the rest before it is parsed (the way
the mkdocstrings maintainers suggest for other markups: a small Griffe extension):

* a role whose target is a public aiointerp object (no path segment starting with
  ``_``) becomes an autorefs link, ``[`Interrupted`][aiointerp.Interrupted]``; the
  target is looked up from the docstring's own scope, so ``:meth:`run_sync``` in a
  class is that class's method and ``:class:`InterpreterPool``` is the name the
  module imported. Any other target (the standard library, anyio, private objects)
  becomes inline code: no link is left that a build without network could not
  resolve. ``~`` shows the last component only; functions and methods get ``()``;
* ````text```` becomes ```text```;
* ``.. rubric:: Title`` becomes a bold paragraph;
* a paragraph ending in ``::`` and the indented block after it become a fenced
  code block (``python`` when the block parses as Python, ``text`` otherwise);
* prose after a field list (a Cancellation paragraph after ``:raises:``) moves
  before the field list: in reST the field list ends at the first unindented line,
  but griffe's parser would append that prose to the last field; its sections put
  the text first anyway.

Not part of the package: mkdocs.yml loads it by path, and tests/test_griffe_rst.py
tests it. The conversion itself is :func:`convert`, plain text in, plain text out.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable

__all__ = ["ReSTDocstrings", "convert"]

#: ``:role:`target``` or ``:role:`title <target>```; ``py:`` domain prefix allowed
_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|exc|data|attr|obj|const):"
    r"`(?P<body>[^`]+)`"
)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
_LITERAL = re.compile(r"``(?P<code>.+?)``", re.DOTALL)
_RUBRIC = re.compile(r"^(?P<indent>\s*)\.\. rubric:: (?P<title>.+)$")
_CALLABLE_ROLES = frozenset({"func", "meth"})
#: the fields griffe's sphinx parser reads
_FIELD = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword|type|var|ivar|cvar|vartype"
    r"|raises?|except|exception|returns?|rtype)\b"
)

#: ``resolve(role, target)`` returns the public path to link to, or ``None``
Resolver = Callable[[str, str], str | None]


def convert(text: str, resolve: Resolver) -> str:
    """Rewrite one docstring from reST constructs to Markdown (see the module docstring)."""
    out: list[str] = []
    for chunk, is_code in _split_literal_blocks(text):
        out.append(chunk if is_code else _convert_prose(chunk, resolve))
    return _fields_last("\n".join(out))


def _fields_last(text: str) -> str:
    prose: list[str] = []
    fields: list[str] = []
    in_field = False
    for line in text.split("\n"):
        if _FIELD.match(line):
            in_field = True
        elif in_field and line.strip() and not line[0].isspace():
            in_field = False
        (fields if in_field else prose).append(line)
    if not fields:
        return text
    return "\n".join(prose).strip("\n") + "\n\n" + "\n".join(fields).strip("\n")


def _convert_prose(text: str, resolve: Resolver) -> str:
    lines = []
    for line in text.split("\n"):
        rubric = _RUBRIC.match(line)
        if rubric:
            line = f"{rubric['indent']}**{rubric['title'].strip()}**"
        lines.append(line)
    text = "\n".join(lines)
    text = _LITERAL.sub(lambda m: _code(m["code"]), text)
    return _ROLE.sub(lambda m: _role(m["role"], m["body"], resolve), text)


def _code(text: str) -> str:
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def _role(role: str, body: str, resolve: Resolver) -> str:
    titled = _TITLED.match(body)
    if titled:
        title, target = titled["title"], titled["target"].strip()
    else:
        target = body.strip()
        short = target.startswith("~")
        target = target.lstrip("~.!")
        title = target.rpartition(".")[2] if short else target
        if role in _CALLABLE_ROLES:
            title += "()"
    path = resolve(role, target)
    if path is None:
        return _code(title)
    return f"[{_code(title)}][{path}]"


def _split_literal_blocks(text: str) -> list[tuple[str, bool]]:
    """Split into prose and fenced code: ``para::`` + indented block -> a fence."""
    lines = text.split("\n")
    chunks: list[tuple[str, bool]] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if not stripped.endswith("::"):
            prose.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        k = j
        while k < len(lines) and (
            not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > indent
        ):
            k += 1
        while k > j and not lines[k - 1].strip():
            k -= 1
        if k == j:  # no indented block: leave the line alone
            prose.append(line)
            i += 1
            continue
        head = stripped[:-2].rstrip()
        if head.strip():
            # "text::" -> "text:"; "text ::" -> "text"
            prose.append(head if stripped[-3:-2].isspace() else head + ":")
        prose.append("")
        chunks.append(("\n".join(prose), False))
        prose = []
        block = textwrap.dedent("\n".join(lines[j:k]))
        pad = " " * indent
        fence = "\n".join(pad + row if row else row for row in block.split("\n"))
        language = "python" if _is_python(block) else "text"
        chunks.append((f"{pad}```{language}\n{fence}\n{pad}```", True))
        i = k
    chunks.append(("\n".join(prose), False))
    return chunks


def _is_python(block: str) -> bool:
    try:
        ast.parse(block)
    except SyntaxError:
        return False
    return True


def _public_map(modules: list[object]) -> dict[str, str]:
    """canonical path -> public path, for every name the public modules export."""
    public: dict[str, str] = {}
    for module in modules:
        path = module.path  # type: ignore[attr-defined]
        public.setdefault(path, path)
        for name in module.exports or ():  # type: ignore[attr-defined]
            member = module.members.get(name)  # type: ignore[attr-defined]
            if member is None:
                continue
            canonical = member.target_path if member.is_alias else member.path
            public.setdefault(canonical, f"{path}.{name}")
    return public


def _to_public(canonical: str, public: dict[str, str]) -> str | None:
    head, rest = canonical, ""
    while head:
        if head in public:
            path = public[head] + rest
            if any(part.startswith("_") for part in path.split(".")):
                return None
            return path
        head, _, last = head.rpartition(".")
        rest = f".{last}{rest}"
    return None


try:
    import griffe
except ImportError:  # the unit tests of convert() need no griffe
    pass
else:

    class ReSTDocstrings(griffe.Extension):
        """Rewrite every docstring of the package once its object tree is complete."""

        def __init__(self, public_modules: list[str] | None = None) -> None:
            super().__init__()
            self.public_modules = public_modules or [
                "aiointerp",
                "aiointerp.worker",
                "aiointerp.asgi",
                "aiointerp.dask",
            ]

        def on_package(
            self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: object
        ) -> None:
            collection = loader.modules_collection
            modules = [
                collection[name]
                for name in self.public_modules
                if name.split(".")[0] == pkg.name
            ]
            public = _public_map(modules)
            for obj in _walk(pkg):
                if obj.docstring is not None:
                    obj.docstring.value = convert(
                        obj.docstring.value, _resolver(obj, collection, public)
                    )

    def _walk(obj: griffe.Object) -> list[griffe.Object]:
        found = [obj]
        for member in obj.members.values():
            if not member.is_alias:
                found.extend(_walk(member))  # type: ignore[arg-type]
        return found

    def _resolver(
        obj: griffe.Object, collection: griffe.ModulesCollection, public: dict[str, str]
    ) -> Resolver:
        def resolve(role: str, target: str) -> str | None:
            first, _, rest = target.partition(".")
            if first in collection.members:  # an absolute path
                canonical = target
            else:
                scope = obj if obj.is_class or obj.is_module else obj.parent
                try:
                    canonical = scope.resolve(first) if scope else None  # type: ignore[union-attr]
                except griffe.NameResolutionError:
                    return None
                if canonical is None:
                    return None
                if rest:
                    canonical = f"{canonical}.{rest}"
            try:
                found = collection[canonical]
                canonical = found.canonical_path
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                return None
            return _to_public(canonical, public)

        return resolve
