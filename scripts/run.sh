#!/usr/bin/env bash
# Set up a virtualenv with a CPython >= 3.13, then run the demo, the tests or the
# documentation site.
#
#   bash scripts/run.sh demo [args...]   # the demo: sequential vs anyio.to_thread vs aiointerp
#   bash scripts/run.sh test [args...]   # the test suite (pytest args pass through;
#                                        #   2 test processes: AIOINTERP_TEST_PROCESSES)
#   bash scripts/run.sh test -m "not stress and not slow"  # the quick tier: under 5
#                                        #   minutes on 2 CPUs (tests/conftest.py: SLOW)
#   bash scripts/run.sh docs [args...]   # serve the documentation site (mkdocs serve)
#   bash scripts/run.sh docs build [args...]  # build it into site/, strict, as CI does
#   bash scripts/run.sh which demo|test  # which Python each would set up, and why
#
# test and docs: the first CPython >= 3.13 found (python3.15 ... python3 on PATH, then
# pyenv's versions, newest first, then /usr/local/bin and /usr/bin), in .venv, with
# every development package. demo: the newest of all the CPythons >= 3.13 found there,
# passing over releases with a known crash defect (src/aiointerp/_host/_defects.py: 3.13.0)
# when another one is found, in .venv-demo, with only what the demo needs (aiointerp
# and trio: the `demo` extra).
#
# AIOINTERP_PYTHON=/path/to/python picks the interpreter; AIOINTERP_VENV=DIR the venv
# (default .venv, .venv-demo for the demo). A venv that already exists is reused (pip
# only installs what is new). AIOINTERP_SEARCH_DIRS replaces "/usr/local/bin /usr/bin",
# the directories searched after PATH and pyenv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

what="${1:-}"; shift || true
case "$what" in demo|test|docs|which) ;; *) echo "usage: bash scripts/run.sh demo|test|docs|which [args...]" >&2; exit 2 ;; esac

ok_python() {  # a CPython >= 3.13 with subinterpreters
  "$1" -c 'import sys, _interpreters; sys.exit(sys.version_info < (3, 13) or sys.implementation.name != "cpython")' 2>/dev/null
}

search_dirs="${AIOINTERP_SEARCH_DIRS-/usr/local/bin /usr/bin}"

find_python() {
  local c root d
  for c in python3.15 python3.14 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 && ok_python "$c"; then command -v "$c"; return; fi
  done
  # pyenv installs that are not active (python3.13 on PATH may be a shim that refuses)
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for c in $(ls -d "$root"/versions/3.1[3-9]* 2>/dev/null | sort -V -r); do
      if ok_python "$c/bin/python3"; then echo "$c/bin/python3"; return; fi
    done
  fi
  for d in $search_dirs; do
    for c in "$d"/python3.1[3-9]; do
      if [ -x "$c" ] && ok_python "$c"; then echo "$c"; return; fi
    done
  done
  return 1
}

# -- the demo's choice: every candidate is asked what it is

candidates() {  # every python that may be a CPython >= 3.13, one path a line
  local c root d
  for c in python3.19 python3.18 python3.17 python3.16 python3.15 python3.14 python3.13 python3; do
    command -v "$c" 2>/dev/null || true
  done
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for c in "$root"/versions/3.1[3-9]*/bin/python3; do [ -x "$c" ] && echo "$c"; done
  fi
  for d in $search_dirs; do
    for c in "$d"/python3.1[3-9]; do [ -x "$c" ] && echo "$c"; done
  done
  return 0
}

#: run by each candidate: "version<TAB>executable<TAB>crash defect (or nothing)" for a
#: CPython >= 3.13 with subinterpreters on which the pool runs; fails otherwise
probe='import sys
import _interpreters
if sys.version_info < (3, 13) or sys.implementation.name != "cpython":
    sys.exit(1)
sys.path.insert(0, sys.argv[1])
from aiointerp._host import _defects
if _defects.free_threaded_refusal() is not None:
    sys.exit(1)
crash = [d.summary for d in _defects.defects_of() if d.warn]
version = ".".join(map(str, sys.version_info[:3]))
print(version, sys.executable, crash[0] if crash else "", sep="\t")'

pick_demo_python() {  # prints the chosen python; says which and why on stderr
  local c line found=() version exe defect chosen="" why="" skipped=""
  while IFS= read -r c; do
    line="$("$c" -c "$probe" "$PWD/src" 2>/dev/null)" || continue
    found+=("$line")
  done < <(candidates)
  if [ "${#found[@]}" -eq 0 ]; then return 1; fi
  # newest first, one line per executable (a shim and its target are one)
  local sorted
  sorted="$(printf '%s\n' "${found[@]}" | sort -t $'\t' -k2,2 -u | sort -t $'\t' -k1,1Vr)"
  while IFS=$'\t' read -r version exe defect; do
    if [ -z "$defect" ]; then
      chosen="$exe"
      why="CPython $version ($exe): the newest supported Python found"
      [ -z "$skipped" ] || why="$why without a known crash defect$skipped"
      break
    fi
    skipped="$skipped; passed over CPython $version ($exe), which has a known crash defect: $defect"
  done <<<"$sorted"
  if [ -z "$chosen" ]; then
    IFS=$'\t' read -r version exe defect <<<"$(head -1 <<<"$sorted")"
    chosen="$exe"
    why="CPython $version ($exe): the newest supported Python found, though it has a known crash defect: $defect. The demo does not trigger it; for your own code, install a newer release (e.g. pyenv install ${version%.*}) or set AIOINTERP_PYTHON"
  fi
  echo "== demo Python: $why" >&2
  echo "$chosen"
}

no_python() {
  echo "aiointerp needs CPython >= 3.13 with subinterpreters; none found on PATH, in pyenv or in $search_dirs." >&2
  echo "Install one (e.g. 'pyenv install 3.14') or set AIOINTERP_PYTHON=/path/to/python3.14." >&2
  exit 3
}

if [ "$what" = which ]; then  # tell, create nothing
  case "${1:-test}" in
    demo) [ -n "${AIOINTERP_PYTHON:-}" ] && { echo "$AIOINTERP_PYTHON"; exit 0; }
          pick_demo_python || no_python ;;
    test|docs) [ -n "${AIOINTERP_PYTHON:-}" ] && { echo "$AIOINTERP_PYTHON"; exit 0; }
               find_python || no_python ;;
    *) echo "usage: bash scripts/run.sh which demo|test" >&2; exit 2 ;;
  esac
  exit 0
fi

if [ "$what" = demo ]; then
  venv="${AIOINTERP_VENV:-.venv-demo}"
else
  venv="${AIOINTERP_VENV:-.venv}"
fi
if [ ! -x "$venv/bin/python" ]; then
  py="${AIOINTERP_PYTHON:-}"
  if [ -z "$py" ] && [ "$what" = demo ]; then
    py="$(pick_demo_python)" || no_python
  fi
  [ -n "$py" ] || py="$(find_python)" || no_python
  echo "== creating $venv with $("$py" -VV | head -1)" >&2
  "$py" -m venv "$venv"
elif [ "$what" = demo ]; then
  echo "== demo Python: $("$venv/bin/python" -VV | head -1), of $venv (delete it to choose again)" >&2
fi
ok_python "$venv/bin/python" || { echo "$venv does not hold a CPython >= 3.13 with subinterpreters" >&2; exit 3; }
py="$venv/bin/python"
if [ "$what" = docs ]; then
  "$py" -m pip install -q --disable-pip-version-check -e ".[docs]"
  export NO_MKDOCS_2_WARNING=1  # mkdocs-material's banner about its successor
  case "${1:-}" in
    build) shift; exec "$py" -m mkdocs build --strict "$@" ;;
    serve) shift ;;
  esac
  exec "$py" -m mkdocs serve "$@"  # other arguments go to mkdocs serve
fi
if [ "$what" = demo ]; then
  "$py" -m pip install -q --disable-pip-version-check -e ".[demo]"
  exec "$py" examples/demo.py "$@"
fi
"$py" -m pip install -q --disable-pip-version-check -e ".[test]" -r requirements-dev.txt
echo "== $("$py" -VV | head -1)" >&2
set +e
# two test processes (pytest-xdist): the suite waits on workers, processes and
# servers as much as it computes (-n 0 after it runs it in one process)
"$py" -m pytest -n "${AIOINTERP_TEST_PROCESSES:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here, not a pass" >&2
  exit 1
fi
exit "$rc"
