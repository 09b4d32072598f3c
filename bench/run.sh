#!/bin/sh
# run.sh - run every benchmark: each bench/run-NAME.sh in turn. Called by
# `make bench`, which builds the programs first and sets BENCH_BUILD to
# the build directory holding bin/ and bench/NAME_bench. Each writes its
# section of bench/RESULTS.md. Exits non-zero when any benchmark failed to
# run (never because of the figures: there are no thresholds).
cd "$(dirname "$0")/.." || exit 2
status=0
for script in bench/run-*.sh; do
    echo "== $script"
    sh "$script" || status=1
done
exit $status
