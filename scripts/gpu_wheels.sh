#!/usr/bin/env bash
# The GPU kit: downloads here the wheels the lent GPU machine lacks (into gpu-kit/, under the
# 64 MiB a device call carries) and prints what it holds and what did not fit. See scripts/gpu_kit.py.
#   scripts/gpu_wheels.sh [--from DIR] [--limit-mib N] [--kit DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" scripts/gpu_kit.py "$@"
