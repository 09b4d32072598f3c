"""`postern db`, `postern domain`, `postern user` and `postern alias`, as an
administrator runs them, on SQLite, MariaDB and PostgreSQL.

- db init / migrate / status / demo: what each prints and exits with on
  an empty database and on one that has the schema; running them twice
  changes nothing; an SQLite file is created with mode 0660, in WAL mode.
- domain, user and alias commands round-trip: what they store is what
  `postern domain|user|alias list` shows and what the db:NAME tables
  answer through `postern map query`; refusals (unknown domain,
  duplicates, limits, bad names, a domain still in use) say why and
  exit 1.
- The password hash `user add` and `user passwd` store is verified by
  Dovecot itself (`doveadm pw -t HASH -p PASSWORD`), for {ARGON2ID} and,
  with password_scheme = BLF-CRYPT, {BLF-CRYPT}; passwords come from a
  file or standard input, never from the command line.
"""

import fcntl
import os
import select
import sqlite3
import stat
import subprocess
import termios
import time
import uuid

import pytest

BACKENDS = ["sqlite", "mysql", "pgsql"]
ARGON2ID_PREFIX = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"


class Db:
    """A fresh, empty database of one backend and a config dir naming it."""

    def __init__(self, request, tmp_path, kind, extra=""):
        self.kind = kind
        self.conf = tmp_path / "conf"
        self.conf.mkdir()
        if kind == "sqlite":
            self.server = None
            self.dbname = str(tmp_path / "postern.db")
            text = f"database = sqlite:{self.dbname}\n"
        else:
            self.server = request.getfixturevalue("mariadb" if kind == "mysql" else "postgres")
            self.dbname = self.server.create_database("cli_" + uuid.uuid4().hex[:12])
            pw = self.conf / "database.password"
            pw.write_text(self.server.password + "\n")
            pw.chmod(0o600)
            s = self.server
            text = (f"database = {kind}://{s.user}@{s.host}:{s.port}/{self.dbname}\n"
                    f"database_password_file = {pw}\n")
        (self.conf / "main.cf").write_text(text + extra)

    def sql(self, query):
        """Run one statement as the test user; return rows."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.dbname) as conn:
                return conn.execute(query).fetchall()
        if self.kind == "mysql":
            return self.server.sql(query, database=self.dbname)
        return self.server.sql(query, dbname=self.dbname)


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    return Db(request, tmp_path, request.param)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"
    return res


def refused(res, message, status=1):
    assert res.returncode == status, f"exit {res.returncode}: {res.stderr}"
    assert message in res.stderr
    return res


def doveadm_verifies(hashed, password):
    """True when Dovecot accepts password for the stored hash."""
    res = subprocess.run(["doveadm", "pw", "-t", hashed, "-p", password],
                         capture_output=True, text=True, timeout=60)
    return res.returncode == 0 and "(verified)" in res.stdout


def stored_password(db, address):
    rows = db.sql(f"SELECT password FROM mailboxes WHERE address = '{address}'")
    assert len(rows) == 1
    return rows[0][0]


def test_init_migrate_status(postern, db):
    def run(*args):
        return postern("db", "-c", db.conf, *args)

    if db.kind == "sqlite":
        # No file yet: every command but init says so, and makes none.
        for action in ("status", "migrate", "demo"):
            refused(run(action), f"database file {db.dbname} does not exist (run postern db "
                    "init)")
        assert not os.path.exists(db.dbname)
    else:
        res = run("status")
        assert res.returncode == 1
        assert "schema version: none (run postern db init)\n" in res.stdout
        assert "pending: 0001_initial\n" in res.stdout
        refused(run("migrate"), "no schema_version table): run postern db init")
        refused(run("demo"), "run postern db init first")

    res = ok(run("init"))
    assert "applied migration 0001_initial" in res.stderr
    if db.kind == "sqlite":
        assert f"created database file {db.dbname}" in res.stderr
        assert stat.S_IMODE(os.stat(db.dbname).st_mode) == 0o660
        import sqlite3
        with sqlite3.connect(f"file:{db.dbname}?mode=ro", uri=True) as c:
            assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    for again in ("init", "migrate"):
        res = ok(run(again))
        assert "applied migration" not in res.stderr
        assert "the schema is up to date (version 1)" in res.stderr
    res = ok(run("status"))
    assert res.stdout.endswith("schema version: 1\nnewest available: 1\npending: none\n")
    assert res.stdout.startswith("database: ")
    assert [tuple(r) for r in db.sql("SELECT version FROM schema_version")] == [(1,)]

    ok(run("demo"))
    ok(run("demo"))  # loading twice changes nothing
    assert db.sql("SELECT COUNT(*) FROM mailboxes")[0][0] == 3
    assert db.sql("SELECT COUNT(*) FROM alias_targets")[0][0] == 5
    res = ok(postern("map", "-c", db.conf, "query", "alice@example.com", "db:mailboxes"))
    assert res.stdout == "example.com/alice/\n"
    # The demo's passwords are "demo", in a hash Dovecot made.
    assert doveadm_verifies(stored_password(db, "bob@example.com"), "demo")


def test_domain_user_alias_round_trip(postern, db, tmp_path):
    def cmd(*args, **kw):
        return postern(args[0], "-c", db.conf, *args[1:], **kw)

    def lookup(key, table):
        res = postern("map", "-c", db.conf, "query", key, table)
        assert res.returncode in (0, 1), res.stderr
        return res.stdout.rstrip("\n") if res.returncode == 0 else None

    ok(cmd("db", "init"))
    pwfile = tmp_path / "alice.pw"
    pwfile.write_text("s3cret\nignored second line\n")

    # Checked before any password is read (here: none on standard input).
    refused(cmd("user", "add", "alice@test.example", input=""),
            "domain test.example does not exist (add it first: postern domain add "
            "test.example)")
    res = ok(cmd("domain", "add", "Test.Example", "--description", "Test domain",
                 "--quota-default", "1000", "--max-mailboxes", "2"))
    assert "added domain test.example" in res.stderr
    refused(cmd("domain", "add", "test.example"), "domain test.example already exists")
    refused(cmd("domain", "add", "bad_name.example"), 'bad domain name "bad_name.example"')
    assert ok(cmd("domain", "list")).stdout == "test.example\tactive\t0\t0\t1000\tTest domain\n"
    assert lookup("test.example", "db:domains") == "test.example"

    # A password from a file, and one from standard input.
    res = ok(cmd("user", "add", "Alice@Test.Example", "--name", "Alice T", "--password-file",
                 pwfile))
    assert "added mailbox alice@test.example" in res.stderr
    hashed = stored_password(db, "alice@test.example")
    assert hashed.startswith(ARGON2ID_PREFIX)
    assert doveadm_verifies(hashed, "s3cret")
    assert not doveadm_verifies(hashed, "s3cret2")
    ok(cmd("user", "add", "bob@test.example", "--quota", "5000", input="from-stdin\n"))
    assert doveadm_verifies(stored_password(db, "bob@test.example"), "from-stdin")
    refused(cmd("user", "add", "alice@test.example", input=""),
            "mailbox alice@test.example already exists")
    refused(cmd("user", "add", "carol@test.example", input=""),
            "domain test.example already has its maximum of 2 mailboxes")
    ok(cmd("user", "del", "bob@test.example"))
    refused(cmd("user", "add", "bob@test.example", input=""), "empty password refused")
    refused(cmd("user", "add", "bob@test.example", input="\n"), "empty password refused")
    ok(cmd("user", "add", "bob@test.example", "--quota", "5000", input="from-stdin\n"))
    refused(cmd("user", "add", "not-an-address", input="x\n"), 'bad address "not-an-address"')
    assert db.sql("SELECT COUNT(*) FROM mailboxes")[0][0] == 2

    res = ok(cmd("user", "passwd", "alice@test.example", input="n3w-pass\n"))
    assert "changed the password of alice@test.example" in res.stderr
    hashed = stored_password(db, "alice@test.example")
    assert doveadm_verifies(hashed, "n3w-pass")
    assert not doveadm_verifies(hashed, "s3cret")
    refused(cmd("user", "passwd", "nobody@test.example", input=""),
            "mailbox nobody@test.example does not exist")

    assert ok(cmd("user", "list", "test.example")).stdout == (
        "alice@test.example\t1000 (domain default)\tactive\ttest.example/alice/\tAlice T\n"
        "bob@test.example\t5000\tactive\ttest.example/bob/\t\n")
    assert lookup("alice@test.example", "db:mailboxes") == "test.example/alice/"
    assert lookup("alice@test.example", "db:quota") == "1000"
    assert lookup("bob@test.example", "db:quota") == "5000"

    # Aliases, a catch-all and an alias domain.
    ok(cmd("alias", "add", "Info@Test.Example", "bob@test.example", "alice@test.example",
           "Ext@Remote.Example"))
    ok(cmd("alias", "add", "info@test.example", "alice@test.example"))  # already there
    ok(cmd("alias", "add", "@test.example", "alice@test.example"))
    assert ok(cmd("alias", "list", "test.example")).stdout == (
        "@test.example\talice@test.example\tactive\n"
        "info@test.example\talice@test.example,bob@test.example,ext@remote.example\tactive\n")
    assert lookup("info@test.example", "db:aliases") == \
        "alice@test.example,bob@test.example,ext@remote.example"
    assert lookup("@test.example", "db:aliases") == "alice@test.example"
    assert lookup("bob@test.example", "db:aliases") == "bob@test.example"
    assert lookup("nobody@test.example", "db:aliases") is None
    assert lookup("info@test.example", "db:sender_login") == \
        "alice@test.example,bob@test.example"
    refused(cmd("alias", "add", "x@nosuch.example", "a@test.example"),
            "domain nosuch.example does not exist")
    refused(cmd("alias", "add", "x@test.example", "not an address"), "bad address")
    refused(cmd("alias", "add", "x@test.example"), "usage:", status=64)

    ok(cmd("domain", "add", "alias.example", "--alias-of", "test.example"))
    assert lookup("alias.example", "db:alias_domains") == "alias.example"
    assert lookup("alice@alias.example", "db:aliases") == "alice@test.example"
    assert lookup("@alias.example", "db:aliases") == "alice@test.example"
    refused(cmd("user", "add", "x@alias.example", input="x\n"), "alias.example is an alias domain")
    assert "alias.example\talias-of=test.example\t" in ok(cmd("domain", "list")).stdout

    res = ok(cmd("alias", "del", "info@test.example", "ext@remote.example"))
    assert "removed target ext@remote.example from alias info@test.example" in res.stderr
    assert lookup("info@test.example", "db:aliases") == "alice@test.example,bob@test.example"
    refused(cmd("alias", "del", "info@test.example", "ext@remote.example"),
            "alias info@test.example has no target ext@remote.example")
    ok(cmd("alias", "del", "info@test.example"))
    assert lookup("info@test.example", "db:aliases") is None
    refused(cmd("alias", "del", "info@test.example"), "alias info@test.example does not exist")

    ok(cmd("user", "del", "bob@test.example"))
    assert lookup("bob@test.example", "db:mailboxes") is None
    refused(cmd("user", "del", "bob@test.example"), "mailbox bob@test.example does not exist")

    refused(cmd("domain", "del", "test.example"),
            "domain test.example still has 1 mailbox and 1 alias: delete them first, or use "
            "--force")
    ok(cmd("domain", "del", "test.example", "--force"))
    assert lookup("alice@test.example", "db:mailboxes") is None
    assert lookup("alice@alias.example", "db:aliases") is None
    assert ok(cmd("domain", "list")).stdout == ""

    # Every change left an audit row naming the command line as the actor.
    actors = {r[0] for r in db.sql("SELECT admin FROM admin_log")}
    assert len(actors) == 1 and actors.pop().startswith("cli:")
    assert db.sql("SELECT COUNT(*) FROM admin_log")[0][0] >= 15


def test_blf_crypt_scheme(postern, request, tmp_path):
    db = Db(request, tmp_path, "sqlite", extra="password_scheme = BLF-CRYPT\n")
    ok(postern("db", "-c", db.conf, "init"))
    ok(postern("domain", "-c", db.conf, "add", "example.com"))
    ok(postern("user", "-c", db.conf, "add", "a@example.com", input="blowfish\n"))
    hashed = stored_password(db, "a@example.com")
    assert hashed.startswith("{BLF-CRYPT}$2y$12$")
    assert doveadm_verifies(hashed, "blowfish")
    assert not doveadm_verifies(hashed, "blowfisH")


def test_bad_settings_and_usage(postern, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    db = tmp_path / "missing" / "postern.db"
    (conf / "main.cf").write_text(f"database = sqlite:{db}\npassword_scheme = MD5\n")
    refused(postern("db", "-c", conf, "init"), f"cannot create database file {db}: its "
            "directory does not exist")
    refused(postern("user", "-c", conf, "list"),
            f"database file {db} does not exist (run postern db init)")
    db.parent.mkdir()
    ok(postern("db", "-c", conf, "init"))
    ok(postern("domain", "-c", conf, "add", "example.com"))
    refused(postern("user", "-c", conf, "add", "a@example.com", input="x\n"),
            'bad value for password_scheme: "MD5": expected ARGON2ID or BLF-CRYPT')
    # Passwords never on the command line: there is no option for one.
    refused(postern("user", "-c", conf, "add", "a@example.com", "--password", "x"),
            "a password is never taken from the command line", status=64)
    for args in (("db",), ("db", "upgrade"), ("user",), ("user", "add"), ("domain", "add"),
                 ("domain", "del", "a.example", "--description", "x"), ("alias", "list", "a", "b")):
        refused(postern(args[0], "-c", conf, *args[1:]), "usage:", status=64)
    # A broken main.cf stops the command rather than use another database.
    (conf / "main.cf").write_text(f"database = sqlite:{db}\n  broken continuation\n"
                                  "= no name\n")
    res = postern("user", "-c", conf, "list")
    assert res.returncode == 1 and "main.cf" in res.stderr


def run_on_terminal(argv, answers, timeout=60):
    """Run argv on a new pseudo-terminal (its controlling terminal), answer
    each prompt in answers in turn, and return (exit status, everything it
    wrote on the terminal)."""
    master, slave = os.openpty()

    def make_controlling_tty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=make_controlling_tty, close_fds=True)
    os.close(slave)
    seen, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and seen.count(b"password: ") > len(answers) - len(pending):
                os.write(master, pending.pop(0).encode() + b"\n")
            if proc.poll() is not None and not ready:
                break
        status = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, seen.decode(errors="replace")


def test_password_prompt_on_terminal(postern_build, request, tmp_path):
    db = Db(request, tmp_path, "sqlite")
    binary = os.path.join(postern_build, "bin", "postern")
    for args in (("db", "init"), ("domain", "add", "example.com")):
        subprocess.run([binary, args[0], "-c", db.conf, *args[1:]], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    status, out = run_on_terminal([binary, "user", "-c", str(db.conf), "add", "t@example.com"],
                                  ["first-try", "second-try"])
    assert status == 1, out
    assert "New password: " in out and "Retype new password: " in out
    assert "the passwords do not match" in out
    assert "first-try" not in out and "second-try" not in out  # no echo
    assert db.sql("SELECT COUNT(*) FROM mailboxes")[0][0] == 0
    status, out = run_on_terminal([binary, "user", "-c", str(db.conf), "add", "t@example.com"],
                                  ["typed-twice", "typed-twice"])
    assert status == 0, out
    assert "typed-twice" not in out
    assert doveadm_verifies(stored_password(db, "t@example.com"), "typed-twice")
