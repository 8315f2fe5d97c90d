#!/usr/bin/env bash
# A local fuzz campaign on one target: scripts/fuzz.sh TARGET SECONDS [--runs N] [--timeout S]
# Targets: tests/fuzz/targets.py. New inputs collect in build/fuzz/corpus/TARGET, crashes in
# build/fuzz/artifacts/TARGET; each campaign's figures are appended to build/fuzz/campaigns.jsonl.
# The machine is shared? Run it under `nice -n 19`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -lt 2 ]; then
    echo "usage: scripts/fuzz.sh TARGET SECONDS [--runs N] [--timeout S]" >&2
    exit 2
fi
py="${EDGEGEN_PYTHON:-${EDGEGEN_VENV:-.venv}/bin/python}"
[ -x "$py" ] || py=python3
exec "$py" -m tests.fuzz.fuzzlib "$@"
