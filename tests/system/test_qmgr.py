"""Mail arrives in mailboxes: master + smtpd + qmgr + virtual, end to end.

A whole private postern (harness/system.py) on the demo database of each
backend. What a user sees is asserted: files in Maildir/new, the DSN in
the sender's mailbox parsed by Python's email package, `postern queue`
output, and Postfix-format log lines.

Demo data (sql/*/demo.sql): mailboxes alice@example.com (quota 100 MB),
bob@example.com, carol@example.net; aliases info@example.com -> alice +
bob, postmaster@example.com -> alice, catch-all @example.net -> carol;
example.org is an alias domain of example.com.
"""

import grp
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from harness.process import wait_until
from harness.system import MailSystem, proc_groups, proc_ids


def body(subject, extra=""):
    return (f"From: sender@client.example\r\nTo: you\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example>\r\n\r\nhello {subject}\r\n{extra}")


@pytest.fixture
def ms(postern_build, postern):
    m = MailSystem(postern_build, postern)
    yield m
    m.cleanup()


@pytest.mark.parametrize("kind", ["sqlite", "mysql", "pgsql"])
def test_delivery_resolves_like_postfix(kind, postern_build, postern, request):
    with MailSystem(postern_build, postern) as ms:
        ms.make_db(kind, request)
        ms.start()
        ms.send("sender@client.example", ["alice@example.com"], body("plain"))
        ms.send("sender@client.example", ["info@example.com"], body("alias"))
        ms.send("sender@client.example", ["anyone@example.net"], body("catchall"))
        ms.send("sender@client.example", ["alice@example.org"], body("aliasdomain"))
        ms.send("sender@client.example", ["alice+tag@example.com"], body("extension"))
        alice = ms.wait_maildir("example.com/alice/", 4)
        bob = ms.wait_maildir("example.com/bob/", 1)
        carol = ms.wait_maildir("example.net/carol/", 1)
        subjects = sorted(ms.read_message(p)["Subject"] for p in alice)
        assert subjects == ["alias", "aliasdomain", "extension", "plain"]
        assert ms.read_message(bob[0])["Subject"] == "alias"
        msg = ms.read_message(carol[0])
        assert msg["Subject"] == "catchall"
        assert msg["Delivered-To"] == "carol@example.net"
        assert msg["Return-Path"] == "<sender@client.example>"
        # Maildir file names carry the size (",S=").
        for p in alice + bob + carol:
            assert re.search(r",S=\d+", os.path.basename(p)), p
            assert os.path.getsize(p) == int(re.search(r",S=(\d+)", p).group(1))
        wait_until(ms.queue_empty, timeout=20, what="queue empty")
        ms.wait_log(": removed\n", count=5)
        log = ms.log()
        assert re.search(r"postern/qmgr\[\d+\]: \w{14}: from=<sender@client\.example>, "
                         r"size=\d+, nrcpt=1 \(queue active\)", log)
        assert re.search(r"postern/virtual\[\d+\]: \w{14}: to=<bob@example\.com>, "
                         r"orig_to=<info@example\.com>, relay=virtual, delay=[\d.]+, "
                         r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
                         r"status=sent \(delivered to maildir\)", log)


def test_unknown_local_recipient_bounces_with_a_dsn(ms):
    ms.sd.sqlite_db(ms.postern)
    ms.start()
    # Local submission is not checked at RCPT time: qmgr finds the user
    # unknown and returns the message to the sender (alice).
    res = ms.run("sendmail", "-f", "alice@example.com", "ghost@example.com",
                 input="Subject: to a ghost\nMessage-ID: <ghost@example.com>\n\nboo\n")
    assert res.returncode == 0, res.stderr
    dsn = ms.read_message(ms.wait_maildir("example.com/alice/", 1)[0])
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["Return-Path"] == "<>"
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "message/rfc822"]
    status = parts[1].get_payload()
    fields = {}
    for block in status:
        for k, v in block.items():
            fields.setdefault(k.lower(), []).append(v)
    assert fields["final-recipient"] == ["rfc822; ghost@example.com"]
    assert fields["action"] == ["failed"]
    assert fields["status"] == ["5.1.1"]
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "to a ghost"
    log = ms.log()
    assert re.search(r"to=<ghost@example\.com>, relay=none, .*dsn=5\.1\.1, status=bounced "
                     r"\(User unknown in virtual mailbox table\)", log)
    assert re.search(r"\w{14}: sender non-delivery notification: \w{14}", log)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")


def test_no_agent_defers_with_a_clear_reason_and_flush_delivers(postern_build, postern):
    with MailSystem(postern_build, postern, services=("pickup", "qmgr")) as ms:
        ms.sd.sqlite_db(ms.postern)
        ms.set(minimal_backoff_time="300s", maximal_backoff_time="300s",
               queue_run_delay="300s")
        ms.start()
        ms.send("sender@client.example", ["alice@example.com"], body("waiting"))
        ms.wait_log("status=deferred (mail transport unavailable: connect to "
                    "private/virtual: No such file or directory)")
        wait_until(lambda: ms.queue_ids("deferred"), timeout=20, what="deferred file")
        res = ms.run("queue", "list")
        assert res.returncode == 0
        assert "(mail transport unavailable: connect to private/virtual" in res.stdout
        assert "alice@example.com" in res.stdout
        assert "-- 1 Kbytes in 1 Request." in res.stdout
        ms.stop()
        # With the agent back, flush delivers at once (no 300 s wait).
        ms.services = ("pickup", "qmgr", "virtual")
        ms.start()
        res = ms.run("queue", "flush")
        assert res.returncode == 0, res.stderr
        ms.wait_maildir("example.com/alice/", 1)
        wait_until(ms.queue_empty, timeout=20, what="queue empty")
        assert ms.run("queue", "list").stdout.strip() == "Mail queue is empty"


def test_expired_mail_is_returned_and_delay_warning_sent(ms):
    ms.sd.sqlite_db(ms.postern)
    ms.set(transport_maps="inline:{ {example.com = retry:4.4.1 host down} }",
           delay_warning_time="1s", maximal_queue_lifetime="4s")
    ms.start()
    ms.send("carol@example.net", ["alice@example.com"], body("late"))
    ms.wait_log("status=deferred (host down)")
    # First a delay warning, then (after the lifetime) the bounce.
    ms.wait_log("sender delay notification:", timeout=30)
    ms.wait_log("status=expired, returned to sender", timeout=30)
    ms.wait_log("sender non-delivery notification:", timeout=30)
    got = ms.wait_maildir("example.net/carol/", 2)
    subjects = sorted(ms.read_message(p)["Subject"] for p in got)
    assert subjects == ["Delayed Mail (still being retried)",
                        "Undelivered Mail Returned to Sender"]
    for p in got:
        m = ms.read_message(p)
        report = [x for x in m.iter_parts()
                  if x.get_content_type() == "message/delivery-status"][0]
        blocks = report.get_payload()
        action = blocks[1]["Action"]
        assert action == ("delayed" if "Delayed" in m["Subject"] else "failed")
        assert blocks[1]["Status"] == "4.4.1"
    wait_until(ms.queue_empty, timeout=20, what="queue empty")


def test_alias_half_delivered_is_not_delivered_twice(ms):
    ms.sd.sqlite_db(ms.postern)
    ms.set(transport_maps="inline:{ {bob@example.com = retry:4.2.0 bob is away} }")
    ms.start()
    ms.send("sender@client.example", ["info@example.com"], body("team"))
    ms.wait_maildir("example.com/alice/", 1)
    ms.wait_log("status=deferred (bob is away)", count=2, timeout=30)
    res = ms.run("queue", "list")
    assert "(bob is away)" in res.stdout and "info@example.com" in res.stdout
    ms.stop()
    ms.set(transport_maps="")
    ms.start()
    assert ms.run("queue", "flush").returncode == 0
    ms.wait_maildir("example.com/bob/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    # alice got it once: the retry skipped the final address already done.
    assert len(ms.messages("example.com/alice/")) == 1


def test_success_notice_and_double_bounce(ms):
    ms.sd.sqlite_db(ms.postern)
    ms.start()
    with __import__("smtplib").SMTP(ms.sd.host, ms.sd.port, timeout=30) as c:
        c.ehlo("client.test.example")
        c.mail("carol@example.net")
        c.rcpt("bob@example.com", options=["NOTIFY=SUCCESS"])
        c.data(body("notify").encode())
    ms.wait_maildir("example.com/bob/", 1)
    report = ms.read_message(ms.wait_maildir("example.net/carol/", 1)[0])
    assert report["Subject"] == "Successful Mail Delivery Report"
    ms.wait_log("sender delivery status notification:")
    # A bounce that cannot be delivered goes to 2bounce_notice_recipient.
    res = ms.run("sendmail", "-f", "", "ghost@example.com",
                 input="Subject: from nobody\n\nx\n")
    assert res.returncode == 0, res.stderr
    got = ms.wait_maildir("example.com/alice/", 1)
    assert ms.read_message(got[0])["Subject"] == \
        "Postmaster Copy: Undeliverable Bounce Message"
    ms.wait_log("from=<double-bounce@")


def test_queue_states_and_commands(postern_build, postern):
    with MailSystem(postern_build, postern, services=("pickup", "qmgr")) as ms:
        ms.sd.sqlite_db(ms.postern)
        ms.set(minimal_backoff_time="300s", maximal_backoff_time="300s")
        ms.start()
        for i in range(3):
            ms.send("sender@client.example", ["alice@example.com"], body(f"q{i}"))
        wait_until(lambda: len(ms.queue_ids("deferred")) == 3, timeout=20,
                   what="three deferred")
        ids = sorted(os.path.basename(p) for p in ms.queue_ids("deferred"))
        assert ms.run("queue", "hold", ids[0]).returncode == 0
        out = ms.run("queue", "list").stdout
        assert re.search(rf"^{ids[0]}!", out, re.M)
        assert ms.run("queue", "delete", ids[1]).returncode == 0
        assert ms.run("queue", "release", ids[0]).returncode == 0
        ms.stop()
        ms.services = ("pickup", "qmgr", "virtual")
        ms.start()
        assert ms.run("queue", "requeue", "ALL").returncode == 0
        got = ms.wait_maildir("example.com/alice/", 2)
        assert sorted(ms.read_message(p)["Subject"] for p in got) == ["q0", "q2"]
        wait_until(ms.queue_empty, timeout=20, what="queue empty")


def test_corrupt_file_is_moved_aside(ms):
    ms.sd.sqlite_db(ms.postern)
    ms.start()
    ms.send("sender@client.example", ["alice@example.com"], body("first"))
    ms.wait_maildir("example.com/alice/", 1)
    ms.wait_log(": removed")
    good = re.search(r"(\w{14}): removed", ms.log()).group(1)
    # A valid-looking ID (another PID part) holding garbage.
    bad_id = good[:-2] + ("zz" if good[-2:] != "zz" else "yy")
    with open(os.path.join(ms.sd.queue, "incoming", bad_id), "wb") as f:
        f.write(b"POSTERNQ garbage")
    # The next delivery's wake-up scans incoming/ and finds it.
    ms.send("sender@client.example", ["alice@example.com"], body("after"))
    ms.wait_maildir("example.com/alice/", 2)
    wait_until(lambda: os.path.exists(os.path.join(ms.sd.queue, "corrupt", bad_id)),
               timeout=20, what="moved to corrupt/")
    assert f"{bad_id}: " in ms.log() and "moved to corrupt/" in ms.log()


def send_retrying_4xx(c, sender, rcpts, msg, tries=100):
    """Send as a real client does: recipients refused with a 4xx (or a
    4xx for all of them) are sent again, up to tries times; a 5xx
    raises."""
    import smtplib
    to = list(rcpts)
    for attempt in range(tries):
        try:
            refused = c.sendmail(sender, to, msg)
            if not refused:
                return
            if any(code // 100 != 4 for code, _ in refused.values()):
                raise AssertionError(f"refused: {refused}")
            to = list(refused)
        except smtplib.SMTPRecipientsRefused as exc:
            if any(code // 100 != 4 for code, _ in exc.recipients.values()) or \
                    attempt == tries - 1:
                raise
        time.sleep(0.1)
    raise AssertionError(f"still refused after {tries} tries: {to}")


def test_kill_9_of_qmgr_and_virtual_loses_nothing(ms):
    """2,000 messages; qmgr and the virtual agents are killed with SIGKILL
    while they deliver. Every message arrives (at least once) and master
    restarts both."""
    ms.sd.sqlite_db(ms.postern)
    ms.start()
    total, senders = 2000, 4
    errors = []

    def sender(k):
        # A real client: a 4xx (the SQLite file briefly unreadable while a
        # killed agent's transaction waits to be rolled back) is retried.
        import smtplib
        try:
            with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=60) as c:
                c.ehlo("client.test.example")
                for i in range(k, total, senders):
                    send_retrying_4xx(c, "sender@client.example", ["bob@example.com"],
                                      body(f"m{i:05d}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    kills = 0
    deadline = time.monotonic() + 120
    # Kill while mail flows: qmgr twice, every virtual agent twice.
    while kills < 4 and time.monotonic() < deadline:
        wait_until(lambda: len(ms.messages("example.com/bob/")) >= 300 * (kills + 1),
                   timeout=60, what="deliveries under way")
        victims = ms.children("qmgr") if kills % 2 == 0 else ms.children("virtual")
        assert victims, "no process to kill"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        kills += 1
    for t in threads:
        t.join(timeout=180)
    assert not errors, (errors, [l for l in ms.log().splitlines() if "warning" in l][:8])
    wait_until(lambda: len(set(subjects(ms))) == total, timeout=180,
               what=f"{total} distinct messages delivered")
    wait_until(ms.queue_empty, timeout=60, what="queue empty")
    log = ms.log()
    assert log.count("killed by signal 9") >= 4
    assert ms.children("qmgr") and ms.children("virtual")


def test_50_random_kills_deliver_each_message_exactly_once(ms):
    """2,000 messages (every fifth to two mailboxes); 50 SIGKILLs at random
    moments while they are delivered, of qmgr (5: master's restart backoff
    doubles for a process killed young, 1+2+4+8+16 s) and of a random
    virtual agent (45). Nothing is lost, and nothing arrives twice: a delivery
    that virtual finished but qmgr never recorded (either one killed in
    between) is found in the Maildir on the retry, not written again.
    Duplicates are counted by Message-ID in each mailbox."""
    import random
    import smtplib
    seed = int(os.environ.get("POSTERN_KILL_SEED", time.time()))
    rnd = random.Random(seed)
    ms.sd.sqlite_db(ms.postern)
    # More agent processes than the default 4: master backs off a slot
    # whose process keeps dying young, so kills spread over 8 slots leave
    # some delivering while others wait out their backoff.
    ms.virtual_limit = 8
    # One recipient per request: alice and bob of a two-recipient message
    # come back in two replies, and the first is written to the status log
    # (qmgr_message_record_done) before qmgr waits for the second.
    ms.set(virtual_destination_recipient_limit=1)
    ms.start()
    total, senders, nkills = 2000, 4, 50
    qmgr_kills = set(rnd.sample(range(nkills), 5))
    per_kill = total // (nkills + 1)
    # The senders are held to at most two batches ahead of the kills, so
    # that every kill lands while mail is in flight, not after the run.
    gate = threading.Condition()
    allowed = [2 * per_kill]
    errors = []

    def rcpts(i):
        return ["bob@example.com", "alice@example.com"] if i % 5 == 0 else ["bob@example.com"]

    def sender(k):
        try:
            with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=60) as c:
                c.ehlo("client.test.example")
                for i in range(k, total, senders):
                    with gate:
                        if not gate.wait_for(lambda: i < allowed[0], timeout=150):
                            raise TimeoutError(f"message {i} never released")
                    # A 4xx for one of two recipients: sent again to that
                    # one only.
                    send_retrying_4xx(c, "sender@client.example", rcpts(i),
                                      body(f"k{i:05d}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    def delivered():
        return len(ms.messages("example.com/bob/")) + len(ms.messages("example.com/alice/"))

    def release(n):
        with gate:
            allowed[0] = n
            gate.notify_all()

    expected = {"bob": total, "alice": len(range(0, total, 5))}
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    start = time.monotonic()
    for t in threads:
        t.start()
    kills, done_qmgr = 0, 0
    while kills < nkills:
        # Kill k comes once k + 1 batches are (about) delivered, with the
        # next batch released and on its way, at a random moment.
        goal = per_kill * (kills + 1) * 6 // 5
        try:
            wait_until(lambda: delivered() >= goal, timeout=90,
                       what=f"deliveries before kill {kills + 1} (seed {seed})")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; {delivered()} of {goal}; queue: "
                                 f"{[(q, len(ms.sd.queued_files(q))) for q in ('incoming', 'active', 'deferred')]}"
                                 f"; log:\n" + "\n".join(ms.log().splitlines()[-30:])) from exc
        release(per_kill * (kills + 3))
        time.sleep(rnd.uniform(0, 0.3))
        name = "qmgr" if kills in qmgr_kills else "virtual"
        victims = ms.children(name)
        if not victims:
            # Waiting out master's restart backoff.
            wait_until(lambda: ms.children(name), timeout=90, what=f"{name} restarted")
            victims = ms.children(name)
        try:
            os.kill(rnd.choice(victims), signal.SIGKILL)
        except ProcessLookupError:
            continue
        done_qmgr += name == "qmgr"
        kills += 1
    release(total)
    for t in threads:
        t.join(timeout=120)
    assert not errors, (errors, [l for l in ms.log().splitlines() if "warning" in l][:8])

    def ids(box):
        out = []
        for p in ms.messages(f"example.com/{box}/"):
            with open(p, "rb") as f:
                for line in f:
                    if line.lower().startswith(b"message-id:"):
                        out.append(line[11:].strip())
                        break
        return out

    wait_until(lambda: all(len(set(ids(b))) == n for b, n in expected.items()), timeout=120,
               what=f"every message delivered (seed {seed})")
    wait_until(ms.queue_empty, timeout=60, what="queue empty")
    dups = {b: len(ids(b)) - len(set(ids(b))) for b in expected}
    print(f"seed {seed}: {kills} kills ({done_qmgr} of qmgr) in "
          f"{time.monotonic() - start:.0f}s, duplicates {dups}, "
          f"{ms.log().count('by an earlier attempt')} found by a retry")
    assert ms.log().count("killed by signal 9") >= nkills
    assert dups == {"bob": 0, "alice": 0}, f"duplicates by Message-ID {dups} (seed {seed})"


def subjects(ms):
    out = []
    for p in ms.messages("example.com/bob/"):
        with open(p, "rb") as f:
            for line in f:
                if line.startswith(b"Subject: "):
                    out.append(line[9:].strip())
                    break
    return out




def proc_uid(pid):
    return proc_ids(pid, "Uid")


def proc_gid(pid):
    return proc_ids(pid, "Gid")




@pytest.mark.parametrize("kind", ["mysql", "sqlite"])
def test_only_master_keeps_root(postern_build, postern, request, kind):
    """Run as root (as CI does): smtpd, qmgr and pickup run as mail_owner
    (real, effective, saved and file-system uid), virtual with static
    maps becomes the mailbox owner for good, and only master is root.
    With the SQLite default too: `postern db init` makes the file, its WAL
    files and its directory group mail_owner and group-writable, so the
    mailbox owner (who keeps that group) writes quota_usage itself.
    Local submission from an ordinary user still delivers. Run as another
    user, every service runs as that user and master says so."""
    import pwd
    owner = pwd.getpwnam("postern")
    # The mailboxes' owner is not mail_owner (as with the shipped
    # static:5000): virtual reads the queue through mail_owner's group.
    vmail_uid = vmail_gid = 5000
    with MailSystem(postern_build, postern, uid=vmail_uid, gid=vmail_gid) as ms:
        server = ms.make_db(kind, request)
        if server is not None:
            # As INSTALL advises once lookups have their own password file:
            # the write password readable by root only. virtual reads it
            # before it becomes the mailbox owner.
            write_pw = ms.sd.main["database_password_file"]
            read_pw = os.path.join(ms.sd.confdir, "database-readonly.password")
            shutil.copy(write_pw, read_pw)
            os.chown(read_pw, 0, owner.pw_gid)
            os.chmod(read_pw, 0o640)
            os.chown(write_pw, 0, 0)
            os.chmod(write_pw, 0o600)
            ms.set(database_readonly_password_file=read_pw)
        ms.start()
        if os.geteuid() != 0:
            me = os.geteuid()
            ms.wait_log(f"not running as root: every service runs as uid {me}")
            for name in ("smtpd", "qmgr", "virtual", "pickup"):
                assert all(proc_uid(p)[0] == me for p in ms.children(name)), name
            return
        assert proc_uid(ms.proc.pid) == [0] * 4
        for name in ("smtpd", "qmgr", "pickup"):
            pids = ms.children(name)
            assert pids, name
            for pid in pids:
                assert proc_uid(pid) == [owner.pw_uid] * 4, (name, proc_uid(pid))
        assert ms.children("virtual")
        # virtual: static:UID maps, so that uid for good, set before serving.
        ms.wait_log("for good: virtual_uid_maps and virtual_gid_maps are static")
        # Every virtual process drops on its own as it starts: the log line
        # above is the first one's.
        wait_until(lambda: all(proc_uid(p)[0] == vmail_uid for p in ms.children("virtual")),
                   timeout=20, what="every virtual process to become the mailbox owner")
        assert "cannot write quota_usage" not in ms.log()
        for pid in ms.children("virtual"):
            assert proc_uid(pid) == [vmail_uid] * 4, ("virtual", proc_uid(pid))
            assert proc_gid(pid) == [vmail_gid] * 4, ("virtual", proc_gid(pid))
            assert proc_groups(pid) == sorted({vmail_gid, owner.pw_gid}), proc_groups(pid)
        if kind == "sqlite":
            # The permission model of lib/db/db.c: WAL mode, the file and its
            # WAL files root:mail_owner 0660, the directory setgid to the group.
            db = ms.sd.main["database"][len("sqlite:"):]
            for path in (db, db + "-wal", db + "-shm"):
                st = os.stat(path)
                assert (st.st_gid, st.st_mode & 0o7777) == (owner.pw_gid, 0o660), path
            st = os.stat(os.path.dirname(db))
            assert st.st_gid == owner.pw_gid and st.st_mode & 0o2070 == 0o2070
            import sqlite3
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # The queue and the sockets belong to mail_owner; maildrop/ is
        # mail_owner:postdrop 1730.
        for sub in ("incoming", "active", "deferred", "private", "public", "maildrop"):
            assert os.stat(os.path.join(ms.sd.queue, sub)).st_uid == owner.pw_uid, sub
        st = os.stat(os.path.join(ms.sd.queue, "maildrop"))
        assert st.st_mode & 0o7777 == 0o1730
        assert st.st_gid == grp.getgrnam("postdrop").gr_gid
        ms.send("sender@client.example", ["alice@example.com"], body("owned"))
        ms.wait_maildir("example.com/alice/", 1)
        if kind == "sqlite":
            # The mailbox owner, not root, wrote alice's quota_usage row.
            import sqlite3

            def alice_usage():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                    return c.execute("SELECT messages FROM quota_usage WHERE username = ?",
                                     ("alice@example.com",)).fetchall()
            wait_until(lambda: alice_usage() == [(1,)], timeout=20,
                       what="alice's quota_usage row")
        if server is not None:
            # The mailbox owner, not root, wrote alice's quota_usage row.
            dbname = ms.sd.main["database"].rsplit("/", 1)[1]
            wait_until(lambda: server.sql(
                "SELECT messages FROM quota_usage WHERE username = %s",
                ("alice@example.com",), database=dbname) == [(1,)],
                timeout=20, what="alice's quota_usage row")
        res = ms.run("sendmail", "-f", "alice@example.com", "bob@example.com",
                     input="Subject: local\n\nx\n")
        assert res.returncode == 0, res.stderr
        ms.wait_maildir("example.com/bob/", 1)
        # An ordinary user: through the setgid postdrop to the mailbox.
        res = subprocess.run(["runuser", "-u", "nobody", "--",
                              os.path.join(postern_build, "bin", "postern"), "-c",
                              ms.sd.confdir, "sendmail", "bob@example.com"],
                             input="Subject: from nobody\n\nx\n", capture_output=True,
                             text=True, timeout=20)
        assert res.returncode == 0, res.stderr
        ms.wait_maildir("example.com/bob/", 2)
        uid = pwd.getpwnam("nobody").pw_uid
        ms.wait_log(f"uid={uid} from=<nobody>")
        for path in ms.messages("example.com/bob/"):
            assert os.stat(path).st_uid == vmail_uid
        wait_until(ms.queue_empty, timeout=20, what="queue empty")


class RecordingAgent:
    """A delivery agent for qmgr's scheduling test: speaks delivery.h on
    queue_directory/private/virtual, holds each delivery a moment, answers
    "sent" for every recipient and records how many deliveries were open at
    once and how many recipients each request carried."""

    def __init__(self, path, hold=0.3):
        import socket
        self.path = path
        self.hold = hold
        self.lock = threading.Lock()
        self.open = 0
        self.max_open = 0
        self.requests = []
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import socket
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with self.lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            conn.settimeout(10)
            data = b""
            while b"\n\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            attrs = [l.split("=", 1) for l in data.split(b"\n\n")[0].decode().split("\n")]
            ids = [v for k, v in attrs if k == "rcpt_id"]
            rid = [v for k, v in attrs if k == "request_id"][0]
            with self.lock:
                self.requests.append(len(ids))
            time.sleep(self.hold)
            reply = f"request_id={rid}\n" + "".join(
                f"rcpt_id={i}\naction=sent\nstatus=2.0.0\nreason=recorded\n" for i in ids)
            conn.sendall(reply.encode() + b"\n")
        finally:
            with self.lock:
                self.open -= 1
            conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def test_destination_concurrency_and_recipient_limits(postern_build, postern):
    with MailSystem(postern_build, postern, services=("pickup", "qmgr")) as ms:
        ms.sd.sqlite_db(ms.postern)
        ms.set(virtual_destination_concurrency_limit="2",
               virtual_destination_recipient_limit="3")
        agent = RecordingAgent(os.path.join(ms.sd.queue, "private", "virtual"))
        try:
            ms.start()
            for i in range(8):
                ms.send("sender@client.example", ["alice@example.com"], body(f"c{i}"))
            # One message for 5 recipients of one destination; after alias
            # expansion and duplicate elimination 3 finals remain (alice,
            # bob, alice+x): one request of 3 (the limit).
            ms.send("sender@client.example",
                    ["alice@example.com", "bob@example.com", "info@example.com",
                     "postmaster@example.com", "alice+x@example.com"], body("many"))
            wait_until(ms.queue_empty, timeout=60, what="queue empty")
            with agent.lock:
                assert agent.max_open == 2, agent.max_open
                assert max(agent.requests) == 3, agent.requests
                assert sum(agent.requests) == 8 + 3, agent.requests
        finally:
            agent.stop()


def test_two_instances_share_one_database(postern_build, postern):
    """-c DIR everywhere: two postern instances (own config, queue, ports,
    Maildirs) run side by side on one machine against one database."""
    with MailSystem(postern_build, postern) as a, MailSystem(postern_build, postern) as b:
        a.sd.sqlite_db(postern)
        b.set(database=a.sd.main["database"])
        a.start()
        b.start()
        assert a.sd.port != b.sd.port
        a.send("sender@client.example", ["alice@example.com"], body("via-a"))
        b.send("sender@client.example", ["bob@example.com"], body("via-b"))
        assert a.read_message(a.wait_maildir("example.com/alice/", 1)[0])["Subject"] == "via-a"
        assert b.read_message(b.wait_maildir("example.com/bob/", 1)[0])["Subject"] == "via-b"
        # A mailbox added once is known to both.
        res = postern("-c", a.sd.confdir, "user", "add", "dave@example.com",
                      input="secret-password\n")
        assert res.returncode == 0, res.stderr
        b.send("sender@client.example", ["dave@example.com"], body("new"))
        b.wait_maildir("example.com/dave/", 1)
        for ms in (a, b):
            wait_until(ms.queue_empty, timeout=20, what="queue empty")


@pytest.mark.parametrize("bounce", ["yes", "no"])
def test_over_quota_through_the_whole_system(bounce, postern_build, postern):
    """A message that would take alice over her quota: bounced 5.2.2 with a
    DSN to the sender, or (virtual_overquota_bounce = no) deferred 4.2.2."""
    import sqlite3
    with MailSystem(postern_build, postern) as ms:
        db = ms.sd.sqlite_db(postern)
        with sqlite3.connect(db) as c:
            c.execute("UPDATE mailboxes SET quota_bytes = 2000 "
                      "WHERE address = 'alice@example.com'")
        ms.set(virtual_overquota_bounce=bounce, minimal_backoff_time="300s",
               maximal_backoff_time="300s")
        ms.start()
        big = body("big", extra=("y" * 70 + "\r\n") * 60)  # ~4 KB
        # Without SIZE= (smtplib's sendmail would send it, and smtpd would
        # refuse at RCPT): the usage is below the limit, so smtpd accepts
        # and the delivery finds the message too big for what is left.
        import smtplib
        with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=30) as c:
            c.ehlo("client.test.example")
            assert c.mail("carol@example.net")[0] == 250
            assert c.rcpt("alice@example.com")[0] == 250
            assert c.data(big.encode())[0] == 250
        if bounce == "yes":
            ms.wait_log("dsn=5.2.2, status=bounced")
            dsn = ms.read_message(ms.wait_maildir("example.net/carol/", 1)[0])
            status = [p for p in dsn.iter_parts()
                      if p.get_content_type() == "message/delivery-status"][0]
            assert status.get_payload()[1]["Status"] == "5.2.2"
            wait_until(ms.queue_empty, timeout=20, what="queue empty")
        else:
            ms.wait_log("dsn=4.2.2, status=deferred")
            wait_until(lambda: ms.queue_ids("deferred"), timeout=20, what="deferred")
            assert "4.2.2" in ms.run("queue", "list").stdout or \
                "quota" in ms.run("queue", "list").stdout
        assert ms.messages("example.com/alice/") == []


def test_reload_does_not_deliver_twice(postern_build, postern):
    """postern reload while deliveries are in progress: the old qmgr
    finishes them (drain), the new one waits for its queue lock, and no
    message is delivered twice."""
    with MailSystem(postern_build, postern, services=("pickup", "qmgr")) as ms:
        ms.sd.sqlite_db(ms.postern)
        agent = RecordingAgent(os.path.join(ms.sd.queue, "private", "virtual"), hold=2)
        try:
            ms.start()
            for i in range(3):
                ms.send("sender@client.example", ["alice@example.com"], body(f"r{i}"))
            wait_until(lambda: agent.open >= 1, timeout=20, what="deliveries in progress")
            old = ms.children("qmgr")
            assert ms.run("reload").returncode == 0
            wait_until(lambda: ms.children("qmgr") and
                       not set(ms.children("qmgr")) & set(old), timeout=20,
                       what="the new qmgr alone")
            wait_until(ms.queue_empty, timeout=60, what="queue empty")
            time.sleep(3)  # room for a second delivery, were there one
            with agent.lock:
                assert sum(agent.requests) == 3, agent.requests
            log = ms.log()
            assert "draining: " in log and "drained: every message in progress is done" in log
            assert "waiting for the queue manager before me to finish" in log
            # The new qmgr works.
            ms.send("sender@client.example", ["alice@example.com"], body("after"))
            wait_until(lambda: sum(agent.requests) == 4, timeout=20, what="4th delivery")
        finally:
            agent.stop()
