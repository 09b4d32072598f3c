"""smtpd refuses at RCPT a recipient whose mailbox is already over quota.

On SQLite, MariaDB and PostgreSQL, with postern's own schema and the demo
data (`postern db init`, `postern db demo`), a mailbox made with
`postern user add dora@example.com --quota 10000`, an alias to it
(`postern alias add`), a catch-all of another domain pointing at it, and
Maildir++ maildirsize files written by the test (maildir_quota.h
format) under virtual_mailbox_base:

  - dora is full (usage == quota): RCPT to her, to the alias, to the
    catch-all and to her address in the alias domain example.org all get
    552 5.2.2 "<addr>: Recipient address rejected: Mailbox full", logged
    as Postfix logs a RCPT reject; another mailbox gets 250;
  - alice has 600 bytes left: MAIL FROM SIZE=1000 makes her RCPT 552,
    SIZE=500 250;
  - a listener with virtual_overquota_bounce = no answers 452 4.2.2,
    one with smtpd_reject_over_quota = no answers 250;
  - a quota raised in the database counts for the next RCPT of the same
    session (no reload, no cache);
  - the database stopped: 451 4.3.0, never a 5xx, and the check works
    again once it is back.

And a concurrency test: while one session's quota check is stuck on a
locked table, many other sessions are served in full and a client that
hangs up mid-check does no harm; checked by order of events.
"""

import asyncio
import os
import smtplib
import socket
import sqlite3

import psycopg2
import pymysql
import pytest

from harness import MariaDB, PostgreSQL
from harness.process import wait_until
from harness.smtpd import Smtpd
from harness.system import make_db

BACKENDS = ["sqlite", "mysql", "pgsql"]
FULL_REPLY = b"<%s>: Recipient address rejected: Mailbox full"


def main_cf(vmail):
    return {
        "virtual_mailbox_domains": "db:domains",
        "virtual_mailbox_maps": "db:mailboxes",
        "virtual_alias_maps": "db:aliases",
        "virtual_alias_domains": "db:alias_domains",
        "virtual_mailbox_base": vmail,
        "recipient_delimiter": "+",
        # The client (127.0.0.1) is not trusted: recipients must pass
        # Postfix's relay rules and reject_unlisted_recipient first.
        "mynetworks": "192.0.2.0/24",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "smtpd_reject_unlisted_recipient": "yes",
    }


class Setup:
    """An smtpd (three listeners) on a fresh database of one backend."""

    def __init__(self, kind, postern_build, postern, request, server=None, main=None):
        self.kind = kind
        self.postern = postern
        self.sd = Smtpd(postern_build, main_cf=main, services=[
            ("soft", {"virtual_overquota_bounce": "no"}),
            ("off", {"smtpd_reject_over_quota": "no"}),
        ])
        self.vmail = os.path.join(self.sd.tmpdir, "vmail")
        self.sd.main.update(main_cf(self.vmail))
        self.sd.main.update(main or {})
        if kind == "sqlite":
            self.server = None
            self.path = self.sd.sqlite_db(postern)
        else:
            # The password file readable by mail_owner, as INSTALL says:
            # smtpd started as root drops to it before it looks anything up.
            self.server = make_db(kind, self.sd, postern, request, server=server,
                                  prefix="quota_")
            self.dbname = self.sd.main["database"].rsplit("/", 1)[1]
        self.cli("user", "add", "dora@example.com", "--quota", "10000", input="secret\n")
        self.cli("alias", "add", "dora-alias@example.com", "dora@example.com")
        self.cli("domain", "add", "catchall.example")
        self.cli("alias", "add", "@catchall.example", "dora@example.com")
        # dora: exactly at her quota; alice (100 MB): 600 bytes left;
        # carol (quota 0: unlimited) far beyond anything.
        self.maildirsize("example.com/dora", "10000S\n9000 3\n1000 1\n")
        self.maildirsize("example.com/alice", "104857600S\n104857000 42\n")
        self.maildirsize("example.net/carol", "0S\n999999999999 99999\n")

    def cli(self, *args, input=None):
        res = self.postern(args[0], "-c", self.sd.confdir, *args[1:], input=input)
        assert res.returncode == 0, f"postern {' '.join(args)}: {res.stderr}"
        return res

    def maildirsize(self, maildir, text):
        path = os.path.join(self.vmail, maildir)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        with open(os.path.join(path, "maildirsize"), "w") as f:
            f.write(text)

    def sql(self, query):
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path)
            try:
                with conn:
                    conn.execute(query)
            finally:
                conn.close()
        elif self.kind == "mysql":
            self.server.sql(query, database=self.dbname)
        else:
            self.server.sql(query, dbname=self.dbname)

    def client(self, port=None, size=None):
        s = smtplib.SMTP(self.sd.host, port or self.sd.port, timeout=60)
        s.ehlo("client.example")
        opts = [f"SIZE={size}"] if size is not None else []
        code, msg = s.mail("sender@client.example", opts)
        assert code == 250, msg
        return s


def full(code, dsn, addr):
    return (code, b"%s " % dsn + FULL_REPLY % addr.encode())


@pytest.mark.parametrize("kind", BACKENDS)
def test_over_quota_rcpt(kind, postern_build, postern, request):
    st = Setup(kind, postern_build, postern, request)
    sd = st.sd
    try:
        sd.start()
        s = st.client()
        # The mailbox, an alias, a catch-all and the alias-domain form.
        for addr in ("dora@example.com", "dora-alias@example.com",
                     "anyone@catchall.example", "dora@example.org", "dora+tag@example.com"):
            assert s.rcpt(addr) == full(552, b"5.2.2", addr), addr
        # An alias expanding to a full and a non-full mailbox is refused.
        st.cli("alias", "add", "team@example.com", "bob@example.com", "dora@example.com")
        assert s.rcpt("team@example.com") == full(552, b"5.2.2", "team@example.com")
        # Other mailboxes: room left, no maildirsize yet, unlimited.
        assert s.rcpt("alice@example.com") == (250, b"2.1.5 Ok")
        assert s.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
        assert s.rcpt("carol@example.net") == (250, b"2.1.5 Ok")
        # The restrictions answer first: an unknown user stays unknown.
        code, msg = s.rcpt("nobody@example.com")
        assert code == 550 and b"User unknown in virtual mailbox table" in msg
        code, msg = s.data(b"Subject: to alice, bob and carol\r\n\r\nhi\r\n")
        assert code == 250, msg
        qid = msg.split()[-1].decode()
        s.quit()
        sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 552 5\.2\.2 "
                    r"<dora@example\.com>: Recipient address rejected: Mailbox full; "
                    r"from=<sender@client\.example> to=<dora@example\.com> proto=ESMTP "
                    r"helo=<client\.example>$")
        sd.wait_log(r"^unknown\[127\.0\.0\.1\]: <dora-alias@example\.com>: over quota: "
                    r"mailbox dora@example\.com: used 10000 bytes, 4 messages; "
                    r"limit 10000 bytes$")
        sd.wait_log(rf"^{qid}: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 ")

        # SIZE= that would push alice over; one that fits.
        s = st.client(size=1000)
        assert s.rcpt("alice@example.com") == full(552, b"5.2.2", "alice@example.com")
        assert s.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
        s.quit()
        sd.wait_log(r"<alice@example\.com>: over quota: mailbox alice@example\.com: used "
                    r"104857000 bytes, 42 messages; limit 104857600 bytes; SIZE=1000$")
        s = st.client(size=500)
        assert s.rcpt("alice@example.com") == (250, b"2.1.5 Ok")
        s.quit()

        # virtual_overquota_bounce = no: a deferral; the check off: 250.
        soft, off = sd.extra_ports
        s = st.client(port=soft)
        assert s.rcpt("dora-alias@example.com") == full(452, b"4.2.2",
                                                        "dora-alias@example.com")
        s.quit()
        sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 452 4\.2\.2 "
                    r"<dora-alias@example\.com>: Recipient address rejected: Mailbox full;")
        s = st.client(port=off)
        assert s.rcpt("dora@example.com") == (250, b"2.1.5 Ok")
        s.quit()

        # The quota raised in the database counts for the next RCPT.
        s = st.client()
        assert s.rcpt("dora@example.com") == full(552, b"5.2.2", "dora@example.com")
        st.sql("UPDATE mailboxes SET quota_bytes = 20000 WHERE address = 'dora@example.com'")
        assert s.rcpt("dora@example.com") == (250, b"2.1.5 Ok")
        assert s.rcpt("anyone@catchall.example") == (250, b"2.1.5 Ok")
        # ... and lowered again, or the usage grown: refused again.
        st.maildirsize("example.com/dora", "10000S\n25000 9\n")
        assert s.rcpt("dora@example.com") == full(552, b"5.2.2", "dora@example.com")
        s.quit()
        assert sd.proc.alive()
    finally:
        sd.cleanup(keep=request.session.testsfailed > 0)


class StoppableSqlite:
    """SQLite "stopped": the file emptied under smtpd, then put back. The
    database is in WAL mode: its pages are first all moved into the file
    (and the WAL emptied), or smtpd would go on reading them from there."""

    def __init__(self, path):
        self.path = path
        self.saved = None

    def stop(self):
        import sqlite3
        c = sqlite3.connect(self.path)
        try:
            assert c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        finally:
            c.close()
        with open(self.path, "rb") as f:
            self.saved = f.read()
        with open(self.path, "wb"):
            pass

    def relaunch(self):
        with open(self.path, "wb") as f:
            f.write(self.saved)


@pytest.fixture(params=BACKENDS)
def private_backend(request):
    """(kind, server): MariaDB and PostgreSQL of our own (we stop them)."""
    if request.param == "sqlite":
        return request.param, None
    server = MariaDB() if request.param == "mysql" else PostgreSQL()
    request.addfinalizer(lambda: server.cleanup(keep=request.node.session.testsfailed > 0))
    server.start()
    return request.param, server


def test_database_down_quota_unknown(private_backend, postern_build, postern, request):
    kind, server = private_backend
    # The client is trusted and unlisted recipients are not checked, so
    # the restrictions ask no table: what RCPT answers comes from the
    # quota check alone.
    st = Setup(kind, postern_build, postern, request, server=server, main={
        "mynetworks": "127.0.0.0/8",
        "smtpd_reject_unlisted_recipient": "no",
    })
    sd = st.sd
    db = server if server is not None else StoppableSqlite(st.path)
    try:
        sd.start()
        s = st.client()
        assert s.rcpt("dora@example.com") == full(552, b"5.2.2", "dora@example.com")
        db.stop()
        # dora's quota was looked up before: the table cache's last known
        # answers stand in, she is still full.
        assert s.rcpt("dora@example.com") == full(552, b"5.2.2", "dora@example.com")
        # alice's never was: her quota is unknown, the RCPT is accepted
        # (the delivery agent decides), with a warning; never a 451 or 5xx.
        assert s.rcpt("alice@example.com") == (250, b"2.1.5 Ok")
        sd.wait_log(r"^warning: unknown\[127\.0\.0\.1\]: mailbox quota check for "
                    r"<alice@example\.com>: .*; quota unknown, accepted$")
        assert ": 451 " not in sd.log_text()
        db.relaunch()

        def checked_again():
            # alice has 600 bytes left: a 1000-byte message is refused
            # once the database answers.
            c = st.client(size=1000)
            try:
                code, _ = c.rcpt("alice@example.com")
            finally:
                c.quit()
            assert code in (250, 552)
            return code == 552
        wait_until(checked_again, timeout=60, interval=0.5, what="the check works again")
        s.quit()
        assert sd.proc.alive()
    finally:
        sd.cleanup(keep=request.session.testsfailed > 0)


# ---- concurrency ----------------------------------------------------------

N_SESSIONS = 100


def _recv_reply(sock):
    data = b""
    while not (data.endswith(b"\r\n") and data.split(b"\r\n")[-2][3:4] != b"-"):
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def _start_rcpt(sd, rcpt):
    """A session left waiting for the answer to RCPT TO:<rcpt>."""
    sock = socket.create_connection((sd.host, sd.port), timeout=60)
    assert _recv_reply(sock).startswith(b"220 ")
    for line in (b"EHLO slow.example", b"MAIL FROM:<s@slow.example>"):
        sock.sendall(line + b"\r\n")
        assert _recv_reply(sock).startswith(b"250")
    sock.sendall(b"RCPT TO:<%s>\r\n" % rcpt.encode())
    return sock


async def _session(host, port, i):
    reader, writer = await asyncio.open_connection(host, port)
    out = []

    async def reply():
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise EOFError("closed")
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)
    out.append(await reply())
    for cmd in (b"EHLO c%d.example" % i, b"MAIL FROM:<s%d@client.example>" % i,
                b"RCPT TO:<bob@example.com>", b"DATA"):
        writer.write(cmd + b"\r\n")
        out.append(await reply())
    writer.write(b"Subject: load %d\r\n\r\nbody\r\n.\r\nQUIT\r\n" % i)
    out.append(await reply())
    out.append(await reply())
    writer.close()
    return out


async def _many(host, port, n):
    return await asyncio.wait_for(
        asyncio.gather(*(_session(host, port, i) for i in range(n))), timeout=240)


class TableLock:
    """Hold a lock that makes every read of the mailboxes table wait."""

    def __init__(self, kind, server, dbname):
        self.kind = kind
        self.server = server
        if kind == "mysql":
            self.conn = pymysql.connect(host=server.host, port=server.port, user=server.user,
                                        password=server.password, database=dbname,
                                        autocommit=True)
            self.conn.cursor().execute("LOCK TABLES mailboxes WRITE")
        else:
            self.conn = psycopg2.connect(host=server.host, port=server.port, user=server.user,
                                         password=server.password, dbname=dbname)
            self.conn.cursor().execute("LOCK TABLE mailboxes IN ACCESS EXCLUSIVE MODE")

    def waiters(self):
        """How many other connections wait for the lock."""
        if self.kind == "mysql":
            rows = self.server.admin_sql("SELECT COUNT(*) FROM information_schema.processlist "
                                         "WHERE state LIKE 'Waiting for table%'")
        else:
            rows = self.server.admin_sql("SELECT COUNT(*) FROM pg_stat_activity "
                                         "WHERE wait_event_type = 'Lock'")
        return rows[0][0]

    def release(self):
        if self.kind == "mysql":
            self.conn.cursor().execute("UNLOCK TABLES")
        else:
            self.conn.rollback()
        self.conn.close()


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_slow_quota_check_stalls_only_its_session(kind, postern_build, postern, request):
    # Sessions of the listener without the check are served while checks
    # of the other one wait for the database in the lookup workers.
    st = Setup(kind, postern_build, postern, request, main={
        # N_SESSIONS at once from one address: more than the default
        # smtpd_client_connection_count_limit (50) lets in.
        "smtpd_client_event_limit_exceptions": "127.0.0.1",
        "table_async_workers": "4",
        "table_cache_positive_ttl": "1h",
        "table_cache_negative_ttl": "1h",
    })
    sd = st.sd
    lock = None
    try:
        sd.start()
        _, off = sd.extra_ports
        # The restrictions' lookups for these recipients are cached now
        # (they are asked through table_async's cache; the quota check is
        # not), so what waits for the lock below is the quota check.
        s = st.client()
        assert s.rcpt("dora@example.com")[0] == 552
        assert s.rcpt("dora-alias@example.com")[0] == 552
        s.quit()
        s = st.client(port=off)
        assert s.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
        s.quit()
        lock = TableLock(kind, st.server, st.dbname)
        slow = _start_rcpt(sd, "dora@example.com")
        gone = _start_rcpt(sd, "dora-alias@example.com")
        # Both checks are inside the database, waiting for the lock.
        wait_until(lambda: lock.waiters() >= 2, timeout=30, interval=0.2,
                   what="two quota checks waiting for the locked table")
        # The client of one of them hangs up mid-check.
        gone.close()

        results = asyncio.run(_many(sd.host, off, N_SESSIONS))
        for out in results:
            assert out[1].startswith(b"250"), out
            assert out[3] == b"250 2.1.5 Ok\r\n", out
            assert out[5].startswith(b"250 2.0.0 Ok: queued as "), out
            assert out[6] == b"221 2.0.0 Bye\r\n", out
        assert len(sd.queued_files()) == N_SESSIONS

        # The stuck session has not been answered yet ...
        slow.setblocking(False)
        try:
            early = slow.recv(4096)
        except BlockingIOError:
            early = b""
        assert early == b"", "the RCPT was answered while its check could not have run"
        slow.setblocking(True)
        # ... and is, once the table is free again.
        lock.release()
        lock = None
        assert _recv_reply(slow) == b"552 5.2.2 " + FULL_REPLY % b"dora@example.com" + b"\r\n"
        slow.sendall(b"QUIT\r\n")
        assert _recv_reply(slow) == b"221 2.0.0 Bye\r\n"
        slow.close()
        # The abandoned check finished without harm: the server still
        # answers, and its answer went nowhere.
        s = st.client()
        assert s.rcpt("dora-alias@example.com") == full(552, b"5.2.2",
                                                        "dora-alias@example.com")
        s.quit()
        assert sd.proc.alive()
    finally:
        if lock is not None:
            lock.release()
        sd.cleanup(keep=request.session.testsfailed > 0)
