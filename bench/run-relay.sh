#!/bin/sh
# run-relay.sh - the relay benchmark: postern vs Debian's Postfix, SMTP in
# (smtp-source, 20 sessions, one recipient in a non-local domain each) and
# out through relayhost = [127.0.0.1]:PORT to Debian's smtp-sink; msg/s
# (first message in to last message received by the sink) and server CPU
# seconds per 1,000 messages, median of 3 runs each; a perf profile of
# postern. Runs bench/relay/run_relay.py, which starts private instances
# on 127.0.0.1 (stopped by PID at the end) and writes its section of
# bench/RESULTS.md with the figures, the machine and this command.
#
#   make bench                        (builds, then runs every benchmark)
#   sh bench/run-relay.sh [--runs N] [--messages N] [--servers postfix,postern]
#                         [--perf postern,postfix]
#
# Must run as root with the packages of `scripts/deps.sh bench` installed.
cd "$(dirname "$0")/.." || exit 2
build=${BENCH_BUILD:-$PWD/build/std}
if [ -n "${BENCH_BUILD:-}" ]; then cmd="make bench"; else cmd="sh bench/run-relay.sh $*"; fi
exec /usr/bin/python3 bench/relay/run_relay.py --build "$build" --out bench/RESULTS.md \
    --command "$cmd" "$@"
