"""cleanup through a running smtpd: header_checks, mime_header_checks and
body_checks as an SMTP client sees them.

Each test starts a private smtpd (harness/smtpd.py) whose main.cf names
regexp: check tables written into its config directory, sends mail with
smtplib and asserts the DATA reply, the log lines in Postfix's format and
what is (or is not) in the queue: REJECT with its text, DISCARD answered
250 with nothing kept, HOLD into the hold queue, WARN logged only, MIME
part headers seen by mime_header_checks and not by header_checks, and the
stored message in LF form with smtpd's Received header first.
"""

import os
import re
import smtplib

import pytest

from harness.smtpd import Smtpd

MESSAGE = (
    "From: alice@example.org\r\n"
    "To: bob@mx.test.example\r\n"
    "Subject: {subject}\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"sep\"\r\n"
    "\r\n"
    "--sep\r\n"
    "Content-Type: text/plain\r\n"
    "X-Part: {part}\r\n"
    "\r\n"
    "{body}\r\n"
    "--sep--\r\n"
)


@pytest.fixture
def checked_smtpd(postern_build):
    """An smtpd with header, MIME header and body checks."""
    sd = Smtpd(postern_build)
    tables = {
        "header_checks": "/^Subject: .*cheap pills/ REJECT no pills here\n"
                         "/^Subject: .*hold me/ HOLD wait for review\n"
                         "/^Subject: .*watch/ WARN watch this one\n"
                         "/^X-Part:/ REJECT header_checks saw a part header\n",
        "mime_header_checks": "/^X-Part: bad/ REJECT 5.7.0 bad attachment\n",
        "body_checks": "/^discard this body/ DISCARD\n",
    }
    for name, text in tables.items():
        path = os.path.join(sd.confdir, name)
        with open(path, "w") as f:
            f.write(text)
        sd.main[name] = f"regexp:{path}"
    sd.start()
    yield sd
    sd.cleanup()


def data(sd, subject="hello", part="fine", body="just text"):
    """Send MESSAGE; return (code, text) of the reply to the end of DATA."""
    with smtplib.SMTP(sd.host, sd.port, local_hostname="client.example", timeout=15) as c:
        c.ehlo()
        c.mail("alice@example.org")
        c.rcpt("bob@mx.test.example")
        c.putcmd("data")
        code, _ = c.getreply()
        assert code == 354
        c.send(smtplib.quotedata(MESSAGE.format(subject=subject, part=part, body=body))
               .encode() + b"\r\n.\r\n")
        return c.getreply()


def test_header_reject(checked_smtpd):
    sd = checked_smtpd
    code, text = data(sd, subject="buy cheap pills now")
    assert (code, text) == (550, b"5.7.1 no pills here")
    assert sd.queued_files() == []
    sd.wait_log(r"^\w+: reject: header Subject: buy cheap pills now from \S+\[127\.0\.0\.1\]; "
                r"from=<alice@example\.org> to=<bob@mx\.test\.example> proto=ESMTP "
                r"helo=<client\.example>: 5\.7\.1 no pills here$")


def test_mime_part_header(checked_smtpd):
    sd = checked_smtpd
    # X-Part in a MIME part is for mime_header_checks only.
    code, text = data(sd, part="bad")
    assert (code, text) == (550, b"5.7.0 bad attachment")
    assert "header_checks saw a part header" not in sd.log_text()
    assert sd.queued_files() == []


def test_accepted_message_is_stored_with_lf(checked_smtpd):
    sd = checked_smtpd
    code, text = data(sd, subject="watch out")
    assert code == 250
    m = re.match(rb"2\.0\.0 Ok: queued as (\w+)$", text)
    assert m, text
    qid = m.group(1).decode()
    files = sd.queued_files()
    assert len(files) == 1 and files[0].endswith(qid)
    stored = sd.queued_bytes()
    assert b"\r\n" not in stored[stored.index(b"Received: "):]
    assert b"\nFrom: alice@example.org\nTo: bob@mx.test.example\nSubject: watch out\n" in stored
    assert b"\n--sep\nContent-Type: text/plain\nX-Part: fine\n\njust text\n--sep--\n" in stored
    sd.wait_log(rf"^{qid}: warning: header Subject: watch out from .*: watch this one$")
    sd.wait_log(rf"^{qid}: message-id=<>$")


def test_discard_and_hold(checked_smtpd):
    sd = checked_smtpd
    code, text = data(sd, body="discard this body please")
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    qid = text.split()[-1].decode()
    assert sd.queued_files() == []
    sd.wait_log(rf"^{qid}: discard: body discard this body please from ")

    code, text = data(sd, subject="hold me please")
    assert code == 250
    qid = text.split()[-1].decode()
    assert sd.queued_files() == []
    held = sd.queued_files("hold")
    assert len(held) == 1 and held[0].endswith(qid)
    sd.wait_log(rf"^{qid}: hold: header Subject: hold me please from .*: wait for review$")
