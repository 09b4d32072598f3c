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

import grp
import os
import pwd
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (CLIENT, POSTFIX, SMTP_SOURCE, _tmp_parent, argument_parser,  # noqa: E402
                    check_setup, Clock, comparison_table, cpu_line, CpuCgroup, finish_work,
                    logger, machine_lines, Postern, Postfix, profile_lines, publish,
                    run_interleaved, run_profiles, start_perf, stop_perf,
                    unwind_on_signals)

SECTION = "Inbound delivery (bench/inbound)"
POSTFIX_USER = "postfix"  # mail_owner: Postfix's daemons read the database as it
MAIL_USER = "nobody"  # owner of every maildir (the system tests' Dovecot user)
DOMAINS_QUERY = "SELECT name FROM domains WHERE name = '%s' AND active = '1' AND backup_mx = '0'"
MAILBOX_QUERY = "SELECT maildir FROM mailboxes WHERE address = '%s' AND active = '1'"
# Seconds between counts of Maildir/new: listing 1,000 directories costs
# CPU the servers share, so count slowly until the end is near.  The end
# time is the newest file's mtime, so the interval does not bias it.
POLL_SLOW, POLL_FAST = 1.0, 0.2

log = logger("run_inbound.py")


def domain_name(k):
    return f"d{k}.bench.example"


# --- the data ------------------------------------------------------------------

def make_database(work, postern, ndomains, nmailboxes):
    """postern's schema (`postern db init`) plus the bench domains and mailboxes."""
    conf = os.path.join(work, "dbinit")
    os.mkdir(conf)
    # postern's database is in WAL mode (lib/sql/sql_sqlite.c): a reader
    # writes the -shm index beside it, so Postfix's daemons (user postfix)
    # own the file and its directory, group postern as postern wants it;
    # SQLite running as root gives the -wal and -shm it creates the
    # database file's owner.
    dbdir = os.path.join(work, "db")
    os.mkdir(dbdir, 0o755)
    db = os.path.join(dbdir, "bench.db")
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
    uid, gid = pwd.getpwnam(POSTFIX_USER).pw_uid, grp.getgrnam("postern").gr_gid
    os.chown(dbdir, uid, gid)
    os.chmod(dbdir, 0o2770)  # what postern asks of its database directory
    for name in os.listdir(dbdir):
        os.chown(os.path.join(dbdir, name), uid, gid)
        os.chmod(os.path.join(dbdir, name), 0o660)
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


# --- the two servers -------------------------------------------------------------

def make_server(name, rundir, maps, db, pw, virtual_procs, build):
    """Postfix or postern in rundir, delivering the bench domains with virtual.

    Both: the same sqlite maps, virtual_mailbox_base rundir/vmail owned by
    pw (the virtual agents create DOMAIN/USER as that uid); virtual's
    maxproc virtual_procs ("-": each server's default).
    """
    vmail = os.path.join(rundir, "vmail")
    os.makedirs(vmail, mode=0o755)
    os.chown(vmail, pw.pw_uid, pw.pw_gid)
    params = {
        "virtual_mailbox_domains": maps["domains"],
        "virtual_mailbox_maps": maps["mailboxes"],
        "virtual_mailbox_base": vmail,
        "virtual_uid_maps": f"static:{pw.pw_uid}",
        "virtual_gid_maps": f"static:{pw.pw_gid}",
    }
    if name == "postfix":
        server = Postfix(rundir, params, [f"virtual unix - n n - {virtual_procs} virtual"])
    else:
        server = Postern(rundir, build, dict(database=f"sqlite:{db}", **params),
                         {"virtual": virtual_procs})
    server.vmail = vmail
    return server


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
        perf = start_perf(cgroup, perf_out)
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
        stop_perf(perf)
        server.stop()
        cgroup.remove()


# --- main ----------------------------------------------------------------------

def main():
    ap = argument_parser(__doc__, 20000, 900, "keep the temp dir (database, each "
                         "run's config, queue, maildirs, logs)")
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--mailboxes", type=int, default=100, help="mailboxes per domain")
    ap.add_argument("--virtual-procs", default="-",
                    help="master.cf maxproc of both virtual services ('-': each server's "
                    "default: Postfix spawns up to default_process_limit 100 on demand, "
                    "postern preforks min(100, 4 x CPUs))")
    args = ap.parse_args()

    unwind_on_signals()
    build = os.path.abspath(args.build)
    check_setup("run_inbound.py", build, (SMTP_SOURCE, POSTFIX))
    if args.sessions % args.domains or (args.messages // args.domains) % args.mailboxes \
            or args.messages % args.domains:
        sys.exit("run_inbound.py: --sessions and --messages must divide by --domains, "
                 "and --messages/--domains by --mailboxes")
    servers = [s for s in args.servers.split(",") if s]
    profiled = [s for s in args.perf.split(",") if s]
    cg = CpuCgroup.find(log)
    if cg is None:
        sys.exit("run_inbound.py: no writable cgroup (v2, or v1 cpuacct) to account "
                 "server CPU in")
    pw = pwd.getpwnam(MAIL_USER)

    work = tempfile.mkdtemp(prefix="postern-bench-inbound-", dir=_tmp_parent())
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) read the database here
    clock = Clock()
    try:
        db, maps, sqlite_version = make_database(work, os.path.join(build, "bin", "postern"),
                                                 args.domains, args.mailboxes)
        log(f"database {db}: {args.domains} domains x {args.mailboxes} mailboxes")

        def make(name, tag):
            rundir = os.path.join(work, f"{name}-{tag}")
            os.mkdir(rundir, 0o755)
            return make_server(name, rundir, maps, db, pw, args.virtual_procs, build)

        def missing(name):
            daemons = ("smtpd", "qmgr", "virtual")
            return Postern.not_run(build, daemons) if name == "postern" else None

        def run(server, group, perf_out=None):
            return one_run(server, group, args, perf_out)

        results, notes = run_interleaved(
            servers, args.runs, make, run, cg, log, args.keep, missing,
            lambda r: (f"{r['msgs']} messages in {r['wall']:.2f} s = {r['rate']:.0f} msg/s, "
                       f"{r['cpu']:.2f} CPU s ({r['cpu_per_1000']:.3f} s / 1000)"))
        profiles = run_profiles(profiled, results, make, run, cg, work, log, args.keep,
                                args.perf_top)
    finally:
        finish_work(args, work, log)
    clock.stop()

    lines = report(args, results, notes, profiles, clock, cg, sqlite_version, build)
    publish(args, SECTION, lines, log)
    if any(s not in results for s in servers):
        sys.exit(1)


def report(args, results, notes, profiles, clock, cg, sqlite_version, build):
    example = " ".join(shlex.quote(a) for a in source_argv(0, args, "PORT"))
    per_domain = args.messages // args.domains
    lines = machine_lines(args.command, clock, build, f"; SQLite {sqlite_version}")
    lines += [
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
        cpu_line(cg, "all messages were seen"),
        "",
    ]
    lines += comparison_table(
        results, notes,
        lambda r: f"{r['wall']:.1f} s ({r['rate']:.0f}, {r['cpu_per_1000']:.2f})")
    lines += ["", "*msg/s* = messages delivered per second of wall time; *CPU s / 1000 "
              "msgs* = CPU seconds (user + system) of the whole server per 1,000 messages "
              "delivered; ratios above 1 mean postern is faster (msg/s) or costlier (CPU)."]
    lines += profile_lines(profiles)
    return lines


if __name__ == "__main__":
    main()
