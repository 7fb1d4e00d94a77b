#!/usr/bin/env bash
# The eval figures (docs/measurements.md): the offline profile on the shared Spanish FLEURS clips, real-time pace.
set -euo pipefail
# The shared data folder (benchmarks/README.md, "The data"): $S3TVR_DATA, else ../shared/data beside the checkout.
S3TVR_DATA=$(cd "${S3TVR_DATA:-$(dirname "$0")/../../shared/data}" 2>/dev/null && pwd) \
    || { echo "no shared data folder: set S3TVR_DATA (benchmarks/README.md)" >&2; exit 2; }
export S3TVR_DATA
cd "$(dirname "$0")/.."
.venv/bin/s3tvr eval --data "$S3TVR_DATA/speech/fleurs" --pair es-en --out eval-out "$@"
