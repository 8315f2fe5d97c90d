#!/usr/bin/env bash
# Sets up everything the test suite needs (idempotent) and runs the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k kernels -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
venv="${EDGEGEN_VENV:-.venv}"
exec "$venv/bin/python" -m pytest "$@"
