#!/usr/bin/env bash
# Rewrite constraints.txt from the course venv (.venv by default), after installing and testing there:
#   python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && <run the tests> && scripts/freeze-constraints.sh
# Keeps the header comment block of constraints.txt, drops pip/wheel and the project itself,
# and writes torch's local CPU label away (torch==X.Y.Z also matches X.Y.Z+cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
header="$(sed -n '/^#/!q;p' constraints.txt 2>/dev/null || true)"
{
  [ -n "$header" ] && printf '%s\n' "$header"
  "$venv/bin/pip" freeze --all --exclude-editable \
    | grep -viE '^(pip|wheel|linattn[-_]edu)==' \
    | sed -E 's/^(torch==[0-9.]+)\+[a-z0-9]+$/\1/'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '^[^#]' constraints.txt) pinned packages"
