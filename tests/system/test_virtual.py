"""The virtual delivery agent (build/bin/virtual), spoken to over its unix
socket in the protocol of lib/delivery/delivery.h, as qmgr will.

A real message is queued by smtpd (harness/smtpd.py) on the demo database
(SQLite), moved from incoming/ to active/ by hand (there is no qmgr yet),
and delivered by `virtual -c DIR -e`, which binds private/virtual itself;
agents with other settings get their socket from the test with -l FD, as
master hands it over.  Asserted: the Maildir file (Delivered-To,
Return-Path, ",S=size"), maildirsize, the quota_usage row (SQLite here,
MariaDB and PostgreSQL below), unknown user (5.1.1 bounce), over quota
(5.2.2 bounce, or 4.2.2 deferral with virtual_overquota_bounce = no), a
missing uid and a uid below virtual_minimum_uid (4.3.5 deferrals), the
Postfix log line, a database that is down (4.3.0 deferral, never a
bounce), files owned by the mailbox owner when the agent runs as root,
bad requests (error=, and the agent keeps serving), and SIGTERM.
"""

import os
import re
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import time
import uuid

import pytest

from harness import MariaDB
from harness.smtpd import SANITIZER_MARKERS, Smtpd

TIMEOUT = 20
SENDER = "sender@remote.example"
ROOT = os.geteuid() == 0
# The mailbox owner: 5000 as in the default main.cf when the test runs as
# root (the agent then switches to it), else the test's own user.
OWNER_UID = 5000 if ROOT else os.getuid()
OWNER_GID = 5000 if ROOT else os.getgid()
LOG_RE = re.compile(
    r"^(?P<id>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?"
    r"relay=virtual, delay=\d+(?:\.\d{1,2})?, "
    r"delays=(?:\d+(?:\.\d{1,2})?/){3}\d+(?:\.\d{1,2})?, "
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>sent|deferred|bounced) "
    r"\((?P<reason>.*)\)$")


def wait_until(check, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Agent:
    """One virtual process; with listen_path, the test binds the socket and
    passes it with -l (as master does)."""

    def __init__(self, build, confdir, log_path, listen_path=None, env=None):
        self.argv = [os.path.join(build, "bin", "virtual"), "-c", confdir, "-e"]
        self.log_path = log_path
        self.listen_sock = None
        pass_fds = ()
        if listen_path is not None:
            if os.path.exists(listen_path):
                os.unlink(listen_path)
            self.listen_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listen_sock.bind(listen_path)
            self.listen_sock.listen(16)
            fd = self.listen_sock.fileno()
            self.argv += ["-l", str(fd)]
            pass_fds = (fd,)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                         start_new_session=True, env=env)

    def stop(self):
        """SIGTERM by PID; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.listen_sock is not None:
            self.listen_sock.close()
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"virtual sanitizer report:\n{text[-4000:]}"
        return self.proc.returncode


# --- the protocol (delivery.h) ----------------------------------------------

def encode(attrs):
    return "".join(f"{k}={v}\n" for k, v in attrs).encode() + b"\n"


def read_reply(sock):
    """One reply as a list of (name, value); None at EOF."""
    data = b""
    while not data.endswith(b"\n\n") and data != b"\n":
        chunk = sock.recv(1)
        if not chunk:
            return None if not data else pytest.fail(f"partial reply {data!r}")
        data += chunk
    return [tuple(line.split("=", 1)) for line in data.decode().splitlines() if line]


def blocks(reply):
    """{rcpt_id: {action, status, reason}} from a reply."""
    out, cur = {}, None
    for k, v in reply:
        if k == "rcpt_id":
            cur = out[v] = {}
        elif cur is not None:
            cur[k] = v
    return out


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    return s


def can_connect(path):
    """True once something accepts connections at path (bind and listen
    are two steps: the file exists a moment before it listens)."""
    try:
        connect(path).close()
        return True
    except OSError:
        return False


def request(qid, rcpts, request_id=1, version=True):
    """rcpts: [(rcpt_id, recipient, orig_recipient or None)]."""
    attrs = [("version", "1")] if version else []
    attrs += [("request_id", request_id), ("request", "deliver"), ("queue_name", "active"),
              ("queue_id", qid), ("nexthop", ""),
              ("time_active", int(time.time() * 1e6))]
    for rid, rcpt, orig in rcpts:
        attrs += [("rcpt_id", rid), ("recipient", rcpt)]
        if orig is not None:
            attrs.append(("orig_recipient", orig))
    return encode(attrs)


def deliver(path, qid, *rcpts):
    """Deliver to each recipient ("addr" or ("addr", "orig")); one block each."""
    items = []
    for i, r in enumerate(rcpts):
        rcpt, orig = (r, None) if isinstance(r, str) else r
        items.append((str(i + 1), rcpt, orig))
    with connect(path) as s:
        s.sendall(request(qid, items, request_id=7))
        reply = read_reply(s)
    assert reply[0] == ("request_id", "7"), reply
    got = blocks(reply)
    return [got[str(i + 1)] for i in range(len(rcpts))]


# --- the environment ----------------------------------------------------------

class Env:
    pass


def main_cf(tmpdir, extra=None):
    cf = {
        "recipient_delimiter": "+",
        "virtual_mailbox_domains": "db:domains",
        "virtual_mailbox_maps": "db:mailboxes",
        "virtual_alias_maps": "",
        "virtual_mailbox_base": os.path.join(tmpdir, "vmail"),
        "virtual_uid_maps": f"texthash:{tmpdir}/conf/uids, static:{OWNER_UID}",
        "virtual_gid_maps": f"static:{OWNER_GID}",
        "virtual_minimum_uid": "100",
    }
    cf.update(extra or {})
    return cf


@pytest.fixture(scope="module")
def env(postern_build, postern):
    e = Env()
    e.build = postern_build
    sd = Smtpd(postern_build)
    e.sd = sd
    sd.main.update(main_cf(sd.tmpdir))
    e.db = sd.sqlite_db(postern)
    e.conf = sd.confdir
    e.queue = sd.queue
    e.vmail = os.path.join(sd.tmpdir, "vmail")
    # carol's uid is below virtual_minimum_uid: a bad table row.
    with open(os.path.join(e.conf, "uids"), "w") as f:
        f.write("carol@example.net 50\n")
    # The mailbox owner must reach the base directory (root switches to it).
    os.chmod(sd.tmpdir, 0o755)
    os.mkdir(e.vmail, 0o755)
    os.chown(e.vmail, OWNER_UID, OWNER_GID)
    sd.start()
    try:
        # Three copies: virtual writes one file per queue ID and recipient
        # (a second request for the same pair finds the first file), so a
        # test that needs two new files of one recipient takes two IDs.
        with smtplib.SMTP(sd.host, sd.port, timeout=TIMEOUT) as c:
            for _ in range(3):
                c.sendmail(SENDER, ["alice@example.com"],
                           b"Subject: to the maildir\r\nFrom: <sender@remote.example>\r\n"
                           b"\r\nline one\r\nline two\r\n")
        files = sorted(sd.queued_files("incoming"))
        assert len(files) == 3, files
        e.qids = [os.path.basename(f) for f in files]
        e.qid = e.qids[0]
    finally:
        sd.stop()
    # What qmgr does before it asks an agent: incoming/ -> active/.
    os.makedirs(os.path.join(e.queue, "active"), exist_ok=True)
    for f, qid in zip(files, e.qids):
        os.rename(f, os.path.join(e.queue, "active", qid))
    e.socket = os.path.join(e.queue, "private", "virtual")
    e.agent = Agent(postern_build, e.conf, os.path.join(sd.tmpdir, "virtual.out"))
    wait_until(lambda: can_connect(e.socket), "virtual listening on private/virtual")
    yield e
    status = e.agent.stop()
    assert status == 0, f"virtual exited {status} on SIGTERM"
    assert os.stat(os.path.join(e.queue, "active", e.qid)), "the queue file is only read"
    sd.cleanup()


def log_lines(env):
    """The virtual agent's log texts."""
    out = []
    for line in env.sd.log_lines():
        m = re.match(r"postern/virtual\[\d+\]: (.*)$", line)
        if m:
            out.append(m.group(1))
    return out


def wait_log(env, pattern):
    found = []

    def check():
        found[:] = [l for l in log_lines(env) if re.search(pattern, l)]
        return found

    wait_until(check, f"log line {pattern!r}")
    return found[-1]


def maildir_files(env, box):
    d = os.path.join(env.vmail, box, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def maildirsize(env, box):
    with open(os.path.join(env.vmail, box, "maildirsize")) as f:
        lines = f.read().splitlines()
    deltas = [tuple(map(int, l.split())) for l in lines[1:]]
    return lines[0], sum(d[0] for d in deltas), sum(d[1] for d in deltas)


def quota_row(env, address):
    with sqlite3.connect(env.db) as c:
        return c.execute("SELECT bytes, messages FROM quota_usage WHERE username = ?",
                         (address,)).fetchone()


def set_quota(env, address, quota):
    with sqlite3.connect(env.db) as c:
        c.execute("UPDATE mailboxes SET quota_bytes = ? WHERE address = ?", (quota, address))


# --- tests ------------------------------------------------------------------

def test_delivered_to_maildir(env):
    before = maildir_files(env, "example.com/alice")
    [res] = deliver(env.socket, env.qid, "alice@example.com")
    assert res == {"action": "sent", "status": "2.0.0", "reason": "delivered to maildir"}
    new = [f for f in maildir_files(env, "example.com/alice") if f not in before]
    assert len(new) == 1, new
    path = os.path.join(env.vmail, "example.com/alice/new", new[0])
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(b"Return-Path: <sender@remote.example>\n"
                           b"Delivered-To: alice@example.com\n"), data[:200]
    assert b"Subject: to the maildir\n" in data and data.endswith(b"line one\nline two\n")
    m = re.search(r",S=(\d+)", new[0])
    assert m and int(m.group(1)) == len(data), (new[0], len(data))
    # The owner made every file (as root the agent switched to it).
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (OWNER_UID, OWNER_GID, 0o600)
    assert os.stat(os.path.join(env.vmail, "example.com")).st_uid == OWNER_UID
    # Maildir++ quota: alice's 100 MB limit and what is in new/.
    header, size, count = maildirsize(env, "example.com/alice")
    total = sum(os.path.getsize(os.path.join(env.vmail, "example.com/alice/new", f))
                for f in maildir_files(env, "example.com/alice"))
    assert (header, size, count) == ("104857600S", total, len(maildir_files(env,
                                                                            "example.com/alice")))
    assert quota_row(env, "alice@example.com") == (total, count)
    line = wait_log(env, r"to=<alice@example.com>, relay=virtual, .*status=sent")
    m = LOG_RE.match(line)
    assert m, line
    assert (m["id"], m["dsn"], m["reason"], m["orig"]) == (env.qid, "2.0.0",
                                                           "delivered to maildir", None)


def test_second_delivery_updates_usage_and_logs_orig_to(env):
    [res] = deliver(env.socket, env.qid, ("Alice+lists@Example.com", "info@example.com"))
    assert res["action"] == "sent", res
    files = maildir_files(env, "example.com/alice")
    assert len(files) >= 2
    with open(os.path.join(env.vmail, "example.com/alice/new", files[-1]), "rb") as f:
        assert b"Delivered-To: alice+lists@example.com\n" in f.read()
    _, size, count = maildirsize(env, "example.com/alice")
    assert quota_row(env, "alice@example.com") == (size, count) and count == len(files)
    line = wait_log(env, r"orig_to=<info@example.com>")
    m = LOG_RE.match(line)
    assert m and m["to"] == "Alice+lists@Example.com" and m["status"] == "sent", line


def test_unknown_user_bounces(env):
    [res] = deliver(env.socket, env.qid, "nobody@example.com")
    assert res == {"action": "bounced", "status": "5.1.1",
                   "reason": 'unknown user: "nobody@example.com"'}
    m = LOG_RE.match(wait_log(env, r"to=<nobody@example.com>"))
    assert m and (m["dsn"], m["status"]) == ("5.1.1", "bounced")
    assert not os.path.exists(os.path.join(env.vmail, "example.com/nobody"))


def test_uid_below_minimum_defers(env):
    # carol@example.net: uid 50 from texthash, virtual_minimum_uid 100.
    [res] = deliver(env.socket, env.qid, "carol@example.net")
    assert (res["action"], res["status"]) == ("deferred", "4.3.5"), res
    assert "bad uid 50" in res["reason"] and "virtual_minimum_uid 100" in res["reason"]
    assert not os.path.exists(os.path.join(env.vmail, "example.net"))


def test_several_recipients_in_one_request(env):
    out = deliver(env.socket, env.qid, "bob@example.com", "nobody@example.net",
                  "carol@example.net")
    assert [(r["action"], r["status"]) for r in out] == [
        ("sent", "2.0.0"), ("bounced", "5.1.1"), ("deferred", "4.3.5")]
    # nobody@example.net has no mailbox: the @example.net catch-all is an
    # alias (virtual_alias_maps), not a mailbox.


def test_over_quota_bounces(env):
    set_quota(env, "bob@example.com", 10)
    try:
        before = maildir_files(env, "example.com/bob")
        [res] = deliver(env.socket, env.qid, "bob@example.com")
        assert (res["action"], res["status"]) == ("bounced", "5.2.2"), res
        assert res["reason"].startswith("mailbox full: maildir quota exceeded"), res
        assert maildir_files(env, "example.com/bob") == before
        assert os.listdir(os.path.join(env.vmail, "example.com/bob/tmp")) == []
        m = LOG_RE.match(wait_log(env, r"to=<bob@example.com>.*status=bounced"))
        assert m and m["dsn"] == "5.2.2"
    finally:
        set_quota(env, "bob@example.com", None)


@pytest.fixture(scope="module")
def soft(env):
    """A second agent: virtual_overquota_bounce = no and a uid table that
    only knows bob; its socket is handed over with -l as master does."""
    conf = os.path.join(env.sd.tmpdir, "conf-soft")
    shutil.copytree(env.conf, conf)
    with open(os.path.join(conf, "uids-soft"), "w") as f:
        f.write(f"bob@example.com {OWNER_UID}\n")
    with open(os.path.join(conf, "main.cf"), "a") as f:
        f.write("virtual_overquota_bounce = no\n"
                f"virtual_uid_maps = texthash:{conf}/uids-soft\n")
    path = os.path.join(env.sd.tmpdir, "virtual-soft.sock")
    agent = Agent(env.build, conf, os.path.join(env.sd.tmpdir, "virtual-soft.out"),
                  listen_path=path)
    yield path
    assert agent.stop() == 0


def test_over_quota_defers_when_told(env, soft):
    set_quota(env, "bob@example.com", 10)
    try:
        [res] = deliver(soft, env.qid, "bob@example.com")
        assert (res["action"], res["status"]) == ("deferred", "4.2.2"), res
        assert "maildir quota exceeded" in res["reason"]
    finally:
        set_quota(env, "bob@example.com", None)


def test_missing_uid_defers(env, soft):
    [res] = deliver(soft, env.qid, "alice@example.com")
    assert (res["action"], res["status"]) == ("deferred", "4.3.5"), res
    assert res["reason"] == ("mail system configuration error: recipient alice@example.com: "
                             "no uid in virtual_uid_maps")


def test_virtual_mailbox_limit(env):
    """virtual_mailbox_limit caps each maildir file (the headers virtual
    adds included): one byte over is a 5.2.2 bounce as Postfix's virtual(8)
    gives for a file over its size limit; exactly the limit is delivered."""
    # A queue ID no other test delivers to alice: a new file, the newest.
    [res] = deliver(env.socket, env.qids[1], "alice@example.com")
    assert res["action"] == "sent", res
    newest = max(maildir_files(env, "example.com/alice"),
                 key=lambda f: os.path.getmtime(os.path.join(env.vmail, "example.com/alice/new",
                                                             f)))
    alice_size = os.path.getsize(os.path.join(env.vmail, "example.com/alice/new", newest))
    # bob's file is two bytes shorter ("bob" in Delivered-To, not "alice").
    limit = alice_size - 2
    conf = os.path.join(env.sd.tmpdir, "conf-limit")
    shutil.copytree(env.conf, conf)
    with open(os.path.join(conf, "main.cf"), "a") as f:
        f.write(f"virtual_mailbox_limit = {limit}\nmessage_size_limit = 0\n")
    path = os.path.join(env.sd.tmpdir, "virtual-limit.sock")
    agent = Agent(env.build, conf, os.path.join(env.sd.tmpdir, "virtual-limit.out"),
                  listen_path=path)
    try:
        before = maildir_files(env, "example.com/alice")
        out = deliver(path, env.qid, "alice@example.com", "bob@example.com")
        assert out[0] == {"action": "bounced", "status": "5.2.2",
                          "reason": "maildir delivery failed: error writing message: "
                                    "File too large"}, out
        assert out[1]["action"] == "sent", out
        assert maildir_files(env, "example.com/alice") == before
        assert os.listdir(os.path.join(env.vmail, "example.com/alice/tmp")) == []
        m = LOG_RE.match(wait_log(env, r"to=<alice@example.com>.*status=bounced"))
        assert m and m["dsn"] == "5.2.2"
    finally:
        assert agent.stop() == 0


def test_bad_requests_get_error_and_the_agent_goes_on(env):
    # Wrong version: error, then the agent closes the connection.
    with connect(env.socket) as s:
        s.sendall(encode([("version", "2"), ("request_id", "3"), ("request", "deliver")]))
        reply = dict(read_reply(s))
        assert reply["request_id"] == "3"
        assert reply["error"] == 'unsupported protocol version "2" (expected 1)'
        assert read_reply(s) is None
    # No version on the first request.
    with connect(env.socket) as s:
        s.sendall(request(env.qid, [("1", "alice@example.com", None)], version=False))
        assert "unsupported protocol version" in dict(read_reply(s))["error"]
    # Malformed: no '=' in a line.
    with connect(env.socket) as s:
        s.sendall(b"version=1\nthis is not an attribute\n\n")
        reply = dict(read_reply(s))
        assert reply["error"].startswith("malformed request: "), reply
        assert read_reply(s) is None
    # Requests it cannot serve get error= and the connection stays usable.
    with connect(env.socket) as s:
        s.sendall(request("../../etc/passwd", [("1", "alice@example.com", None)],
                          request_id=1))
        assert dict(read_reply(s)) == {"request_id": "1",
                                       "error": 'bad queue_id "../../etc/passwd"'}
        s.sendall(request("4Zb2Lk0FqK01Tm", [("1", "alice@example.com", None)],
                          request_id=2, version=False))
        reply = dict(read_reply(s))
        assert reply["request_id"] == "2" and "4Zb2Lk0FqK01Tm" in reply["error"], reply
        s.sendall(encode([("request_id", "3"), ("request", "deliver"),
                          ("queue_name", "active"), ("queue_id", env.qid)]))
        assert dict(read_reply(s))["error"] == "no recipients (rcpt_id)"
        s.sendall(request(env.qid, [("9", "bob@example.com", None)], request_id=4,
                          version=False))
        reply = read_reply(s)
        assert reply[0] == ("request_id", "4")
        assert blocks(reply)["9"]["action"] == "sent"
    # And a new connection works.
    [res] = deliver(env.socket, env.qid, "bob@example.com")
    assert res["action"] == "sent"


# --- MariaDB and PostgreSQL -----------------------------------------------------

def db_conf(env, name, kind, server, dbname, postern):
    """A config dir like env's, on a MariaDB/PostgreSQL database with the
    demo data; its own mailbox base."""
    conf = os.path.join(env.sd.tmpdir, name)
    shutil.copytree(env.conf, conf)
    pw = os.path.join(conf, "database.password")
    with open(pw, "w") as f:
        f.write(server.password + "\n")
    os.chmod(pw, 0o600)
    base = os.path.join(env.sd.tmpdir, f"vmail-{name}")
    os.mkdir(base, 0o755)
    os.chown(base, OWNER_UID, OWNER_GID)
    with open(os.path.join(conf, "main.cf"), "a") as f:
        f.write(f"database = {kind}://{server.user}@{server.host}:{server.port}/{dbname}\n"
                f"database_password_file = {pw}\n"
                f"virtual_mailbox_base = {base}\n")
    for args in (("db", "init"), ("db", "demo")):
        res = postern(args[0], "-c", conf, *args[1:])
        assert res.returncode == 0, res.stderr
    return conf


def test_postgresql_quota_usage(env, postgres, postern):
    dbname = postgres.create_database("virtual_" + uuid.uuid4().hex[:12])
    conf = db_conf(env, "conf-pg", "pgsql", postgres, dbname, postern)
    path = os.path.join(env.sd.tmpdir, "virtual-pg.sock")
    agent = Agent(env.build, conf, os.path.join(env.sd.tmpdir, "virtual-pg.out"),
                  listen_path=path)
    try:
        for qid in env.qids[1:]:  # insert, then update
            [res] = deliver(path, qid, "bob@example.com")
            assert res["action"] == "sent", res
        rows = postgres.sql("SELECT bytes, messages FROM quota_usage WHERE username = %s",
                            ("bob@example.com",), dbname=dbname)
        files = os.listdir(os.path.join(env.sd.tmpdir, "vmail-conf-pg/example.com/bob/new"))
        assert len(files) == 2
        assert [tuple(r) for r in rows] == [(sum(int(re.search(r",S=(\d+)", f).group(1))
                                                 for f in files), 2)]
    finally:
        assert agent.stop() == 0


@pytest.fixture
def own_mariadb(request):
    """A MariaDB of this test's own: the test stops it."""
    server = MariaDB()
    request.addfinalizer(lambda: server.cleanup(keep=request.session.testsfailed > 0))
    server.start()
    return server


def test_mariadb_quota_usage_and_database_down(env, own_mariadb, postern):
    server = own_mariadb
    conf = db_conf(env, "conf-my", "mysql", server, server.dbname, postern)
    path = os.path.join(env.sd.tmpdir, "virtual-my.sock")
    agent = Agent(env.build, conf, os.path.join(env.sd.tmpdir, "virtual-my.out"),
                  listen_path=path)
    try:
        [res] = deliver(path, env.qid, "alice@example.com")
        assert res["action"] == "sent", res
        _, size, count = maildirsize(
            type("E", (), {"vmail": os.path.join(env.sd.tmpdir, "vmail-conf-my")}),
            "example.com/alice")
        assert server.sql("SELECT bytes, messages FROM quota_usage WHERE username = %s",
                          ("alice@example.com",)) == [(size, count)]
        server.stop()
        try:
            [res] = deliver(path, env.qid, "alice@example.com")
            assert (res["action"], res["status"]) == ("deferred", "4.3.0"), res
            assert "virtual_mailbox_maps: db:mailboxes" in res["reason"], res
            assert f"{server.host}:{server.port}" in res["reason"], res
            # Unknown to a database that cannot answer is not unknown.
            [res] = deliver(path, env.qid, "nobody@example.com")
            assert (res["action"], res["status"]) == ("deferred", "4.3.0"), res
            m = LOG_RE.match(wait_log(env, r"to=<nobody@example.com>.*status=deferred"))
            assert m and m["dsn"] == "4.3.0"
        finally:
            server.relaunch()
        [res] = deliver(path, env.qid, "alice@example.com")
        assert res["action"] == "sent", res
    finally:
        assert agent.stop() == 0
