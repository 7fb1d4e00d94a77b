#!/usr/bin/env bash
# Set up s3tvr in .venv: Debian packages (when root), then exactly the versions CI tested (locks/,
# made by scripts/lock.sh) with the offline weights and test tools. Safe to run again.
#   ./setup.sh           the offline profile (CPU torch 2.13, ~2.4 GB): locks/offline.txt
#   ./setup.sh --stack   also the model stack: NeMo, transformers, coqui-tts (torch 2.9.1 with CUDA, ~9 GB): locks/stack.txt
# Once a venv has the stack, plain ./setup.sh keeps it. S3TVR_VENV and S3TVR_LOCKS name another venv
# and locks folder (scripts/lock.sh installs a candidate lock into a fresh venv this way).
set -euo pipefail
cd "$(dirname "$0")"
venv=${S3TVR_VENV:-.venv}
locks=${S3TVR_LOCKS:-locks}
stack=0
for arg in "$@"; do
    case "$arg" in
        --stack) stack=1 ;;
        *) echo "usage: ./setup.sh [--stack]" >&2; exit 2 ;;
    esac
done
# A full disk otherwise shows as pip's "No space left on device" minutes in, with a half-built venv.
# Only a first install needs the space (the venv measures ~3.6 GB offline, ~10 GB with the stack; pip
# unpacks each wheel beside it).
if [ ! -x "$venv/bin/python" ] || { [ "$stack" = 1 ] && [ ! -f "$venv/.s3tvr-stack" ]; }; then
    need_gb=$([ "$stack" = 1 ] && echo 14 || echo 5)
    free_gb=$(( $(df -Pk . | awk 'NR == 2 {print $4}') / 1048576 ))
    if [ "$free_gb" -lt "$need_gb" ]; then
        echo "setup.sh: ${free_gb} GB free on $(df -P . | awk 'NR == 2 {print $6}'), the install needs about ${need_gb} GB: free some space and run it again" >&2
        exit 1
    fi
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    # chromium, chromium-driver: the web page's browser test (tests/test_browser.py drives headless Chromium).
    # apertium, apertium-eng-spa: the offline profile's en<->es translation; espeak-ng: its voices'
    # phonemes (Kokoro) and its live Spanish voice.
    for pkg in libportaudio2 ffmpeg pulseaudio pulseaudio-utils libasound2-plugins chromium chromium-driver \
               apertium apertium-eng-spa espeak-ng; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" "$(grep '^pip==' locks/no-deps.txt)"  # the installer first, at the version CI used
[ -f "$venv/.s3tvr-stack" ] && stack=1
if [ "$stack" = 1 ]; then lock=$locks/stack.txt; again="./setup.sh --stack"; else lock=$locks/offline.txt; again="./setup.sh"; fi
# Every package at the version in the lock (torch included: the lock pins 2.13.0, whose CPU build lies on
# this machine's disk, or 2.9.1 for the stack), then s3tvr itself without resolving anything again.
"${pip[@]}" -r "$lock"
"${pip[@]}" --no-deps -e .
"${pip[@]}" --no-deps -r locks/no-deps.txt
if [ "$stack" = 1 ]; then touch "$venv/.s3tvr-stack"; fi
# pip leaves what the lock does not name (an old venv's leftovers, a package installed by hand): say so.
if differs=$("$venv/bin/python" scripts/lock_check.py "$lock" locks/no-deps.txt); then
    echo "setup.sh: $venv holds exactly $lock ($(grep -c '==' "$lock") packages, the set CI tested)"
else
    echo "setup.sh: $venv differs from $lock: $differs; rm -rf $venv && $again installs exactly the tested set" >&2
fi
