"""common.py - what the postern-vs-Postfix benchmarks share.

Used by bench/inbound/run_inbound.py and bench/relay/run_relay.py: private
Postfix and postern instances on 127.0.0.1 in a temp dir (Server, Postfix,
Postern), a cgroup per server run to account the CPU of every process the
server forks (CpuCgroup), perf profiles of that cgroup, runs alternating
between the servers with medians, and the report parts both sections of
RESULTS.md have (the machine, the versions, the comparison table, the
profile table).  Each benchmark adds its own configuration (main.cf
parameters, master.cf services), load and end-of-run signal.

Failure guarantees: a server that does not answer with a 220 banner, a
run that fails, raises RuntimeError with what was seen (the caller notes
it in the report); servers are stopped by PID (Postfix also with `postfix
-c DIR stop`) and what is left in a run's cgroup is killed by PID before
the cgroup is removed.  Nothing outside the temp dirs and the cgroups is
touched.
"""

import argparse
import datetime
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

from harness.base import _tmp_parent  # noqa: E402,F401  (re-exported)
from harness.ports import free_port  # noqa: E402
from results import write_section  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
HOSTNAME = "mx.bench.example"
CLIENT = "client.bench.example"
# The queues a message waits in, in both servers (Postfix and postern use
# the same names): the ones on its way now, and the ones set aside.
QUEUE_DIRS_MOVING = ("maildrop", "incoming", "active")
QUEUE_DIRS_WAITING = ("deferred", "hold")


def logger(prog):
    """A function printing "prog: msg" to stderr at once."""
    def log(msg):
        print(f"{prog}: {msg}", file=sys.stderr, flush=True)
    return log


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_signals():
    """SIGTERM and SIGHUP (a timeout, a closed terminal) unwind like ^C, so
    the callers' finally blocks stop the servers and remove the temp dir."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)


# --- CPU accounting: one cgroup per server run ---------------------------------

class CpuCgroup:
    """A cgroup for one server's process tree, and its CPU counter.

    cgroup v2 (the unified mount, wherever it is) when we can mkdir in it,
    else the v1 cpuacct hierarchy.  A process joins by writing its PID to
    cgroup.procs in the child before exec, so everything it forks is in.
    """

    def __init__(self, root, version, log=None):
        self.root = root
        self.version = version
        self.path = None
        self.log = log or logger("bench")

    @staticmethod
    def find(log=None):
        mounts = []
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                mounts.append((mnt, fstype, opts.split(",")))
        candidates = [(m, 2) for m, t, _ in mounts if t == "cgroup2"]
        candidates += [(m, 1) for m, t, o in mounts if t == "cgroup" and "cpuacct" in o]
        for mnt, version in candidates:
            probe = os.path.join(mnt, f"postern-bench-probe-{os.getpid()}")
            try:
                os.mkdir(probe)
            except OSError:
                continue
            ok = os.path.exists(os.path.join(probe, "cpu.stat" if version == 2
                                             else "cpuacct.usage"))
            os.rmdir(probe)
            if ok:
                return CpuCgroup(mnt, version, log)
        return None

    def describe(self):
        if self.version == 2:
            return f"cgroup v2 ({self.root}), cpu.stat usage_usec"
        return f"cgroup v1 cpuacct ({self.root}), cpuacct.usage"

    def create(self, name):
        """A new group of the same hierarchy, named name, for one run."""
        group = CpuCgroup(self.root, self.version, self.log)
        group.path = os.path.join(self.root, name)
        os.mkdir(group.path)
        return group

    def name(self):
        return os.path.relpath(self.path, self.root)

    def join_fn(self):
        procs = os.path.join(self.path, "cgroup.procs")

        def join():  # runs in the child, before exec
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return join

    def usage_seconds(self):
        if self.version == 2:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) / 1e6
            raise RuntimeError(f"{self.path}/cpu.stat: no usage_usec")
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def remove(self, timeout=20):
        """Wait for the group to empty, SIGKILL what is left (by PID), rmdir."""
        if self.path is None:
            return
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():
            self.log(f"killing leftover PID {pid} in {self.path}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while True:
            try:
                os.rmdir(self.path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.log(f"warning: could not remove {self.path}")
                    break
                time.sleep(0.1)
        self.path = None


def wait_banner(port, proc, timeout=30, what="server"):
    """Wait for a 220 banner on 127.0.0.1:port while proc runs."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before its banner")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no 220 banner on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.1)


def stop_process(proc, sig=signal.SIGTERM, timeout=30):
    """Signal proc (by its PID), wait, SIGKILL if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --- the two servers -------------------------------------------------------------

def write_main_cf(conf, params):
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.writelines(f"{k} = {v}\n" for k, v in params.items())


class Server:
    """One private server instance in rundir; subclasses write the config."""

    label = "server"

    def __init__(self, rundir):
        self.rundir = rundir
        self.conf = os.path.join(rundir, "conf")
        self.queue = os.path.join(rundir, "queue")
        self.maillog = os.path.join(rundir, "maillog")
        self.port = free_port()
        self.proc = None
        for d in (self.conf, self.queue):
            os.makedirs(d, mode=0o755)

    def start(self, cgroup):
        out = open(os.path.join(self.rundir, "server.out"), "w")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=cgroup.join_fn())
        out.close()
        wait_banner(self.port, self.proc)

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def queued(self, dirs=QUEUE_DIRS_MOVING + QUEUE_DIRS_WAITING):
        """Files in the server's queues dirs (0: every message has left them)."""
        n = 0
        for name in dirs:
            for _, _, files in os.walk(os.path.join(self.queue, name)):
                n += len(files)
        return n

    def log_tail(self, n=15):
        text = ""
        for path in (os.path.join(self.rundir, "server.out"), self.maillog):
            try:
                with open(path, errors="replace") as f:
                    text += "".join(f.readlines()[-n:])
            except FileNotFoundError:
                pass
        return text


class Postfix(Server):
    """Debian's Postfix as a private instance: `postfix -c DIR start-fg`.

    main.cf: a host with no local domain on 127.0.0.1 that relays for
    127.0.0.0/8 and logs to a file, plus params.  master.cf: Debian's,
    chroot off, with only the services mail through smtpd, qmgr, smtp and
    their bounces and logging use, smtpd on 127.0.0.1:PORT, plus services.
    """

    label = "Postfix"

    def __init__(self, rundir, params, services=()):
        super().__init__(rundir)
        self.data = os.path.join(self.rundir, "data")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "myhostname": HOSTNAME,
            "mydomain": "bench.example",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.rundir,
        }
        main.update(params)
        write_main_cf(self.conf, main)
        lines = [
            f"127.0.0.1:{self.port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
        ]
        lines += list(services)
        lines += [
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def argv(self):
        # start-fg: the master stays our child (no daemonizing, no orphans).
        return [POSTFIX, "-c", self.conf, "start-fg"]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([POSTFIX, "-c", self.conf, "stop"], capture_output=True, timeout=60)
        super().stop()

    @staticmethod
    def version():
        res = subprocess.run([POSTCONF, "-d", "-h", "mail_version"], capture_output=True,
                             text=True, timeout=10)
        return f"Postfix {res.stdout.strip() or 'unknown'} (Debian package)"


class Postern(Server):
    """postern as a private instance: `postern -c DIR start-fg`.

    main.cf: the same host as Postfix's (no local domain, mynetworks
    127.0.0.0/8, no aliases, log file) plus params.  master.cf: the one postern ships
    (conf/master.cf) with its public smtp listener moved to
    127.0.0.1:PORT, without its other inet services (submission, smtps:
    Postfix's has none either, and their ports may be taken) and, for
    each service named in maxproc, that maxproc.
    """

    label = "postern"

    def __init__(self, rundir, build, params, maxproc=None):
        super().__init__(rundir)
        self.build = build
        main = {
            "queue_directory": self.queue,
            "myhostname": HOSTNAME,
            "mydomain": "bench.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "maillog_file": self.maillog,
        }
        main.update(params)
        write_main_cf(self.conf, main)
        maxproc = maxproc or {}
        lines = []
        dropped = False
        with open(os.path.join(REPO, "conf", "master.cf")) as f:
            for line in f:
                fields = line.split()
                if line[:1].isspace() and dropped:
                    continue  # an -o line of a dropped service
                dropped = (len(fields) >= 2 and fields[1] == "inet" and fields[0] != "smtp")
                if dropped:
                    continue  # submission, smtps: not the benchmark's, and public ports
                if len(fields) >= 2 and fields[0] == "smtp" and fields[1] == "inet":
                    line = line.replace("smtp", f"127.0.0.1:{self.port}", 1)
                elif (len(fields) >= 8 and fields[1] == "unix" and fields[0] in maxproc
                      and maxproc[fields[0]] != "-"):
                    fields[6] = maxproc[fields[0]]
                    line = " ".join(fields) + "\n"
                lines.append(line)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(lines)

    def argv(self):
        return [os.path.join(self.build, "bin", "postern"), "-c", self.conf, "start-fg"]

    @staticmethod
    def not_run(build, daemons):
        """Why postern cannot run: the programs of daemons (plus postern and
        master) that build lacks, or None."""
        lack = [p for p in ("postern", "master") + tuple(daemons)
                if not os.access(os.path.join(build, "bin", p), os.X_OK)]
        return ("not run: " + ", ".join(f"bin/{m}" for m in lack)
                + f" missing from {build}") if lack else None


def argument_parser(doc, messages, deadline, keep_help):
    """The options both benchmarks have; each adds its own."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build", "std"),
                    help="postern build dir (holding bin/postern, bin/master, ...)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "RESULTS.md"))
    ap.add_argument("--runs", type=int, default=3, help="runs per server (median)")
    ap.add_argument("--messages", type=int, default=messages)
    ap.add_argument("--size", type=int, default=4096, help="body bytes per message")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    ap.add_argument("--servers", default="postfix,postern")
    ap.add_argument("--perf", default="postern",
                    help="servers profiled in one extra run each ('' for none)")
    ap.add_argument("--perf-top", type=int, default=15, help="profile entries reported")
    ap.add_argument("--deadline", type=int, default=deadline, help="seconds per run")
    ap.add_argument("--command", default=None, help="the command line to record")
    ap.add_argument("--no-write", action="store_true", help="print, do not write --out")
    ap.add_argument("--keep", action="store_true", help=keep_help)
    return ap


def finish_work(args, work, log):
    """Remove the temp dir, or say where it is kept (--keep)."""
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def publish(args, section, lines, log):
    """Print the report (--no-write) or write it as section of --out."""
    if args.no_write:
        print("\n".join(lines))
    else:
        write_section(args.out, section, lines)
        log(f"wrote {args.out}")

# --- runs ----------------------------------------------------------------------

def check_setup(prog, build, programs):
    """Exit with a message unless root, programs and build/bin/postern are there."""
    if os.geteuid() != 0:
        sys.exit(f"{prog}: must run as root (Postfix's master, cgroups, perf)")
    for path in programs:
        if not os.access(path, os.X_OK):
            sys.exit(f"{prog}: {path} missing: scripts/deps.sh bench")
    if not os.access(os.path.join(build, "bin", "postern"), os.X_OK):
        sys.exit(f"{prog}: {build}/bin/postern missing: run make")


def run_interleaved(servers, nruns, make, one_run, cg, log, keep, missing, summary):
    """nruns runs of each server in servers ("postfix", "postern").

    Runs alternate between the servers (run 1 of each, then run 2, ...)
    so that a change in the machine's load during the bench falls on
    both alike.  make(name, tag) returns a fresh Server; one_run(server,
    cgroup) returns a dict of figures or raises RuntimeError; missing(name)
    is a reason not to run name, or None; summary(r) is the log line of a
    run.  Returns (results {name: [figures]}, notes {name: why not}).
    """
    runs, notes = {}, {}
    for name in servers:
        if name not in ("postfix", "postern"):
            sys.exit(f"unknown server {name!r} (postfix, postern)")
        why = missing(name)
        if why:
            notes[name] = why
            log(f"{name} {why}")
        else:
            runs[name] = []
    for i in range(1, nruns + 1):
        for name in [n for n in servers if n in runs and n not in notes]:
            server = make(name, i)
            group = cg.create(f"postern-bench-{os.getpid()}-{name}-{i}")
            log(f"{server.label} run {i}/{nruns} on 127.0.0.1:{server.port}")
            try:
                r = one_run(server, group)
            except RuntimeError as exc:
                notes[name] = f"run {i} failed: {exc}".splitlines()[0][:300]
                log(f"{server.label} run {i} failed: {exc}")
                r = None
            if not keep:
                shutil.rmtree(server.rundir, ignore_errors=True)
            if r is None:
                continue
            log(f"{server.label} run {i}: {summary(r)}")
            runs[name].append(r)
    return {n: rs for n, rs in runs.items() if n not in notes}, notes


def run_profiles(profiled, results, make, one_run, cg, work, log, keep, top):
    """One extra run of each profiled server under perf: {name: (figures, perf_top)}."""
    profiles = {}
    for name in [n for n in profiled if n in results]:
        server = make(name, "perf")
        group = cg.create(f"postern-bench-{os.getpid()}-{name}-perf")
        perf_data = os.path.join(work, f"perf-{name}.data")
        log(f"{server.label} profile run (perf record -a -g, not in the medians)")
        try:
            r = one_run(server, group, perf_out=perf_data)
            profiles[name] = (r, perf_top(perf_data, top))
        except RuntimeError as exc:
            log(f"{server.label} profile run failed: {exc}")
        if not keep:
            shutil.rmtree(server.rundir, ignore_errors=True)
    return profiles


# --- perf ----------------------------------------------------------------------

def start_perf(cgroup, perf_out):
    """`perf record -a -g` of cgroup's processes into perf_out (None: no perf)."""
    if not perf_out:
        return None
    argv = ["perf", "record", "-a", "-g", "-e", "cpu-clock", "-o", perf_out]
    if cgroup.version == 2:
        argv += ["-G", cgroup.name()]
    perf = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(1)
    return perf


def stop_perf(perf):
    stop_process(perf, signal.SIGINT, timeout=120)


def perf_rows(perf_data, sort, limit_pct="0.1"):
    """`perf report` flat (self) rows for the sort keys: lists of fields."""
    res = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                          "-g", "none", "--sort", sort, "--percent-limit", limit_pct],
                         capture_output=True, text=True, timeout=600)
    nkeys = len(sort.split(","))
    rows = []
    for line in res.stdout.splitlines():
        parts = line.split(None, nkeys)
        if len(parts) == nkeys + 1 and parts[0].endswith("%") and not line.startswith("#"):
            rows.append([x.strip() for x in parts])
    return rows


def perf_top(perf_data, limit):
    """What the profile shows on top: shares by process and by object, the
    top symbols overall and the top user-space symbols (self time)."""
    syms = perf_rows(perf_data, "comm,dso,sym")
    return {
        "comm": perf_rows(perf_data, "comm", "0.5")[:10],
        "dso": perf_rows(perf_data, "dso", "0.5")[:8],
        "all": syms[:limit],
        "user": [r for r in syms if not r[3].startswith("[k]")][:limit],
    }


# --- the report ----------------------------------------------------------------

def command_output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def disk_of(path):
    """'SOURCE FSTYPE (OPTIONS), model, rotational' for the filesystem of path."""
    out = command_output(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", path]).split()
    if len(out) < 3:
        return "unknown"
    source, fstype, opts = out[:3]
    desc = f"{source} ({fstype}, {opts})"
    dev = os.path.basename(source)
    sysdir = os.path.join("/sys/class/block", dev)
    try:
        real = os.path.realpath(sysdir)
        if os.path.exists(os.path.join(real, "partition")):
            real = os.path.dirname(real)
        with open(os.path.join(real, "queue", "rotational")) as f:
            rot = f.read().strip()
        model = ""
        for name in ("device/model", "device/vendor"):
            try:
                with open(os.path.join(real, name)) as f:
                    model = f.read().strip()
                    break
            except OSError:
                continue
        kind = "virtio" if os.path.basename(real).startswith("vd") else (model or "block device")
        desc += f", {kind} disk, rotational={rot}"
    except OSError:
        pass
    return desc


def os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def build_version():
    try:
        with open(os.path.join(REPO, "VERSION")) as f:
            v = f.read().strip()
    except OSError:
        v = "unknown"
    rev = command_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    return f"{v} ({rev})"


class Clock:
    """The date and load average around the runs, for the report."""

    def __init__(self):
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = os.getloadavg()
        self.load_after = None

    def stop(self):
        self.load_after = os.getloadavg()


def machine_lines(command, clock, build, extra_versions=""):
    """The report's first lines: date, command, machine, disk, load, versions."""
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    after = clock.load_after or os.getloadavg()
    return [
        f"- Date: {clock.started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- Machine: nproc {command_output(['nproc'])}, {cpu_model()}, "
        f"{os_release()}, Linux {platform.release()}",
        f"- Disk of the temp dirs ({_tmp_parent()}): {disk_of(_tmp_parent())}",
        "- Load average (1, 5, 15 min) before / after: "
        + " ".join(f"{x:.2f}" for x in clock.load_before) + " / "
        + " ".join(f"{x:.2f}" for x in after)
        + " (anything else running on the machine shows up in the figures)",
        f"- Servers: {Postfix.version()}; postern {build_version()} "
        f"(`{os.path.basename(build)}` build){extra_versions}",
    ]


def cpu_line(cg, until):
    return (f"- Server CPU: {cg.describe()} of a cgroup holding the server's master and "
            "everything it forks (daemons that exit during the run included), from just "
            f"before the load until {until}; the client is not in it")


def comparison_table(results, notes, run_cell, extra_header="runs: s (msg/s, CPU s / 1000)"):
    """The postfix/postern table: median msg/s and CPU s / 1000, ratios, runs.

    results[name] is a list of dicts with "rate" and "cpu_per_1000";
    run_cell(r) is one run's text in the last column.
    """
    lines = [
        "| server | msg/s | CPU s / 1000 msgs | msg/s ratio postern/Postfix "
        f"| CPU ratio postern/Postfix | {extra_header} |",
        "|---|---:|---:|---:|---:|---|",
    ]
    med = {name: (statistics.median(r["rate"] for r in rs),
                  statistics.median(r["cpu_per_1000"] for r in rs))
           for name, rs in results.items()}
    for name, label in (("postfix", "Postfix"), ("postern", "postern")):
        if name not in results:
            if name in notes:
                lines.append(f"| {label} | - | - | - | - | {notes[name]} |")
            continue
        rate, cpu = med[name]
        ratio_rate = ratio_cpu = "-"
        if name == "postern" and "postfix" in med:
            ratio_rate = f"{rate / med['postfix'][0]:.2f}"
            ratio_cpu = f"{cpu / med['postfix'][1]:.2f}"
        elif name == "postfix":
            ratio_rate = ratio_cpu = "1"
        cells = "; ".join(run_cell(r) for r in results[name])
        lines.append(f"| {label} | {rate:.0f} | {cpu:.2f} | {ratio_rate} | {ratio_cpu} "
                     f"| {cells} |")
    return lines


def profile_lines(profiles):
    """One paragraph and table per profiled server."""
    lines = []
    for name, (r, prof) in profiles.items():
        label = "Postfix" if name == "postfix" else "postern"
        lines += ["", f"Profile of {label}: one extra run under `perf record -a -g -e "
                  "cpu-clock -G CGROUP` (only the server's cgroup; not in the medians: "
                  f"{r['rate']:.0f} msg/s, {r['cpu_per_1000']:.2f} CPU s / 1000). "
                  "Self time by process: "
                  + ", ".join(f"{c} {p}" for p, c in prof["comm"]) + ". By object: "
                  + ", ".join(f"`{d}` {p}" for p, d in prof["dso"]) + ".",
                  "",
                  "| % (all) | process | object | symbol | | % (user space) | process "
                  "| object | symbol |",
                  "|---:|---|---|---|---|---:|---|---|---|"]
        for i in range(max(len(prof["all"]), len(prof["user"]))):
            a = prof["all"][i] if i < len(prof["all"]) else ["", "", "", ""]
            u = prof["user"][i] if i < len(prof["user"]) else ["", "", "", ""]
            cell = [f"`{x[3]}`" if x[3] else "" for x in (a, u)]
            lines.append(f"| {a[0]} | {a[1]} | {a[2]} | {cell[0]} | | {u[0]} | {u[1]} | {u[2]} "
                         f"| {cell[1]} |")
    return lines
