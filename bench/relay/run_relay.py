#!/usr/bin/python3
"""Relay, postern vs Debian's Postfix: SMTP in, relayhost out, smtp-sink.

Called by bench/run-relay.sh (and so by `make bench`), or by hand:

    bench/relay/run_relay.py --build build/std --runs 3 [--servers postfix,postern]

What a smarthost-fed or outbound relay does all day: accept mail over SMTP
from its networks and pass it on to the next hop.  For each server,
--runs times (alternating between the servers) over a fresh queue:

- a fresh smtp-sink (Debian's postfix package) listens on 127.0.0.1:SINK,
  accepting every command (PIPELINING, 8BITMIME, DSN announced: its
  defaults) and printing its running counters (-c, one "sess=.. quit=..
  mesg=N" record per event, read as they come);
- the server under test has `relayhost = [127.0.0.1]:SINK`, no local or
  virtual domain (mydestination empty) and mynetworks 127.0.0.0/8, so
  every recipient, in the non-local domain relay.bench.example, is
  relayed through the smtp client of master.cf's `smtp` service;
- smtp-source sends --messages messages of --size body bytes, one
  recipient each (-N numbers them 1user, 2user, ...), over --sessions
  concurrent sessions kept open from message to message (-d).

The clock runs from just before smtp-source starts until the sink has
counted --messages messages ("." received); the end of the run is that
and no message on its way in the server (no file left in maildrop,
incoming or active).  The time smtp-source took (every message accepted
by the server) is reported beside it, to tell the inbound stage from the
outbound one.  After the end, the sink's count must still be --messages
(more would be duplicate deliveries), nothing should be left in deferred
or hold (a message the server deferred although, or before, the sink got
it: retried only after minimal_backoff_time, so not waited for), and the
server's log is counted for status=sent / deferred / bounced; anything
else is shown beside the run's figures.  A run whose last messages
are all deferred (nothing on its way, the sink short, STALL seconds
without a new message) ends there: its figures count the messages the
sink got, up to the last one, and the cell says how many were missing.

Server CPU: as bench/inbound (bench/common.py): the server is started in
a cgroup of its own and its CPU counter's growth from just before the
load to the end of the run, per 1,000 messages.  The
clients, smtp-source and smtp-sink, and this script are outside it.
With --perf SERVER, one extra run of that server (not in the medians)
runs under `perf record -a -g -G CGROUP`.

Writes the "Relay (bench/relay)" section of --out (bench/results.py: the
other sections stay).  No thresholds: figures are reported, never judged.
Every run has a deadline; the sink and the servers are stopped by PID,
leftovers in the server's cgroup are killed by PID and the temp dir is
removed.  Must run as root (Postfix's master, smtp-sink -u, cgroups, perf).
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (CLIENT, POSTFIX, QUEUE_DIRS_MOVING, QUEUE_DIRS_WAITING, SMTP_SINK,  # noqa: E402
                    SMTP_SOURCE, _tmp_parent, argument_parser, check_setup, Clock,
                    comparison_table, cpu_line, CpuCgroup, finish_work, free_port, logger,
                    machine_lines, Postern, Postfix, profile_lines, publish,
                    run_interleaved, run_profiles, start_perf, stop_perf, stop_process,
                    unwind_on_signals, wait_banner)

SECTION = "Relay (bench/relay)"
SINK_USER = "nobody"  # smtp-sink refuses to run as root without -u
RCPT_DOMAIN = "relay.bench.example"
SINK_HOSTNAME = "sink.bench.example"
POLL = 0.05  # seconds between looks at the sink's count and the queue
STALL = 3.0  # seconds without a new message at the sink that end a stalled run
STATUS_RE = re.compile(r"\bstatus=(sent|deferred|bounced|expired)\b")

log = logger("run_relay.py")


# --- the sink ------------------------------------------------------------------

def sink_argv(port):
    """smtp-sink as the next hop: counters on stdout, up to 256 sessions."""
    return [SMTP_SINK, "-u", SINK_USER, "-c", "-h", SINK_HOSTNAME, "-m", "256",
            f"127.0.0.1:{port}", "256"]


class Sink:
    """smtp-sink on 127.0.0.1:port, its message count read as it prints it.

    With -c smtp-sink rewrites one line of counters ("sess=S quit=Q
    mesg=M", separated by CR) whenever a session ends, a QUIT is received
    or a message's "." is.  A thread reads them; when mesg first reaches
    target, the wall clock is noted (reached).
    """

    def __init__(self, rundir, target):
        self.port = free_port()
        self.target = target
        self.count = 0
        self.last = None  # when the count last grew
        self.reached = None
        self.proc = None
        self.thread = None
        self.err = os.path.join(rundir, "sink.err")

    def start(self):
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(sink_argv(self.port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_banner(self.port, self.proc, what="smtp-sink")

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            now = time.time()
            buf += chunk
            *records, buf = re.split(rb"[\r\n]", buf)
            for rec in records:
                m = re.search(rb"\bmesg=(\d+)", rec)
                if m and int(m.group(1)) > self.count:
                    self.count = int(m.group(1))
                    self.last = now
            if self.reached is None and self.count >= self.target:
                self.reached = now

    def stop(self):
        stop_process(self.proc)
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.proc = None

    def errors(self):
        try:
            with open(self.err, errors="replace") as f:
                return f.read().strip()[-500:]
        except FileNotFoundError:
            return ""


# --- the two servers -------------------------------------------------------------

def make_server(name, rundir, sink_port, build):
    """Postfix or postern in rundir relaying everything to the sink."""
    params = {"relayhost": f"[127.0.0.1]:{sink_port}"}
    if name == "postfix":
        return Postfix(rundir, params)
    return Postern(rundir, build, params)


def log_statuses(maillog):
    """status=sent/deferred/bounced/expired lines in the server's log, by kind."""
    counts = {}
    try:
        with open(maillog, errors="replace") as f:
            for line in f:
                m = STATUS_RE.search(line)
                if m:
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    except FileNotFoundError:
        pass
    return counts


# --- one run -------------------------------------------------------------------

def source_argv(args, port):
    return [SMTP_SOURCE, "-4", "-d", "-s", str(args.sessions), "-m", str(args.messages),
            "-N", "-l", str(args.size), "-M", CLIENT, "-f", f"sender@{CLIENT}",
            "-t", f"user@{RCPT_DOMAIN}", f"127.0.0.1:{port}"]


def one_run(server, cgroup, args, sink_for, perf_out=None):
    """Start the sink and server, send the load, wait for the end; return figures."""
    sink = sink_for(server)
    perf = None
    source = None
    try:
        sink.start()
        server.start(cgroup)
        time.sleep(1)  # let the master finish starting its daemons
        perf = start_perf(cgroup, perf_out)
        cpu0 = cgroup.usage_seconds()
        source_err = open(os.path.join(server.rundir, "smtp-source.err"), "w+")
        t0 = time.time()
        source = subprocess.Popen(source_argv(args, server.port), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=source_err)
        t_in = None
        deadline = time.monotonic() + args.deadline
        while True:
            if t_in is None and source.poll() is not None:
                t_in = time.time()
                if source.returncode != 0:
                    source_err.seek(0)
                    raise RuntimeError(f"smtp-source exit {source.returncode}: "
                                       + source_err.read().strip()[-300:])
            if sink.proc.poll() is not None:
                raise RuntimeError(f"smtp-sink exited ({sink.proc.returncode}): "
                                   + sink.errors())
            moving = server.queued(QUEUE_DIRS_MOVING)
            if sink.reached is not None and t_in is not None and moving == 0:
                break
            # Stalled: everything the server still has is deferred, so the
            # rest would come only with its retry (minimal_backoff_time).
            if t_in is not None and moving == 0 and server.queued(QUEUE_DIRS_WAITING) \
                    and sink.last is not None and time.time() - sink.last > STALL:
                log(f"{server.label}: stalled with {sink.count} of {args.messages} at the "
                    f"sink, {server.queued(QUEUE_DIRS_WAITING)} deferred: not waiting "
                    "for the retry")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"deadline: the sink has {sink.count} of {args.messages} messages and "
                    f"{server.queued(QUEUE_DIRS_MOVING)} messages are on their way "
                    f"after {args.deadline} s "
                    f"(smtp-source {'finished' if t_in else 'still sending'}); log: "
                    f"{log_statuses(server.maillog)}\n" + server.log_tail())
            time.sleep(POLL)
        cpu1 = cgroup.usage_seconds()
        time.sleep(1)  # a duplicate delivery would show in the count by now
        got = min(sink.count, args.messages)
        wall = (sink.reached or sink.last) - t0
        return {"wall": wall, "in": t_in - t0, "msgs": args.messages,
                "sink": sink.count, "rate": got / wall,
                "cpu": cpu1 - cpu0, "cpu_per_1000": (cpu1 - cpu0) * 1000 / got,
                "status": log_statuses(server.maillog),
                "waiting": server.queued(QUEUE_DIRS_WAITING)}
    finally:
        if source is not None and source.poll() is None:
            stop_process(source)
        stop_perf(perf)
        server.stop()
        sink.stop()
        cgroup.remove()


def summary(r):
    return (f"{r['msgs']} messages in {r['wall']:.2f} s = {r['rate']:.0f} msg/s "
            f"(smtp-source done after {r['in']:.2f} s), {r['cpu']:.2f} CPU s "
            f"({r['cpu_per_1000']:.3f} s / 1000); sink count {r['sink']}; "
            f"{r['waiting']} left in deferred/hold; log "
            + ", ".join(f"{k} {v}" for k, v in sorted(r["status"].items())))


def run_cell(r):
    """One run in the table: the figures, plus anything that is not as it should be."""
    cell = f"{r['wall']:.1f} s ({r['rate']:.0f}, {r['cpu_per_1000']:.2f}; in {r['in']:.1f} s)"
    odd = {k: v for k, v in r["status"].items() if k != "sent"}
    if r["status"].get("sent", 0) != r["msgs"]:
        odd["sent"] = r["status"].get("sent", 0)
    if r["sink"] != r["msgs"]:
        odd["sink count"] = r["sink"]
        odd["figures for"] = f"{min(r['sink'], r['msgs'])} messages"
    if r["waiting"]:
        odd["left in deferred/hold"] = r["waiting"]
    if odd:
        cell += " [" + ", ".join(f"{k} {v}" for k, v in sorted(odd.items())) + "]"
    return cell


# --- main ----------------------------------------------------------------------

def main():
    ap = argument_parser(__doc__, 5000, 600,
                         "keep the temp dir (each run's config, queue, logs)")
    args = ap.parse_args()

    unwind_on_signals()
    build = os.path.abspath(args.build)
    check_setup("run_relay.py", build, (SMTP_SOURCE, SMTP_SINK, POSTFIX))
    servers = [s for s in args.servers.split(",") if s]
    profiled = [s for s in args.perf.split(",") if s]
    cg = CpuCgroup.find(log)
    if cg is None:
        sys.exit("run_relay.py: no writable cgroup (v2, or v1 cpuacct) to account "
                 "server CPU in")

    work = tempfile.mkdtemp(prefix="postern-bench-relay-", dir=_tmp_parent())
    os.chmod(work, 0o755)
    sinks = {}
    clock = Clock()
    try:
        def make(name, tag):
            rundir = os.path.join(work, f"{name}-{tag}")
            os.mkdir(rundir, 0o755)
            sink = Sink(rundir, args.messages)
            server = make_server(name, rundir, sink.port, build)
            sinks[server.rundir] = sink
            return server

        def missing(name):
            return Postern.not_run(build, ("smtpd", "qmgr", "smtp")) if name == "postern" else None

        def run(server, group, perf_out=None):
            return one_run(server, group, args, lambda s: sinks.pop(s.rundir), perf_out)

        results, notes = run_interleaved(servers, args.runs, make, run, cg, log,
                                         args.keep, missing, summary)
        profiles = run_profiles(profiled, results, make, run, cg, work, log, args.keep,
                                args.perf_top)
    finally:
        finish_work(args, work, log)
    clock.stop()

    lines = report(args, results, notes, profiles, clock, cg, build)
    publish(args, SECTION, lines, log)
    if any(s not in results for s in servers):
        sys.exit(1)


def report(args, results, notes, profiles, clock, cg, build):
    source = " ".join(shlex.quote(a) for a in source_argv(args, "PORT"))
    sink = " ".join(shlex.quote(a) for a in sink_argv("SINK"))
    lines = machine_lines(args.command, clock, build)
    lines += [
        f"- Load: {args.messages} messages of {args.size} body bytes, one recipient each "
        f"(in {RCPT_DOMAIN}, not local), over {args.sessions} concurrent SMTP sessions: "
        f"`{source}`",
        f"- Next hop: `{sink}` (Debian's smtp-sink: accepts everything, PIPELINING "
        "announced; -c counts the messages); a fresh sink per run",
        "- Both servers: `relayhost = [127.0.0.1]:SINK`, mydestination empty, mynetworks "
        "127.0.0.0/8, logging to a file (maillog_file); the rest at defaults (Postfix: "
        "master.cf smtp service, default_destination_concurrency_limit 20, connection "
        "cache on demand; postern: its conf/master.cf `smtp unix - - n - - smtp`, the "
        "same defaults)",
        "- Time: from just before smtp-source starts to the moment the sink has counted "
        "every message (the last \".\" it received); the run ends when that is so and "
        "no message is left in the server's maildrop, incoming or active queue; *in* = "
        "when smtp-source was done (every message "
        "accepted by the server); a run whose last messages are all deferred ends "
        f"{STALL:.0f} s after the sink's last message (not waiting for the retry) and "
        "counts what the sink got; fresh queue per run; "
        f"median of {args.runs} runs",
        cpu_line(cg, "the end of the run"),
        "",
    ]
    lines += comparison_table(
        results, notes, run_cell,
        "runs: s (msg/s, CPU s / 1000; in: s until smtp-source was done)")
    lines += ["", "*msg/s* = messages received by the sink per second of wall time; "
              "*CPU s / 1000 msgs* = CPU seconds (user + system) of the whole server per "
              "1,000 messages relayed; ratios above 1 mean postern is faster (msg/s) or "
              "costlier (CPU). A run's cell lists in brackets anything but one "
              "status=sent log line and one sink message per message and an empty "
              "deferred queue at the end."]
    lines += profile_lines(profiles)
    return lines


if __name__ == "__main__":
    main()
