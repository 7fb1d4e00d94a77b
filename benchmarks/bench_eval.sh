#!/usr/bin/env bash
# The README's eval figures: the offline profile on the shared Spanish FLEURS clips, real-time pace.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/s3tvr eval --data ../shared/data/speech/fleurs --pair es-en --out eval-out "$@"
