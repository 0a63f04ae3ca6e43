#!/usr/bin/env bash
# Build the course's site (a Sphinx book: sphinx-book-theme + myst-nb) into build/site/, offline:
# no CDN, nothing executed (the committed notebooks and their stored outputs are the pages).
#   scripts/build_site.sh          then open build/site/index.html, or serve it:
#   .venv/bin/python -m http.server -d build/site -b 127.0.0.1 8000
# Needs: the course venv (.venv, quick start: Sphinx and the theme are in the [test] extra) and Node's
# npm (Debian: apt-get install -y nodejs npm) for MathJax, pinned in site/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f site/node_modules/mathjax/es5/tex-chtml-full.js ]; then
  npm ci --prefix site --no-audit --no-fund
fi
.venv/bin/python scripts/build_site.py "$@"
