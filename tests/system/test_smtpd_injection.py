"""Header and log injection: CR, LF, NUL and other control characters in
client-supplied strings never reach a header, a log line or the queue
file's envelope unescaped.

A private postern (master, smtpd, qmgr, virtual on the SQLite demo
database) receives mail whose HELO/EHLO name, addresses and parameters
carry control characters, as a client that wants to forge a header line
for every MUA downstream would send them. What the user would see is
asserted: the reply codes (Postfix's: the HELO name is accepted with its
controls turned into '?', a bad ENVID is 501 5.5.4), the delivered
message's bytes (no forged header line, no CR), the held message's queue
file and the maillog (no raw control character at all).
"""

import os
import re
import socket

import pytest

from harness.process import wait_until
from harness.system import MailSystem

INJECT = b"X-Injected: y"


@pytest.fixture(scope="module")
def ms(postern_build, postern, request):
    m = MailSystem(postern_build, postern, main_cf={
        # Mail from held@client.test stays in the hold queue, so its queue
        # file (the envelope) can be read.
        "smtpd_sender_restrictions": "check_sender_access inline:{held@client.test=HOLD}",
        "smtpd_error_sleep_time": "0",
    })
    m.make_db("sqlite", request)
    m.start()
    yield m
    m.cleanup()


class Client:
    """Raw bytes out, whole replies in (bounded: 15 s per read)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        self.banner = self.reply()

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                data = self.s.recv(65536)
                if not data:
                    return None
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.rstrip(b"\r").decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, raw):
        self.s.sendall(raw)
        return self.reply()

    def close(self):
        self.s.close()


def send_message(ms, helo_cmd, sender=b"sender@client.test", rcpt=b"alice@example.com"):
    """One message with the raw HELO/EHLO command given; returns the
    queue ID from the 250 reply. An unknown recipient is tried first, so
    that a reject line with helo=<...> is logged."""
    c = Client(ms.sd.port)
    try:
        assert c.cmd(helo_cmd).startswith("250")
        assert c.cmd(b"MAIL FROM:<" + sender + b">\r\n").startswith("250 2.1.0")
        # A refused recipient: its reject log line names the HELO.
        assert c.cmd(b"RCPT TO:<nobody@example.com>\r\n").startswith("550 5.1.1")
        assert c.cmd(b"RCPT TO:<" + rcpt + b">\r\n").startswith("250 2.1.5")
        assert c.cmd(b"DATA\r\n").startswith("354")
        r = c.cmd(b"Subject: injection probe\r\n\r\nbody\r\n.\r\n")
        assert r.startswith("250 2.0.0 Ok: queued as "), r
        c.cmd(b"QUIT\r\n")
        return r.split()[-1]
    finally:
        c.close()


def assert_log_clean(ms):
    """The maillog holds no control character but the line ends."""
    with open(ms.sd.maillog, "rb") as f:
        data = f.read()
    bad = [m.start() for m in re.finditer(rb"[\x00-\x08\x0b-\x1f\x7f]", data)]
    assert not bad, f"control bytes in the maillog at {bad[:5]}: {data[bad[0]-80:bad[0]+40]!r}"


def delivered_with(ms, marker):
    """The delivered file of alice whose Received: names marker."""
    def find():
        for path in ms.messages("example.com/alice/"):
            with open(path, "rb") as f:
                data = f.read()
            if marker in data:
                return data
        return None
    wait_until(lambda: find() is not None, timeout=30, what=f"delivery of {marker!r}")
    return find()


@pytest.mark.parametrize("verb", [b"EHLO", b"HELO"])
def test_helo_cr_never_starts_a_header(ms, verb):
    """The security probe: a bare CR in the HELO/EHLO name. Postfix accepts
    the command and stores the name with every control (and white space)
    turned into '?'; so does postern. The delivered message has exactly
    one header line that starts with X-Injected: none."""
    name = verb.lower() + b"probe.invalid"
    send_message(ms, verb + b" " + name + b"\rX-Injected: y\r\n")
    data = delivered_with(ms, name)
    assert b"\r" not in data
    headers = data.split(b"\n\n", 1)[0]
    assert not re.search(rb"^X-Injected", headers, re.M), headers
    assert b"Received: from " + name + b"?X-Injected:?y (" in headers, headers
    log = open(ms.sd.maillog, "rb").read()
    assert b"helo=<" + name + b"?X-Injected:?y>" in log
    assert_log_clean(ms)


@pytest.mark.parametrize("raw", [b"a\x00b", b"a\x01b\x7fc", b"a\tb c"])
def test_helo_other_controls_become_question_marks(ms, raw):
    """NUL (ends the command, as in Postfix: the name is "a"), other
    controls, tab and space (a bare LF ends the line: see test_smtpd.py's
    bare newline tests)."""
    c = Client(ms.sd.port)
    try:
        r = c.cmd(b"EHLO " + raw + b"\r\n")
        assert r.startswith("250"), r
    finally:
        c.close()
    assert_log_clean(ms)


def test_held_queue_file_envelope_has_no_controls(ms):
    """The envelope of a queued message (helo_name attribute and the
    Received: header in the queue file) carries the cleaned name."""
    qid = send_message(ms, b"EHLO held.probe\r\x01X-Injected: y\r\n",
                       sender=b"held@client.test")
    path = None
    for root, _, files in os.walk(os.path.join(ms.sd.queue, "hold")):
        if qid in files:
            path = os.path.join(root, qid)
    assert path, f"{qid} not in the hold queue"
    data = open(path, "rb").read()
    # A binary record format (a 0x0d byte may be part of a length or a
    # time): the name is there cleaned, and never raw.
    assert b"held.probe??X-Injected:?y" in data
    for raw in (b"\rX-Injected", b"\nX-Injected", b"\x01X-Injected", b"probe\r"):
        assert raw not in data
    res = ms.run("queue", "cat", qid)
    assert res.returncode == 0, res.stderr
    assert "helo_name=held.probe??X-Injected:?y" in res.stdout
    assert not re.search(r"^X-Injected", res.stdout, re.M)


@pytest.mark.parametrize("envid,expect", [
    (b"x+0D+0AX-Injected:+20y", "501 5.5.4"),  # the probe: CR LF by xtext
    (b"x+0Dy", "501 5.5.4"),
    (b"x+0Ay", "501 5.5.4"),
    (b"x+01y", "501 5.5.4"),
    (b"x+7Fy", "501 5.5.4"),
    (b"x\x01y", "501 5.5.4"),  # raw control: not xtext at all
    (b"x+C3+A9y", "501 5.5.4"),  # 8-bit: Postfix wants printable ASCII
    (b"x+20y", "250 2.1.0"),  # a space is printable
    (b"plain-id", "250 2.1.0"),
])
def test_envid_controls_refused(ms, envid, expect):
    c = Client(ms.sd.port)
    try:
        c.cmd(b"EHLO client.test\r\n")
        r = c.cmd(b"MAIL FROM:<> ENVID=" + envid + b"\r\n")
        assert r.startswith(expect), r
    finally:
        c.close()
    assert_log_clean(ms)


@pytest.mark.parametrize("orcpt", [
    b"rfc822;a+0D+0AX-Injected:+20y@x.test",
    b"rfc822;a+00b@x.test",
    b"rfc822;a+01b@x.test",
    b"rfc822;a\x01b@x.test",
    b"utf-8;a\\x{D}b@x.test",
])
def test_orcpt_controls_refused(ms, orcpt):
    """ORCPT decoding to control characters: 501 5.5.4 (Postfix accepts
    some of them and would copy them into a DSN; a listed deviation)."""
    c = Client(ms.sd.port)
    try:
        c.cmd(b"EHLO client.test\r\n")
        assert c.cmd(b"MAIL FROM:<s@client.test>\r\n").startswith("250")
        r = c.cmd(b"RCPT TO:<alice@example.com> ORCPT=" + orcpt + b"\r\n")
        assert r.startswith("501 5.5.4"), r
        # The session goes on.
        assert c.cmd(b"RCPT TO:<alice@example.com>\r\n").startswith("250 2.1.5")
    finally:
        c.close()


@pytest.mark.parametrize("cmd,expect", [
    (b"MAIL FROM:<a\rb@client.test>", "501 5.1.7"),
    (b'MAIL FROM:<"a\rb"@client.test>', "501 5.1.7"),
    (b"MAIL FROM:<a@client.test> SIZE=1\x01", "501 5.5.4"),
    (b"MAIL FROM:<a@client.test> RET=FULL\x01", "501 5.5.4"),
    (b"MAIL FROM:<a@client.test> BODY=8BIT\x01MIME", "501 5.5.4"),
])
def test_sender_and_parameters_with_controls(ms, cmd, expect):
    c = Client(ms.sd.port)
    try:
        c.cmd(b"EHLO client.test\r\n")
        r = c.cmd(cmd + b"\r\n")
        assert r.startswith(expect), r
        assert c.cmd(b"NOOP\r\n").startswith("250")
    finally:
        c.close()
    assert_log_clean(ms)


@pytest.mark.parametrize("cmd,expect", [
    (b"RCPT TO:<al\rice@example.com>", "501 5.1.3"),
    (b'RCPT TO:<"al\x01ice"@example.com>', "501 5.1.3"),
    (b"RCPT TO:<alice@example.com> NOTIFY=SUCCESS\x01", "501 5.5.4"),
])
def test_recipient_and_parameters_with_controls(ms, cmd, expect):
    c = Client(ms.sd.port)
    try:
        c.cmd(b"EHLO client.test\r\n")
        assert c.cmd(b"MAIL FROM:<s@client.test>\r\n").startswith("250")
        r = c.cmd(cmd + b"\r\n")
        assert r.startswith(expect), r
    finally:
        c.close()
    assert_log_clean(ms)


def test_auth_parameter_is_never_stored(ms):
    """MAIL FROM ... AUTH=<xtext> without AUTH in effect: accepted and
    ignored (RFC 4954 5, Postfix too), so its CR LF goes nowhere."""
    c = Client(ms.sd.port)
    try:
        c.cmd(b"EHLO authprobe.test\r\n")
        r = c.cmd(b"MAIL FROM:<s@client.test> AUTH=a+0D+0AX-Injected:+20y\r\n")
        assert r.startswith("250 2.1.0"), r
        assert c.cmd(b"RCPT TO:<alice@example.com>\r\n").startswith("250")
        assert c.cmd(b"DATA\r\n").startswith("354")
        assert c.cmd(b"Subject: auth probe\r\n\r\nx\r\n.\r\n").startswith("250")
    finally:
        c.close()
    data = delivered_with(ms, b"authprobe.test")
    assert INJECT not in data and b"\r" not in data
    assert_log_clean(ms)


def test_invalid_utf8_command_refused(ms):
    """With SMTPUTF8 on (the default) a command line must be UTF-8:
    Postfix answers 500 5.5.2 and so does postern; valid UTF-8 is kept."""
    c = Client(ms.sd.port)
    try:
        assert c.cmd(b"EHLO a\xffb\r\n").startswith("500 5.5.2")
        assert c.cmd(b"EHLO caf\xc3\xa9.test\r\n").startswith("250")
    finally:
        c.close()
    assert_log_clean(ms)


def test_helo_field_delimiters_become_question_marks(ms):
    """Postfix also replaces <>()";@\\ in the HELO name, so that it cannot
    end the helo=<...> log field or the Received: "from NAME (" part."""
    c = Client(ms.sd.port)
    try:
        assert c.cmd(b'EHLO d<b>c(d)e"f;g@h\\i.test\r\n').startswith("250")
        assert c.cmd(b"MAIL FROM:<s@client.test>\r\n").startswith("250")
        assert c.cmd(b"RCPT TO:<nobody@example.com>\r\n").startswith("550 5.1.1")
    finally:
        c.close()
    ms.wait_log("helo=<d?b?c?d?e?f?g?h?i.test>")
    assert_log_clean(ms)
