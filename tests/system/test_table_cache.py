"""The table cache across a database outage, against real MariaDB and PostgreSQL.

A long-running lookup client (build/*/bench/lookup_bench -q: keys on stdin,
answers on stdout, through table_async and the table cache exactly as the
daemons use them) looks addresses up in a mysql: or pgsql: table in the
Postfix .cf format, asking what virtual_mailbox_maps asks.  Then the
database server is stopped and restarted:

  - while it is down, keys answered before are still answered (found and
    not found) from the cache, within table_cache_grace_time, with one
    warning per key ("serving cached answer for KEY"), not one per lookup;
    a "not found" is marked stale (smtpd makes a refusal resting on it a
    451, never a 550: test_db_outage.py);
  - a key never seen is a temporary failure, never "not found";
  - once the server is back, answers are fresh again (a row changed while
    it was down shows), and the next outage is logged again.

Each test starts its own server (the session fixtures are shared and must
not be stopped) and restarts it on the same port, as a real server comes
back.  TTLs are 1 s so that expiry takes a moment, not a minute.
"""

import os
import queue
import re
import subprocess
import threading
import time

import pytest

from harness import MariaDB, PostgreSQL
from harness.process import wait_until

QUERY = "SELECT maildir FROM mailboxes WHERE address = '%s' AND active = '1'"
# When every host is marked down, the SQL layer still tries them (lib/sql
# conn_open), so fresh answers come back at the first lookup after the
# restart; the bound is for a slow machine.
RECOVERY_TIMEOUT = 60
ANSWER_TIMEOUT = 30


def split_statements(text):
    """Split SQL at ';' ending a line, as postern's migration runner does."""
    out = []
    for part in re.split(r";[ \t]*(?:\r?\n|\Z)", text):
        code = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if code:
            out.append(part.strip())
    return out


def load_schema(server, dialect):
    """Load sql/<dialect>/migrations/*.sql and demo.sql as the test user."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "sql", dialect)
    files = sorted(os.path.join(root, "migrations", f)
                   for f in os.listdir(os.path.join(root, "migrations")) if f.endswith(".sql"))
    for path in files + [os.path.join(root, "demo.sql")]:
        with open(path) as f:
            for stmt in split_statements(f.read()):
                server.sql(stmt)


class LookupClient:
    """`lookup_bench -q` in the background; ask(key) returns (status, text)."""

    def __init__(self, binary, confdir, spec):
        self.log_path = os.path.join(confdir, "client.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-q", "-c", confdir, spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def ask(self, key):
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        try:
            line = self._lines.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no answer for {key} in {ANSWER_TIMEOUT}s; log:\n{self.log()}")
        assert line is not None, f"lookup client exited; log:\n{self.log()}"
        fields = line.split("\t", 2)
        assert fields[0] == key, f"answer for another key: {line!r}"
        return fields[1], fields[2] if len(fields) > 2 else ""

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def warnings_for(self, key):
        return [ln for ln in self.log().splitlines()
                if "warning:" in ln and f"serving cached answer for {key}:" in ln]

    def close(self):
        """Close stdin (the client then exits); kill it by PID if it does not."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


BACKENDS = {"mysql": MariaDB, "pgsql": PostgreSQL}


@pytest.fixture(params=sorted(BACKENDS))
def private_db(request):
    """(type, server): a server of our own, loaded with schema and demo data."""
    cls = BACKENDS[request.param]
    server = cls()
    request.addfinalizer(lambda: server.cleanup(keep=request.node.session.testsfailed > 0))
    server.start()
    load_schema(server, request.param)
    return request.param, server


def test_cache_serves_known_keys_through_an_outage(private_db, postern_build, tmp_path):
    dbtype, db = private_db
    binary = os.path.join(postern_build, "bench", "lookup_bench")
    assert os.access(binary, os.X_OK), f"{binary} missing: `make system` builds it"

    confdir = tmp_path
    cf = confdir / f"{dbtype}-mailboxes.cf"
    cf.write_text(f"hosts = inet:{db.host}:{db.port}\nuser = {db.user}\n"
                  f"password = {db.password}\ndbname = {db.dbname}\nquery = {QUERY}\n")
    (confdir / "main.cf").write_text(
        "table_cache_positive_ttl = 1s\n"
        "table_cache_negative_ttl = 1s\n"
        "table_cache_grace_time = 1h\n"
        # One worker, so one connection whose state the test can reason about.
        "table_async_workers = 1\n")
    spec = f"{dbtype}:{cf}"
    client = LookupClient(binary, str(confdir), spec)
    try:
        # The database answers.
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        assert client.ask("bob@example.com") == ("FOUND", "example.com/bob/")
        assert client.ask("nobody@example.com") == ("NOTFOUND", "")

        # Outage: the answers expire (TTL 1 s) and the server is gone.
        db.stop()
        time.sleep(1.5)
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        assert client.ask("nobody@example.com") == ("NOTFOUND", "stale")
        time.sleep(1.5)
        assert client.ask("bob@example.com") == ("FOUND", "example.com/bob/")
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        # Never seen: a temporary failure naming the table, not "not found".
        status, why = client.ask("carol@example.net")
        assert status == "TEMPFAIL", (status, why)
        assert why, "a temporary failure must say why"
        # One warning per key and outage, naming the table and the key.
        warned = client.warnings_for("alice@example.com")
        assert len(warned) == 1, client.log()
        assert spec in warned[0]
        assert len(client.warnings_for("bob@example.com")) == 1, client.log()
        assert len(client.warnings_for("nobody@example.com")) == 1, client.log()
        assert client.warnings_for("carol@example.net") == []

        # The server comes back; a row changed meanwhile shows once the
        # client's connection is retried.
        db.relaunch()  # same port, data and users
        db.sql("UPDATE mailboxes SET maildir = 'example.com/alice2/' "
               "WHERE address = 'alice@example.com'")
        wait_until(lambda: client.ask("alice@example.com") == ("FOUND", "example.com/alice2/"),
                   timeout=RECOVERY_TIMEOUT, interval=1.0, what="fresh answers after restart")
        assert client.ask("carol@example.net") == ("FOUND", "example.net/carol/")

        # A second outage is logged again.
        db.stop()
        time.sleep(1.5)
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice2/")
        assert len(client.warnings_for("alice@example.com")) == 2, client.log()
    finally:
        rc = client.close()
    assert rc == 0, client.log()


def test_grace_time_ends(private_db, postern_build, tmp_path):
    """Past table_cache_grace_time an old answer is no longer served."""
    dbtype, db = private_db
    binary = os.path.join(postern_build, "bench", "lookup_bench")
    assert os.access(binary, os.X_OK), f"{binary} missing: `make system` builds it"

    cf = tmp_path / f"{dbtype}-mailboxes.cf"
    cf.write_text(f"hosts = inet:{db.host}:{db.port}\nuser = {db.user}\n"
                  f"password = {db.password}\ndbname = {db.dbname}\nquery = {QUERY}\n")
    (tmp_path / "main.cf").write_text("table_cache_positive_ttl = 1s\n"
                                      "table_cache_grace_time = 3s\n"
                                      "table_async_workers = 1\n")
    client = LookupClient(binary, str(tmp_path), f"{dbtype}:{cf}")
    try:
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        db.stop()
        time.sleep(1.5)
        assert client.ask("alice@example.com") == ("FOUND", "example.com/alice/")
        time.sleep(2.0)  # 3.5 s after the answer: past the grace time
        status, why = client.ask("alice@example.com")
        assert status == "TEMPFAIL", (status, why)
    finally:
        rc = client.close()
    assert rc == 0, client.log()
