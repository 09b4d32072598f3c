#!/bin/sh
# run-lookup.sh - the lookup benchmark: lookups/second per table type
# (sqlite:, mysql:, pgsql:), cache off and on, 1, 8 and 64 lookups in
# flight through table_async. Starts private MariaDB and PostgreSQL servers
# on 127.0.0.1 (the system-test harness, stopped by PID at the end), loads
# the schema and data, runs $BENCH_BUILD/bench/lookup_bench and writes
# bench/RESULTS.md with the figures, the machine, the date and this command.
#
#   make bench                        (builds, then runs every benchmark)
#   sh bench/run-lookup.sh [--seconds N] [--mailboxes N] [--workers N]
#                          [--backends sqlite,mysql,pgsql]
#
# Must run as root (the harness runs PostgreSQL as the postgres user) with
# the packages of scripts/deps.sh installed.
cd "$(dirname "$0")/.." || exit 2
build=${BENCH_BUILD:-$PWD/build/std}
if [ ! -x "$build/bench/lookup_bench" ]; then
    echo "run-lookup.sh: $build/bench/lookup_bench missing: run make bench" >&2
    exit 2
fi
if [ -n "${BENCH_BUILD:-}" ]; then cmd="make bench"; else cmd="sh bench/run-lookup.sh $*"; fi
exec /usr/bin/python3 bench/lookup/run_lookup.py --build "$build" --out bench/RESULTS.md \
    --command "$cmd" "$@"
