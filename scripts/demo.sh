#!/usr/bin/env bash
# Sets up edgegen with the bundled default models and runs the main job on them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${EDGEGEN_VENV:-.venv}"
exec "$venv/bin/edgegen" bench --quick "$@"
