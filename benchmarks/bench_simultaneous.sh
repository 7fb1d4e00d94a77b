#!/usr/bin/env bash
# Sentence mode against simultaneous mode in one command: the offline profile on the shared Spanish
# FLEURS clips at real-time pace, each mode's quality (ASR-BLEU, text BLEU) and latency the way the
# field reports it (StartOffset, EndOffset, first audio after the end of speech, LAAL/YAAL); then
# both modes on the shared 60 s Spanish talk and on a 10-minute talk built from the shared clips
# (benchmarks/bench_lag.py: does the lag grow? CPU real-time factor). About 35 minutes.
# Writes eval-out/sentence/, eval-out/simultaneous/ and eval-out/lag/.
set -euo pipefail
cd "$(dirname "$0")/.."
for mode in sentence simultaneous; do
    echo "== $mode"
    .venv/bin/s3tvr eval --data ../shared/data/speech/fleurs --pair es-en --out "eval-out/$mode" --set "simultaneous.mode=$mode" "$@"
done
.venv/bin/python benchmarks/bench_lag.py
