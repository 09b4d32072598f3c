"""smtpd with restrictions: access actions, every stage, the relay battery.

End to end through a running smtpd (harness/smtpd.py) and smtplib or a raw
socket, the restriction engine (lib/smtp/restrict.c) and cleanup:

  - access(5) actions from check_recipient_access (inline: table): HOLD
    puts the message in the hold queue, DISCARD answers 250 and keeps
    nothing, PREPEND adds the header, REJECT text and DEFER text reach
    the client as 5xx/4xx;
  - stages: a client reject with smtpd_delay_reject = no replaces the
    banner and every later command but QUIT gets 503 5.7.0; a HELO
    reject at HELO time; smtpd_data_restrictions at DATA;
    smtpd_end_of_data_restrictions after the content (nothing queued);
  - the open-relay battery: 30 address forms that try to leave through a
    local domain (percent hack, bang paths, source routes, quoted local
    parts, address literals, trailing dots ...) are all refused for a
    client outside mynetworks, while a local address is accepted.
"""

import os
import smtplib
import socket

import pytest

from harness.smtpd import HOSTNAME, Smtpd


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


def send(sd, rcpt, body=b"Subject: t\r\n\r\nbody\r\n"):
    """One message to one recipient; returns (rcpt reply, data reply or None)."""
    s = smtplib.SMTP(sd.host, sd.port, timeout=30)
    try:
        s.ehlo("client.example")
        s.mail("sender@client.example")
        r = s.rcpt(rcpt)
        if r[0] != 250:
            return r, None
        try:
            d = s.data(body)
        except smtplib.SMTPDataError as exc:
            d = (exc.smtp_code, exc.smtp_error)
        return r, d
    finally:
        s.close()


ACTIONS = ("inline:{ hold@mx.test.example=HOLD, drop@mx.test.example=DISCARD, "
           "{ tag@mx.test.example = PREPEND X-Tag: yes }, "
           "{ nope@mx.test.example = REJECT go away }, "
           "{ later@mx.test.example = DEFER try later } }")


def test_access_actions(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_recipient_restrictions":
                             f"check_recipient_access {ACTIONS}"})
    r, d = send(sd, "hold@mx.test.example")
    assert r[0] == 250 and d[0] == 250
    assert len(sd.queued_files("hold")) == 1 and sd.queued_files() == []

    r, d = send(sd, "drop@mx.test.example")
    assert r[0] == 250 and d[0] == 250
    assert sd.queued_files() == [] and len(sd.queued_files("hold")) == 1

    r, d = send(sd, "tag@mx.test.example")
    assert r[0] == 250 and d[0] == 250
    assert b"X-Tag: yes" in sd.queued_bytes()

    r, d = send(sd, "nope@mx.test.example")
    assert r[0] // 100 == 5 and b"go away" in r[1], r
    r, d = send(sd, "later@mx.test.example")
    assert r[0] // 100 == 4 and b"try later" in r[1], r
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 5\d\d 5\.\d\.\d "
                r"<nope@mx\.test\.example>: .*go away; from=<sender@client\.example> "
                r"to=<nope@mx\.test\.example> proto=ESMTP helo=<client\.example>$")


def _raw(sd):
    s = socket.create_connection((sd.host, sd.port), timeout=15)
    f = s.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            assert line, "connection closed"
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(text):
        s.sendall(text.encode() + b"\r\n")
        return reply()
    return s, reply, cmd


def test_client_reject_replaces_banner(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_delay_reject": "no", "smtpd_client_restrictions": "reject"})
    s, reply, cmd = _raw(sd)
    banner = reply()
    assert banner.startswith("554 5.7.1 "), banner
    assert cmd("EHLO client.example") == \
        "503 5.7.0 Error: access denied for unknown[127.0.0.1]"
    assert cmd("MAIL FROM:<a@b.example>") == \
        "503 5.7.0 Error: access denied for unknown[127.0.0.1]"
    assert cmd("QUIT") == "221 2.0.0 Bye"
    sd.wait_log(r"^NOQUEUE: reject: CONNECT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 ")


def test_helo_reject_at_helo(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_delay_reject": "no",
                             "smtpd_helo_restrictions": "reject_invalid_helo_hostname"})
    s, reply, cmd = _raw(sd)
    reply()
    r = cmd("HELO bad..name")
    assert r.startswith("5") and "<bad..name>: Helo command rejected: Invalid name" in r
    assert cmd("HELO good.example") == f"250 {HOSTNAME}"


def test_data_and_end_of_data_restrictions(make_smtpd):
    sd = make_smtpd(main_cf={"smtpd_data_restrictions": "reject"})
    r, d = send(sd, "user@mx.test.example")
    assert r[0] == 250 and d[0] // 100 == 5, d
    assert sd.queued_files() == []
    sd.wait_log(r"^\w+: reject: DATA from unknown\[127\.0\.0\.1\]: 5")

    sd2 = make_smtpd(main_cf={"smtpd_end_of_data_restrictions": "reject"})
    r, d = send(sd2, "user@mx.test.example")
    assert r[0] == 250 and d[0] // 100 == 5, d
    assert sd2.queued_files() == [] and sd2.all_queue_files() == []


RELAY_FORMS = [
    "user@elsewhere.example",
    "USER@ELSEWHERE.EXAMPLE",
    "user@elsewhere.example.",
    "user%elsewhere.example@mx.test.example",
    "user%elsewhere.example@localhost",
    "user%elsewhere.example@[127.0.0.1]",
    "user%elsewhere.example%mx.test.example@mx.test.example",
    "user%elsewhere.example.@mx.test.example",
    "elsewhere.example!user@mx.test.example",
    "elsewhere.example!user@localhost",
    "elsewhere.example!user",
    "user%elsewhere.example",
    '"user@elsewhere.example"@mx.test.example',
    '"user%elsewhere.example"@mx.test.example',
    '"elsewhere.example!user"@mx.test.example',
    '"user%elsewhere.example"@localhost',
    '"user@elsewhere.example"',
    '"user"@elsewhere.example',
    "@mx.test.example:user@elsewhere.example",
    "@mx.test.example,@localhost:user@elsewhere.example",
    "@localhost:user%elsewhere.example@mx.test.example",
    "user@elsewhere.example@mx.test.example",
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    "user@192.0.2.1",
    "user@mx.test.example.elsewhere.example",
    "user@localhost.elsewhere.example",
    "user@elsewhere.example.mx",
    "user@elsewhere..example",
    "mx.test.example!elsewhere.example!user",
]


def test_open_relay_battery(make_smtpd):
    sd = make_smtpd(main_cf={
        "mynetworks": "192.0.2.0/24",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    })
    accepted = []
    # Eight forms per session: every refusal counts as an error, and
    # smtpd_hard_error_limit (20) would end a longer session.
    for start in range(0, len(RELAY_FORMS), 8):
        s = smtplib.SMTP(sd.host, sd.port, timeout=30)
        s.ehlo("client.example")
        s.mail("sender@client.example")
        # The control: a local address is accepted, so the refusals below
        # mean something.
        assert s.rcpt("postmaster@mx.test.example")[0] == 250
        for form in RELAY_FORMS[start:start + 8]:
            code, msg = s.docmd(f"RCPT TO:<{form}>")
            # Refused for good: relay denied, or not an address at all;
            # never accepted, never a temporary answer to retry.
            if code not in (501, 554):
                accepted.append((form, code, msg))
        s.quit()
    assert accepted == [], f"relayed: {accepted}"
    assert len(RELAY_FORMS) >= 25
