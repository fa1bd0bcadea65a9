#!/usr/bin/env bash
# Create .venv (if missing) and install servekit into it. torch is pinned and installed first,
# so pip never resolves an unpinned torch to a multi-gigabyte CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import servekit, torch; print(f'servekit {servekit.__version__} with torch {torch.__version__} in .venv')"
