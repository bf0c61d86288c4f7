#!/usr/bin/env bash
# Set up a virtualenv with the newest CPython >= 3.13 found, then run the demo, the tests
# or the documentation site.
#
#   bash scripts/run.sh demo [args...]   # the demo: sequential vs anyio.to_thread vs aiointerp
#   bash scripts/run.sh test [args...]   # the test suite (pytest args pass through)
#   bash scripts/run.sh docs [args...]   # serve the documentation site (mkdocs serve)
#   bash scripts/run.sh docs build [args...]  # build it into site/, strict, as CI does
#
# AIOINTERP_PYTHON=/path/to/python picks the interpreter; AIOINTERP_VENV=DIR the venv
# (default .venv). A venv that already exists is reused (pip only installs what is new).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

what="${1:-}"; shift || true
case "$what" in demo|test|docs) ;; *) echo "usage: bash scripts/run.sh demo|test|docs [args...]" >&2; exit 2 ;; esac

ok_python() {  # a CPython >= 3.13 with subinterpreters
  "$1" -c 'import sys, _interpreters; sys.exit(sys.version_info < (3, 13) or sys.implementation.name != "cpython")' 2>/dev/null
}

find_python() {
  local c root
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
  for c in /usr/local/bin/python3.1[3-9] /usr/bin/python3.1[3-9]; do
    if [ -x "$c" ] && ok_python "$c"; then echo "$c"; return; fi
  done
  return 1
}

venv="${AIOINTERP_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  py="${AIOINTERP_PYTHON:-}"
  [ -n "$py" ] || py="$(find_python)" || {
    echo "aiointerp needs CPython >= 3.13 with subinterpreters; none found on PATH or in pyenv." >&2
    echo "Install one (e.g. 'pyenv install 3.13') or set AIOINTERP_PYTHON=/path/to/python3.13." >&2
    exit 3
  }
  echo "== creating $venv with $("$py" -VV | head -1)" >&2
  "$py" -m venv "$venv"
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
"$py" -m pip install -q --disable-pip-version-check -e ".[test]" -r requirements-dev.txt

if [ "$what" = demo ]; then
  exec "$py" examples/demo.py "$@"
fi
echo "== $("$py" -VV | head -1)" >&2
set +e
"$py" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here, not a pass" >&2
  exit 1
fi
exit "$rc"
