"""The SQLite default survives a killed writer (issue 11, "Stays up").

virtual updates quota_usage in a write transaction after each delivery
to a mailbox with a quota. Killed (SIGKILL) inside it, it used to leave
a hot rollback journal that only a process allowed to write the database
file could roll back: smtpd, running as mail_owner on a root:mail_owner
0640 file, could not, and every RCPT got 451 until some root process
wrote again. With WAL mode and group-writable files (lib/db/db.c,
lib/sql/sql_sqlite.c) any reader repairs the database at once.

The whole system runs as installed (as root when the tests are: smtpd as
mail_owner, virtual as the static mailbox owner), senders measure every
RCPT reply from the client side, and the virtual agents are killed again
and again while mail flows.
"""

import os
import signal
import smtplib
import threading
import time

from harness.process import wait_until
from harness.system import MailSystem

# The longest run of 451 replies to RCPT a client may see: the time
# SQLite needs to notice a dead writer and repair, with room for a
# loaded machine; a hot journal nobody may roll back lasts minutes.
MAX_451_RUN = 1.0


def body(subject):
    return (f"From: sender@client.example\r\nTo: bob@example.com\r\n"
            f"Subject: {subject}\r\n\r\nkill test\r\n")


def subjects(ms):
    out = set()
    for p in ms.messages("example.com/bob/"):
        with open(p, "rb") as f:
            for line in f:
                if line.startswith(b"Subject: "):
                    out.add(line[9:].strip().decode())
                    break
    return out


def runs_of_451(replies):
    """From one connection's [(time, code)] in order: the lengths in
    seconds of each run of consecutive 451s (first to last 451)."""
    runs, start, last = [], None, None
    for t, code in replies:
        if code == 451:
            start = t if start is None else start
            last = t
        elif start is not None:
            runs.append(last - start)
            start = None
    if start is not None:
        runs.append(last - start)
    return runs


def test_killed_virtual_never_blocks_rcpt_on_sqlite(postern_build, postern):
    """Four senders, bob has a quota (so each delivery writes quota_usage),
    the virtual agents are killed with SIGKILL up to 30 times in 30 s:
    no run of 451s at RCPT lasts over a second, every accepted message is
    delivered and the queue drains."""
    owner = 5000 if os.geteuid() == 0 else None
    with MailSystem(postern_build, postern, uid=owner, gid=owner) as ms:
        ms.sd.sqlite_db(postern)
        ms.start()
        stop = threading.Event()
        accepted, replies, errors = [], [], []
        lock = threading.Lock()

        def sender(k):
            # One connection at a time; smtpd closes it after
            # smtpd_hard_error_limit errors, as Postfix does, and the client
            # connects again (that gap counts in the run of 451s).
            mine, i = [], 0
            try:
                while not stop.is_set():
                    try:
                        with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=60) as c:
                            c.ehlo("client.test.example")
                            while not stop.is_set():
                                subject = f"s{k}-m{i:05d}"
                                assert c.mail("sender@client.example")[0] == 250
                                code, text = c.rcpt("bob@example.com")
                                mine.append((time.monotonic(), code))
                                if code != 250:
                                    assert code == 451, (code, text)
                                    c.rset()
                                    time.sleep(0.02)
                                    continue
                                code, text = c.data(body(subject).encode())
                                assert code == 250, (code, text)
                                with lock:
                                    accepted.append(subject)
                                i += 1
                    except smtplib.SMTPServerDisconnected:
                        assert mine and mine[-1][1] == 451, "disconnected without a 451"
            except Exception as exc:  # reported below
                errors.append(exc)
            with lock:
                replies.append(mine)

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        kills = 0
        deadline = time.monotonic() + 30
        try:
            wait_until(lambda: len(ms.messages("example.com/bob/")) >= 20, timeout=60,
                       what="deliveries under way")
            while kills < 30 and time.monotonic() < deadline:
                for pid in ms.children("virtual"):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                # Let master restart the agents and qmgr hand them mail.
                time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not errors, errors
        runs = [r for conn in replies for r in runs_of_451(conn)]
        n451 = sum(1 for conn in replies for _, code in conn if code == 451)
        longest = max(runs, default=0.0)
        print(f"kills={kills} accepted={len(accepted)} rcpt_451={n451} runs={len(runs)} "
              f"longest_run={longest:.3f}s")
        assert kills >= 10
        assert longest <= MAX_451_RUN, (f"{n451} RCPT 451s, longest run {longest:.2f} s",
                                        [l for l in ms.log().splitlines()
                                         if "warning" in l][:8])
        # Nothing accepted is lost (a killed delivery may be repeated).
        wait_until(lambda: subjects(ms) >= set(accepted), timeout=180,
                   what=f"{len(accepted)} accepted messages delivered")
        wait_until(ms.queue_empty, timeout=60, what="queue empty")
        assert ms.log().count("killed by signal 9") >= 10
        assert ms.children("virtual")
