#!/usr/bin/python3
"""Inbound delivery, postern vs Debian's Postfix: SMTP in, Maildir/new out.

Called by bench/run-inbound.sh (and so by `make bench`), or by hand:

    bench/inbound/run_inbound.py --build build/std --runs 3 [--servers postfix,postern]

For each server, --runs times (alternating between the servers) over a
fresh queue and fresh maildirs:
smtp-source (Debian's postfix package) sends --messages messages of
--size bytes over --sessions concurrent SMTP sessions to --domains x
--mailboxes mailboxes on 127.0.0.1, and the clock runs from just before
the first connection until every message is a file in some Maildir/new.
Both servers read the same SQLite database (postern's schema, loaded by
`postern db init` plus one transaction of inserts) through the same
Postfix-style sqlite .cf files for virtual_mailbox_domains and
virtual_mailbox_maps, and deliver with their virtual agent into
virtual_mailbox_base/DOMAIN/USER/ as one unprivileged uid, with fsync on
(both defaults).

The load.  smtp-source has one -t recipient; -N prepends a sequence number
(1, 2, 3, ... in Debian's 3.7) to its address, unique within one
smtp-source process.
So each domain dK gets its own client loop: --messages / --domains
messages in rounds of one smtp-source process each, `-s SESSIONS/DOMAINS
-d -m MAILBOXES -N -t user@dK.bench.example`, which sends exactly one
message to each of 1user..{MAILBOXES}user@dK per round (the mailboxes
are named that way for it).  The domain
loops run at once, so --sessions sessions are open at any time (less the
moment between two rounds of one loop).  -d keeps a session open for its
next message; -l SIZE is the body size (smtp-source adds From, To, Date
and Message-Id).

Server CPU: the server is started inside a cgroup of its own (cgroup v2
cpu.stat usage_usec, else cgroup v1 cpuacct.usage), so every process it
forks, including daemons that exit during the run, is counted; the figure
is the growth of that counter from just before the load to the moment
the last message was seen delivered.  The client (smtp-source) and this
script are outside it.  With --perf SERVER, one extra run of that server
(not in the medians) runs under `perf record -a -g -G CGROUP`, and the
top entries of its flat profile go to the report.

Writes the "Inbound delivery (bench/inbound)" section of --out
(bench/results.py: other sections stay) with the command, the machine,
the versions and the table.  No thresholds: figures are reported, never
judged.  Every run has a deadline; servers are stopped by PID (Postfix
also by `postfix -c DIR stop`), leftovers in the server's cgroup are
killed by PID, and the temp dir is removed.  Must run as root (Postfix's
master, the cgroup, perf).
"""

import argparse
import datetime
import os
import platform
import pwd
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
sys.path.insert(0, os.path.join(REPO, "bench"))

from harness.base import _tmp_parent  # noqa: E402
from harness.ports import free_port  # noqa: E402
from results import write_section  # noqa: E402

SECTION = "Inbound delivery (bench/inbound)"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
MAIL_USER = "nobody"  # owner of every maildir (the system tests' Dovecot user)
HOSTNAME = "mx.bench.example"
CLIENT = "client.bench.example"
DOMAINS_QUERY = "SELECT name FROM domains WHERE name = '%s' AND active = '1' AND backup_mx = '0'"
MAILBOX_QUERY = "SELECT maildir FROM mailboxes WHERE address = '%s' AND active = '1'"
# Seconds between counts of Maildir/new: listing 1,000 directories costs
# CPU the servers share, so count slowly until the end is near.  The end
# time is the newest file's mtime, so the interval does not bias it.
POLL_SLOW, POLL_FAST = 1.0, 0.2


def log(msg):
    print(f"run_inbound.py: {msg}", file=sys.stderr, flush=True)


def domain_name(k):
    return f"d{k}.bench.example"


# --- CPU accounting: one cgroup per server run ---------------------------------

class CpuCgroup:
    """A cgroup for one server's process tree, and its CPU counter.

    cgroup v2 (the unified mount, wherever it is) when we can mkdir in it,
    else the v1 cpuacct hierarchy.  A process joins by writing its PID to
    cgroup.procs in the child before exec, so everything it forks is in.
    """

    def __init__(self, root, version):
        self.root = root
        self.version = version
        self.path = None

    @staticmethod
    def find():
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
                return CpuCgroup(mnt, version)
        return None

    def describe(self):
        if self.version == 2:
            return f"cgroup v2 ({self.root}), cpu.stat usage_usec"
        return f"cgroup v1 cpuacct ({self.root}), cpuacct.usage"

    def create(self, name):
        self.path = os.path.join(self.root, name)
        os.mkdir(self.path)
        return self

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
            log(f"killing leftover PID {pid} in {self.path}")
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
                    log(f"warning: could not remove {self.path}")
                    break
                time.sleep(0.1)
        self.path = None


# --- the data ------------------------------------------------------------------

def make_database(work, postern, ndomains, nmailboxes):
    """postern's schema (`postern db init`) plus the bench domains and mailboxes."""
    conf = os.path.join(work, "dbinit")
    os.mkdir(conf)
    db = os.path.join(work, "bench.db")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(f"database = sqlite:{db}\n")
    res = subprocess.run([postern, "-c", conf, "db", "init"], capture_output=True,
                         text=True, timeout=60)
    if res.returncode != 0:
        sys.exit(f"run_inbound.py: postern db init failed: {res.stderr.strip()}")
    conn = sqlite3.connect(db)
    with conn:  # one transaction
        for k in range(ndomains):
            dom = domain_name(k)
            cur = conn.execute("INSERT INTO domains (name, description) VALUES (?, 'bench')",
                               (dom,))
            conn.executemany(
                "INSERT INTO mailboxes (domain_id, local_part, address, password, maildir)"
                " VALUES (?, ?, ?, '{PLAIN}x', ?)",
                [(cur.lastrowid, f"{i}user", f"{i}user@{dom}", f"{dom}/{i}user/")
                 for i in range(1, nmailboxes + 1)])
    version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    conn.close()
    os.chmod(db, 0o644)  # Postfix's smtpd reads it as the postfix user
    maps = {}
    for name, query in (("domains", DOMAINS_QUERY), ("mailboxes", MAILBOX_QUERY)):
        path = os.path.join(work, f"sqlite-{name}.cf")
        with open(path, "w") as f:
            f.write(f"dbpath = {db}\nquery = {query}\n")
        maps[name] = f"sqlite:{path}"
    return db, maps, version


def maildir_news(base, ndomains, nmailboxes):
    return [os.path.join(base, domain_name(k), f"{i}user", "new")
            for k in range(ndomains) for i in range(1, nmailboxes + 1)]


def count_delivered(news):
    n = 0
    for d in news:
        try:
            n += len(os.listdir(d))
        except FileNotFoundError:
            pass
    return n


def newest_mtime(news):
    newest = 0.0
    for d in news:
        try:
            with os.scandir(d) as it:
                for e in it:
                    newest = max(newest, e.stat().st_mtime)
        except FileNotFoundError:
            pass
    return newest


def wait_banner(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before its banner")
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


# --- the two servers -------------------------------------------------------------

class Server:
    """One private server instance in rundir; subclasses write the config."""

    label = "server"

    def __init__(self, rundir, maps, db, uid, gid, virtual_procs="-"):
        self.rundir = rundir
        self.virtual_procs = virtual_procs  # master.cf maxproc of virtual
        self.conf = os.path.join(rundir, "conf")
        self.queue = os.path.join(rundir, "queue")
        self.vmail = os.path.join(rundir, "vmail")
        self.maillog = os.path.join(rundir, "maillog")
        self.maps, self.db, self.uid, self.gid = maps, db, uid, gid
        self.port = free_port()
        self.proc = None
        for d in (self.conf, self.queue, self.vmail):
            os.makedirs(d, mode=0o755)
        os.chown(self.vmail, uid, gid)  # the virtual agents create DOMAIN/USER as uid

    def start(self, cgroup):
        out = open(os.path.join(self.rundir, "server.out"), "w")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=cgroup.join_fn())
        out.close()
        wait_banner(self.port, self.proc)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

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
    label = "Postfix"

    def __init__(self, *a):
        super().__init__(*a)
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
            "virtual_mailbox_domains": self.maps["domains"],
            "virtual_mailbox_maps": self.maps["mailboxes"],
            "virtual_mailbox_base": self.vmail,
            "virtual_uid_maps": f"static:{self.uid}",
            "virtual_gid_maps": f"static:{self.gid}",
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.writelines(f"{k} = {v}\n" for k, v in main.items())
        # Debian's master.cf with chroot off, only what inbound virtual
        # delivery (and its bounces and logging) uses.
        services = [
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
            f"virtual unix - n n - {self.virtual_procs} virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(services) + "\n")

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
    label = "postern"

    def __init__(self, rundir, maps, db, uid, gid, virtual_procs, build):
        super().__init__(rundir, maps, db, uid, gid, virtual_procs)
        self.build = build
        main = {
            "database": f"sqlite:{db}",
            "queue_directory": self.queue,
            "myhostname": HOSTNAME,
            "mydomain": "bench.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "maillog_file": self.maillog,
            "virtual_mailbox_domains": self.maps["domains"],
            "virtual_mailbox_maps": self.maps["mailboxes"],
            "virtual_mailbox_base": self.vmail,
            "virtual_uid_maps": f"static:{self.uid}",
            "virtual_gid_maps": f"static:{self.gid}",
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.writelines(f"{k} = {v}\n" for k, v in main.items())
        # The master.cf postern ships (conf/master.cf), with its public
        # smtp listener moved to 127.0.0.1:PORT.
        lines = []
        with open(os.path.join(REPO, "conf", "master.cf")) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "smtp" and fields[1] == "inet":
                    line = line.replace("smtp", f"127.0.0.1:{self.port}", 1)
                elif (len(fields) >= 8 and fields[:2] == ["virtual", "unix"]
                      and self.virtual_procs != "-"):
                    fields[6] = self.virtual_procs
                    line = " ".join(fields) + "\n"
                lines.append(line)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(lines)

    def argv(self):
        return [os.path.join(self.build, "bin", "postern"), "-c", self.conf, "start-fg"]

    @staticmethod
    def missing(build):
        """The daemons inbound delivery needs that this build lacks."""
        return [p for p in ("postern", "master", "smtpd", "qmgr", "virtual")
                if not os.access(os.path.join(build, "bin", p), os.X_OK)]


# --- one run -------------------------------------------------------------------

def client_loop(k, args, port, failures):
    """Domain dK's smtp-source rounds, one after the other."""
    per_domain = args.messages // args.domains
    rounds = per_domain // args.mailboxes
    for _ in range(rounds):
        argv = source_argv(k, args, port)
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=args.deadline)
        except subprocess.TimeoutExpired:
            failures.append(f"d{k}: smtp-source did not finish within {args.deadline} s")
            return
        if res.returncode != 0:
            failures.append(f"d{k}: smtp-source exit {res.returncode}: {res.stderr.strip()[-300:]}")
            return


def source_argv(k, args, port):
    return [SMTP_SOURCE, "-4", "-d", "-s", str(args.sessions // args.domains),
            "-m", str(args.mailboxes), "-N", "-l", str(args.size),
            "-M", CLIENT, "-f", f"sender@{CLIENT}", "-t", f"user@{domain_name(k)}",
            f"127.0.0.1:{port}"]


def one_run(server, cgroup, args, perf_out=None):
    """Start server in cgroup, send the load, wait for delivery; return figures."""
    news = maildir_news(server.vmail, args.domains, args.mailboxes)
    perf = None
    try:
        server.start(cgroup)
        time.sleep(1)  # let the master finish starting its daemons
        if perf_out:
            perf_argv = ["perf", "record", "-a", "-g", "-e", "cpu-clock", "-o", perf_out]
            if cgroup.version == 2:
                perf_argv += ["-G", cgroup.name()]
            perf = subprocess.Popen(perf_argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1)
        cpu0 = cgroup.usage_seconds()
        failures = []
        threads = [threading.Thread(target=client_loop, args=(k, args, server.port, failures),
                                    daemon=True)
                   for k in range(args.domains)]
        t0 = time.time()
        for t in threads:
            t.start()
        deadline = time.monotonic() + args.deadline
        delivered = 0
        while True:
            delivered = count_delivered(news)
            if delivered >= args.messages:
                break
            if failures and not any(t.is_alive() for t in threads):
                raise RuntimeError("client failed: " + "; ".join(failures))
            if time.monotonic() > deadline:
                raise RuntimeError(f"deadline: {delivered} of {args.messages} delivered "
                                   f"after {args.deadline} s; failures: {failures}\n"
                                   + server.log_tail())
            time.sleep(POLL_FAST if delivered >= 0.9 * args.messages else POLL_SLOW)
        cpu1 = cgroup.usage_seconds()
        for t in threads:
            t.join(timeout=60)
        if failures:
            raise RuntimeError("client failed: " + "; ".join(failures))
        t1 = newest_mtime(news)
        wall = t1 - t0
        return {"wall": wall, "msgs": delivered, "rate": delivered / wall,
                "cpu": cpu1 - cpu0, "cpu_per_1000": (cpu1 - cpu0) * 1000 / delivered}
    finally:
        if perf is not None and perf.poll() is None:
            perf.send_signal(signal.SIGINT)
            try:
                perf.wait(timeout=120)
            except subprocess.TimeoutExpired:
                perf.kill()
                perf.wait(timeout=10)
        server.stop()
        cgroup.remove()


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


# --- machine facts -----------------------------------------------------------

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


# --- main ----------------------------------------------------------------------

def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build", "std"),
                    help="postern build dir (holding bin/postern, bin/master, ...)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "RESULTS.md"))
    ap.add_argument("--runs", type=int, default=3, help="runs per server (median)")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096, help="body bytes per message")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--mailboxes", type=int, default=100, help="mailboxes per domain")
    ap.add_argument("--servers", default="postfix,postern")
    ap.add_argument("--perf", default="postern",
                    help="servers profiled in one extra run each ('' for none)")
    ap.add_argument("--perf-top", type=int, default=15, help="profile entries reported")
    ap.add_argument("--virtual-procs", default="-",
                    help="master.cf maxproc of both virtual services ('-': each server's "
                    "default: Postfix spawns up to default_process_limit 100 on demand, "
                    "postern preforks min(100, 4 x CPUs))")
    ap.add_argument("--deadline", type=int, default=900, help="seconds per run")
    ap.add_argument("--command", default=None, help="the command line to record")
    ap.add_argument("--no-write", action="store_true", help="print, do not write --out")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (database, each run's config, queue, maildirs, logs)")
    args = ap.parse_args()

    # SIGTERM and SIGHUP (a timeout, a closed terminal) unwind like ^C, so
    # the finally blocks stop the servers and remove the temp dir.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    if os.geteuid() != 0:
        sys.exit("run_inbound.py: must run as root (Postfix's master, cgroups, perf)")
    if args.sessions % args.domains or (args.messages // args.domains) % args.mailboxes \
            or args.messages % args.domains:
        sys.exit("run_inbound.py: --sessions and --messages must divide by --domains, "
                 "and --messages/--domains by --mailboxes")
    for prog in (SMTP_SOURCE, POSTFIX):
        if not os.access(prog, os.X_OK):
            sys.exit(f"run_inbound.py: {prog} missing: scripts/deps.sh bench")
    servers = [s for s in args.servers.split(",") if s]
    profiled = [s for s in args.perf.split(",") if s]
    build = os.path.abspath(args.build)
    if not os.access(os.path.join(build, "bin", "postern"), os.X_OK):
        sys.exit(f"run_inbound.py: {build}/bin/postern missing: run make")
    cg = CpuCgroup.find()
    if cg is None:
        sys.exit("run_inbound.py: no writable cgroup (v2, or v1 cpuacct) to account "
                 "server CPU in")
    pw = pwd.getpwnam(MAIL_USER)

    work = tempfile.mkdtemp(prefix="postern-bench-inbound-", dir=_tmp_parent())
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) read the database here
    results = {}
    notes = {}
    profiles = {}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        db, maps, sqlite_version = make_database(work, os.path.join(build, "bin", "postern"),
                                                 args.domains, args.mailboxes)
        log(f"database {db}: {args.domains} domains x {args.mailboxes} mailboxes")

        def make(name, tag):
            rundir = os.path.join(work, f"{name}-{tag}")
            os.mkdir(rundir, 0o755)
            if name == "postfix":
                return Postfix(rundir, maps, db, pw.pw_uid, pw.pw_gid, args.virtual_procs)
            return Postern(rundir, maps, db, pw.pw_uid, pw.pw_gid, args.virtual_procs, build)

        # Runs alternate between the servers (run 1 of each, then run 2,
        # ...) so that a change in the machine's load during the bench
        # falls on both alike.
        runs = {}
        for name in servers:
            if name not in ("postfix", "postern"):
                sys.exit(f"run_inbound.py: unknown server {name!r} (postfix, postern)")
            missing = Postern.missing(build) if name == "postern" else []
            if missing:
                notes[name] = ("not run: " + ", ".join(f"bin/{m}" for m in missing)
                               + f" missing from {build}")
                log(f"postern {notes[name]}")
            else:
                runs[name] = []
        for i in range(1, args.runs + 1):
            for name in [n for n in servers if n in runs and n not in notes]:
                server = make(name, i)
                group = CpuCgroup(cg.root, cg.version).create(
                    f"postern-bench-{os.getpid()}-{name}-{i}")
                log(f"{server.label} run {i}/{args.runs} on 127.0.0.1:{server.port}")
                try:
                    r = one_run(server, group, args)
                except RuntimeError as exc:
                    notes[name] = f"run {i} failed: {exc}".splitlines()[0][:300]
                    log(f"{server.label} run {i} failed: {exc}")
                    r = None
                if not args.keep:
                    shutil.rmtree(server.rundir, ignore_errors=True)
                if r is None:
                    continue
                log(f"{server.label} run {i}: {r['msgs']} messages in {r['wall']:.2f} s = "
                    f"{r['rate']:.0f} msg/s, {r['cpu']:.2f} CPU s "
                    f"({r['cpu_per_1000']:.3f} s / 1000)")
                runs[name].append(r)
        results = {n: rs for n, rs in runs.items() if n not in notes}
        for name in [n for n in profiled if n in results]:
            server = make(name, "perf")
            group = CpuCgroup(cg.root, cg.version).create(
                f"postern-bench-{os.getpid()}-{name}-perf")
            perf_data = os.path.join(work, f"perf-{name}.data")
            log(f"{server.label} profile run (perf record -a -g, not in the medians)")
            try:
                r = one_run(server, group, args, perf_out=perf_data)
                profiles[name] = (r, perf_top(perf_data, args.perf_top))
            except RuntimeError as exc:
                log(f"{server.label} profile run failed: {exc}")
            if not args.keep:
                shutil.rmtree(server.rundir, ignore_errors=True)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    lines = report(args, results, notes, profiles, started, load_before, load_after,
                   cg, sqlite_version, build)
    if args.no_write:
        print("\n".join(lines))
    else:
        write_section(args.out, SECTION, lines)
        log(f"wrote {args.out}")
    if any(s not in results for s in servers):
        sys.exit(1)


def report(args, results, notes, profiles, started, load_before, load_after, cg,
           sqlite_version, build):
    command = args.command or " ".join(shlex.quote(a) for a in sys.argv)
    example = " ".join(shlex.quote(a) for a in source_argv(0, args, "PORT"))
    per_domain = args.messages // args.domains
    lines = [
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- Machine: nproc {command_output(['nproc'])}, {cpu_model()}, "
        f"{os_release()}, Linux {platform.release()}",
        f"- Disk of the temp dirs ({_tmp_parent()}): {disk_of(_tmp_parent())}",
        "- Load average (1, 5, 15 min) before / after: "
        + " ".join(f"{x:.2f}" for x in load_before) + " / "
        + " ".join(f"{x:.2f}" for x in load_after)
        + " (anything else running on the machine shows up in the figures)",
        f"- Servers: {Postfix.version()}; postern {build_version()} "
        f"(`{os.path.basename(build)}` build); SQLite {sqlite_version}",
        f"- Load: {args.messages} messages of {args.size} body bytes over "
        f"{args.sessions} concurrent SMTP sessions to {args.domains} x {args.mailboxes} "
        f"mailboxes ({args.messages // (args.domains * args.mailboxes)} each); per domain "
        f"dK, {per_domain // args.mailboxes} rounds in a row of `{example}` "
        f"(-N numbers the recipients 1user..{args.mailboxes}user of the round: "
        "every mailbox gets one message per round)",
        "- Both servers: the same SQLite file (postern's schema) through the same "
        f"sqlite .cf maps, virtual_mailbox_domains `{DOMAINS_QUERY}` and "
        f"virtual_mailbox_maps `{MAILBOX_QUERY}`; virtual delivery to "
        f"Maildir `DOMAIN/USER/` as `{MAIL_USER}`; fsync on (both defaults); "
        "logging to a file (maillog_file); other parameters at their defaults",
        "- Delivery agents (master.cf maxproc of virtual): " + (
            "each server's default: Postfix spawns virtual processes on demand, up to "
            "default_process_limit (100) and 20 deliveries per domain; postern preforks "
            f"min(default_process_limit, 4 x CPUs) = {min(100, 4 * (os.cpu_count() or 1))}"
            if args.virtual_procs == "-" else f"{args.virtual_procs} for both servers"),
        "- Time: from just before the first connection to the mtime of the newest "
        "file in Maildir/new, once all are there; fresh queue and maildirs per run; "
        f"median of {args.runs} runs",
        f"- Server CPU: {cg.describe()} of a cgroup holding the server's master and "
        "everything it forks (daemons that exit during the run included), from just "
        "before the load until all messages were seen; the client is not in it",
        "",
        "| server | msg/s | CPU s / 1000 msgs | msg/s ratio postern/Postfix "
        "| CPU ratio postern/Postfix | runs: s (msg/s, CPU s / 1000) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    med = {}
    for name in ("postfix", "postern"):
        if name in results:
            rs = results[name]
            med[name] = (statistics.median(r["rate"] for r in rs),
                         statistics.median(r["cpu_per_1000"] for r in rs))
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
        runs = "; ".join(f"{r['wall']:.1f} s ({r['rate']:.0f}, {r['cpu_per_1000']:.2f})"
                         for r in results[name])
        lines.append(f"| {label} | {rate:.0f} | {cpu:.2f} | {ratio_rate} | {ratio_cpu} "
                     f"| {runs} |")
    lines += ["", "*msg/s* = messages delivered per second of wall time; *CPU s / 1000 "
              "msgs* = CPU seconds (user + system) of the whole server per 1,000 messages "
              "delivered; ratios above 1 mean postern is faster (msg/s) or costlier (CPU)."]
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


def build_version():
    try:
        with open(os.path.join(REPO, "VERSION")) as f:
            v = f.read().strip()
    except OSError:
        v = "unknown"
    rev = command_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    return f"{v} ({rev})"


if __name__ == "__main__":
    main()
