"""Content filters in a whole private postern: the seed guide's recipes.

1. The SpamAssassin pipe recipe: smtpd with `-o content_filter=spamassassin`
   and a pipe service running spamc, which hands the checked message to
   `sendmail -G -i -f ${sender} -- ${recipient}`. spamc is a stand-in
   script here (the same -f -e interface, adds an X-Spam-Checked header).
2. The "custom content filter" recipe: main.cf content_filter = filter:dummy,
   a pipe service with flags=Rq and null_sender=, a bash script that adds a
   header and re-injects with sendmail -G -i "$@"; receive_override_options
   = no_address_mappings, so aliases are expanded after the filter (pickup
   has -o content_filter= and -o receive_override_options=: the re-injected
   mail is not filtered again, and is alias-expanded then).
3. The amavis SMTP recipe: content_filter = smtp-amavis:[127.0.0.1]:PORT, the
   smtp client (bin/smtp) with XFORWARD, a Python filter on 127.0.0.1 that
   adds a header and re-injects to a second smtpd service on 127.0.0.1
   with -o content_filter= -o receive_override_options=no_address_mappings
   -o smtpd_authorized_xforward_hosts=127.0.0.0/8.

Asserted each time: the header arrives in the Maildir, the filter ran once
per message (no loop), aliases expanded exactly once (before or after the
filter, as configured), and `postern check` accepts the configuration.
"""

import os
import pwd
import re
import smtplib
import tempfile
import threading

import pytest

from harness.process import wait_until
from harness.smtpserver import SmtpServer
from harness.system import MailSystem

SENDER = "sender@client.example"


def body(subject):
    return (f"From: {SENDER}\r\nTo: you\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example>\r\n\r\nhello {subject}\r\n")


@pytest.fixture
def scripts():
    """A directory user=nobody can read, with a world-writable out/."""
    d = tempfile.mkdtemp(prefix="postern-filter-")
    os.chmod(d, 0o755)
    out = os.path.join(d, "out")
    os.mkdir(out)
    os.chmod(out, 0o777)
    return d


def write_script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def lines_of(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def check_config(ms):
    res = ms.run("check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "not implemented" not in res.stdout + res.stderr, res.stdout + res.stderr


def delivered(ms, rel, subject):
    """The messages in Maildir rel with this subject."""
    return [m for m in (ms.read_message(p) for p in ms.messages(rel))
            if m["Subject"] == subject]


def test_spamassassin_pipe_recipe(postern_build, postern, scripts):
    postern_bin = os.path.join(postern_build, "bin", "postern")
    calls = os.path.join(scripts, "out", "spamc.calls")
    spamc = write_script(os.path.join(scripts, "spamc"), (
        "#!/bin/sh\n"
        "# A stand-in for spamc -f -e COMMAND ARGS...: checks stdin, pipes the\n"
        "# result to COMMAND ARGS.\n"
        "[ \"$1\" = -f ] && shift\n"
        "[ \"$1\" = -e ] && shift\n"
        f"echo \"$(id -u) $*\" >> {calls}\n"
        "{ echo 'X-Spam-Checked: yes (test spamc)'; cat; } | \"$@\"\n"))
    ms = MailSystem(postern_build, postern)
    ms.sd.overrides["content_filter"] = "spamassassin"
    ms.extra_master = (
        "spamassassin unix - n n - - pipe\n"
        f"  user=nobody argv={spamc} -f -e {postern_bin} sendmail -G -i -f ${{sender}} -- "
        "${recipient}\n")
    with ms:
        ms.sd.sqlite_db(postern)
        ms.start()
        check_config(ms)
        ms.send(SENDER, ["info@example.com"], body("spam-check"))
        alice = wait_until(lambda: delivered(ms, "example.com/alice/", "spam-check"),
                           timeout=30, what="the filtered message for alice")
        bob = wait_until(lambda: delivered(ms, "example.com/bob/", "spam-check"),
                         timeout=30, what="the filtered message for bob")
        for got in alice + bob:
            assert got["X-Spam-Checked"] == "yes (test spamc)"
            # Re-injected as it came: the envelope sender is kept.
            assert got["Return-Path"] == f"<{SENDER}>"
        wait_until(ms.queue_empty, timeout=30, what="queue empty")
        # One filter run for the message, with the aliases expanded
        # before it (info@ -> alice and bob), run as nobody.
        runs = lines_of(calls)
        assert len(runs) == 1, runs
        uid, *args = runs[0].split(" ")
        if os.geteuid() == 0:
            assert int(uid) == pwd.getpwnam("nobody").pw_uid
        assert args[-5:] == ["-f", SENDER, "--", "alice@example.com", "bob@example.com"]
        assert len(alice) == 1 and len(bob) == 1  # no loop, no second copy
        log = ms.log()
        assert re.search(r"to=<alice@example\.com>, orig_to=<info@example\.com>, "
                         r"relay=spamassassin, .*status=sent \(delivered via spamassassin "
                         r"service\)", log)
        assert "-G" in args


def _custom_filter_system(postern_build, postern, scripts):
    postern_bin = os.path.join(postern_build, "bin", "postern")
    calls = os.path.join(scripts, "out", "filter.calls")
    script = write_script(os.path.join(scripts, "filter.sh"), (
        "#!/bin/bash\n"
        "# The seed guide's simple filter script, with postern's sendmail.\n"
        f"printf '%s|' \"$@\" >> {calls}; echo >> {calls}\n"
        f"{postern_bin} sendmail -G -i \"$@\" < <(\n"
        "    echo \"X-Custom-Filter: Processed\"\n"
        "    cat\n"
        ")\n"))
    ms = MailSystem(postern_build, postern, services=("qmgr", "virtual"), main_cf={
        "content_filter": "filter:dummy",
        "receive_override_options": "no_address_mappings",
    })
    ms.extra_master = (
        "pickup unix n - n 60 1 pickup\n"
        "  -o content_filter=\n"
        "  -o receive_override_options=\n"
        "filter unix - n n - 10 pipe\n"
        f"  flags=Rq user=nobody null_sender= argv={script} -f ${{sender}} -- ${{recipient}}\n")
    return ms, calls


def test_custom_filter_recipe_aliases_after_the_filter(postern_build, postern, scripts):
    ms, calls = _custom_filter_system(postern_build, postern, scripts)
    with ms:
        ms.sd.sqlite_db(postern)
        ms.start()
        check_config(ms)
        ms.send(SENDER, ["info@example.com"], body("custom"))
        # A bounce-like message with the null sender: null_sender= makes
        # ${sender} an empty argument, and the mail stays from <>.
        ms.send("", ["alice@example.com"], body("nullsender"))
        alice = wait_until(lambda: delivered(ms, "example.com/alice/", "custom"),
                           timeout=30, what="the filtered message for alice")
        bob = wait_until(lambda: delivered(ms, "example.com/bob/", "custom"),
                         timeout=30, what="the filtered message for bob")
        null = wait_until(lambda: delivered(ms, "example.com/alice/", "nullsender"),
                          timeout=30, what="the filtered null-sender message")
        for got in alice + bob + null:
            assert got["X-Custom-Filter"] == "Processed"
        # flags=R: the filter saw Return-Path, and it is in the message.
        assert alice[0]["Return-Path"] == f"<{SENDER}>"
        assert null[0]["Return-Path"] == "<>"
        wait_until(ms.queue_empty, timeout=30, what="queue empty")
        runs = sorted(lines_of(calls))
        # Aliases were not expanded before the filter (no_address_mappings):
        # the filter got info@, pickup expanded it afterwards.
        assert runs == sorted(["-f|sender@client.example|--|info@example.com|",
                               "-f||--|alice@example.com|"]), runs
        assert len(alice) == 1 and len(bob) == 1 and len(null) == 1
        log = ms.log()
        assert re.search(r"to=<info@example\.com>, relay=filter, .*status=sent "
                         r"\(delivered via filter service\)", log)
        # The re-injected copies went to the mailboxes without the filter.
        assert re.search(r"to=<bob@example\.com>, orig_to=<info@example\.com>, "
                         r"relay=virtual, .*status=sent", log)


class Reinjector:
    """The amavis stand-in: an SMTP server (harness SmtpServer, which
    records XFORWARD) whose messages a thread passes on to the
    re-injection smtpd with a header added, XFORWARD attributes and all."""

    def __init__(self):
        self.srv = SmtpServer(features=["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                                        "XFORWARD NAME ADDR PROTO HELO SOURCE"])
        self.port = None
        self.sent = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = None

    def start(self, reinject_port):
        self.srv.start()
        self.reinject_port = reinject_port
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            with self.srv.lock:
                todo = self.srv.messages[self.sent:]
            for m in todo:
                try:
                    self._forward(m)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(repr(exc))
                self.sent += 1
            self._stop.wait(0.05)

    def _forward(self, m):
        data = m.data if isinstance(m.data, bytes) else m.data.encode()
        data = b"X-Virus-Scanned: test-amavis\r\n" + data
        with smtplib.SMTP("127.0.0.1", self.reinject_port, timeout=30) as c:
            c.ehlo("amavis.test.example")
            if m.xforward and c.has_extn("xforward"):
                attrs = " ".join(f"{k}={v}" for k, v in m.xforward.items())
                code, text = c.docmd("XFORWARD", attrs)
                assert code == 250, (code, text)
            c.sendmail(m.sender, m.rcpts, data)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.srv.stop()


def test_amavis_smtp_recipe(postern_build, postern):
    amavis = Reinjector()
    reinject = {
        "content_filter": "",
        "local_recipient_maps": "",
        "relay_recipient_maps": "",
        "smtpd_restriction_classes": "",
        "smtpd_client_restrictions": "",
        "smtpd_helo_restrictions": "",
        "smtpd_sender_restrictions": "",
        "smtpd_recipient_restrictions": "permit_mynetworks,reject",
        "mynetworks": "127.0.0.0/8",
        "strict_rfc821_envelopes": "yes",
        "receive_override_options": "no_unknown_recipient_checks,no_header_body_checks,"
                                    "no_milters,no_address_mappings",
        "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
    }
    ms = MailSystem(postern_build, postern, main_cf={
        "content_filter": f"smtp-amavis:[127.0.0.1]:{amavis.srv.port}"})
    ms.sd.services = [("reinject", reinject)]
    ms.extra_master = (
        "smtp-amavis unix - - n - 2 smtp\n"
        "  -o smtp_data_done_timeout=1200\n"
        "  -o smtp_send_xforward_command=yes\n"
        "  -o disable_dns_lookups=yes\n")
    try:
        with ms:
            ms.sd.sqlite_db(postern)
            ms.start()
            check_config(ms)
            amavis.start(ms.sd.extra_ports[0])
            ms.send(SENDER, ["info@example.com"], body("amavis"))
            alice = wait_until(lambda: delivered(ms, "example.com/alice/", "amavis"),
                               timeout=30, what="the filtered message for alice")
            bob = wait_until(lambda: delivered(ms, "example.com/bob/", "amavis"),
                             timeout=30, what="the filtered message for bob")
            assert not amavis.errors, amavis.errors
            for got in alice + bob:
                assert got["X-Virus-Scanned"] == "test-amavis"
            wait_until(ms.queue_empty, timeout=30, what="queue empty")
            # One filter transaction, with the aliases already expanded
            # (no_address_mappings on the re-injection smtpd: not again).
            assert len(amavis.srv.messages) == 1
            m = amavis.srv.messages[0]
            assert m.sender == SENDER
            assert sorted(m.rcpts) == ["alice@example.com", "bob@example.com"]
            # XFORWARD named the original client.
            assert m.xforward.get("ADDR") == "127.0.0.1"
            assert len(alice) == 1 and len(bob) == 1
            log = ms.log()
            assert "receive_override_options: no_milters: nothing to disable" in log
            assert re.search(r"to=<alice@example\.com>, orig_to=<info@example\.com>, "
                             r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent", log)
    finally:
        amavis.stop()
