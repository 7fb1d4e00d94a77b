#!/usr/bin/env bash
# The locks of tested versions (locks/offline.txt, locks/stack.txt) and the releases that move under them.
#
#   scripts/lock.sh update    re-resolve both locks to the newest releases pyproject.toml's ranges allow,
#                             install the stack's set in a fresh venv with setup.sh, run CI's checks
#                             (ruff, the whole test suite with the stack required); write locks/ only if they pass
#   scripts/lock.sh newest    the early warning: the same newest set and fresh venv, only the stack's tests
#                             (pytest -m stack); says what moved and whether it breaks us; never writes locks/
#   scripts/lock.sh compile   re-resolve after a change to pyproject.toml or locks/*.in, keeping every pin
#                             that still fits; no install, no tests (run update or CI before trusting it)
#
# Locks are made by uv's resolver (`uv pip compile`, uv pinned below): it resolves the 230-package stack
# in seconds for a named platform (Linux x86_64, Python 3.11, the only one tested), and writes a plain
# requirements file that setup.sh installs with pip, so the install needs nothing beyond pip.
# Work happens in a folder under /tmp (or $LOCK_WORK), removed at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
PLATFORM=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)
mode=${1:-}
case "$mode" in
    update|newest|compile) ;;
    *) echo "usage: scripts/lock.sh update|newest|compile" >&2; exit 2 ;;
esac
work=${LOCK_WORK:-$(mktemp -d /tmp/s3tvr-lock.XXXXXX)}
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/locks"
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q "uv==$UV_VERSION"

resolve() {  # PROFILE EXTRAS... -> $work/locks/PROFILE.txt
    local profile=$1; shift
    local extras=() upgrade=()
    for extra in "$@"; do extras+=(--extra "$extra"); done
    if [ "$mode" = compile ]; then
        cp "locks/$profile.txt" "$work/locks/$profile.txt" 2>/dev/null || true  # uv keeps the pins of the output file
    else
        upgrade=(--upgrade)
    fi
    # --find-links: torch's CPU build (offline.in) lies on this machine's disk, as pip is told too.
    "$work/tools/bin/uv" pip compile -q pyproject.toml "locks/$profile.in" "${extras[@]}" "${upgrade[@]}" "${PLATFORM[@]}" \
        --find-links /opt/wheels --custom-compile-command "scripts/lock.sh update" -o "$work/locks/$profile.txt"
    echo "== $profile: what moved against locks/$profile.txt"
    if [ -f "locks/$profile.txt" ]; then
        python3 scripts/lock_check.py --diff "locks/$profile.txt" "$work/locks/$profile.txt"
    else
        echo "no lock yet: $(grep -c '==' "$work/locks/$profile.txt") packages"
    fi
}
resolve offline test
resolve stack test stack
if [ "$mode" = compile ]; then
    cp "$work/locks/offline.txt" "$work/locks/stack.txt" locks/
    echo "locks/ re-resolved (not tested: scripts/lock.sh update tests before it writes)"
    exit 0
fi

# The stack's set, installed the way users install it. The offline set is a subset of the same
# resolution (same ranges, fewer extras), so the stack's tests cover it but for torch's build.
S3TVR_VENV="$work/venv" S3TVR_LOCKS="$work/locks" ./setup.sh --stack
if [ "$mode" = newest ]; then
    set +e
    S3TVR_REQUIRE_STACK=1 "$work/venv/bin/python" -m pytest -q -ra -m stack -p no:cacheprovider
    status=$?
    set -e
    verdict=$([ "$status" = 0 ] && echo "pass" || echo "FAIL (pytest exit $status)")
    echo "== newest releases: the stack's tests $verdict; locks/ unchanged"
    exit $status
fi
"$work/venv/bin/ruff" check .
S3TVR_REQUIRE_STACK=1 "$work/venv/bin/python" -m pytest -q -ra -p no:cacheprovider
cp "$work/locks/offline.txt" "$work/locks/stack.txt" locks/
echo "== the tests pass on the newest set: locks/ updated (commit locks/ with the note of what moved)"
