#!/usr/bin/env bash
# test-all.sh - build postern and run every test suite: lint (cppcheck and
# clang-format), unit tests (cmocka), system tests (pytest against real
# servers), then unit and system tests again under AddressSanitizer and
# UBSan, and every libFuzzer target for FUZZ_SECONDS (default 20) each.
# Every suite runs even when an earlier one failed; each prints its
# own "SUITE: N passed, N failed" line and the last line totals them.
# Used by README's test command and by .ci/run. Run scripts/deps.sh first.
set -u
cd "$(dirname "$0")/.." || exit 2
log=$(mktemp) || exit 2
trap 'rm -f "$log"' EXIT
status=0

step() {
    echo "== $*"
    "$@" 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}

lint() {
    if make lint; then
        echo "lint: 1 passed, 0 failed"
    else
        echo "lint: 0 passed, 1 failed"
        return 1
    fi
}

./configure >/dev/null || { echo "configure failed"; exit 1; }
step make -j2 all
step lint
step make unit
step make system
SUITE_SUFFIX=-asan step make -j2 unit SANITIZE=1
SUITE_SUFFIX=-asan step make system SANITIZE=1
step make -j2 fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

sum() { sed -n "s/^[a-z-]*: \([0-9]*\) passed, \([0-9]*\) failed.*/\\$1/p" "$log" | awk '{s+=$1} END {print s+0}'; }
passed=$(sum 1)
failed=$(sum 2)
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "total: $passed passed, $failed failed"
exit "$status"
