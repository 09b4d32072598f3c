"""XCLIENT and XFORWARD (smtpd_authorized_xclient_hosts,
smtpd_authorized_xforward_hosts), as Postfix 3.7 answers them.

Every test starts a private smtpd (harness/smtpd.py) and talks to it with
smtplib or a raw socket: the EHLO keywords (only for authorized clients,
where Postfix puts them), the replies (220 greeting after XCLIENT, 250
after XFORWARD, Postfix's 501/503/550 texts), the session after XCLIENT
(a new client: relay decisions by the new address, HELO forgotten, the
right to XCLIENT decided again, client restrictions run again), the log
lines in Postfix's formats for the new client, and what the queue file
holds (`postern queue cat`): the XCLIENT identity and LOGIN, the XFORWARD
log_* attributes for one transaction only, the Received: header naming
the connected client. tests/diff/dialogs/05-xclient.dlg compares the
reply codes with Postfix itself.
"""

import re
import smtplib

import pytest

from harness.smtpclient import Raw as RawClient
from harness.smtpd import HOSTNAME, Smtpd

XCLIENT_KW = "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT"
XFORWARD_KW = "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"
GREETING = f"220 {HOSTNAME} ESMTP postern"
# The test client (127.0.0.1) is outside mynetworks; 192.0.2.0/24 is in.
BASE = {
    "mynetworks": "192.0.2.0/24",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtpd_authorized_xclient_hosts": "127.0.0.1",
    "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
}


class Raw(RawClient):
    """harness.smtpclient.Raw on an Smtpd, with a whole message in one call."""

    def __init__(self, sd):
        super().__init__(sd.host, sd.port)

    def message(self, sender="a@b.test", rcpt="user@mx.test.example", subject="t"):
        """MAIL, RCPT, DATA; returns the queue ID."""
        assert self.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Ok"
        assert self.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
        assert self.cmd("DATA").startswith("354")
        r = self.cmd(f"Subject: {subject}\r\n\r\nbody\r\n.")
        m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$", r)
        assert m, r
        return m.group(1)


@pytest.fixture
def make_smtpd(postern_build):
    made = []

    def make(main_cf=None, **kwargs):
        cf = dict(BASE)
        cf.update(main_cf or {})
        sd = Smtpd(postern_build, main_cf=cf, **kwargs)
        made.append(sd)
        return sd.start()
    yield make
    for sd in made:
        sd.cleanup()


@pytest.fixture
def sd(make_smtpd):
    return make_smtpd()


def queue_cat(postern, sd, qid):
    """`postern queue cat ID`: (named attributes dict, the message text)."""
    res = postern("-c", sd.confdir, "queue", "cat", qid)
    assert res.returncode == 0, res.stderr
    attrs = dict(m.groups() for m in
                 re.finditer(r"^named_attribute: ([a-z_]+)=(.*)$", res.stdout, re.M))
    return attrs, res.stdout


def keywords(reply):
    return [line[4:] for line in reply.split("\n")[1:]]


# --- EHLO and authorization ------------------------------------------------------

def test_ehlo_keywords_for_authorized_clients(sd):
    c = Raw(sd)
    kws = keywords(c.cmd("EHLO client.example"))
    # Postfix's place: after VRFY (and ETRN), before ENHANCEDSTATUSCODES.
    assert kws == ["PIPELINING", "SIZE 10240000", "ETRN", XCLIENT_KW, XFORWARD_KW,
                   "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]


def test_unauthorized_client(make_smtpd):
    sd = make_smtpd({"smtpd_authorized_xclient_hosts": "192.0.2.0/24, [::1]",
                     "smtpd_authorized_xforward_hosts": "!127.0.0.1, 127.0.0.0/8"})
    c = Raw(sd)
    kws = keywords(c.cmd("EHLO client.example"))
    assert not any(k.startswith(("XCLIENT", "XFORWARD")) for k in kws), kws
    # Postfix's order of checks: transaction, syntax, then authorization.
    assert c.cmd("XCLIENT") == "501 5.5.4 Syntax: XCLIENT attribute=value..."
    assert c.cmd("XCLIENT NAME=x.example") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("XFORWARD NAME=x.example") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("XCLIENT BOGUS") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("XCLIENT NAME=x") == "503 5.5.1 Error: MAIL transaction in progress"
    assert c.cmd("XFORWARD NAME=x") == "503 5.5.1 Error: MAIL transaction in progress"


def test_default_nobody_authorized(make_smtpd):
    sd = make_smtpd({"smtpd_authorized_xclient_hosts": "",
                     "smtpd_authorized_xforward_hosts": ""})
    c = Raw(sd)
    assert c.cmd("XCLIENT NAME=x.example") == "550 5.7.0 Error: insufficient authorization"
    assert c.cmd("XFORWARD NAME=x.example") == "550 5.7.0 Error: insufficient authorization"


def test_discarded_keywords_still_work(make_smtpd):
    sd = make_smtpd({"smtpd_discard_ehlo_keywords": "xclient, XFORWARD"})
    c = Raw(sd)
    kws = keywords(c.cmd("EHLO client.example"))
    assert not any(k.startswith(("XCLIENT", "XFORWARD")) for k in kws), kws
    assert c.cmd("XFORWARD NAME=up.example") == "250 2.0.0 Ok"
    assert c.cmd("XCLIENT NAME=x.example") == GREETING


def test_host_names_in_the_lists_are_ignored_with_a_warning(make_smtpd):
    sd = make_smtpd({"smtpd_authorized_xclient_hosts": "localhost, 127.0.0.1",
                     "smtpd_authorized_xforward_hosts": "hash:/etc/nothing"})
    sd.wait_log(r'smtpd_authorized_xclient_hosts: "localhost" ignored: only addresses and '
                r'networks are supported here')
    sd.wait_log(r'smtpd_authorized_xforward_hosts: "hash:/etc/nothing" ignored')
    c = Raw(sd)
    assert c.cmd("XCLIENT NAME=x.example") == GREETING
    assert c.cmd("XFORWARD NAME=x.example") == "550 5.7.0 Error: insufficient authorization"


# --- XCLIENT ------------------------------------------------------------------------

def test_xclient_with_smtplib(sd, postern):
    """A real client library: XCLIENT after EHLO, the new greeting, EHLO
    again as the new client, a message relayed for a mynetworks address."""
    with smtplib.SMTP(sd.host, sd.port, timeout=15) as s:
        code, msg = s.ehlo("client.example")
        assert code == 250 and s.has_extn("xclient") and s.has_extn("xforward")
        assert s.esmtp_features["xclient"] == XCLIENT_KW[len("XCLIENT "):]
        code, msg = s.docmd("XCLIENT", "NAME=spike.porcupine.org ADDR=192.0.2.5 PORT=4711")
        assert (code, msg.decode()) == (220, f"{HOSTNAME} ESMTP postern")
        s.ehlo_resp = None
        code, _ = s.ehlo("spike.porcupine.org")
        assert code == 250
        # 192.0.2.5 is not in smtpd_authorized_xclient_hosts: XCLIENT is
        # gone; XFORWARD was decided for the real client and stays.
        assert not s.has_extn("xclient") and s.has_extn("xforward")
        refused = s.sendmail("wietse@porcupine.org", ["someone@remote.example"],
                             "Subject: relayed\r\n\r\nbody\r\n")
        assert refused == {}
        code, msg = s.docmd("XCLIENT", "NAME=again.example")
        assert (code, msg.decode()) == (550, "5.7.0 Error: insufficient authorization")
    m = sd.wait_log(r"^(\S+): client=spike\.porcupine\.org\[192\.0\.2\.5\]$")
    attrs, text = queue_cat(postern, sd, m.group(1))
    assert attrs["client_name"] == "spike.porcupine.org"
    assert attrs["client_address"] == "192.0.2.5"
    assert attrs["client_port"] == "4711"
    assert attrs["helo_name"] == "spike.porcupine.org"
    assert re.search(r"^Received: from spike\.porcupine\.org \(spike\.porcupine\.org "
                     r"\[192\.0\.2\.5\]\)$", text, re.M), text
    log = sd.wait_log(r"^disconnect from spike\.porcupine\.org\[192\.0\.2\.5\] .*$").group(0)
    # Postfix never counts a successful XCLIENT (it jumps back to the
    # greeting past its counter): xclient=0/2.
    assert "xclient=0/2" in log, log
    # "connect from" names the real client only: no second line for the
    # new one (Postfix logs none either).
    text = sd.log_text()
    assert len(re.findall(r"^connect from ", text, re.M)) == \
        len(re.findall(r"^disconnect from ", text, re.M))
    assert not re.search(r"^connect from spike", text, re.M)


def test_xclient_addr_changes_relay_decision(sd):
    c = Raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>") == \
        "554 5.7.1 <someone@remote.example>: Relay access denied"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("XCLIENT ADDR=192.0.2.5") == GREETING
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>") == "250 2.1.5 Ok"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    c.close()
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=198.51.100.7 NAME=far.example") == GREETING
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>").startswith("554 5.7.1 ")
    sd.wait_log(r"^NOQUEUE: reject: RCPT from far\.example\[198\.51\.100\.7\]: 554 5\.7\.1 "
                r"<someone@remote\.example>: Relay access denied; from=<a@b\.test> "
                r"to=<someone@remote\.example> proto=SMTP$")


def test_xclient_resets_transaction_and_helo(make_smtpd):
    sd = make_smtpd({"smtpd_helo_required": "yes"})
    c = Raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("XCLIENT NAME=x.example") == "503 5.5.1 Error: MAIL transaction in progress"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("XCLIENT NAME=x.example") == GREETING
    # HELO forgotten: smtpd_helo_required asks for it again.
    assert c.cmd("MAIL FROM:<a@b.test>") == "503 5.5.1 Error: send HELO/EHLO first"
    # Unless XCLIENT sets it (and PROTO).
    assert c.cmd("XCLIENT HELO=h.example PROTO=ESMTP") == GREETING
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"


def test_xclient_helo_proto_login_in_queue_file(sd, postern):
    c = Raw(sd)
    assert c.cmd("XCLIENT HELO=helo.example PROTO=esmtp LOGIN=bob+40example.com") == GREETING
    qid = c.message()
    attrs, text = queue_cat(postern, sd, qid)
    assert attrs["helo_name"] == "helo.example"
    assert attrs["protocol"] == "ESMTP"
    assert attrs["sasl_method"] == "XCLIENT"
    assert attrs["sasl_username"] == "bob@example.com"
    assert re.search(r"^Received: from helo\.example \(unknown \[127\.0\.0\.1\]\)$", text, re.M)
    assert re.search(r"with ESMTPA id", text)  # RFC 3848, as Postfix
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\], sasl_method=XCLIENT, "
                r"sasl_username=bob@example\.com$")
    # An XCLIENT without LOGIN= forgets the login (Postfix).
    assert c.cmd("XCLIENT NAME=other.example") == GREETING
    qid = c.message()
    attrs, text = queue_cat(postern, sd, qid)
    assert "sasl_username" not in attrs
    assert re.search(r"with E?SMTP id", text)  # logged out: no "A"
    sd.wait_log(rf"^{qid}: client=other\.example\[127\.0\.0\.1\]$")


def test_xclient_unavailable_values(sd, postern):
    c = Raw(sd)
    assert c.cmd("XCLIENT NAME=spike.example") == GREETING
    assert c.cmd("XCLIENT NAME=[TEMPUNAVAIL] PORT=[UNAVAILABLE] HELO=[unavailable]") == GREETING
    assert c.cmd("XCLIENT ADDR=[UNAVAILABLE]") == GREETING
    qid = c.message(rcpt="user@mx.test.example")
    attrs, _ = queue_cat(postern, sd, qid)
    assert attrs["client_name"] == "unknown"
    assert attrs["client_address"] == "unknown"
    assert "client_port" not in attrs and "helo_name" not in attrs
    sd.wait_log(rf"^{qid}: client=unknown\[unknown\]$")
    # "unknown" is no address: no longer authorized for XCLIENT.
    assert c.cmd("XCLIENT NAME=x.example") == "550 5.7.0 Error: insufficient authorization"


@pytest.mark.parametrize("arg,reply", [
    ("NAME", "501 5.5.4 Error: attribute=value expected"),
    ("NAME=", "501 5.5.4 Error: attribute=value expected"),
    ("=x", "501 5.5.4 Bad XCLIENT attribute name: "),
    ("BOGUS=1", "501 5.5.4 Bad XCLIENT attribute name: BOGUS"),
    ("NAME=bad_name!", "501 5.5.4 Bad NAME syntax: bad_name!"),
    ("NAME=1.2.3.4", "501 5.5.4 Bad NAME syntax: 1.2.3.4"),
    ("NAME=a.example.", "501 5.5.4 Bad NAME syntax: a.example."),
    ("NAME=x+zz.example", "501 5.5.4 Bad NAME syntax: x+zz.example"),  # not xtext: as is
    ("NAME=a+0Db.example", "501 5.5.4 Bad NAME syntax: a?b.example"),  # CR shown as ?
    ("REVERSE_NAME=a..b", "501 5.5.4 Bad REVERSE_NAME syntax: a..b"),
    ("ADDR=foo", "501 5.5.4 Bad ADDR syntax: foo"),
    ("ADDR=[192.0.2.5]", "501 5.5.4 Bad ADDR syntax: [192.0.2.5]"),
    ("ADDR=[TEMPUNAVAIL]", "501 5.5.4 Bad ADDR syntax: [TEMPUNAVAIL]"),
    ("ADDR=2001:db8::1", "501 5.5.4 Bad ADDR syntax: 2001:db8::1"),  # IPv6: needs IPv6:
    ("ADDR=IPv6:192.0.2.1", "501 5.5.4 Bad ADDR syntax: IPv6:192.0.2.1"),
    ("ADDR=192.0.2.010", "501 5.5.4 Bad ADDR syntax: 192.0.2.010"),  # Postfix: octal
    ("PORT=abc", "501 5.5.4 Bad PORT syntax: abc"),
    ("PORT=65536", "501 5.5.4 Bad PORT syntax: 65536"),
    ("PORT=123456", "501 5.5.4 Bad PORT syntax: 123456"),
    ("PROTO=LMTP", "501 5.5.4 Bad PROTO syntax: LMTP"),
    ("PROTO=[UNAVAILABLE]", "501 5.5.4 Bad PROTO syntax: [UNAVAILABLE]"),
    ("DESTADDR=foo", "501 5.5.4 Bad DESTADDR syntax: foo"),
    ("DESTPORT=x", "501 5.5.4 Bad DESTPORT syntax: x"),
    ("HELO=" + "a" * 256, "501 5.5.4 Error: attribute value too long"),
    ("HELO=" + "+41" * 86, "501 5.5.4 Error: attribute value too long"),
])
def test_xclient_bad_syntax(sd, arg, reply):
    c = Raw(sd)
    assert c.cmd("XCLIENT " + arg) == reply
    # Nothing changed: still the same client, still authorized.
    assert c.cmd("XCLIENT NAME=next.example") == GREETING


@pytest.mark.parametrize("arg", [
    "NAME=spike+2Eporcupine+2Eorg",
    "name=lower.example Port=1 proto=smtp",
    "NAME=[unavailable] REVERSE_NAME=[TEMPUNAVAIL]",
    "PORT=0", "PORT=65535", "PORT=00025",
    "HELO=x+zz", "HELO=" + "+41" * 85, "HELO=" + "a" * 255,
    "DESTADDR=192.0.2.99 DESTPORT=25", "DESTADDR=[UNAVAILABLE] DESTPORT=[UNAVAILABLE]",
    "LOGIN=[UNAVAILABLE]", "NAME=under_score.example",
    " ".join(["NAME=a.example"] * 30),
])
def test_xclient_good_syntax(sd, arg):
    c = Raw(sd)
    assert c.cmd("XCLIENT " + arg) == GREETING
    assert c.cmd("EHLO client.example").startswith("250")


def test_xclient_is_all_or_nothing(sd):
    """Postfix applies the attributes before a bad one (it would relay for
    192.0.2.5 here while its logs name 127.0.0.1); postern none of them."""
    c = Raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("XCLIENT NAME=good.example ADDR=192.0.2.5 BOGUS=1") == \
        "501 5.5.4 Bad XCLIENT attribute name: BOGUS"
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>").startswith("554 5.7.1 ")
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 ")


def test_xclient_ipv6(sd, postern):
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=IPV6:2001:DB8:0::1 NAME=six.example") == GREETING
    qid = c.message()
    attrs, _ = queue_cat(postern, sd, qid)
    assert attrs["client_address"] == "2001:db8::1"
    sd.wait_log(rf"^{qid}: client=six\.example\[2001:db8::1\]$")
    c.close()
    # An IPv4-mapped address is the IPv4 address (Postfix), here one in
    # mynetworks.
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=ipv6:::ffff:192.0.2.2") == GREETING
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>") == "250 2.1.5 Ok"


def test_xclient_pipelined(sd):
    c = Raw(sd)
    c.send(b"XCLIENT NAME=pipe.example ADDR=192.0.2.6\r\nEHLO pipe.example\r\n"
           b"MAIL FROM:<a@b.test>\r\nRCPT TO:<someone@remote.example>\r\n")
    assert c.reply() == GREETING
    assert c.reply().startswith(f"250-{HOSTNAME}")
    assert c.reply() == "250 2.1.0 Ok"
    assert c.reply() == "250 2.1.5 Ok"


def test_xclient_runs_client_restrictions_again(make_smtpd):
    """With smtpd_delay_reject = no the client restrictions' reject
    replaces the greeting, for the new client too; every command but QUIT
    gets 503 after it."""
    sd = make_smtpd({
        "smtpd_delay_reject": "no",
        "smtpd_client_restrictions": "check_client_access inline:{ {192.0.2.66=REJECT go away} }",
    })
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=192.0.2.7") == GREETING
    c.close()
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=192.0.2.66") == \
        "554 5.7.1 <unknown[192.0.2.66]>: Client host rejected: go away"
    assert c.cmd("MAIL FROM:<a@b.test>") == \
        "503 5.7.0 Error: access denied for unknown[192.0.2.66]"
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    sd.wait_log(r"^NOQUEUE: reject: XCLIENT from unknown\[192\.0\.2\.66\]: 554 5\.7\.1 "
                r"<unknown\[192\.0\.2\.66\]>: Client host rejected: go away; proto=SMTP$")


def test_xclient_bare_newline_exclusions_for_the_new_client(make_smtpd):
    """smtpd_forbid_bare_newline_exclusions ($mynetworks) is decided again
    for the new address, as Postfix 3.7.11 does."""
    sd = make_smtpd({"smtpd_forbid_bare_newline": "reject"})
    c = Raw(sd)
    assert c.cmd("XCLIENT ADDR=192.0.2.5") == GREETING
    c.send(b"NOOP\n")
    assert c.reply() == "250 2.0.0 Ok"
    c.close()
    c = Raw(sd)
    c.send(b"NOOP\n")
    assert c.reply() == f"550 5.5.2 {HOSTNAME} Error: bare <LF> received"


def test_xclient_helo_controls_never_stored(sd, postern):
    c = Raw(sd)
    assert c.cmd("XCLIENT HELO=x+0D+0AX-Injected:+20y LOGIN=a+0Db") == GREETING
    qid = c.message()
    attrs, text = queue_cat(postern, sd, qid)
    assert attrs["helo_name"] == "x??X-Injected:?y"
    assert attrs["sasl_username"] == "a?b"
    assert not re.search(r"^X-Injected", text, re.M)
    with open(sd.maillog, "rb") as f:
        log = f.read()
    assert b"\r" not in log and b"\x00" not in log
    for path in sd.queued_files():
        data = open(path, "rb").read()
        assert b"x\r\nX-Injected" not in data and b"a\rb" not in data
    # A value that would decode to NUL is not valid xtext: it is taken as
    # sent (Postfix cuts it at the NUL instead).
    assert c.cmd("XCLIENT HELO=x+00y") == GREETING
    attrs, _ = queue_cat(postern, sd, c.message())
    assert attrs["helo_name"] == "x+00y"


# --- XFORWARD ---------------------------------------------------------------------

def test_xforward_then_message(sd, postern):
    c = Raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("XFORWARD NAME=up.example ADDR=192.0.2.9 PORT=1234 PROTO=ESMTP "
                 "HELO=up.example") == "250 2.0.0 Ok"
    assert c.cmd("XFORWARD IDENT=ABC123 SOURCE=REMOTE") == "250 2.0.0 Ok"
    # Not a relay permission: the restrictions see the real client.
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<someone@remote.example>").startswith("554 5.7.1 ")
    assert c.cmd("RCPT TO:<user@mx.test.example>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    qid = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$",
                   c.cmd("Subject: fwd\r\n\r\nbody\r\n.")).group(1)
    attrs, text = queue_cat(postern, sd, qid)
    assert attrs["log_client_name"] == "up.example"
    assert attrs["log_client_address"] == "192.0.2.9"
    assert attrs["log_client_port"] == "1234"
    assert attrs["log_message_origin"] == "up.example[192.0.2.9]"
    assert attrs["log_helo_name"] == "up.example"
    assert attrs["log_protocol_name"] == "ESMTP"
    assert attrs["log_ident"] == "ABC123"
    assert attrs["rewrite_context"] == "remote"
    # The connected client stays the client (Postfix: the Received:
    # header too).
    assert attrs["client_name"] == "unknown" and attrs["client_address"] == "127.0.0.1"
    assert attrs["helo_name"] == "client.example"
    assert re.search(r"^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)$", text, re.M)
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\], orig_queue_id=ABC123, "
                r"orig_client=up\.example\[192\.0\.2\.9\]$")
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 ")
    # The next transaction has none.
    qid = c.message(subject="second")
    attrs, _ = queue_cat(postern, sd, qid)
    assert not any(k.startswith("log_") for k in attrs), attrs
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]$")
    c.cmd("QUIT")
    # Postfix's order: xclient= and xforward= right after ehlo=.
    sd.wait_log(r"^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 xforward=2 mail=2 rcpt=2/3 "
                r"data=2 quit=1 commands=10/11$")


@pytest.mark.parametrize("args,log", [
    (["IDENT=only1"], ", orig_queue_id=only1"),
    (["ADDR=192.0.2.77"], ", orig_client=unknown[192.0.2.77]"),
    (["NAME=only.example PORT=4455"], ", orig_client=only.example"),
    (["PROTO=ESMTP"], ", orig_client=unknown"),
    (["SOURCE=LOCAL"], ""),
    (["NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] IDENT=[UNAVAILABLE]"], ", orig_client=unknown"),
    (["NAME=a.example", "NAME=b.example", "IDENT=x"], ", orig_queue_id=x, orig_client=b.example"),
])
def test_xforward_log_line(sd, args, log):
    """Postfix's additions to "ID: client=", checked against Postfix 3.7."""
    c = Raw(sd)
    for a in args:
        assert c.cmd("XFORWARD " + a) == "250 2.0.0 Ok"
    qid = c.message()
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]{re.escape(log)}$")


@pytest.mark.parametrize("between,kept", [
    ("RSET", False),
    ("EHLO client.example", False),
    ("HELO client.example", False),
    ("NOOP", True),
    ("EHLO", True),  # a syntax error ends nothing
    ("RSET x", True),
    ("MAIL FROM:<a@b.test> BOGUS=1", True),
])
def test_xforward_is_for_the_next_transaction_only(sd, between, kept):
    c = Raw(sd)
    assert c.cmd("XFORWARD IDENT=FWD1") == "250 2.0.0 Ok"
    c.cmd(between)
    qid = c.message()
    suffix = ", orig_queue_id=FWD1" if kept else ""
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]{re.escape(suffix)}$")


def test_xforward_inside_a_transaction(sd):
    c = Raw(sd)
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("XFORWARD NAME=up.example") == "503 5.5.1 Error: MAIL transaction in progress"
    assert c.cmd("RCPT TO:<user@mx.test.example>") == "250 2.1.5 Ok"
    assert c.cmd("XFORWARD NAME=up.example") == "503 5.5.1 Error: MAIL transaction in progress"


@pytest.mark.parametrize("arg,reply", [
    ("NAME", "501 5.5.4 Error: attribute=value expected"),
    ("BOGUS=1", "501 5.5.4 Bad XFORWARD attribute name: BOGUS"),
    ("LOGIN=bob", "501 5.5.4 Bad XFORWARD attribute name: LOGIN"),
    ("NAME=[TEMPUNAVAIL]", "501 5.5.4 Bad NAME syntax: [TEMPUNAVAIL]"),
    ("NAME=bad_name!", "501 5.5.4 Bad NAME syntax: bad_name!"),
    ("ADDR=foo", "501 5.5.4 Bad ADDR syntax: foo"),
    ("PORT=65536", "501 5.5.4 Bad PORT syntax: 65536"),
    ("PROTO=" + "a" * 65, "501 5.5.4 Bad PROTO syntax: " + "a" * 65),
    ("SOURCE=bogus", "501 5.5.4 Bad SOURCE syntax: bogus"),
    ("HELO=" + "a" * 256, "501 5.5.4 Error: attribute value too long"),
    ("IDENT=ok NAME=up.example BOGUS=1", "501 5.5.4 Bad XFORWARD attribute name: BOGUS"),
])
def test_xforward_bad_syntax(sd, arg, reply):
    c = Raw(sd)
    assert c.cmd("XFORWARD " + arg) == reply
    qid = c.message()
    # All or nothing: nothing from the refused command.
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]$")


def test_xforward_values_cleaned(sd, postern):
    c = Raw(sd)
    assert c.cmd("XFORWARD HELO=a+20b+0D+0Ac IDENT=x+0Ay PROTO=Q+01P") == "250 2.0.0 Ok"
    qid = c.message()
    attrs, _ = queue_cat(postern, sd, qid)
    assert attrs["log_helo_name"] == "a?b??c"
    assert attrs["log_ident"] == "x?y"
    assert attrs["log_protocol_name"] == "Q?P"
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\], orig_queue_id=x\?y, "
                r"orig_client=unknown$")


def test_xclient_forgets_xforward(sd):
    c = Raw(sd)
    assert c.cmd("XFORWARD IDENT=gone") == "250 2.0.0 Ok"
    assert c.cmd("XCLIENT NAME=x.example") == GREETING
    qid = c.message()
    sd.wait_log(rf"^{qid}: client=x\.example\[127\.0\.0\.1\]$")


def test_many_sessions(sd):
    """The per-session XCLIENT/XFORWARD values of ended sessions are freed
    while others run (smtpd_xclient.c sweeps them past 64): sessions that
    stay open across the sweeps keep theirs."""
    keep = []
    for i in range(5):
        c = Raw(sd)
        assert c.cmd(f"XCLIENT LOGIN=keep{i}") == GREETING
        assert c.cmd(f"XFORWARD IDENT=KEEP{i}") == "250 2.0.0 Ok"
        keep.append(c)
    for i in range(200):
        c = Raw(sd)
        assert c.cmd(f"XFORWARD IDENT=T{i}") == "250 2.0.0 Ok"
        if i % 2:
            assert c.cmd(f"XCLIENT LOGIN=u{i}") == GREETING
        c.cmd("QUIT")
        c.close()
    for i, c in enumerate(keep):
        qid = c.message()
        sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\], sasl_method=XCLIENT, "
                    rf"sasl_username=keep{i}, orig_queue_id=KEEP{i}$")
        c.close()


def test_xforward_forgotten_when_mail_is_refused(make_smtpd, postern):
    """Postfix's mail_reset(): a MAIL FROM the sender restrictions refuse
    (smtpd_delay_reject = no) drops the XFORWARD values, so the next
    message is not queued with the previous client's identity."""
    sd = make_smtpd({"smtpd_delay_reject": "no",
                     "smtpd_sender_restrictions": "check_sender_access inline:{bad@b.test=REJECT}"})
    c = Raw(sd)
    c.cmd("EHLO client.example")
    assert c.cmd("XFORWARD NAME=up.example ADDR=192.0.2.9 IDENT=OLD1") == "250 2.0.0 Ok"
    assert c.cmd("MAIL FROM:<bad@b.test>").startswith("554 5.7.1 ")
    qid = c.message()
    attrs, _ = queue_cat(postern, sd, qid)
    assert "OLD1" not in attrs.values() and "192.0.2.9" not in attrs.values(), attrs
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]$")
