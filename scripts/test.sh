#!/usr/bin/env bash
# Set up .venv and run the whole test suite (unit + real-server integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python -m pytest "$@"
