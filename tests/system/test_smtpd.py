"""smtpd, the SMTP server: the session as a client sees it.

Every test starts a private smtpd (harness/smtpd.py: its own config dir,
queue directory and port on loopback) and talks to it with smtplib or a
raw socket, asserting replies, log lines in Postfix's formats and what
ends up in the queue directory: the banner and EHLO keywords, command
replies and sequence errors, ESMTP and DSN parameters, PIPELINING, DATA
with dot-stuffing and a 10 MB message, BDAT with and without LAST, the
SMTP smuggling variants (bare LF, bare CR, "\\n.\\n", "\\r.\\n": under
smtpd_forbid_bare_newline = reject all refused at the real end, nothing
queued; normalize and no as Postfix 3.7.11), and the limits: line length, message size,
recipients, hops, errors, junk commands, timeouts, pregreet.
"""

import os
import re
import smtplib
import socket
import time

import pytest

from harness.smtpclient import Raw
from harness.smtpd import HOSTNAME, SANITIZER_MARKERS, Smtpd


@pytest.fixture
def smtpd(postern_build):
    sd = Smtpd(postern_build)
    sd.start()
    yield sd
    sd.cleanup()


@pytest.fixture
def make_smtpd(postern_build):
    made = []

    def make(**kwargs):
        sd = Smtpd(postern_build, **kwargs)
        made.append(sd)
        return sd.start()
    yield make
    for sd in made:
        sd.cleanup()


def raw(sd, **kw):
    return Raw(sd.host, sd.port, **kw)


def transaction(c, rcpt="user@mx.test.example", ehlo=True):
    if ehlo:
        assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("MAIL FROM:<sender@client.example>") == "250 2.1.0 Ok"
    assert c.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"


# --- the session ------------------------------------------------------------

def test_banner_ehlo_and_logs(smtpd):
    c = raw(smtpd)
    assert c.banner == f"220 {HOSTNAME} ESMTP postern"
    r = c.cmd("EHLO client.example")
    lines = r.split("\n")
    assert lines[0] == f"250-{HOSTNAME}"
    kws = [l[4:] for l in lines[1:]]
    # Postfix 3.7's list and order (no STARTTLS, AUTH: not configured).
    assert kws == ["PIPELINING", "SIZE 10240000", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME",
                   "DSN", "SMTPUTF8", "CHUNKING"]
    assert lines[-1].startswith("250 ") and all(l.startswith("250-") for l in lines[:-1])
    assert "VRFY" not in kws  # disable_vrfy_command = yes
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    assert c.closed()
    smtpd.wait_log(r"^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 quit=1 commands=2$")
    assert re.search(r"^connect from unknown\[127\.0\.0\.1\]$", smtpd.log_text(), re.M)


def test_helo_and_replies(smtpd):
    c = raw(smtpd)
    assert c.cmd("HELO client.example") == f"250 {HOSTNAME}"
    assert c.cmd("HELO") == "501 Syntax: HELO hostname"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("VRFY postmaster") == "502 5.5.1 VRFY command is disabled"
    assert c.cmd("XYZZY") == "500 5.5.2 Error: command not recognized"
    assert c.cmd("HELP").startswith("214 ")
    assert c.cmd("RCPT TO:<a@mx.test.example>") == "503 5.5.1 Error: need MAIL command"
    assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"  # Postfix's words
    assert c.cmd("MAIL FROM:<a@client.example>") == "250 2.1.0 Ok"
    assert c.cmd("MAIL FROM:<a@client.example>") == "503 5.5.1 Error: nested MAIL command"
    assert c.cmd("DATA") == "554 5.5.1 Error: no valid recipients"
    assert c.cmd("MAIL from") == "503 5.5.1 Error: nested MAIL command"  # state first
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("MAIL from") == "501 5.5.4 Syntax: MAIL FROM:<address>"
    assert c.cmd("RCPT to") == "503 5.5.1 Error: need MAIL command"  # state first
    assert c.cmd("MAIL FROM:<a@client.example>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<>").startswith("501 5.1.3 ")
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    smtpd.wait_log(r"^disconnect from unknown\[127\.0\.0\.1\] helo=1/2 mail=2/5 rcpt=0/3 "
                   r"data=0/2 rset=2 noop=1 vrfy=0/1 quit=1 help=1 unknown=0/1 commands=8/19$")


def test_vrfy_enabled(make_smtpd):
    sd = make_smtpd(main_cf={"disable_vrfy_command": "no"})
    c = raw(sd)
    assert "250-VRFY" in c.cmd("EHLO x.example")
    assert c.cmd("VRFY postmaster").startswith("252 ")


def test_helo_required_and_discard_keywords(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_helo_required": "yes",
                             "smtpd_discard_ehlo_keywords": "chunking, dsn"})
    c = raw(sd)
    assert c.cmd("MAIL FROM:<a@b.example>") == "503 5.5.1 Error: send HELO/EHLO first"
    r = c.cmd("EHLO x.example")
    assert "CHUNKING" not in r and "DSN" not in r and "PIPELINING" in r


def test_message_queued(smtpd):
    s = smtplib.SMTP(smtpd.host, smtpd.port, timeout=15)
    s.ehlo("client.example")
    s.mail("sender@client.example")
    s.rcpt("user@mx.test.example")
    code, msg = s.data(b"Subject: test\r\n\r\nhello world\r\n.leading dot\r\n")
    s.quit()
    assert code == 250
    m = re.match(rb"2\.0\.0 Ok: queued as (\w+)$", msg)
    assert m, msg
    qid = m.group(1).decode()
    files = smtpd.queued_files()
    assert [os.path.basename(f) for f in files] == [qid]
    data = smtpd.queued_bytes()
    assert b"hello world" in data
    assert b"\n.leading dot" in data and b"..leading dot" not in data
    assert re.search(rb"Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n"
                     rb"\tby mx\.test\.example \(postern\) with ESMTP id " + qid.encode() +
                     rb"\n\tfor <user@mx\.test\.example>; ", data)
    assert b"sender@client.example" in data
    smtpd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]$")
    smtpd.wait_log(r"^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 "
                   r"quit=1 commands=5$")


def test_esmtp_params(smtpd):
    c = raw(smtpd)
    c.cmd("EHLO client.example")
    ok = "250 2.1.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS "
                 "ENVID=abc+2Bdef AUTH=<>") == ok
    assert c.cmd("RCPT TO:<u@mx.test.example> NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;u@mx.test.example") == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<v@mx.test.example> NOTIFY=NEVER,DELAY") == \
        "501 5.5.4 Error: Bad NOTIFY parameter syntax"
    assert c.cmd("RCPT TO:<v@mx.test.example> ORCPT=bogus") == \
        "501 5.5.4 Bad ORCPT parameter syntax"
    assert c.cmd("RCPT TO:<v@mx.test.example> FOO=1") == "555 5.5.4 Unsupported option: FOO"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=999999999") == \
        "552 5.3.4 Message size exceeds fixed limit"
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=12x") == "501 5.5.4 Bad message size syntax"
    assert c.cmd("MAIL FROM:<a@b.example> RET=ALL") == "501 5.5.4 Bad RET parameter syntax"
    assert c.cmd("MAIL FROM:<a@b.example> ENVID=a+ZZ") == "501 5.5.4 Bad ENVID parameter syntax"
    assert c.cmd("MAIL FROM:<a@b.example> BODY=9BIT") == \
        "555 5.5.4 Unsupported option: BODY=9BIT"
    assert c.cmd("MAIL FROM:<a@b.example> XYZ=1") == "555 5.5.4 Unsupported option: XYZ=1"
    # SMTPUTF8 (RFC 6531): with strict_smtputf8 = no (Postfix's default) a
    # UTF-8 sender is taken without the keyword too.
    assert c.cmd("MAIL FROM:<j\u00f6rg@b.example>") == ok
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("MAIL FROM:<j\u00f6rg@b.example> SMTPUTF8") == ok
    assert c.cmd("RCPT TO:<\u00fc@mx.test.example>") == "250 2.1.5 Ok"
    # BINARYMIME is not offered (nor by Postfix 3.7).
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME") == \
        "555 5.5.4 Unsupported option: BODY=BINARYMIME"


def test_pipelining_batch(smtpd):
    c = raw(smtpd)
    c.cmd("EHLO client.example")
    c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<x@mx.test.example>\r\n"
           b"RCPT TO:<>\r\nRCPT TO:<y@mx.test.example>\r\nNOOP\r\nDATA\r\n")
    replies = [c.reply() for _ in range(6)]
    assert replies[0] == "250 2.1.0 Ok"
    assert replies[1] == "250 2.1.5 Ok"
    assert replies[2].startswith("501 5.1.3")
    assert replies[3] == "250 2.1.5 Ok"
    assert replies[4] == "250 2.0.0 Ok"
    assert replies[5].startswith("354 ")
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    assert c.reply() == "221 2.0.0 Bye"
    assert len(smtpd.queued_files()) == 1


def test_bdat(smtpd):
    c = raw(smtpd)
    transaction(c)
    body1 = b"Subject: chunked\r\n\r\nfirst "
    body2 = b"part\r\n.not stuffed\r\nend\r\n"
    c.send(b"BDAT %d\r\n" % len(body1) + body1)
    assert c.reply() == f"250 2.0.0 Ok: {len(body1)} bytes"
    c.send(b"BDAT %d LAST\r\n" % len(body2) + body2)
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    data = smtpd.queued_bytes()
    assert b"first part" in data and b"\n.not stuffed\n" in data
    # DATA after BDAT is a sequence error; BDAT without RCPT reads the chunk.
    transaction(c, "two@mx.test.example")
    c.send(b"BDAT 5\r\nhello")
    assert c.reply() == "250 2.0.0 Ok: 5 bytes"
    assert c.cmd("DATA") == "503 5.5.1 Error: DATA after BDAT"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    c.send(b"BDAT 4 LAST\r\nNOOP")
    assert c.reply() == "503 5.5.1 Error: need RCPT command"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"  # the chunk was not read as a command
    # An empty last chunk ends a message too.
    transaction(c, "three@mx.test.example")
    c.send(b"BDAT 12\r\nSubject: e\r\n")
    assert c.reply() == "250 2.0.0 Ok: 12 bytes"
    c.send(b"BDAT 0 LAST\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    assert len(smtpd.queued_files()) == 2
    assert c.cmd("BDAT x") == "521 5.5.4 Syntax: BDAT count [LAST]"
    assert c.closed()


def test_dot_stuffing_and_ten_megabytes(make_smtpd):
    sd = make_smtpd(main_cf={"message_size_limit": "20000000"})
    line = b"." + b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 10500  # ~10.5 MB
    s = smtplib.SMTP(sd.host, sd.port, timeout=60)
    s.ehlo("client.example")
    s.mail("a@client.example")
    s.rcpt("u@mx.test.example")
    code, _ = s.data(body)
    s.quit()
    assert code == 250
    (path,) = sd.queued_files()
    data = open(path, "rb").read()
    # smtplib doubled the leading dots; smtpd removed one again.
    assert data.count(b"\n." + b"x" * 998 + b"\n") == 10500 - 1 or \
        data.count(b"." + b"x" * 998) == 10500
    assert b".." + b"x" * 998 not in data


SMUGGLING = [
    ("bare LF line end", b"Subject: a\r\n\r\nline\nmore\r\n.\r\n"),
    ("LF.LF", b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\n.\r\n"),
    ("CRLF.LF", b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n"),
    ("LF.CRLF", b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n"),
    ("CR.CR", b"Subject: a\r\n\r\nbody\r.\rMAIL FROM:<evil@x>\r\n.\r\n"),
    ("CR.LF", b"Subject: a\r\n\r\nbody\r.\nMAIL FROM:<evil@x>\r\n.\r\n"),
    ("CRLF.CR", b"Subject: a\r\n\r\nbody\r\n.\rMAIL FROM:<evil@x>\r\n.\r\n"),
    ("bare CR", b"Subject: a\r\n\r\nline\rmore\r\n.\r\n"),
]


@pytest.fixture
def strict_smtpd(make_smtpd):
    """smtpd_forbid_bare_newline = reject (postern's default) for the test
    client: the exclusions ($mynetworks, 127.0.0.0/8 here) emptied."""
    return make_smtpd(main_cf={"smtpd_forbid_bare_newline_exclusions": ""})


BARE = f"550 5.5.2 {HOSTNAME} Error: bare <%s> received"


@pytest.mark.parametrize("name,content", SMUGGLING, ids=[n for n, _ in SMUGGLING])
def test_smuggling_refused(strict_smtpd, name, content):
    """Under reject no variant ends the message early: the content runs to
    the real CRLF.CRLF, then ONE reply refuses the whole message (the
    smuggled MAIL FROM never becomes a command), nothing is queued and the
    session goes on, as in Postfix."""
    c = raw(strict_smtpd)
    transaction(c)
    assert c.cmd("DATA").startswith("354 ")
    c.send(content)
    assert c.reply() in (BARE % "LF", BARE % "CR")  # whichever comes first
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert strict_smtpd.queued_files() == []
    strict_smtpd.wait_log(r"reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 550 5\.5\.2 ")


def test_smuggling_in_bdat_and_commands(strict_smtpd):
    c = raw(strict_smtpd)
    transaction(c)
    chunk = b"Subject: a\r\n\r\nbody\n.\nmore\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert c.reply() == BARE % "LF"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    c = raw(strict_smtpd)
    c.send(b"EHLO x.example\n")
    assert c.reply() == BARE % "LF"
    assert c.closed()
    assert strict_smtpd.queued_files() == []


def test_bare_newline_excluded_clients(smtpd):
    """smtpd_forbid_bare_newline_exclusions = $mynetworks: a client there
    (127.0.0.1 in this harness) may use bare LF, as with "no"."""
    c = raw(smtpd)
    c.send(b"EHLO x.example\n")
    assert c.reply().startswith("250")


def test_bare_newline_normalize(make_smtpd):
    """normalize (and yes): a bare LF ends a line, but only CRLF.CRLF ends
    DATA: "\n.\n" stays content, the message is ONE message."""
    for value in ("normalize", "yes", "YES"):
        sd = make_smtpd(main_cf={"smtpd_forbid_bare_newline": value,
                                 "smtpd_forbid_bare_newline_exclusions": ""})
        c = raw(sd)
        c.send(b"EHLO x.example\n")
        assert c.reply().startswith("250")
        transaction(c, ehlo=False)
        assert c.cmd("DATA").startswith("354 ")
        c.send(b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\n.\r\nmore\r\n.\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as ")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert len(sd.queued_files()) == 1


def test_bare_newline_allowed_when_configured(make_smtpd):
    """no: a bare LF ends a line and ".\n" ends DATA (Postfix 3.7's default)."""
    sd = make_smtpd(main_cf={"smtpd_forbid_bare_newline": "no",
                             "smtpd_forbid_bare_newline_exclusions": ""})
    c = raw(sd)
    transaction(c)
    assert c.cmd("DATA").startswith("354 ")
    c.send(b"Subject: a\r\n\r\nline\nmore\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"  # Postfix's words


def test_bare_newline_bad_value(postern_build):
    from harness.process import ServerError
    sd = Smtpd(postern_build, main_cf={"smtpd_forbid_bare_newline": "maybe"})
    try:
        with pytest.raises(ServerError) as exc:
            sd.start(attempts=1)
        assert 'smtpd_forbid_bare_newline: "maybe": expected no, yes, normalize or reject' \
            in exc.value.log
    finally:
        sd.cleanup()


# --- limits -----------------------------------------------------------------

def test_message_size_limit(make_smtpd):
    sd = make_smtpd(main_cf={"message_size_limit": "2000"})
    c = raw(sd)
    assert "250-SIZE 2000" in c.cmd("EHLO x.example")
    c.cmd("MAIL FROM:<a@b.example>")
    c.cmd("RCPT TO:<u@mx.test.example>")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 100 + b".\r\n")
    assert c.reply() == "552 5.3.4 Message size exceeds fixed limit"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert sd.queued_files() == []
    sd.wait_log(r"reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 552 5\.3\.4 Message "
                r"size exceeds fixed limit; from=<a@b\.example> proto=ESMTP helo=<x\.example>")


def test_recipient_limit(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_recipient_limit": "3"})
    c = raw(sd)
    c.cmd("EHLO x.example")
    c.cmd("MAIL FROM:<a@b.example>")
    for i in range(3):
        assert c.cmd(f"RCPT TO:<u{i}@mx.test.example>") == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<u9@mx.test.example>") == "452 4.5.3 Error: too many recipients"


def test_hopcount_limit(make_smtpd):
    sd = make_smtpd(main_cf={"hopcount_limit": "5"})
    c = raw(sd)
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send(b"".join(b"Received: from h%d\r\n" % i for i in range(6)) +
           b"Subject: loop\r\n\r\nbody\r\n.\r\n")
    assert c.reply() == "554 5.4.0 Error: too many hops"
    assert sd.queued_files() == []


def test_long_lines_split(make_smtpd):
    sd = make_smtpd(main_cf={"line_length_limit": "100"})
    c = raw(sd)
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: long\r\n\r\n" + b"z" * 1000 + b"\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    # A long command line is cut at the limit (512 at least) and answered;
    # the rest, even sent in pieces, is dropped, as Postfix does.
    assert c.cmd("NOOP " + "a" * 5000) == "250 2.0.0 Ok"
    c.send(b"MAIL FROM:<" + b"b" * 600)
    time.sleep(0.2)
    c.send(b"c" * 3000 + b"@x.example>\r\nNOOP\r\n")
    assert c.reply().startswith("501 5.1.7")  # the cut address has no '>'
    assert c.reply() == "250 2.0.0 Ok"
    assert c.cmd("RSET") == "250 2.0.0 Ok"


def test_error_limits(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_hard_error_limit": "3", "smtpd_soft_error_limit": "1"})
    c = raw(sd)
    assert c.cmd("BOGUS1").startswith("500")
    assert c.cmd("BOGUS2").startswith("500")
    r = c.cmd("BOGUS3")
    assert r == f"500 5.5.2 Error: command not recognized\n421 4.7.0 {HOSTNAME} Error: " \
        "too many errors" or r.startswith("500")
    if r.startswith("500") and "\n" not in r:
        assert c.reply() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
    assert c.closed()
    sd.wait_log(r"^too many errors after UNKNOWN from unknown\[127\.0\.0\.1\]$")


def test_junk_command_limit(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_junk_command_limit": "5", "smtpd_hard_error_limit": "3"})
    c = raw(sd)
    # Postfix's count: commands 1..6 are free (the counter is compared
    # before it is raised), 7, 8, 9 each add an error and still run; at
    # 3 errors the 421 follows the 9th reply.
    for _ in range(9):
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert c.reply() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
    assert c.closed()


def test_timeout(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_timeout": "2s"})
    c = raw(sd)
    c.cmd("EHLO x.example")
    t0 = time.monotonic()
    assert c.reply() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
    assert 1.0 < time.monotonic() - t0 < 10
    assert c.closed()
    sd.wait_log(r"^timeout after EHLO from unknown\[127\.0\.0\.1\]$")


def test_lost_connection_logged(smtpd):
    c = raw(smtpd)
    transaction(c)
    c.cmd("DATA")
    c.send(b"Subject: half\r\n")
    c.close()
    smtpd.wait_log(r"^lost connection after DATA from unknown\[127\.0\.0\.1\]$")
    time.sleep(0.2)
    assert smtpd.queued_files() == []


def test_pregreet_dropped(smtpd):
    """A client that talks before the banner is dropped. smtpd is stopped
    (SIGSTOP) while the client connects and talks, so its bytes are
    certainly there when the banner is due."""
    import signal
    pid = smtpd.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        s = socket.create_connection((smtpd.host, smtpd.port), timeout=10)
        s.sendall(b"EHLO talker.example\r\n")
    finally:
        os.kill(pid, signal.SIGCONT)
    data = b""
    s.settimeout(10)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"554 5.5.1 "), data
    assert b"220 " not in data
    smtpd.wait_log(r"^improper command pipelining after CONNECT from unknown\[127\.0\.0\.1\]$")


def test_nul_in_command(smtpd):
    """Postfix reads a command as a C string: it ends at the NUL, the rest
    is dropped (never stored)."""
    c = raw(smtpd)
    assert c.cmd("NOOP a\0b") == "250 2.0.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.example>\0 SIZE=1x") == "250 2.1.0 Ok"


def test_http_request_dropped(smtpd):
    c = raw(smtpd)
    c.send(b"GET / HTTP/1.0\r\n")
    assert c.reply() == "221 2.7.0 Error: I can break rules, too. Goodbye."
    assert c.closed()
    smtpd.wait_log(r"warning: non-SMTP command from unknown\[127\.0\.0\.1\]: GET / HTTP/1\.0$")


@pytest.mark.parametrize("line,forbidden", [
    ("get /", True),  # words match in any case
    ("CONNECT mx:25", True),
    ("POST /x", True),
    ("Subject: hello", True),  # a header name is never a command
    ("X-Foo:bar", True),
    ("1NOOP", True),  # the default's regexp:{{/^[^A-Z]/ Bogus}}
    ("OPTIONS /", False),
    ("FOO bar", False),
    ("EXPN list", False),  # Postfix has no EXPN either
])
def test_forbidden_commands_default(smtpd, line, forbidden):
    """smtpd_forbidden_commands' default, Postfix's: 221 and hang up for a
    listed or header-like first word; any other unknown command is
    500 5.5.2 and the session goes on."""
    c = raw(smtpd)
    r = c.cmd(line)
    if forbidden:
        assert r == "221 2.7.0 Error: I can break rules, too. Goodbye."
        assert c.closed()
    else:
        assert r == "500 5.5.2 Error: command not recognized"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"


def test_forbidden_commands_configured(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_forbidden_commands": "OPTIONS, !GET, GET, pcre:{{/^X/ x}}"})
    c = raw(sd)
    assert c.cmd("options /").startswith("221 2.7.0")
    for line in ("GET /", "POST /"):  # "!GET" stops the search; POST not listed
        c = raw(sd)
        assert c.cmd(line) == "500 5.5.2 Error: command not recognized"
    c = raw(sd)
    assert c.cmd("XYZZY").startswith("221 2.7.0")


def test_forbidden_commands_remote_table_refused(postern_build, tmp_path):
    """A database table there would block every unknown command: smtpd
    refuses to start and says why."""
    from harness.process import ServerError
    sd = Smtpd(postern_build, main_cf={"smtpd_forbidden_commands": "CONNECT sqlite:/x.cf"})
    try:
        with pytest.raises(ServerError) as exc:
            sd.start(attempts=1)
        assert "smtpd_forbidden_commands: sqlite:/x.cf: only local tables" in exc.value.log
    finally:
        sd.cleanup()


def test_empty_line(smtpd):
    c = raw(smtpd)
    assert c.cmd("") == "500 5.5.2 Error: bad syntax"
    assert c.cmd("   ") == "500 5.5.2 Error: bad syntax"


def test_master_cf_overrides_per_listener(make_smtpd):
    sd = make_smtpd(overrides={"smtpd_banner": "$myhostname ESMTP special"},
                    services=[("second", {"message_size_limit": "12345"})])
    c = raw(sd)
    assert c.banner == f"220 {HOSTNAME} ESMTP special"
    c2 = Raw(sd.host, sd.extra_ports[0])
    assert c2.banner == f"220 {HOSTNAME} ESMTP postern"
    assert "250-SIZE 12345" in c2.cmd("EHLO x.example")


def test_postern_smtpd_cli(postern_build, tmp_path):
    """`postern smtpd` execs the smtpd next to it with -c."""
    import subprocess
    sd = Smtpd(postern_build)
    sd.write_config()
    os.makedirs(sd.queue, exist_ok=True)
    proc = subprocess.Popen([os.path.join(postern_build, "bin", "postern"), "-c", sd.confdir,
                             "smtpd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                c = raw(sd)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert c.banner.startswith("220 ")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        sd.cleanup()


def test_error_sleep_after_soft_limit(make_smtpd):
    """Postfix's tarpit: once smtpd_soft_error_limit errors were made, every
    reply (not only error replies) waits smtpd_error_sleep_time."""
    sd = make_smtpd(main_cf={"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s"})
    c = raw(sd)
    assert c.cmd("BOGUS1").startswith("500")
    t0 = time.monotonic()
    assert c.cmd("BOGUS2").startswith("500")  # one error so far: no wait
    assert time.monotonic() - t0 < 0.8
    t0 = time.monotonic()
    assert c.cmd("NOOP") == "250 2.0.0 Ok"  # two errors: this reply waits
    assert time.monotonic() - t0 >= 0.8
    t0 = time.monotonic()
    assert c.cmd("NOOP") == "250 2.0.0 Ok"  # and every one after it
    assert time.monotonic() - t0 >= 0.8
    # Another client is not slowed down by it.
    other = raw(sd)
    t0 = time.monotonic()
    assert other.cmd("NOOP") == "250 2.0.0 Ok"
    assert time.monotonic() - t0 < 0.8


def test_listen_fd_from_master_and_sigterm(postern_build):
    """-s SERVICE -l FD: serve a socket handed over (as master will)."""
    import subprocess
    sd = Smtpd(postern_build)
    sd.write_config()
    os.makedirs(sd.queue, exist_ok=True)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    service = f"{sd.host}:{sd.port}"  # the service written to master.cf
    out = open(os.path.join(sd.tmpdir, "smtpd-fd.out"), "wb")
    proc = subprocess.Popen([os.path.join(postern_build, "bin", "smtpd"), "-c", sd.confdir,
                             "-s", service, "-l", str(lsock.fileno())],
                            pass_fds=[lsock.fileno()], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lsock.close()
    try:
        c = Raw("127.0.0.1", port)
        assert c.banner == f"220 {HOSTNAME} ESMTP postern"
        transaction(c)
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        # The service's own port was not bound: the handed-over socket is
        # all it serves.
        with pytest.raises(OSError):
            socket.create_connection((sd.host, sd.port), timeout=2)
        # An open session does not keep SIGTERM from stopping smtpd.
        c2 = Raw("127.0.0.1", port)
        transaction(c2)
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        sd.wait_log(r"^terminating on signal 15$")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        out.close()
        with open(os.path.join(sd.tmpdir, "smtpd-fd.out"), errors="replace") as f:
            text = f.read()
        assert not any(m in text for m in SANITIZER_MARKERS), text
        sd.cleanup()


def _hosts_name(addr):
    """The first /etc/hosts name of addr (what c-ares answers from files)."""
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[0] == addr:
                    return fields[1].lower()
    except OSError:
        pass
    return None


def test_peername_lookup(make_smtpd):
    """smtpd_peername_lookup = yes: reverse name, forward-confirmed."""
    sd = make_smtpd(main_cf={"smtpd_peername_lookup": "yes"})
    expected = _hosts_name("127.0.0.1")
    c = raw(sd)
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: named\r\n\r\nbody\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    c.cmd("QUIT")
    if expected is not None:
        name = re.escape(expected)
        sd.wait_log(rf"^connect from {name}\[127\.0\.0\.1\]$")
        assert re.search(rb"Received: from client\.example \(" + expected.encode() +
                         rb" \[127\.0\.0\.1\]\)", sd.queued_bytes())
    else:
        sd.wait_log(r"^connect from \S+\[127\.0\.0\.1\]$")


def test_strict_smtputf8(make_smtpd):
    """strict_smtputf8 = yes: a UTF-8 address only with SMTPUTF8 declared."""
    sd = make_smtpd(main_cf={"strict_smtputf8": "yes"})
    c = raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<j\u00f6rg@b.example>").startswith("553 5.6.7 ")
    assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<\u00fc@mx.test.example>").startswith("553 5.6.7 ")


def test_vrfy_enabled_runs_recipient_restrictions(make_smtpd):
    """disable_vrfy_command = no: the recipient restrictions decide, as for
    RCPT TO (Postfix); a permitted address is 252 with the argument."""
    sd = make_smtpd(main_cf={"disable_vrfy_command": "no", "mynetworks": "192.0.2.0/24",
                             "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"})
    c = raw(sd)
    assert c.cmd("VRFY postmaster@mx.test.example") == "252 2.0.0 postmaster@mx.test.example"
    assert c.cmd("VRFY <u@remote.example>") == \
        "554 5.7.1 <u@remote.example>: Relay access denied"
    assert c.cmd("VRFY <>") == "501 5.1.3 Bad recipient address syntax"
    assert c.cmd("VRFY") == "501 5.5.4 Syntax: VRFY address"


def test_verbs_not_offered_yet(smtpd):
    """Postfix's answers without TLS, SASL, flush domains or XCLIENT/XFORWARD
    clients (issues to come implement them)."""
    c = raw(smtpd)
    assert c.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"
    assert c.cmd("STARTTLS x") == "501 5.5.4 Syntax: STARTTLS"
    assert c.cmd("AUTH PLAIN") == "503 5.5.1 Error: authentication not enabled"
    assert c.cmd("XCLIENT") == "501 5.5.4 Syntax: XCLIENT attribute=value..."
    assert c.cmd("XCLIENT NAME=x") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("XFORWARD NAME=x") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("ETRN") == "500 Syntax: ETRN domain"
    assert c.cmd("ETRN #example.com") == "459 <example.com>: service unavailable"
    assert c.cmd("ETRN bad!name") == "501 Error: invalid parameter syntax"
    assert c.cmd("HELO c.example").startswith("250")
    assert c.cmd("MAIL FROM:<a@c.example>").startswith("250")
    assert c.cmd("ETRN example.com") == "503 Error: MAIL transaction in progress"
    assert c.cmd("XCLIENT NAME=x") == "503 5.5.1 Error: MAIL transaction in progress"
