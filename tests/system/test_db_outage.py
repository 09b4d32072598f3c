"""A MariaDB outage that users do not notice (issue 11 "Stays up").

A whole postern (master, smtpd, qmgr, virtual) on a private MariaDB.
Known recipients get mail before the outage; then the database is killed,
or frozen with SIGSTOP (it accepts connections and never answers), for
OUTAGE seconds (15 s here: the issue's 60 s behave the same, the cache's
grace time is an hour) while messages keep coming, then it comes back:

  - every RCPT for a recipient seen before gets 250: no 4xx (smtpd's
    restrictions and its quota check answer from the table cache). Each
    connection goes to a new smtpd process (max_use = 1), so the answers
    come from what other processes shared, not from the process's own;
  - a recipient refused before (550 5.1.1) gets 4xx, never 550: a stale
    "not found" is no proof, a mailbox may have been made since; one
    never looked up (bob, a mailbox) gets 4xx as well;
  - no message is lost or bounced, and the queue is empty within a
    minute of the database's return although the backoff times are
    longer than that (qmgr retries lookup failures soon).
"""

import os
import signal
import smtplib
import threading
import time

import pytest

from harness import MariaDB
from harness.process import wait_until
from harness.system import MailSystem, make_db

# The full run (60 s, 5,000 messages) is
#   POSTERN_OUTAGE_SECONDS=60 POSTERN_OUTAGE_MESSAGES=5000 \
#       python3 -m pytest tests/system/test_db_outage.py
# (about 5 minutes a case); the suite runs it shorter.
OUTAGE = int(os.environ.get("POSTERN_OUTAGE_SECONDS", "15"))  # seconds
MESSAGES = int(os.environ.get("POSTERN_OUTAGE_MESSAGES", "60"))  # sent during the outage
DRAIN = 60  # seconds after the database is back


@pytest.fixture
def private_mariadb(request):
    server = MariaDB()
    request.addfinalizer(lambda: server.cleanup(keep=request.node.session.testsfailed > 0))
    server.start()
    return server


def rcpt_code(ms, rcpt):
    with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=60) as c:
        c.ehlo("client.test.example")
        c.mail("sender@client.example")
        code, _ = c.rcpt(rcpt)
        return code


def send_one(ms, rcpt, i):
    """(code of RCPT, seconds it took); the message is sent when 250."""
    body = f"From: sender@client.example\r\nSubject: m{i}\r\n\r\nbody {i}\r\n"
    with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=60) as c:
        c.ehlo("client.test.example")
        c.mail("sender@client.example")
        t0 = time.monotonic()
        code, _ = c.rcpt(rcpt)
        took = time.monotonic() - t0
        if code == 250:
            c.data(body)
        return code, took


SENDERS = 4  # clients sending at once


def send_during(ms, rcpt, start):
    """Send MESSAGES messages, spread evenly over OUTAGE seconds, from
    SENDERS clients at once; [(RCPT code, seconds it took)]. Ends when
    both the time and the count are reached (bounded by both)."""
    results, errors, lock = [], [], threading.Lock()
    counter = iter(range(MESSAGES))

    def sender():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            time.sleep(max(0.0, start + i * OUTAGE / MESSAGES - time.monotonic()))
            try:
                r = send_one(ms, rcpt, i)
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    errors.append(f"message {i}: {e!r}")
                continue
            with lock:
                results.append(r)

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(max(0.0, start + OUTAGE - time.monotonic()))
    assert not errors, f"{len(errors)} SMTP sessions failed, first: {errors[0]}"
    return results


@pytest.mark.parametrize("how", ["kill", "sigstop"])
def test_outage_unnoticed(how, private_mariadb, postern_build, postern, request):
    db = private_mariadb
    ms = MailSystem(postern_build, postern, main_cf={
        # Short TTLs, so that answers have expired when the outage starts.
        "table_cache_positive_ttl": "1s",
        "table_cache_negative_ttl": "1s",
        # Backoffs longer than the drain bound: a lookup deferral must
        # not wait for them.
        "minimal_backoff_time": "120s",
        "maximal_backoff_time": "240s",
        "queue_run_delay": "120s",
        "smtpd_reject_over_quota": "yes",
        "database_connect_timeout": "2s",
        "database_query_timeout": "2s",
    })
    try:
        # Every connection a fresh smtpd process: what a process saw
        # itself is no help, only what the others shared (table_shared.h).
        ms.sd.overrides["max_use"] = "1"
        make_db("mysql", ms.sd, postern, request, server=db)
        ms.start()
        # Known recipients: alice (mailbox), and an unknown one.
        ms.send("s@client.example", ["alice@example.com"], "Subject: warm\r\n\r\nwarm\r\n")
        ms.wait_maildir("example.com/alice/", 1, timeout=30)
        assert rcpt_code(ms, "nobody@example.com") == 550
        time.sleep(1.5)  # every cached answer has expired (TTL 1 s)

        if how == "kill":
            db.stop()
        else:
            os.kill(db.proc.pid, signal.SIGSTOP)
        start = time.monotonic()
        try:
            stale_negative = rcpt_code(ms, "nobody@example.com")
            never_seen = rcpt_code(ms, "bob@example.com")
            results = send_during(ms, "alice@example.com", start)
        finally:
            if how == "kill":
                db.relaunch()
            else:
                os.kill(db.proc.pid, signal.SIGCONT)
        back = time.monotonic()
        codes = [c for c, _ in results]
        slowest = max(t for _, t in results)
        sent = sum(1 for c in codes if c == 250)
        tempfails = [c for c in codes if 400 <= c < 500]
        print(f"{how}: {len(codes)} RCPTs during the outage, {len(tempfails)} 4xx, "
              f"slowest RCPT {slowest:.1f} s, stale negative -> {stale_negative}, "
              f"never seen -> {never_seen}")
        assert tempfails == [], f"4xx for a known recipient during the outage: {codes}"
        assert all(c == 250 for c in codes), codes
        assert 400 <= stale_negative < 500, stale_negative
        # A recipient no process looked up before: nothing to answer from.
        assert 400 <= never_seen < 500, never_seen

        wait_until(lambda: len(ms.messages("example.com/alice/")) >= 1 + sent and
                   ms.queue_empty(), timeout=DRAIN, interval=0.5,
                   what="every message delivered and the queue empty")
        print(f"{how}: queue drained {time.monotonic() - back:.1f} s after recovery")
        assert len(ms.messages("example.com/alice/")) == 1 + sent
        log = ms.log()
        assert "status=bounced" not in log
        assert "MAILER-DAEMON" not in "".join(
            open(p, errors="replace").read() for p in ms.messages("example.com/alice/"))
    except BaseException:
        # What the daemons said, for the failure's report.
        print(ms.log()[-12000:])
        raise
    finally:
        ms.cleanup()
