#!/usr/bin/env bash
# Sets up edgegen with the bundled default models and runs the main job on them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${EDGEGEN_VENV:-.venv}"
if [ "$#" -eq 0 ]; then set -- "What is the capital of France? Answer in one sentence."; fi
# greedy by default: a 135M model answers best without sampling noise (pass --temperature to change)
exec "$venv/bin/edgegen" run --max-tokens 64 --temperature 0 "$@"
