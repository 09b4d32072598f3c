"""Maildir delivery (lib/delivery/maildir) read back by a real Dovecot.

bench/maildir/maildir_bench delivers with the library the virtual agent
uses, as root for the mailbox owner `nobody`; Dovecot (harness/dovecot.py,
with the quota plugin and a "maildir" quota backend) then serves the mail
over IMAP.  The tests check what a user sees: the messages, their headers
and bodies, RFC822.SIZE, and that the quota Dovecot reports (GETQUOTAROOT)
is what postern's maildirsize says, before and after Dovecot itself
expunges mail, and that delivery stops at the quota with 5.2.2 / 4.2.2.
"""

import email
import os
import re
import subprocess

import pytest

from harness import Dovecot
from harness.dovecot import kb, read_maildirsize

QUOTA_BYTES = 20 * 1024  # Dovecot's "storage=20K"
QUOTA_COUNT = 12
USER = "alice@example.com"
MAILDIR = "example.com/alice/"

QUOTA_CONFIG = f"""
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage={QUOTA_BYTES // 1024}K:messages={QUOTA_COUNT}
}}
"""


@pytest.fixture(scope="module")
def dovecot_quota():
    """A Dovecot of its own (the session one has no quota plugin)."""
    server = Dovecot(extra_config=QUOTA_CONFIG, user=USER)
    with server:
        yield server


@pytest.fixture(scope="module")
def bench(postern_build):
    path = os.path.join(postern_build, "bench", "maildir_bench")
    assert os.access(path, os.X_OK), f"{path} missing: run `make system`"
    return path


def deliver(bench, dc, *args):
    """Run maildir_bench -v for USER's Maildir; return (rc, [(status, text, path)])."""
    argv = [bench, "-v", "-b", dc.mail_root, "-m", MAILDIR, "-u", str(dc.uid),
            "-g", str(dc.gid), "-q", str(QUOTA_BYTES), "-Q", str(QUOTA_COUNT), *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    results = []
    for line in p.stdout.splitlines():
        m = re.match(r"^\d+ (\d\.\d\.\d) (.*?)(?: (example\.com/\S+))?$", line)
        if m:
            results.append(m.groups())
    assert p.stderr == "", p.stderr
    return p.returncode, results


def maildirsize(dc):
    """(limits line, bytes, count) from postern's/Dovecot's maildirsize."""
    return read_maildirsize(os.path.join(dc.mail_root, MAILDIR))


def quota_root(conn):
    """(storage used KB, storage limit KB, messages used, messages limit)."""
    typ, data = conn.getquotaroot("INBOX")
    assert typ == "OK", data
    text = " ".join(d.decode() if isinstance(d, bytes) else str(d) for d in data[1])
    m = re.search(r"STORAGE (\d+) (\d+) MESSAGE (\d+) (\d+)", text)
    assert m, text
    return tuple(int(x) for x in m.groups())


def test_deliver_read_over_imap(bench, dovecot_quota):
    dc = dovecot_quota
    rc, results = deliver(bench, dc, "-n", "3", "-s", "1500",
                          "-r", "bob@example.org", "-d", USER)
    assert rc == 0, results
    assert [r[:2] for r in results] == [("2.0.0", "delivered to maildir")] * 3
    # Files belong to the mailbox owner, in new/, tmp/ empty.
    root = os.path.join(dc.mail_root, MAILDIR)
    assert os.listdir(os.path.join(root, "tmp")) == []
    for _, _, path in results:
        st = os.stat(os.path.join(dc.mail_root, path))
        assert (st.st_uid, st.st_gid) == (dc.uid, dc.gid)
        assert oct(st.st_mode & 0o777) == "0o600"
    sizes = {int(re.search(r",W=(\d+)", p).group(1)) for _, _, p in results}

    conn = dc.imap()
    try:
        typ, data = conn.select("INBOX")
        assert typ == "OK" and int(data[0]) == 3
        typ, data = conn.fetch("1:3", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        msgs = [d for d in data if isinstance(d, tuple)]
        assert len(msgs) == 3
        for i, (meta, body) in enumerate(msgs, 1):
            msg = email.message_from_bytes(body)
            assert msg["Subject"] == f"bench message {i}"
            assert msg["Return-Path"] == "<bob@example.org>"
            assert msg["Delivered-To"] == USER
            assert "The quick brown fox" in msg.get_payload()
            # Dovecot takes RFC822.SIZE from ",W=" without reading the file.
            size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
            assert size in sizes and size == len(body)
    finally:
        conn.logout()


def test_quota_matches_dovecot(bench, dovecot_quota):
    dc = dovecot_quota
    header, used, count = maildirsize(dc)
    assert header == f"{QUOTA_BYTES}S,{QUOTA_COUNT}C"
    conn = dc.imap()
    try:
        assert quota_root(conn) == (kb(used), QUOTA_BYTES // 1024, count, QUOTA_COUNT)

        # Dovecot expunges one message and writes a negative delta; postern
        # reads it back, and both still agree.
        conn.select("INBOX")
        conn.store("1", "+FLAGS", "\\Deleted")
        conn.expunge()
        header, used2, count2 = maildirsize(dc)
        assert count2 == count - 1 and used2 < used
        assert quota_root(conn) == (kb(used2), QUOTA_BYTES // 1024, count2, QUOTA_COUNT)
    finally:
        conn.logout()

    rc, results = deliver(bench, dc, "-n", "1", "-s", "1500")
    assert rc == 0, results
    _, used3, count3 = maildirsize(dc)
    assert count3 == count2 + 1 and used3 > used2
    conn = dc.imap()
    try:
        assert quota_root(conn) == (kb(used3), QUOTA_BYTES // 1024, count3, QUOTA_COUNT)
    finally:
        conn.logout()


def test_delivery_stops_at_quota(bench, dovecot_quota):
    dc = dovecot_quota
    # 4 KB messages: the 20 KB quota fills after a few; the rest bounce.
    rc, results = deliver(bench, dc, "-n", "8", "-s", "4000")
    assert rc == 1
    statuses = [r[0] for r in results]
    assert "2.0.0" in statuses and statuses[-1] == "5.2.2"
    first_refused = statuses.index("5.2.2")
    assert set(statuses[first_refused:]) == {"5.2.2"}
    assert "mailbox full" in results[-1][1]
    # Soft mode defers instead.
    rc, results = deliver(bench, dc, "-n", "1", "-s", "4000", "-S")
    assert rc == 1 and results[0][0] == "4.2.2"

    header, used, count = maildirsize(dc)
    assert used <= QUOTA_BYTES
    root = os.path.join(dc.mail_root, MAILDIR)
    assert os.listdir(os.path.join(root, "tmp")) == []
    on_disk = len(os.listdir(os.path.join(root, "new"))) + len(os.listdir(os.path.join(root, "cur")))
    assert on_disk == count
    conn = dc.imap()
    try:
        typ, data = conn.select("INBOX")
        assert int(data[0]) == count
        assert quota_root(conn) == (kb(used), QUOTA_BYTES // 1024, count, QUOTA_COUNT)
    finally:
        conn.logout()
