#!/bin/sh
# run-inbound.sh - the inbound delivery benchmark: postern vs Debian's
# Postfix, SMTP in (smtp-source, 20 sessions) to Maildir/new out (virtual
# delivery, the same SQLite maps), msg/s and server CPU seconds per 1,000
# messages, median of 3 runs each; a perf profile of postern. Runs
# bench/inbound/run_inbound.py, which starts private instances on
# 127.0.0.1 (stopped by PID at the end) and writes its section of
# bench/RESULTS.md with the figures, the machine and this command.
#
#   make bench                        (builds, then runs every benchmark)
#   sh bench/run-inbound.sh [--runs N] [--messages N] [--servers postfix,postern]
#                           [--perf postern,postfix]
#
# Must run as root with the packages of `scripts/deps.sh bench` installed.
cd "$(dirname "$0")/.." || exit 2
build=${BENCH_BUILD:-$PWD/build/std}
if [ -n "${BENCH_BUILD:-}" ]; then cmd="make bench"; else cmd="sh bench/run-inbound.sh $*"; fi
exec /usr/bin/python3 bench/inbound/run_inbound.py --build "$build" --out bench/RESULTS.md \
    --command "$cmd" "$@"
