"""The db:NAME tables (postern's own schema) through `postern map query`.

For each of SQLite, MariaDB and PostgreSQL: a fresh database made with
`postern db init` and `postern db demo`, plus the rows of
test_db_extra.sql (inactive domain, mailbox, alias and alias domain, a
backup MX domain, a domain with transport, uid, gid and default quota, a
catch-all next to a mailbox, an alias domain of it, an alias keeping a
copy).  Every answer listed in test_db_tables.ref must come out of
`postern map query` as the administrator sees it: aliases, catch-alls,
alias domains, keys without their extension, inactive rows not found,
quota default versus explicit, uid/gid/transport overrides, sender
logins.  The same .ref file drives tests/unit/test_db_table.c.

Also: a database that is down (a server of our own, stopped by PID) makes
`postern map query` exit 75 with the server named, never 1 (not found),
and answers again once the server is back; a missing SQLite file or a
database without the schema is a temporary failure too, and the lookup
does not create the file.
"""

import os
import sqlite3
import uuid

import pytest

from harness import MariaDB, PostgreSQL

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "test_db_tables.ref")
EXTRA = os.path.join(HERE, "test_db_extra.sql")
BACKENDS = ["sqlite", "mysql", "pgsql"]


def split_statements(text):
    """Statements of an SQL file, cut at ';' ending a line (sql/README.md rule 3)."""
    out, cur = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        cur.append(line)
        if stripped.endswith(";"):
            out.append("\n".join(cur).rstrip().rstrip(";"))
            cur = []
    assert not cur, f"statement without ';': {cur}"
    return out


def write_conf(conf, server, kind, dbname, extra=""):
    """Write conf/main.cf pointing `database` at dbname on server."""
    if kind == "sqlite":
        text = f"database = sqlite:{dbname}\n"
    else:
        pw = conf / "database.password"
        pw.write_text(server.password + "\n")
        pw.chmod(0o600)
        scheme = "mysql" if kind == "mysql" else "pgsql"
        text = (f"database = {scheme}://{server.user}@{server.host}:{server.port}/{dbname}\n"
                f"database_password_file = {pw}\n")
    (conf / "main.cf").write_text(text + extra)


class Db:
    """A fresh database of one backend and a config dir naming it."""

    def __init__(self, kind, conf, server, dbname):
        self.kind, self.conf, self.server, self.dbname = kind, conf, server, dbname

    def sql(self, query):
        """Run one statement as the test user; return rows."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.dbname) as conn:
                return conn.execute(query).fetchall()
        if self.kind == "mysql":
            return self.server.sql(query, database=self.dbname)
        return self.server.sql(query, dbname=self.dbname)


def make_db(request, tmp_path, kind):
    conf = tmp_path / "conf"
    conf.mkdir()
    if kind == "sqlite":
        server, dbname = None, str(tmp_path / "postern.db")
    else:
        server = request.getfixturevalue("mariadb" if kind == "mysql" else "postgres")
        dbname = server.create_database("db_" + uuid.uuid4().hex[:12])
    write_conf(conf, server, kind, dbname)
    return Db(kind, conf, server, dbname)


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    return make_db(request, tmp_path, request.param)


def read_ref():
    """{table: [(key, expected value or None)]} from test_db_tables.ref."""
    tables = {}
    with open(REF) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            spec, rest = line.split(" ", 1)
            key, answer = rest.split(" -> ")
            if answer == "not found":
                value = None
            else:
                assert answer.startswith('found "') and answer.endswith('"'), line
                value = answer[len('found "'):-1]
            tables.setdefault(spec, []).append((key, value))
    return tables


def test_tables_answer_as_documented(postern, db):
    for args in (("db", "init"), ("db", "demo")):
        res = postern("-c", db.conf, *args)
        assert res.returncode == 0, res.stderr
    for stmt in split_statements(open(EXTRA).read()):
        db.sql(stmt)
    tables = read_ref()
    assert len(tables) == 10
    for spec, cases in tables.items():
        # All keys of one table in one process: "key<TAB>value" per found key.
        keys = "".join(k + "\n" for k, _ in cases)
        res = postern("map", "-c", db.conf, "query", "-", spec, input=keys)
        assert res.returncode == 0, (spec, res.stderr)
        assert res.stderr == ""
        got = dict(line.split("\t", 1) for line in res.stdout.splitlines())
        want = {k: v for k, v in cases if v is not None}
        assert got == want, f"{db.kind} {spec}"


def test_single_key_exit_status(postern, db):
    assert postern("-c", db.conf, "db", "init").returncode == 0
    assert postern("-c", db.conf, "db", "demo").returncode == 0
    res = postern("map", "-c", db.conf, "query", "Info@Example.COM", "db:aliases")
    assert (res.returncode, res.stdout, res.stderr) == \
        (0, "alice@example.com,bob@example.com\n", "")
    res = postern("map", "-c", db.conf, "query", "nobody@example.com", "db:aliases")
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "")
    # A table list as in main.cf: db:uid finds nothing, static answers.
    res = postern("map", "-c", db.conf, "query", "alice@example.com", "db:uid, static:5000")
    assert (res.returncode, res.stdout) == (0, "5000\n")
    res = postern("map", "-c", db.conf, "query", "x", "db:nosuch")
    assert res.returncode == 75
    assert 'unknown table "db:nosuch"' in res.stderr


def test_sqlite_missing_file_or_schema_is_tempfail(postern, tmp_path):
    path = tmp_path / "postern.db"
    (tmp_path / "main.cf").write_text(f"database = sqlite:{path}\n")
    res = postern("map", "-c", tmp_path, "query", "alice@example.com", "db:mailboxes")
    assert (res.returncode, res.stdout) == (75, "")
    assert f"database file {path} does not exist (run postern db init)" in res.stderr
    assert not path.exists()
    path.write_bytes(b"")  # a file without the schema
    res = postern("map", "-c", tmp_path, "query", "alice@example.com", "db:mailboxes")
    assert res.returncode == 75
    assert "db:mailboxes" in res.stderr and "no such table" in res.stderr


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])  # SQLite has no password
def test_password_file_readable_by_others_is_tempfail(postern, request, tmp_path, kind):
    db = make_db(request, tmp_path, kind)
    pw = db.conf / "database.password"
    pw.chmod(0o644)
    res = postern("map", "-c", db.conf, "query", "example.com", "db:domains")
    assert res.returncode == 75
    assert f"database_password_file {pw} is readable by others" in res.stderr


@pytest.fixture(scope="module", params=["mysql", "pgsql"])
def own_server(request):
    """A MariaDB or PostgreSQL of this module's own: the test stops it."""
    server = MariaDB() if request.param == "mysql" else PostgreSQL()
    request.addfinalizer(lambda: server.cleanup(keep=request.session.testsfailed > 0))
    server.start()
    return request.param, server


def test_stopped_database_is_tempfail_not_notfound(postern, own_server, tmp_path):
    kind, server = own_server
    conf = tmp_path / "conf"
    conf.mkdir()
    write_conf(conf, server, kind, server.dbname)
    for args in (("db", "init"), ("db", "demo")):
        assert postern("-c", conf, *args).returncode == 0
    query = ("map", "-c", conf, "query", "alice@example.com", "db:mailboxes")
    assert postern(*query).stdout == "example.com/alice/\n"
    server.stop()
    try:
        for table, key in (("db:mailboxes", "alice@example.com"),
                           ("db:aliases", "info@example.com"), ("db:domains", "example.com"),
                           ("db:quota", "bob@example.com")):
            res = postern("map", "-c", conf, "query", key, table, timeout=60)
            assert (res.returncode, res.stdout) == (75, ""), (table, res.stderr)
            assert f"{table}:" in res.stderr
            assert f"{server.host}:{server.port}" in res.stderr
            assert "cannot connect" in res.stderr
        res = postern("user", "-c", conf, "list", timeout=60)
        assert res.returncode == 75
    finally:
        server.relaunch()
    res = postern(*query)
    assert (res.returncode, res.stdout) == (0, "example.com/alice/\n")
