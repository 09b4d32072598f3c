"""sqlite:, mysql: and pgsql: tables in Postfix's .cf format, through `postern map query`.

For each of SQLite, MariaDB and PostgreSQL: a Postfix-style schema
(virtual_aliases, mailbox, transport, virtual_domains) with rows, and .cf
files written as sqlite_table(5), mysql_table(5) and pgsql_table(5) show
them (hosts / user / password / dbname or dbpath, query with '%s', a
'%u' + '%d' query, a domain-filtered table, result_format = smtp:[%s],
expansion_limit = 1 on a two-row key).  The tests assert what an
administrator sees from `postern map query`: standard output, the message
on standard error, and the exit status (0 found, 1 not found, 75
temporary failure).

Also: keys built to break a pasted query (quotes, UNION, comments,
backslashes, LIKE wildcards, a 64 KiB key) match no row and leave the
table intact; a dead first host is skipped (failover); an unreachable
database is a temporary failure, never "not found"; and a long-running
`postern map query -` keeps working across a database restart: lookups
fail temporarily while the server is down and succeed again, in the same
process, once it is back (reconnect).  The restart tests run their own
servers (the session fixtures are shared with other tests).
"""

import os
import queue
import sqlite3
import subprocess
import threading

import pytest

from harness import MariaDB, PostgreSQL
from harness.ports import free_port

DBNAME = "tables_sql"
ANSWER_TIMEOUT = 30

SCHEMA = [
    "CREATE TABLE virtual_aliases (email VARCHAR(255) NOT NULL, destination VARCHAR(255))",
    "CREATE TABLE mailbox (local_part VARCHAR(64) NOT NULL, domain VARCHAR(255) NOT NULL,"
    " maildir VARCHAR(255) NOT NULL, active CHAR(1) NOT NULL)",
    "CREATE TABLE transport (domain VARCHAR(255) NOT NULL, nexthop VARCHAR(255) NOT NULL)",
    "CREATE TABLE virtual_domains (name VARCHAR(255) NOT NULL)",
]
ROWS = [
    "INSERT INTO virtual_aliases VALUES ('info@example.com', 'alice@example.com')",
    "INSERT INTO virtual_aliases VALUES ('info@example.com', 'bob@example.com')",
    "INSERT INTO virtual_aliases VALUES ('postmaster@example.com', 'alice@example.com')",
    "INSERT INTO virtual_aliases VALUES ('nullrow@example.com', NULL)",
    "INSERT INTO virtual_aliases VALUES ('sales@example.net', 'carol@example.net')",
    "INSERT INTO mailbox VALUES ('alice', 'example.com', 'example.com/alice/', '1')",
    "INSERT INTO mailbox VALUES ('bob', 'example.com', 'example.com/bob/', '0')",
    "INSERT INTO transport VALUES ('example.net', 'mx.example.net')",
    "INSERT INTO virtual_domains VALUES ('example.com')",
    "INSERT INTO virtual_domains VALUES ('example.net')",
]

# The tables, as the manuals write them (after the connection lines).
TABLES = {
    "aliases": "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n"
               "    ORDER BY destination\n",
    "mailbox": "query = SELECT maildir FROM mailbox\n"
               "    WHERE local_part='%u' AND domain='%d' AND active = '1'\n",
    "filtered": "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n"
                "domain = example.com\n",
    "transport": "query = SELECT nexthop FROM transport WHERE domain='%s'\n"
                 "result_format = smtp:[%s]\n",
    "limited": "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n"
               "expansion_limit = 1\n",
    "domains": "query = SELECT name FROM virtual_domains WHERE name='%s'\n",
    "legacy": "select_field = destination\ntable = virtual_aliases\nwhere_field = email\n"
              "additional_conditions = AND destination LIKE 'a%%'\n",
}

# Keys that would change a pasted query's meaning; none is a row's key.
HOSTILE = [
    "' OR '1'='1",
    "' or 1=1 --",
    "x' UNION SELECT destination FROM virtual_aliases --",
    "info@example.com' --",
    "info@example.com' #",
    "info@example.com'; DROP TABLE virtual_aliases; --",
    "info@example.com'/*",
    "\\'",
    "\\",
    "info@example.com\\",
    "%",
    "_",
    "%@example.com",
    "info@example.co_",
    "info@%",
    "\"info@example.com\"",
    "$1",
    "?",
    "a" * 64 * 1024,
]


class Database:
    """One backend with the schema loaded; writes .cf files for it."""

    def __init__(self, kind, server, path=None):
        self.kind = kind
        self.server = server
        self.path = path  # sqlite: the database file

    def execute(self, statements):
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                for s in statements:
                    conn.execute(s)
        elif self.kind == "mysql":
            for s in statements:
                if s.startswith("CREATE TABLE"):
                    s += " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
                self.server.sql(s, database=DBNAME)
        else:
            for s in statements:
                self.server.sql(s, dbname=DBNAME)

    def count(self, table):
        q = f"SELECT COUNT(*) FROM {table}"
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                return conn.execute(q).fetchone()[0]
        if self.kind == "mysql":
            return self.server.sql(q, database=DBNAME)[0][0]
        return self.server.sql(q, dbname=DBNAME)[0][0]

    def connection(self, hosts=None):
        """The connection lines of a .cf file."""
        if self.kind == "sqlite":
            return f"dbpath = {os.path.basename(self.path)}\n"
        s = self.server
        if hosts is None:
            # mysql_table(5) spells TCP hosts with inet:, pgsql_table(5) without.
            hosts = f"inet:{s.host}:{s.port}" if self.kind == "mysql" else f"{s.host}:{s.port}"
        return (f"# connection\nhosts = {hosts}\nuser = {s.user}\n"
                f"password = {s.password}\ndbname = {DBNAME}\n")

    def write_cf(self, confdir, name, body, hosts=None):
        path = os.path.join(confdir, f"{self.kind}-{name}.cf")
        with open(path, "w") as f:
            f.write(self.connection(hosts) + body)
        os.chmod(path, 0o640)
        return f"{self.kind}:{path}"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A per-module cache: kind -> Database, built once on first use."""
    cache = {}

    def get(kind, server):
        if kind not in cache:
            confdir = str(tmp_path_factory.mktemp(f"tables-{kind}"))
            with open(os.path.join(confdir, "main.cf"), "w") as f:
                f.write("# empty\n")
            if kind == "sqlite":
                database = Database(kind, None, os.path.join(confdir, "mail.db"))
            else:
                server.create_database(DBNAME)
                database = Database(kind, server)
            database.execute(SCHEMA + ROWS)
            database.confdir = confdir
            database.specs = {name: database.write_cf(confdir, name, body)
                              for name, body in TABLES.items()}
            cache[kind] = database
        return cache[kind]
    return get


def _database(request, loaded):
    server = {"sqlite": None, "mysql": "mariadb", "pgsql": "postgres"}[request.param]
    return loaded(request.param, request.getfixturevalue(server) if server else None)


@pytest.fixture(params=["sqlite", "mysql", "pgsql"])
def db(request, loaded):
    """A loaded backend and a config dir holding every table's .cf file."""
    return _database(request, loaded)


@pytest.fixture(params=["mysql", "pgsql"])
def netdb(request, loaded):
    """The same, for the backends that have hosts."""
    return _database(request, loaded)


def query(postern, db, *args, **kw):
    return postern("map", "-c", db.confdir, "query", *args, **kw)


# (table, key, stdout, exit status)
LOOKUPS = [
    ("aliases", "info@example.com", "alice@example.com,bob@example.com\n", 0),
    ("aliases", "INFO@Example.COM", "alice@example.com,bob@example.com\n", 0),
    ("aliases", "postmaster@example.com", "alice@example.com\n", 0),
    ("aliases", "nobody@example.com", "", 1),
    ("aliases", "nullrow@example.com", "", 1),  # a NULL value is no value
    ("mailbox", "alice@example.com", "example.com/alice/\n", 0),
    ("mailbox", "bob@example.com", "", 1),  # active = '0'
    ("mailbox", "alice", "", 1),  # %d: no domain, no query
    ("mailbox", "@example.com", "", 1),  # %u: empty local part, no query
    ("filtered", "info@example.com", "alice@example.com,bob@example.com\n", 0),
    ("filtered", "sales@example.net", "", 1),  # the row exists; the domain is not listed
    ("transport", "example.net", "smtp:[mx.example.net]\n", 0),
    ("transport", "example.com", "", 1),
    ("limited", "postmaster@example.com", "alice@example.com\n", 0),
    ("domains", "example.com", "example.com\n", 0),
    ("domains", "example.org", "", 1),
    ("legacy", "info@example.com", "alice@example.com\n", 0),
]


@pytest.mark.parametrize("table,key,stdout,status", LOOKUPS,
                         ids=[f"{t}-{k}" for t, k, _, _ in LOOKUPS])
def test_lookup(postern, db, table, key, stdout, status):
    res = query(postern, db, key, db.specs[table])
    assert (res.returncode, res.stdout) == (status, stdout), res.stderr
    assert res.stderr == ""


def test_several_keys_print_key_and_value(postern, db):
    res = query(postern, db, "info@example.com", "nobody@example.com", "postmaster@example.com",
                db.specs["aliases"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("info@example.com\talice@example.com,bob@example.com\n"
                          "postmaster@example.com\talice@example.com\n")


def test_expansion_limit_is_a_temporary_failure(postern, db):
    res = query(postern, db, "info@example.com", db.specs["limited"])
    assert (res.returncode, res.stdout) == (75, "")
    assert db.specs["limited"] in res.stderr
    assert "expansion_limit = 1" in res.stderr


def test_hostile_keys_match_nothing(postern, db):
    res = query(postern, db, "-", db.specs["aliases"], input="".join(k + "\n" for k in HOSTILE))
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "")
    # The same keys one by one on the command line (the long one too).
    for key in HOSTILE[:6] + [HOSTILE[-1]]:
        res = query(postern, db, "--", key, db.specs["aliases"])
        assert (res.returncode, res.stdout) == (1, ""), (key[:80], res.stderr)
    # Nothing was changed or dropped, and real keys still answer.
    assert db.count("virtual_aliases") == 5
    res = query(postern, db, "postmaster@example.com", db.specs["aliases"])
    assert res.stdout == "alice@example.com\n"


def test_bad_query_template_is_refused_at_open(postern, db):
    spec = db.write_cf(db.confdir, "badquery",
                       "query = SELECT destination FROM virtual_aliases WHERE email LIKE '%s%'\n")
    res = query(postern, db, "info@example.com", spec)
    assert res.returncode == 75
    cf = spec.split(":", 1)[1]
    assert f"{cf}, line " in res.stderr
    assert "unknown expansion" in res.stderr


def test_broken_query_is_a_temporary_failure(postern, db):
    spec = db.write_cf(db.confdir, "brokenquery",
                       "query = SELECT no_such_column FROM virtual_aliases WHERE email='%s'\n")
    res = query(postern, db, "info@example.com", spec)
    assert (res.returncode, res.stdout) == (75, "")
    assert spec in res.stderr
    assert "no_such_column" in res.stderr


# ---- failover, outages and reconnecting (mysql, pgsql) ----------------------

def test_dead_first_host_fails_over(postern, netdb):
    db = netdb
    dead = f"127.0.0.1:{free_port()}"
    live = f"{db.server.host}:{db.server.port}"
    spec = db.write_cf(db.confdir, "failover", TABLES["aliases"], hosts=f"{dead} {live}")
    keys = "info@example.com\npostmaster@example.com\n"
    res = query(postern, db, "-", spec, input=keys)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("info@example.com\talice@example.com,bob@example.com\n"
                          "postmaster@example.com\talice@example.com\n")
    # The dead host is tried once: after failing it is skipped for a while.
    warnings = [ln for ln in res.stderr.splitlines() if f"{dead}: cannot connect" in ln]
    assert len(warnings) == 1, res.stderr
    assert f"{live}: connected (after failing over from {dead})" in res.stderr


def test_unreachable_database_is_a_temporary_failure(postern, netdb):
    db = netdb
    dead = f"127.0.0.1:{free_port()}"
    spec = db.write_cf(db.confdir, "dead", TABLES["aliases"], hosts=dead)
    res = query(postern, db, "info@example.com", spec)
    assert (res.returncode, res.stdout) == (75, "")
    assert spec in res.stderr
    assert dead in res.stderr and "cannot connect" in res.stderr


def test_wrong_password_is_a_temporary_failure(postern, netdb):
    db = netdb
    path = os.path.join(db.confdir, f"{db.kind}-badpw.cf")
    with open(path, "w") as f:
        f.write(db.connection().replace(db.server.password, "wrong-password")
                + TABLES["aliases"])
    res = query(postern, db, "info@example.com", f"{db.kind}:{path}")
    assert (res.returncode, res.stdout) == (75, "")
    assert "wrong-password" not in res.stderr


def drain(q):
    """The lines waiting in queue q, without blocking."""
    lines = []
    while True:
        try:
            lines.append(q.get_nowait())
        except queue.Empty:
            return lines


class MapProcess:
    """`postern map query - SPEC` kept running; keys in, lines out."""

    def __init__(self, binary, confdir, spec):
        self.proc = subprocess.Popen([binary, "map", "-c", confdir, "query", "-", spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out = queue.Queue()
        self.err = queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))

    def ask(self, key):
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()

    def answer(self):
        return self.out.get(timeout=ANSWER_TIMEOUT)

    def error_naming(self, text):
        """The next stderr line that contains text (others are skipped)."""
        while True:
            line = self.err.get(timeout=ANSWER_TIMEOUT)
            if text in line:
                return line

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()  # by PID
                self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture(params=["mysql", "pgsql"])
def private_server(request):
    """A server of our own (we stop it), loaded with the schema."""
    server = MariaDB() if request.param == "mysql" else PostgreSQL()
    request.addfinalizer(lambda: server.cleanup(keep=request.node.session.testsfailed > 0))
    server.start()
    server.create_database(DBNAME)
    database = Database(request.param, server)
    database.execute(SCHEMA + ROWS)
    return database


def test_same_process_reconnects_after_restart(private_server, postern_build, tmp_path):
    db = private_server
    spec = db.write_cf(str(tmp_path), "aliases", TABLES["aliases"])
    (tmp_path / "main.cf").write_text("")
    client = MapProcess(os.path.join(postern_build, "bin", "postern"), str(tmp_path), spec)
    try:
        client.ask("info@example.com")
        assert client.answer() == "info@example.com\talice@example.com,bob@example.com"

        db.server.stop()
        # Down: a temporary failure naming the table; nothing on stdout.
        for key in ("postmaster@example.com", "info@example.com"):
            client.ask(key)
            line = client.error_naming(f'lookup error for "{key}"')
            assert spec in line
            assert client.out.empty()
        assert client.proc.poll() is None

        db.server.relaunch()
        # Back: the same process answers again, at once.
        client.ask("postmaster@example.com")
        assert client.answer() == "postmaster@example.com\talice@example.com"
        client.ask("info@example.com")
        assert client.answer() == "info@example.com\talice@example.com,bob@example.com"

        # A restart between two lookups (a maintenance window at night):
        # the stale connection is noticed, and the lookup reconnects and
        # answers, with no temporary failure at all.
        db.server.stop()
        db.server.relaunch()
        client.ask("postmaster@example.com")
        assert client.answer() == "postmaster@example.com\talice@example.com"
        assert not any("lookup error" in line for line in drain(client.err))
    finally:
        status = client.close()
    # A run that met a temporary failure ends with EX_TEMPFAIL.
    assert status == 75
