"""The Dovecot recipe of INSTALL, proved: postern delivers, Dovecot serves.

A whole postern (harness/system.py: master, smtpd, pickup, qmgr, virtual)
on the demo database of each backend, and a real Dovecot (harness/dovecot.py)
configured with conf/dovecot/10-postern.conf and
conf/dovecot/KIND/dovecot-sql.conf.ext as shipped, with only the values
INSTALL says to adapt changed: the database connection, the
virtual_mailbox_base (/var/vmail) and the virtual_uid_maps/gid_maps ids
(5000; here `nobody`, whom the Dovecot fixture's mail processes run as).

Asserted, as a user sees it: a message sent with swaks lands in alice's
Maildir and is read over IMAP after LOGIN with her demo password; the
quota Dovecot reports (GETQUOTAROOT, `doveadm quota get`) is postern's
maildirsize sum and its quota_usage row, with alice's limit (100 MB), also
after Dovecot expunges and postern delivers again; a mailbox without a
limit (carol) is counted by neither; a wrong password, an
inactive mailbox and a mailbox of an inactive domain cannot log in; a
mailbox made with `postern user add` (an {ARGON2ID} hash) can.
"""

import email
import email.policy
import imaplib
import os
import pwd
import re
import shutil
import sqlite3
import subprocess

import pytest

from harness import Dovecot
from harness.dovecot import MAIL_USER, kb, read_maildirsize
from harness.process import wait_until
from harness.system import MailSystem

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "conf", "dovecot")
ALICE = "alice@example.com"
ALICE_MAILDIR = "example.com/alice/"
ALICE_QUOTA_KB = 102400  # sql/*/demo.sql: 104857600 bytes
PASSWORD = "demo"  # every demo password
SENDER = "sender@client.example"


def replace(text, old, new, what):
    """text with old replaced; fails when the recipe no longer has old."""
    assert old in text, f"conf/dovecot: {what} ({old!r}) not found"
    return text.replace(old, new)


def render(kind, ms, connect, uid, gid):
    """(10-postern.conf, dovecot-sql.conf.ext) adapted as INSTALL says."""
    with open(os.path.join(RECIPE, "10-postern.conf")) as f:
        main = f.read()
    with open(os.path.join(RECIPE, kind, "dovecot-sql.conf.ext")) as f:
        sql = f.read()
    main = replace(main, "/etc/dovecot/dovecot-sql.conf.ext", "@TMPDIR@/dovecot-sql.conf.ext",
                   "the passdb/userdb args")
    main = replace(main, "/var/vmail/", ms.vmail + "/", "virtual_mailbox_base")
    # The SMTP AUTH listener (test_sasl_backends.py uses it) in the test's dir.
    main = replace(main, "/var/spool/postern/private/auth", "@TMPDIR@/postern-auth",
                   "the auth listener")
    sql = replace(sql, "'maildir:/var/vmail/'", f"'maildir:{ms.vmail}/'", "virtual_mailbox_base")
    sql = replace(sql, "5000 AS uid", f"{uid} AS uid", "virtual_uid_maps")
    sql = replace(sql, "5000 AS gid", f"{gid} AS gid", "virtual_gid_maps")
    sql, n = re.subn(r"(?m)^connect = .*$", lambda _: f"connect = {connect}", sql)
    assert n == 1, "conf/dovecot: one connect line expected"
    return main, sql


class Stack:
    """postern and Dovecot on one database; sql() runs a statement there."""

    def __init__(self, kind, ms, server, dc):
        self.kind, self.ms, self.server, self.dc = kind, ms, server, dc
        self.dbname = ms.sd.main["database"].rsplit("/", 1)[1]  # mysql, pgsql
        self.path = ms.sd.main["database"][len("sqlite:"):]  # sqlite

    def sql(self, query, args=()):
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path)
            try:
                with conn:
                    return conn.execute(query, args).fetchall()
            finally:
                conn.close()
        query = query.replace("?", "%s")
        if self.kind == "mysql":
            return self.server.sql(query, args, database=self.dbname)
        return self.server.sql(query, args, dbname=self.dbname)


@pytest.fixture(scope="module", params=["sqlite", "mysql", "pgsql"])
def stack(request, postern_build, postern):
    kind = request.param
    pw = pwd.getpwnam(MAIL_USER)
    ms = MailSystem(postern_build, postern, uid=pw.pw_uid, gid=pw.pw_gid)
    request.addfinalizer(ms.cleanup)
    server = ms.make_db(kind, request)
    if kind == "sqlite":
        connect = ms.sd.main["database"][len("sqlite:"):]
    else:
        dbname = ms.sd.main["database"].rsplit("/", 1)[1]
        connect = (f"host={server.host} port={server.port} dbname={dbname} "
                   f"user={server.user} password={server.password}")
    main, sql = render(kind, ms, connect, pw.pw_uid, pw.pw_gid)
    dc = Dovecot(extra_config=main, passwd_file=False, user=ALICE, password=PASSWORD,
                 files={"dovecot-sql.conf.ext": sql})
    request.addfinalizer(lambda: dc.cleanup(keep=request.session.testsfailed > 0))
    dc.start()
    ms.start()
    return Stack(kind, ms, server, dc)


def swaks(ms, to, subject, body):
    exe = shutil.which("swaks")
    assert exe, "swaks missing: run scripts/deps.sh test"
    cmd = [exe, "--server", f"{ms.sd.host}:{ms.sd.port}", "--timeout", "20",
           "--from", SENDER, "--to", to, "--header", f"Subject: {subject}", "--body", body]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"(?m)^<-\s+250 .*queued as", r.stdout), r.stdout


def maildirsize(ms):
    """(limits line, bytes, count) of alice's maildirsize, as postern wrote it."""
    return read_maildirsize(ms.maildir(ALICE_MAILDIR))


def quota_root(conn):
    """(storage used KB, storage limit KB) of GETQUOTAROOT INBOX."""
    typ, data = conn.getquotaroot("INBOX")
    assert typ == "OK", data
    text = " ".join(d.decode() if isinstance(d, bytes) else str(d) for d in data[1])
    m = re.search(r"\(STORAGE (\d+) (\d+)\)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def doveadm_quota(dc, user):
    """{type: (value, limit)} from `doveadm quota get -u USER` (tab format)."""
    r = dc.doveadm("-f", "tab", "quota", "get", "-u", user)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    head = [h.strip().lower() for h in rows[0]]
    assert "type" in head and "value" in head and "limit" in head, r.stdout
    return {row[head.index("type")]: (row[head.index("value")], row[head.index("limit")])
            for row in rows[1:]}


def wait_quota_usage(st):
    """Wait until postern's quota_usage row for alice equals maildirsize's
    sum (the agent copies it after each delivery); return (bytes, count)."""
    def same():
        _, used, count = maildirsize(st.ms)
        rows = st.sql("SELECT bytes, messages FROM quota_usage WHERE username = ?", (ALICE,))
        return rows and (int(rows[0][0]), int(rows[0][1])) == (used, count) and (used, count)
    return wait_until(same, timeout=20, what="quota_usage row equal to maildirsize")


def login(dc, user, password):
    conn = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        conn.login(user, password)
    except BaseException:
        conn.shutdown()
        raise
    return conn


def refused(dc, user, password):
    """True when Dovecot answers LOGIN with NO [AUTHENTICATIONFAILED]."""
    conn = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        conn.login(user, password)
    except imaplib.IMAP4.error as exc:
        return "AUTHENTICATIONFAILED" in str(exc)
    finally:
        conn.shutdown()
    return False


def test_swaks_message_read_over_imap(stack):
    st = stack
    swaks(st.ms, ALICE, "recipe check", "hello Dovecot, from postern")
    files = st.ms.wait_maildir(ALICE_MAILDIR, 1)
    assert len(files) == 1
    on_disk = open(files[0], "rb").read()
    # Delivered as the owner Dovecot's mail processes run as.
    owner = os.stat(files[0])
    assert (owner.st_uid, owner.st_gid) == (st.dc.uid, st.dc.gid)

    conn = login(st.dc, ALICE, PASSWORD)
    try:
        typ, data = conn.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
        typ, data = conn.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        meta, raw = data[0]
        # The file has LF line ends; IMAP gives it with CRLF, byte for byte.
        assert raw == on_disk.replace(b"\n", b"\r\n")
        assert int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1)) == len(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Subject"] == "recipe check"
        assert msg["Delivered-To"] == ALICE
        assert msg["Return-Path"] == f"<{SENDER}>"
        assert msg.get_content().strip() == "hello Dovecot, from postern"
    finally:
        conn.logout()
    # Dovecot moved it to cur/ as the mailbox owner: it shares the Maildir.
    assert st.ms.messages(ALICE_MAILDIR, "new") == []
    assert len(st.ms.messages(ALICE_MAILDIR, "cur")) == 1


def test_dovecot_reports_postern_s_quota(stack):
    st = stack
    if not st.ms.messages(ALICE_MAILDIR, "cur"):
        swaks(st.ms, ALICE, "quota", "fill")
        st.ms.wait_maildir(ALICE_MAILDIR, 1)
    used, count = wait_quota_usage(st)
    header, _, _ = maildirsize(st.ms)
    assert header == "104857600S"
    assert used > 0 and count >= 1

    conn = login(st.dc, ALICE, PASSWORD)
    try:
        assert quota_root(conn) == (kb(used), ALICE_QUOTA_KB)
        assert doveadm_quota(st.dc, ALICE)["STORAGE"] == (str(kb(used)), str(ALICE_QUOTA_KB))

        # Dovecot expunges everything: its delta is in maildirsize, and the
        # next delivery by postern counts from there.
        conn.select("INBOX")
        conn.store("1:*", "+FLAGS", "\\Deleted")
        conn.expunge()
        _, after, after_count = maildirsize(st.ms)
        assert (after, after_count) == (0, 0)
        assert quota_root(conn) == (0, ALICE_QUOTA_KB)
    finally:
        conn.logout()

    swaks(st.ms, ALICE, "after expunge", "x" * 3000)
    st.ms.wait_maildir(ALICE_MAILDIR, 1)
    used2, count2 = wait_quota_usage(st)
    size = os.path.getsize(st.ms.messages(ALICE_MAILDIR)[0])
    assert (used2, count2) == (size, 1)
    conn = login(st.dc, ALICE, PASSWORD)
    try:
        assert quota_root(conn) == (kb(size), ALICE_QUOTA_KB)
    finally:
        conn.logout()
    assert doveadm_quota(st.dc, ALICE)["MESSAGE"][0] == "1"


def test_unlimited_mailbox_is_not_counted(stack):
    st = stack
    # carol@example.net has quota 0: no limit for postern, none for Dovecot,
    # and neither keeps a maildirsize that the other would not update.
    swaks(st.ms, "carol@example.net", "unlimited 1", "one")
    swaks(st.ms, "carol@example.net", "unlimited 2", "two")
    st.ms.wait_maildir("example.net/carol/", 2)
    conn = login(st.dc, "carol@example.net", PASSWORD)
    try:
        typ, data = conn.getquotaroot("INBOX")
        assert typ == "OK" and "STORAGE" not in str(data), data
        typ, data = conn.select("INBOX")
        assert typ == "OK" and int(data[0]) == 2
    finally:
        conn.logout()
    assert doveadm_quota(st.dc, "carol@example.net") == {}
    assert not os.path.exists(os.path.join(st.ms.maildir("example.net/carol/"), "maildirsize"))


def test_who_may_log_in(stack):
    st = stack
    dc = st.dc
    assert refused(dc, ALICE, "not-demo")
    assert refused(dc, "nobody@example.com", PASSWORD)
    # Postern's addresses are lower case; the login is folded to match.
    login(dc, "Alice@Example.COM", PASSWORD).logout()
    r = dc.doveadm("auth", "test", ALICE, PASSWORD)
    assert r.returncode == 0 and "auth succeeded" in r.stdout, r.stdout + r.stderr
    r = dc.doveadm("auth", "test", ALICE, "not-demo")
    assert r.returncode != 0 and "auth failed" in r.stdout, r.stdout + r.stderr

    # A mailbox made by the CLI: postern's default {ARGON2ID} hash, and
    # the Maildir postern will deliver to.
    res = st.ms.run("user", "add", "dora@example.com", input="dora-secret\n")
    assert res.returncode == 0, res.stderr
    (hash_,) = st.sql("SELECT password FROM mailboxes WHERE address = ?", ("dora@example.com",))[0]
    assert hash_.startswith("{ARGON2ID}")
    login(dc, "dora@example.com", "dora-secret").logout()
    r = dc.doveadm("user", "dora@example.com")
    assert r.returncode == 0, r.stderr
    assert f"maildir:{st.ms.vmail}/example.com/dora/" in r.stdout
    assert "*:bytes=52428800" in r.stdout  # example.com's default quota

    # Inactive mailbox, then inactive domain: no login, as no delivery.
    st.sql("UPDATE mailboxes SET active = '0' WHERE address = ?", ("dora@example.com",))
    assert refused(dc, "dora@example.com", "dora-secret")
    login(dc, "carol@example.net", PASSWORD).logout()
    st.sql("UPDATE domains SET active = '0' WHERE name = ?", ("example.net",))
    try:
        assert refused(dc, "carol@example.net", PASSWORD)
    finally:
        st.sql("UPDATE domains SET active = '1' WHERE name = ?", ("example.net",))
    login(dc, "carol@example.net", PASSWORD).logout()


def test_dovecot_logged_no_errors(stack):
    # Permissions, SQL and quota problems show up in Dovecot's log first.
    with open(stack.dc.log_file, errors="replace") as f:
        errors = [line for line in f if " Error: " in line or " Fatal: " in line
                  or " Panic: " in line]
    assert errors == [], "".join(errors)
