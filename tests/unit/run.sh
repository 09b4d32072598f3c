#!/bin/sh
# run.sh - run every cmocka unit-test binary given as arguments, show their
# output, and print one summary line "unit: N passed, N failed".
# Used by `make unit` / `make check`. Exits 1 when any test failed or any
# binary died without reporting (a crash or a sanitizer abort counts as one
# failure of that binary).
passed=0
failed=0
for bin in "$@"; do
    out=$("$bin" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
    passed=$((passed + ${p:-0}))
    if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
        echo "run.sh: $bin exited with status $rc without a cmocka summary" >&2
        f=1
    fi
    failed=$((failed + ${f:-0}))
done
echo "unit${SUITE_SUFFIX:-}: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
