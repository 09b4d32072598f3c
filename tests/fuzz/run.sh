#!/bin/sh
# run.sh SECONDS TARGET... - run each libFuzzer target for SECONDS on a
# scratch copy of its seed corpus (tests/fuzz/corpus/NAME), so the corpus
# it grows is never written into the source tree. A target that finds a
# crash fails; prints "fuzz: N passed, N failed" (one count per target).
# Used by `make fuzz`.
seconds=$1
shift
passed=0
failed=0
for bin in "$@"; do
    name=$(basename "$bin" | sed 's/^fuzz_//')
    work=$(mktemp -d) || exit 2
    [ -d "tests/fuzz/corpus/$name" ] && cp tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
    if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
        passed=$((passed + 1))
        echo "fuzz_$name: $(grep -E '^stat::number_of_executed_units' "$work.log" | awk '{print $2}') runs, no crash"
    else
        failed=$((failed + 1))
        echo "fuzz_$name: FAILED"
        tail -n 40 "$work.log"
        ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null
    fi
    rm -rf "$work" "$work.log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
