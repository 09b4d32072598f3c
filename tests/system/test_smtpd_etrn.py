"""ETRN (RFC 1985): an SMTP client asks for a domain's deferred mail now.

Against a real postern (harness/system.py: master with smtpd, qmgr and
virtual) and lone smtpds (harness/smtpd.py):

  - ETRN for a domain in fast_flush_domains answers "250 Queuing
    started" once the flush is done: its deferred messages are in
    incoming/ with that domain's recipients due now (next retry reset in
    the queue file), while other domains' recipients, in the same
    message or in others, keep their retry times and stay deferred;
  - with qmgr and virtual running, the flushed mail is delivered at once
    (qmgr is woken), long before its retry time;
  - a domain outside fast_flush_domains gets "459 <domain>: service
    unavailable" and changes nothing;
  - a fast_flush_domains table that cannot be looked up gives "458
    Unable to queue messages", never 459 or 250, also when the client
    has gone away before the answer (no crash, no reply to nobody);
  - a deferred queue that cannot be read gives 458 too.

The replies for every syntax and state case are compared with Postfix
3.7 by tests/diff/dialogs/06-etrn.dlg.
"""

import os
import smtplib
import socket
import time

import pytest

from harness.process import wait_until
from harness.smtpd import Smtpd
from harness.system import MailSystem
from test_queue_cli import rcpt_slots, read_slot


def body(subject):
    return (f"From: sender@client.example\r\nTo: you\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example>\r\n\r\nhello {subject}\r\n")


def etrn(host, port, domain):
    with smtplib.SMTP(host, port, timeout=30) as c:
        c.ehlo("client.test.example")
        code, msg = c.docmd("ETRN", domain)
        return code, msg.decode()


def slots(path):
    """{address: slot} of a queue file."""
    return {addr: read_slot(path, i) for i, (_, addr) in enumerate(rcpt_slots(path))}


def where(ms, qid):
    """(queue, path) of a message file, or (None, None) when gone."""
    for q in ("incoming", "active", "deferred"):
        for p in ms.queue_ids(q):
            if os.path.basename(p) == qid:
                return q, p
    return None, None


def test_etrn_flushes_the_domains_deferred_mail_only(postern_build, postern):
    # No virtual agent: every message is deferred ("mail transport
    # unavailable") for 300 s.
    with MailSystem(postern_build, postern, services=("pickup", "qmgr")) as ms:
        ms.sd.sqlite_db(ms.postern)
        ms.set(minimal_backoff_time="300s", maximal_backoff_time="300s",
               queue_run_delay="300s", fast_flush_domains="example.com, example.net")
        ms.start()
        ms.send("sender@client.example", ["alice@example.com"], body("alice"))
        ms.send("sender@client.example", ["carol@example.net"], body("carol"))
        ms.send("sender@client.example", ["bob@example.com", "carol@example.net"],
                body("both"))
        wait_until(lambda: len(ms.queue_ids("deferred")) == 3, timeout=30,
                   what="three deferred messages")
        ms.wait_log("status=deferred (mail transport unavailable", count=4)
        ms.stop()
        before = {}
        for p in ms.queue_ids("deferred"):
            before[os.path.basename(p)] = slots(p)
        by_rcpts = {tuple(sorted(s)): qid for qid, s in before.items()}
        alice = by_rcpts[("alice@example.com",)]
        carol = by_rcpts[("carol@example.net",)]
        both = by_rcpts[("bob@example.com", "carol@example.net")]
        now = time.time()
        for s in before.values():
            for slot in s.values():
                assert slot["state"] == 1 and slot["next_retry"] > now + 200, slot

        # smtpd alone: what the flush did stays where it is to be seen.
        ms.services = ()
        ms.start()
        code, msg = etrn(ms.sd.host, ms.sd.port, "example.org")
        assert (code, msg) == (459, "<example.org>: service unavailable")
        assert len(ms.queue_ids("deferred")) == 3
        code, msg = etrn(ms.sd.host, ms.sd.port, "EXAMPLE.com")
        assert (code, msg) == (250, "Queuing started")
        after = time.time()
        # The reply came after the flush: the files have moved already.
        q, p = where(ms, alice)
        assert q == "incoming"
        assert slots(p)["alice@example.com"]["next_retry"] <= after
        q, p = where(ms, both)
        assert q == "incoming"
        s = slots(p)
        assert s["bob@example.com"]["next_retry"] <= after  # due now
        assert s["carol@example.net"] == before[both]["carol@example.net"]  # untouched
        q, p = where(ms, carol)
        assert q == "deferred"
        assert slots(p) == before[carol]
        # Postfix's warning for a refused ETRN.
        assert "warning: reject: ETRN example.org... from unknown[127.0.0.1]" in ms.log()
        ms.stop()

        # The whole system: what was flushed is delivered. qmgr tries
        # every pending recipient of a message it takes (as Postfix
        # does), so carol gets the message she shares with bob; her own
        # waits for its retry time until ETRN example.net wakes qmgr.
        ms.services = ("pickup", "qmgr", "virtual")
        ms.start()
        ms.wait_maildir("example.com/alice/", 1)
        ms.wait_maildir("example.com/bob/", 1)
        ms.wait_maildir("example.net/carol/", 1)
        wait_until(lambda: not ms.queue_ids("incoming") and not ms.queue_ids("active"),
                   timeout=30, what="incoming and active empty")
        assert [os.path.basename(p) for p in ms.queue_ids("deferred")] == [carol]
        time.sleep(2)  # queue_run_delay is 300 s: nothing more happens by itself
        assert len(ms.messages("example.net/carol/")) == 1
        t0 = time.monotonic()
        code, msg = etrn(ms.sd.host, ms.sd.port, "example.net")
        assert (code, msg) == (250, "Queuing started")
        ms.wait_maildir("example.net/carol/", 2, timeout=60)
        assert time.monotonic() - t0 < 60  # not the 300 s backoff
        wait_until(ms.queue_empty, timeout=30, what="queue empty")


ETRN_MAIN = {
    # A domain decided before the table, a table whose database is missing.
    "fast_flush_domains": "remote.test, inline:{ flush.test=ok }, db:domains",
}


@pytest.fixture
def sd(postern_build, tmp_path):
    main = dict(ETRN_MAIN)
    main["database"] = f"sqlite:{tmp_path}/missing/postern.sqlite"
    s = Smtpd(postern_build, main_cf=main)
    s.start()
    yield s
    s.cleanup()


def test_lookup_failure_is_458_never_459_or_250(sd):
    assert etrn(sd.host, sd.port, "remote.test") == (250, "Queuing started")
    # Parent matching: a subdomain of a domain in an inline: table.
    assert etrn(sd.host, sd.port, "a.flush.test") == (250, "Queuing started")
    # Not in the first elements: db:domains must answer, and cannot.
    assert etrn(sd.host, sd.port, "other.test") == (458, "Unable to queue messages")
    assert etrn(sd.host, sd.port, "sub.remote.test") == (250, "Queuing started")
    sd.wait_log(r"warning: ETRN other\.test from \S+\[127\.0\.0\.1\]: "
                r"fast_flush_domains: db:domains: ")
    assert "reject: ETRN other.test" not in sd.log_text()


def test_client_gone_before_the_answer(sd):
    # The lookup is pending when the client leaves: its answer is dropped.
    for _ in range(5):
        with socket.create_connection((sd.host, sd.port), timeout=10) as s:
            s.recv(512)
            s.sendall(b"EHLO client.test.example\r\nETRN other.test\r\n")
    # Still serving, and the next ETRN is answered as before.
    assert etrn(sd.host, sd.port, "other.test") == (458, "Unable to queue messages")
    assert etrn(sd.host, sd.port, "remote.test") == (250, "Queuing started")


def test_unreadable_deferred_queue_is_458(postern_build):
    # Root runs the tests (CI, scripts/test-all.sh): smtpd then runs as
    # mail_owner, which mode 0 keeps out of deferred/.
    assert os.getuid() == 0, "needs root: smtpd must run as mail_owner, not as the queue's owner"
    with Smtpd(postern_build, main_cf={"fast_flush_domains": "remote.test"}) as sd:
        deferred = os.path.join(sd.queue, "deferred")
        mode = os.stat(deferred).st_mode
        os.chmod(deferred, 0)
        try:
            assert etrn(sd.host, sd.port, "remote.test") == (458, "Unable to queue messages")
        finally:
            os.chmod(deferred, mode)
        assert etrn(sd.host, sd.port, "remote.test") == (250, "Queuing started")
        sd.wait_log(r"warning: ETRN flush: .*deferred")


@pytest.mark.parametrize("main_cf", [
    {"smtpd_etrn_restrictions": "permit_mynetworks, reject", "mynetworks": "192.0.2.0/24"},
    # smtpd_delay_reject = yes: the client restrictions decide at ETRN too.
    {"smtpd_client_restrictions": "check_client_access inline:{127.0.0.1=REJECT}"},
])
def test_etrn_restrictions_decide_first(postern_build, main_cf):
    """As Postfix's smtpd_check_etrn(): a client the restrictions refuse
    gets their reject, and its deferred mail is not touched, even for an
    eligible domain; a permitted one gets 250."""
    with Smtpd(postern_build, main_cf=dict(main_cf, fast_flush_domains="remote.test")) as sd:
        code, msg = etrn(sd.host, sd.port, "remote.test")
        assert code == 554 and "rejected" in msg, (code, msg)
        sd.wait_log(r"reject: ETRN from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 ")
    with Smtpd(postern_build, main_cf={"fast_flush_domains": "remote.test",
                                       "smtpd_etrn_restrictions": "permit_mynetworks, reject"}) as sd:
        assert etrn(sd.host, sd.port, "remote.test") == (250, "Queuing started")
