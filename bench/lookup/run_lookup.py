#!/usr/bin/python3
"""Run lookup_bench against SQLite, MariaDB and PostgreSQL; write RESULTS.md.

Called by bench/run-lookup.sh (and so by `make bench`).  Starts private
MariaDB and PostgreSQL servers on loopback with the system-test harness
(tests/system/harness: temp dirs, free ports, stopped by PID), loads
postern's schema (sql/<dialect>/migrations) and demo data into each
database and into an SQLite file, adds --mailboxes generated mailboxes
in one more domain, writes a Postfix-style .cf table per backend asking
what virtual_mailbox_maps asks (the maildir of an active mailbox), and
runs lookup_bench over a key list of every mailbox plus one unknown
address in ten, in a fixed shuffled order.

The Markdown section it writes to --out (bench/results.py: the other
sections stay) states the machine (nproc, CPU model,
memory, kernel), the server and library versions, the date and the exact
commands, so a reader can reproduce or discount the figures.  There are
no thresholds: the figures are reported, not judged.
"""

import argparse
import datetime
import os
import platform
import random
import re
import shlex
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import command_output, cpu_model, os_release  # noqa: E402  (shared with relay, inbound)
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
sys.path.insert(0, os.path.join(REPO, "bench"))

from harness import MariaDB, PostgreSQL  # noqa: E402
from results import write_section  # noqa: E402

QUERY = "SELECT maildir FROM mailboxes WHERE address = '%s' AND active = '1'"
DOMAIN = "bench.example"
# Fixed seed: the same key order on every run.
SEED = 20240501


def split_statements(text):
    """Split SQL at ';' ending a line, as postern's migration runner does."""
    out = []
    for part in re.split(r";[ \t]*(?:\r?\n|\Z)", text):
        code = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if code:
            out.append(part.strip())
    return out


def schema_files(dialect):
    mig = os.path.join(REPO, "sql", dialect, "migrations")
    files = sorted(os.path.join(mig, f) for f in os.listdir(mig) if f.endswith(".sql"))
    return files + [os.path.join(REPO, "sql", dialect, "demo.sql")]


def mailbox_rows(n):
    """(local_part, address, maildir) of the generated mailboxes."""
    return [(f"user{i:06d}", f"user{i:06d}@{DOMAIN}", f"{DOMAIN}/user{i:06d}/")
            for i in range(n)]


def write_keys(path, n):
    """Every generated address once plus one unknown address in ten, shuffled."""
    keys = [f"user{i:06d}@{DOMAIN}" for i in range(n)]
    keys += [f"nobody{i:06d}@{DOMAIN}" for i in range(max(1, n // 10))]
    random.Random(SEED).shuffle(keys)
    with open(path, "w") as f:
        f.write("\n".join(keys) + "\n")
    return len(keys)


# --- loading the data ------------------------------------------------------

def load_sqlite(path, n):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    for fname in schema_files("sqlite"):
        with open(fname) as f:
            for stmt in split_statements(f.read()):
                conn.execute(stmt)
    conn.execute("INSERT INTO domains (name, description) VALUES (?, 'bench')", (DOMAIN,))
    dom = conn.execute("SELECT id FROM domains WHERE name = ?", (DOMAIN,)).fetchone()[0]
    conn.executemany("INSERT INTO mailboxes (domain_id, local_part, address, password, maildir)"
                     " VALUES (?, ?, ?, '{PLAIN}x', ?)",
                     [(dom, lp, a, m) for lp, a, m in mailbox_rows(n)])
    conn.commit()
    version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    conn.close()
    return version


def load_server(conn, dialect, n, placeholder="%s"):
    """Schema, demo data and n mailboxes; returns the server's version."""
    with conn.cursor() as cur:
        for fname in schema_files(dialect):
            with open(fname) as f:
                for stmt in split_statements(f.read()):
                    cur.execute(stmt)
        cur.execute(f"INSERT INTO domains (name, description) VALUES ({placeholder}, 'bench')",
                    (DOMAIN,))
        cur.execute(f"SELECT id FROM domains WHERE name = {placeholder}", (DOMAIN,))
        dom = cur.fetchone()[0]
        rows = [(dom, lp, a, m) for lp, a, m in mailbox_rows(n)]
        for i in range(0, len(rows), 1000):
            cur.executemany("INSERT INTO mailboxes (domain_id, local_part, address, password,"
                            " maildir) VALUES (%s, %s, %s, '{PLAIN}x', %s)", rows[i:i + 1000])
        cur.execute("SELECT VERSION()" if dialect == "mysql" else "SHOW server_version")
        return cur.fetchone()[0]


# --- machine facts -----------------------------------------------------------

def mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return "unknown"


# --- main ----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build dir holding bench/lookup_bench")
    ap.add_argument("--out", required=True, help="Markdown file to write")
    ap.add_argument("--seconds", type=int, default=3, help="duration of each run")
    ap.add_argument("--mailboxes", type=int, default=5000,
                    help="generated mailboxes (keys must fit table_cache_size)")
    ap.add_argument("--levels", default="1,8,64", help="lookups in flight")
    ap.add_argument("--workers", type=int, default=0,
                    help="worker threads (0: table_async_workers default)")
    ap.add_argument("--backends", default="sqlite,mysql,pgsql")
    ap.add_argument("--command", default=None, help="the command line to record")
    args = ap.parse_args()

    binary = os.path.join(args.build, "bench", "lookup_bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"run_lookup.py: {binary} not found: run `make bench`")
    backends = [b for b in args.backends.split(",") if b]
    work = tempfile.mkdtemp(prefix="postern-bench-")
    servers = []
    versions = {}
    specs = []
    try:
        keyfile = os.path.join(work, "keys")
        nkeys = write_keys(keyfile, args.mailboxes)
        if "sqlite" in backends:
            db = os.path.join(work, "bench.db")
            versions["SQLite"] = load_sqlite(db, args.mailboxes)
            cf = os.path.join(work, "sqlite-mailboxes.cf")
            with open(cf, "w") as f:
                f.write(f"dbpath = {db}\nquery = {QUERY}\n")
            specs.append(f"sqlite:{cf}")
        if "mysql" in backends:
            print("run_lookup.py: starting MariaDB", file=sys.stderr)
            m = MariaDB()
            servers.append(m)
            m.start()
            with m.connect() as conn:
                versions["MariaDB"] = load_server(conn, "mysql", args.mailboxes)
            cf = os.path.join(work, "mysql-mailboxes.cf")
            with open(cf, "w") as f:
                f.write(f"hosts = inet:{m.host}:{m.port}\nuser = {m.user}\n"
                        f"password = {m.password}\ndbname = {m.dbname}\nquery = {QUERY}\n")
            specs.append(f"mysql:{cf}")
        if "pgsql" in backends:
            print("run_lookup.py: starting PostgreSQL", file=sys.stderr)
            p = PostgreSQL()
            servers.append(p)
            p.start()
            conn = p.connect()
            try:
                versions["PostgreSQL"] = load_server(conn, "pgsql", args.mailboxes)
            finally:
                conn.close()
            cf = os.path.join(work, "pgsql-mailboxes.cf")
            with open(cf, "w") as f:
                f.write(f"hosts = inet:{p.host}:{p.port}\nuser = {p.user}\n"
                        f"password = {p.password}\ndbname = {p.dbname}\nquery = {QUERY}\n")
            specs.append(f"pgsql:{cf}")

        argv = [binary, "-k", keyfile, "-d", str(args.seconds), "-j", args.levels,
                "-m", "off,on"]
        if args.workers:
            argv += ["-w", str(args.workers)]
        argv += specs
        print("run_lookup.py: " + " ".join(shlex.quote(a) for a in argv), file=sys.stderr)
        started = datetime.datetime.now(datetime.timezone.utc)
        load_before = os.getloadavg()
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=60 + 20 * args.seconds * len(specs) * 2 * 3)
        # Show the end of stderr only: a dead server makes every worker
        # log every failed connect.
        err_lines = res.stderr.splitlines()
        if len(err_lines) > 40:
            sys.stderr.write(f"({len(err_lines) - 40} lines of lookup_bench stderr left out)\n")
        sys.stderr.write("".join(line + "\n" for line in err_lines[-40:]))
        if res.returncode != 0:
            sys.stderr.write(res.stdout)
            sys.exit(f"run_lookup.py: lookup_bench exited {res.returncode}; "
                     f"{args.out} left unchanged")
        table = res.stdout.strip()
        load_after = os.getloadavg()
    finally:
        for s in servers:
            s.cleanup()
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)

    workers = args.workers or "the table_async_workers default (4)"
    command = args.command or " ".join(shlex.quote(a) for a in sys.argv)
    shown_argv = " ".join(shlex.quote(a) for a in argv).replace(work, "$TMP")
    build = os.path.basename(os.path.normpath(args.build))
    lines = [
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- lookup_bench: `{shown_argv}`",
        f"- Build: `{build}` (`{command_output(['cc', '--version']).splitlines()[0]}`)",
        f"- Machine: {os.cpu_count()} CPUs (nproc {command_output(['nproc'])}), "
        f"{cpu_model()}, {mem_total()} RAM",
        f"- System: {os_release()}, Linux {platform.release()}",
        "- Load average (1, 5, 15 min) before / after the runs: "
        + " ".join(f"{x:.2f}" for x in load_before) + " / "
        + " ".join(f"{x:.2f}" for x in load_after)
        + " (anything else running on the machine shows up in the figures)",
        "- Servers: " + ", ".join(f"{k} {v}" for k, v in versions.items()) +
        " (private instances on 127.0.0.1 started by the test harness; "
        "MariaDB and PostgreSQL run with durability off, which does not matter "
        "for reads)",
        f"- Data: postern schema + demo data, plus {args.mailboxes} mailboxes in "
        f"`{DOMAIN}`; {nkeys} keys (every mailbox, plus one unknown address in "
        "ten) looked up in a fixed shuffled order, round and round",
        f"- Query (every backend): `{QUERY}`",
        f"- Worker threads: {workers}; each run lasts {args.seconds} s; "
        "cache `on` = the defaults (table_cache_size 10000, positive TTL 60 s, "
        "negative TTL 10 s), warmed up by one pass over the keys before the clock "
        "starts; `off` = table_cache_size 0",
        "",
        table,
        "",
        "Columns: *in flight* = lookups kept outstanding at once through table_async; "
        "*lookups/s* = answers received per second of wall time; latency = from "
        "table_async_lookup() to the callback; *cache hits %* = fresh answers served "
        "by the cache; the last column counts the answers by kind (a temporary "
        "failure in a run means the run is not valid).",
        "",
    ]
    write_section(args.out, "Lookups (bench/lookup)", lines)
    print(f"run_lookup.py: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
