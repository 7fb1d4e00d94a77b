#!/usr/bin/env bash
# Sentence mode against simultaneous mode in one command: the offline profile on the shared Spanish
# FLEURS clips at real-time pace, each mode's quality (ASR-BLEU, text BLEU) and latency the way the
# field reports it (StartOffset, EndOffset, first audio after the end of speech, LAAL/YAAL); then
# both modes on the shared 60 s Spanish talk and on a 10-minute talk built from the shared clips
# (benchmarks/bench_lag.py: does the lag grow? CPU real-time factor). About 35 minutes.
# Writes eval-out/sentence/, eval-out/simultaneous/ and eval-out/lag/.
set -euo pipefail
# The shared data folder (benchmarks/README.md, "The data"): $S3TVR_DATA, else ../shared/data beside the checkout.
S3TVR_DATA=$(cd "${S3TVR_DATA:-$(dirname "$0")/../../shared/data}" 2>/dev/null && pwd) \
    || { echo "no shared data folder: set S3TVR_DATA (benchmarks/README.md)" >&2; exit 2; }
export S3TVR_DATA
cd "$(dirname "$0")/.."
for mode in sentence simultaneous; do
    echo "== $mode"
    .venv/bin/s3tvr eval --data "$S3TVR_DATA/speech/fleurs" --pair es-en --out "eval-out/$mode" --set "simultaneous.mode=$mode" "$@"
done
.venv/bin/python benchmarks/bench_lag.py
