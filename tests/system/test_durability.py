"""Durability a user relies on, seen through the fault-injection shim.

The real daemons (master, smtpd, qmgr, virtual: harness/system.py) run
with tests/faultinject/faultinject.so preloaded. The shim writes an
ordered trace of fsync/fdatasync/rename/link calls (paths resolved from
the descriptors) and a "mark" line the moment a daemon writes a success
reply to a socket: smtpd's "250 2.0.0 Ok: queued", virtual's
"action=sent" to qmgr. It can also make the N-th fsync of a path
matching a glob fail with EIO. What is asserted:

  * smtpd answers 250 to DATA only after the queue file was fsync'd,
    renamed into incoming/, and incoming/ itself fsync'd;
  * virtual reports "delivered" only after the Maildir file was fsync'd,
    linked into new/, and new/ fsync'd;
  * an EIO from either fsync gives the client a 451 (smtpd) or a deferral
    (virtual), leaves no file behind, and the retry delivers exactly once;
  * when qmgr took a queue file while smtpd's directory fsync was failing,
    the client is not told to send it again (no duplicate);
  * an alias's "final done" record is synced before the round ends, so a
    power loss (emulated: unsynced appends cut off) does not deliver the
    done half of the alias twice.

Demo data: info@example.com is an alias of alice + bob (example.com).
"""

import os
import re
import signal
import smtplib
import socket
import threading
import time

import pytest

from harness.process import wait_until
from harness.system import MailSystem, child_pids

QUEUED = "250 2.0.0 Ok: queued"
DELIVERED = "action=sent"


def body(subject):
    return (f"From: sender@client.example\r\nTo: you\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example>\r\n\r\nhello {subject}\r\n")


class Shim:
    """The environment that preloads the shim, and its trace."""

    def __init__(self, build, tmpdir):
        self.so = os.path.join(build, "tests", "faultinject.so")
        assert os.path.exists(self.so), f"{self.so} missing: make {self.so}"
        # Daemons run as mail_owner: the shim's files must be theirs too.
        d = os.path.join(tmpdir, "faultinject")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o1777)
        self.trace_path = os.path.join(d, "trace")
        self.arm_path = os.path.join(d, "arm")
        open(self.trace_path, "a").close()
        os.chmod(self.trace_path, 0o666)

    def env(self, fail=None, delay_ms=0):
        e = {"LD_PRELOAD": self.so, "FAULTINJECT_TRACE": self.trace_path,
             "FAULTINJECT_MARK": f"{QUEUED}|{DELIVERED}",
             "FAULTINJECT_ARM": self.arm_path}
        if fail:
            e["FAULTINJECT_FAIL"] = fail
        if delay_ms:
            e["FAULTINJECT_DELAY_MS"] = str(delay_ms)
        if os.environ.get("POSTERN_SANITIZE") == "1":
            # The ASan runtime would insist on being first in the list.
            e["ASAN_OPTIONS"] = "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")
        return e

    def arm(self, nth=1):
        """The nth matching fsync from now fails (one failure)."""
        with open(self.arm_path, "w") as f:
            f.write(f"{nth}\n")
        os.chmod(self.arm_path, 0o666)

    def armed(self):
        try:
            return not open(self.arm_path).read().startswith("-")
        except FileNotFoundError:
            return False

    def trace(self):
        """[(ns, pid, op, path, path2, rc, rest)] in file order."""
        out = []
        try:
            lines = open(self.trace_path, errors="replace").read().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            m = re.match(r"(\d+) (\d+) (\S+) (.*?)(?: -> (.*?))? = (-?\d+)(.*)$", line)
            if m:
                out.append((int(m[1]), int(m[2]), m[3], m[4], m[5], int(m[6]),
                            m[7].strip()))
        return out


@pytest.fixture
def system(postern_build, postern, request, monkeypatch):
    """start(fail=None, delay_ms=0, **main_cf) -> (MailSystem, Shim)."""
    made = []

    def start(fail=None, delay_ms=0, **params):
        ms = MailSystem(postern_build, postern)
        made.append(ms)
        ms.make_db("sqlite", request)
        ms.set(**params)
        shim = Shim(postern_build, ms.sd.tmpdir)
        for k, v in shim.env(fail, delay_ms).items():
            monkeypatch.setenv(k, v)
        ms.start()
        # Only the daemons get the shim, not this test's own children.
        for k in shim.env(fail, delay_ms):
            monkeypatch.delenv(k)
        return ms, shim
    yield start
    for ms in made:
        ms.cleanup()


def send(ms, rcpts, subject):
    """(code, text) of the reply to the end of DATA."""
    with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=30) as c:
        c.ehlo("client.test.example")
        try:
            c.sendmail("sender@client.example", rcpts, body(subject))
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        return 250, ""


def first(trace, pred, after=-1, what="trace line"):
    for i, t in enumerate(trace):
        if i > after and pred(t):
            return i
    raise AssertionError(f"no {what} in trace:\n" + "\n".join(map(str, trace[-40:])))


def queue_files(ms):
    """Every file under the queue's message directories, tmp.* included."""
    out = []
    for q in ("incoming", "active", "deferred", "hold"):
        for dirpath, _, names in os.walk(os.path.join(ms.sd.queue, q)):
            out += [os.path.join(dirpath, n) for n in names]
    return out


def subjects(ms, box):
    return sorted(ms.read_message(p)["Subject"] for p in ms.messages(box))


# ---------------------------------------------------------------- order


def test_smtpd_says_250_only_after_queue_file_and_directory_are_synced(system):
    ms, shim = system()
    code, _ = send(ms, ["alice@example.com"], "order")
    assert code == 250
    tr = shim.trace()
    mark = first(tr, lambda t: t[2] == "mark" and t[3] == QUEUED, what="250 mark")
    pid = tr[mark][1]
    # The rename of incoming/tmp.ID to its queue name, by the same smtpd.
    ren = max(i for i, t in enumerate(tr[:mark])
              if t[1] == pid and t[2] in ("rename", "renameat", "renameat2", "link")
              and "/incoming/tmp." in t[3] and t[5] == 0)
    tmp, final = tr[ren][3], tr[ren][4]
    assert any(t[1] == pid and t[2] in ("fsync", "fdatasync") and t[3] == tmp and t[5] == 0
               for t in tr[:ren]), f"queue file {tmp} not fsync'd before its rename"
    assert any(t[1] == pid and t[2] == "fsync" and t[3] == os.path.dirname(final)
               and t[5] == 0 for t in tr[ren:mark]), \
        f"directory of {final} not fsync'd between the rename and the 250"


def test_virtual_says_delivered_only_after_maildir_file_and_new_are_synced(system):
    ms, shim = system()
    assert send(ms, ["alice@example.com"], "vorder")[0] == 250
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(lambda: any(t[2] == "mark" and t[3] == DELIVERED for t in shim.trace()),
               timeout=20, what="virtual's delivered reply")
    tr = shim.trace()
    mark = first(tr, lambda t: t[2] == "mark" and t[3] == DELIVERED, what="delivered mark")
    pid = tr[mark][1]
    ln = max(i for i, t in enumerate(tr[:mark])
             if t[1] == pid and t[2] in ("link", "linkat", "rename", "renameat", "renameat2")
             and "/vmail/" in t[3] and "/tmp/" in t[3] and t[5] == 0)
    tmp, final = tr[ln][3], tr[ln][4]
    assert "/new/" in final
    assert any(t[1] == pid and t[2] in ("fsync", "fdatasync") and t[3] == tmp and t[5] == 0
               for t in tr[:ln]), f"maildir file {tmp} not fsync'd before the link"
    assert any(t[1] == pid and t[2] == "fsync" and t[3] == os.path.dirname(final)
               and t[5] == 0 for t in tr[ln:mark]), \
        "new/ not fsync'd between the link and the delivered reply"


# ---------------------------------------------------------------- EIO


def test_failed_queue_file_fsync_gives_451_and_no_file(system):
    ms, shim = system(fail="*/incoming/tmp.*")
    shim.arm(1)
    code, text = send(ms, ["alice@example.com"], "eio-file")
    assert not shim.armed(), "the injected fault was never met"
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert queue_files(ms) == []
    # The client's retry is queued and delivered once.
    assert send(ms, ["alice@example.com"], "eio-file")[0] == 250
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    assert subjects(ms, "example.com/alice/") == ["eio-file"]


def test_failed_queue_directory_fsync_gives_451_and_no_file(system):
    ms, shim = system(fail="*/incoming")
    shim.arm(1)
    code, text = send(ms, ["alice@example.com"], "eio-dir")
    assert not shim.armed(), "the injected fault was never met"
    assert code == 451 and text.startswith("4.3.0"), (code, text)
    assert queue_files(ms) == []
    assert send(ms, ["alice@example.com"], "eio-dir")[0] == 250
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    assert subjects(ms, "example.com/alice/") == ["eio-dir"]


def test_queue_file_taken_by_qmgr_during_failed_directory_fsync_is_not_sent_twice(system):
    """The file is visible in incoming/ from the rename on; qmgr's periodic
    takes it (woken by the test) while smtpd's directory fsync hangs for
    3 s and then fails. The message must be delivered once: smtpd
    must not answer 4xx for a message qmgr delivers anyway."""
    ms, shim = system(fail="*/incoming", delay_ms=3000)
    shim.arm(1)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=send(ms, ["alice@example.com"], "race")))
    t.start()
    try:
        # While smtpd's directory fsync hangs, the file is in incoming/:
        # wake qmgr as the next message's commit would, and wait until
        # qmgr has moved it to active/.
        wait_until(lambda: ms.queue_ids("incoming"), timeout=10, what="file in incoming/")
        poke_qmgr(ms)
        wait_until(lambda: not ms.queue_ids("incoming"), timeout=10,
                   what="qmgr takes the file")
    finally:
        t.join(timeout=40)
    code, text = result["r"]
    assert not shim.armed(), "the injected fault was never met"
    if code != 250:
        # A 4xx is only honest if nothing gets delivered: the client
        # sends it again.
        assert code == 451, (code, text)
        assert send(ms, ["alice@example.com"], "race")[0] == 250
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    # Time for a second copy to show up if one were on its way.
    ms.wait_log("status=sent", timeout=20)
    time.sleep(2)
    assert subjects(ms, "example.com/alice/") == ["race"]


def poke_qmgr(ms):
    """What smtpd's commit does: a wakeup ('W') on public/qmgr."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(os.path.join(ms.sd.queue, "public", "qmgr"))
        s.sendall(b"W")
    except (BrokenPipeError, ConnectionResetError):
        pass  # qmgr read the wakeup and hung up first
    finally:
        s.close()


def test_failed_maildir_file_fsync_defers_and_retries_once(system):
    ms, shim = system(fail="*/vmail/*/alice/tmp/*")
    shim.arm(1)
    assert send(ms, ["alice@example.com"], "vfile")[0] == 250
    ms.wait_log("status=deferred")
    assert not shim.armed()
    assert re.search(r"to=<alice@example.com>.*dsn=4\.\d+\.\d+, status=deferred", ms.log())
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    assert subjects(ms, "example.com/alice/") == ["vfile"]
    assert os.listdir(ms.maildir("example.com/alice/tmp")) == []


def test_failed_maildir_new_fsync_defers_with_nothing_in_new(system):
    ms, shim = system(fail="*/vmail/*/alice/new", queue_run_delay="1s",
                      minimal_backoff_time="30s", maximal_backoff_time="60s")
    shim.arm(1)
    assert send(ms, ["alice@example.com"], "vnew")[0] == 250
    ms.wait_log("status=deferred")
    assert not shim.armed()
    assert re.search(r"to=<alice@example.com>.*dsn=4\.\d+\.\d+, status=deferred", ms.log())
    # Deferred for 30 s: what is in new/ now is what the failure left.
    assert ms.messages("example.com/alice/") == []
    assert ms.run("queue", "flush").returncode == 0
    ms.wait_maildir("example.com/alice/", 1)
    wait_until(ms.queue_empty, timeout=20, what="queue empty")
    assert subjects(ms, "example.com/alice/") == ["vnew"]


# ---------------------------------------------------------------- alias finals


def kill_all(ms):
    """Power off: SIGKILL master and its children at once (by PID)."""
    pids = child_pids(ms.proc.pid) + [ms.proc.pid]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ms.proc.wait(timeout=10)
    for p in pids:
        wait_until(lambda p=p: not os.path.exists(f"/proc/{p}") or
                   open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                   timeout=10, what=f"pid {p} gone")
    ms.proc = None


def lose_unsynced_log_tail(ms, shim):
    """What a power loss does to an append-only status log: everything
    after its last successful fsync/fdatasync is gone (a log never
    synced is gone whole)."""
    synced = {}
    for _, _, op, path, _, rc, rest in shim.trace():
        m = re.search(r"size=(\d+)", rest)
        if op in ("fsync", "fdatasync") and rc == 0 and m:
            synced[path] = int(m[1])
    for dirpath, _, names in os.walk(os.path.join(ms.sd.queue, "defer")):
        for n in names:
            p = os.path.join(dirpath, n)
            if p in synced:
                os.truncate(p, synced[p])
            else:
                os.unlink(p)


def test_alias_final_done_survives_power_loss_without_redelivery(system):
    """info@ -> alice + bob. bob's delivery fails once (EIO on its Maildir
    file), alice's succeeds: qmgr records "alice done" for the alias in
    the status log and defers the message. Power is cut before the retry
    (unsynced log appends lost), then the system comes back: alice must
    not get the message a second time, bob must get it once."""
    ms, shim = system(fail="*/vmail/*/bob/tmp/*", minimal_backoff_time="30s",
                      maximal_backoff_time="60s")
    shim.arm(1)
    assert send(ms, ["info@example.com"], "alias")[0] == 250
    ms.wait_maildir("example.com/alice/", 1)
    ms.wait_log("status=deferred")
    # The round is over when the file sits in deferred/.
    wait_until(lambda: ms.queue_ids("deferred"), timeout=20, what="message deferred")
    kill_all(ms)
    lose_unsynced_log_tail(ms, shim)
    ms.start()
    assert ms.run("queue", "flush").returncode == 0
    ms.wait_maildir("example.com/bob/", 1)
    wait_until(ms.queue_empty, timeout=30, what="queue empty")
    assert subjects(ms, "example.com/bob/") == ["alias"]
    assert subjects(ms, "example.com/alice/") == ["alias"]
