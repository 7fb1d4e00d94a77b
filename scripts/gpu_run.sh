#!/usr/bin/env bash
# On the lent GPU machine, the one command of a lease: install the kit (no registry reaches there),
# check its imports, then measure the stack (benchmarks/gpu/gpu_run.py; its own steps' limits keep it
# inside one call). Through the device tool's run: command "bash scripts/gpu_run.sh",
# carry ["gpu-kit"], timeout_s 600. Extra arguments go to gpu_run.py (--tiny: the rehearsal);
# --install-only installs and checks the kit, nothing more. GPU_KIT, GPU_SITE, PYTHON, OUT: where.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu}
PY=${PYTHON:-python3}
KIT=${GPU_KIT:-gpu-kit}
SITE=${GPU_SITE:-/tmp/gpu-site}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 GPU_KIT="$KIT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$KIT/*.whl" >/dev/null; then
  # --target: the kit's packages beside the machine's own, first on the path (it holds only what
  # is missing there, and lightning 2.4.0 for NeMo); --no-deps: nothing is fetched, none can be.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/*.whl \
    >"$OUT/install.log" 2>&1 || echo "kit install failed: see install.log" | tee -a "$OUT/install.log"
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
"$PY" scripts/gpu_kit_check.py --kit "$KIT" 2>&1 | tee "$OUT/kit_check.log"
kit_ok=$?
if [ "${1:-}" = "--install-only" ]; then
  exit $kit_ok
fi
"$PY" benchmarks/gpu/gpu_run.py --out "$OUT" "$@" 2>&1 | tee "$OUT/run.log"
