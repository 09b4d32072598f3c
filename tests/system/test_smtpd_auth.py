"""SMTP AUTH in smtpd, with real clients (smtplib, swaks, fail2ban-regex),
on postern's demo database (every demo password is "demo"):

  - a submission service as conf/master.cf ships it (encrypt, AUTH only
    after STARTTLS, permit_sasl_authenticated or reject): no AUTH before
    STARTTLS (EHLO does not offer it, AUTH gets 530); after it, AUTH PLAIN
    and AUTH LOGIN succeed with the database password, the authenticated
    user relays to an outside domain (the message waits in the queue),
    the log line says "client=..., sasl_method=PLAIN,
    sasl_username=alice@example.com", the Received header "with ESMTPSA";
  - a wrong password, an unknown user, an inactive mailbox and a mailbox
    of an inactive domain get "535 5.7.8 Error: authentication failed:
    authentication failure" and Postfix's warning line, which fail2ban's
    shipped postfix filter matches; after smtpd_sasl_failure_limit
    failures the session ends with 421;
  - an unauthenticated client cannot relay; "*" aborts an exchange; a
    response longer than smtpd_sasl_response_limit is refused;
  - reject_sender_login_mismatch: a user may send as itself and as an
    alias that points to it, not as another mailbox, and an
    unauthenticated client may not use a mailbox's address;
  - passwords never reach the log, even with -v;
  - smtpd_sasl_type = cyrus with a sasldb made by saslpasswd2 (the seed
    guide's smtpd.conf) authenticates through smtpd too.
"""

import base64
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess

import pytest

from harness.certs import client_ctx as ctx
from harness.smtpclient import Raw
from harness.smtpd import Smtpd

SUBMISSION = {
    "smtpd_tls_security_level": "encrypt",
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_tls_auth_only": "yes",
    "smtpd_reject_unlisted_recipient": "no",
    "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
    "smtpd_helo_restrictions": "",
    "smtpd_sender_restrictions": "",
    "smtpd_recipient_restrictions": "",
    "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
}
F2B_FILTER = 'postfix[mode=auth, _daemon="postern(-\w+)?/\w+(?:/smtp[ds])?"]'
PLAIN_OK = base64.b64encode(b"\0alice@example.com\0demo").decode()


def main_cf(pki, **extra):
    m = {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki.server_cert,
        "smtpd_tls_key_file": pki.server_key,
        "mynetworks": "192.0.2.0/24",
        "virtual_mailbox_domains": "db:domains",
        "virtual_mailbox_maps": "db:mailboxes",
        "virtual_alias_maps": "db:aliases",
        "smtpd_sasl_failure_delay": "0",
    }
    m.update(extra)
    return m


def start(postern_build, postern, pki, main=None, services=None, args=()):
    sd = Smtpd(postern_build, main_cf=main or main_cf(pki),
               services=services if services is not None else [("submission", SUBMISSION)])
    sd.sqlite_db(postern)
    return sd.start(args=args)


def tls_session(sd, port):
    c = Raw(sd.host, port)
    c.cmd("EHLO client.example")
    assert c.cmd("STARTTLS").startswith("220")
    c.starttls(ctx())
    return c


def test_submission(postern_build, postern, pki):
    sd = start(postern_build, postern, pki)
    try:
        port = sd.extra_ports[0]
        c = Raw(sd.host, port)
        ehlo = c.cmd("EHLO client.example")
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo
        assert c.cmd("AUTH PLAIN " + PLAIN_OK) == "530 5.7.0 Must issue a STARTTLS command first"
        assert c.cmd("STARTTLS").startswith("220")
        c.starttls(ctx())
        ehlo = c.cmd("EHLO client.example")
        assert "250-AUTH PLAIN LOGIN" in ehlo
        # Not logged in: no mail at all on this service.
        c.cmd("MAIL FROM:<alice@example.com>")
        assert c.cmd("RCPT TO:<someone@remote.example>").startswith("554 5.7.1")
        c.cmd("RSET")
        assert c.cmd("AUTH PLAIN " + PLAIN_OK) == "235 2.7.0 Authentication successful"
        assert c.cmd("AUTH PLAIN " + PLAIN_OK) == "503 5.5.1 Error: already authenticated"
        assert c.cmd("MAIL FROM:<alice@example.com>").startswith("250")
        assert c.cmd("RCPT TO:<someone@remote.example>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(b"Subject: out\r\n\r\nhello\r\n.\r\n")
        assert c.reply().startswith("250")
        c.cmd("QUIT")
        c.close()
        sd.wait_log(r": client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, "
                    r"sasl_username=alice@example\.com$")
        sd.wait_log(r"disconnect from .* ehlo=2 starttls=1 auth=1/3 mail=2 rcpt=1/2 data=1 "
                    r"rset=1 quit=1")
        q = sd.queued_bytes()
        assert b"with ESMTPSA id" in q and b"someone@remote.example" in q
    finally:
        sd.cleanup()


def test_smtplib_plain_and_login(postern_build, postern, pki):
    sd = start(postern_build, postern, pki)
    try:
        for mech in ("PLAIN", "LOGIN"):
            s = smtplib.SMTP(sd.host, sd.extra_ports[0], timeout=20)
            s.starttls(context=ctx())
            s.ehlo()
            s.user, s.password = "alice@example.com", "demo"
            code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()))
            assert code == 235
            s.sendmail("alice@example.com", ["x@remote.example"], b"Subject: t\r\n\r\nbody\r\n")
            s.quit()
        sd.wait_log(r"sasl_method=LOGIN, sasl_username=alice@example\.com")
    finally:
        sd.cleanup()


def test_swaks(postern_build, postern, pki):
    sd = start(postern_build, postern, pki)
    try:
        res = subprocess.run(
            ["swaks", "--server", f"{sd.host}:{sd.extra_ports[0]}", "--tls", "--auth", "LOGIN",
             "--auth-user", "alice@example.com", "--auth-password", "demo",
             "--from", "alice@example.com", "--to", "friend@remote.example", "--timeout", "20"],
            capture_output=True, timeout=60)
        out = res.stdout.decode(errors="replace")
        assert res.returncode == 0, out
        assert "235 2.7.0 Authentication successful" in out
    finally:
        sd.cleanup()


def set_active(db, sql):
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()


def test_failures_and_fail2ban(postern_build, postern, pki):
    sd = Smtpd(postern_build, main_cf=main_cf(pki),
               services=[("submission", SUBMISSION)])
    db = sd.sqlite_db(postern)
    set_active(db, "UPDATE mailboxes SET active = 0 WHERE address = 'bob@example.com'")
    set_active(db, "UPDATE domains SET active = 0 WHERE name = 'example.net'")
    sd.start()
    try:
        cases = [("alice@example.com", "wrong"), ("nobody@example.com", "demo"),
                 ("bob@example.com", "demo"), ("carol@example.net", "demo")]
        for user, password in cases:
            c = tls_session(sd, sd.extra_ports[0])
            c.cmd("EHLO client.example")
            resp = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            assert c.cmd("AUTH PLAIN " + resp) == \
                "535 5.7.8 Error: authentication failed: authentication failure"
            c.close()
        lines = re.findall(r"warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication "
                           r"failed: authentication failure", sd.log_text())
        assert len(lines) == 4
        # Postfix names the login the client tried.
        assert re.search(r"SASL PLAIN authentication failed: authentication failure, "
                         r"sasl_username=alice@example\.com$", sd.log_text(), re.M)
        assert "demo" not in sd.log_text().replace("mail.demo", "")
        # fail2ban's shipped postfix filter, as conf/fail2ban/postern.local
        # runs it (its daemon pattern taking postern/ for postfix/).
        res = subprocess.run(["fail2ban-regex", sd.maillog, F2B_FILTER],
                             capture_output=True, text=True, timeout=120)
        m = re.search(r"Failregex: (\d+) total", res.stdout)
        assert m and int(m.group(1)) == 4, res.stdout
    finally:
        sd.cleanup()


def test_failure_limit_abort_and_limits(postern_build, postern, pki):
    sd = start(postern_build, postern, pki,
               main=main_cf(pki, smtpd_sasl_failure_limit="2", smtpd_sasl_response_limit="100"))
    try:
        c = tls_session(sd, sd.extra_ports[0])
        c.cmd("EHLO client.example")
        assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.cmd("*") == "501 5.7.0 Authentication aborted"
        assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.cmd("A" * 200) == "500 5.5.6 SASL response limit exceeded"
        assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.cmd("not base64!").startswith("535 5.7.8")
        assert c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.com\0x").decode()) \
            .startswith("535 5.7.8")
        # The second failure ends the session.
        assert c.reply().startswith("421 4.7.0")
        assert c.closed()
        sd.wait_log(r"SASL LOGIN authentication aborted")
        sd.wait_log(r"too many errors after AUTH from unknown\[127\.0\.0\.1\]")
    finally:
        sd.cleanup()


def test_sender_login_mismatch(postern_build, postern, pki):
    main = main_cf(pki, smtpd_sasl_auth_enable="yes",
                   smtpd_sender_login_maps="db:sender_login",
                   smtpd_sender_restrictions="reject_sender_login_mismatch")
    sd = start(postern_build, postern, pki, main=main, services=[])
    try:
        c = tls_session(sd, sd.port)
        c.cmd("EHLO client.example")
        assert c.cmd("AUTH PLAIN " + PLAIN_OK).startswith("235")
        # smtpd_delay_reject = yes: sender restrictions answer at RCPT.
        for sender, want in (("bob@example.com", "553 5.7.1 <bob@example.com>: Sender address "
                              "rejected: not owned by user alice@example.com"),
                             ("info@example.com", "250"),  # an alias of alice
                             ("alice@example.com", "250")):
            assert c.cmd(f"MAIL FROM:<{sender}>").startswith("250")
            assert c.cmd("RCPT TO:<bob@example.com>").startswith(want), sender
            c.cmd("RSET")
        c.close()
        c = Raw(sd.host, sd.port)
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<alice@example.com>")
        assert c.cmd("RCPT TO:<bob@example.com>") == \
            "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in"
        c.cmd("RSET")
        c.cmd("MAIL FROM:<someone@remote.example>")
        assert c.cmd("RCPT TO:<bob@example.com>").startswith("250")
        c.close()
    finally:
        sd.cleanup()


def test_no_password_in_verbose_log(postern_build, postern, pki):
    sd = start(postern_build, postern, pki, args=("-v",))
    try:
        c = tls_session(sd, sd.extra_ports[0])
        c.cmd("EHLO client.example")
        assert c.cmd("AUTH PLAIN " + PLAIN_OK).startswith("235")
        c.close()
        c = tls_session(sd, sd.extra_ports[0])
        c.cmd("EHLO client.example")
        c.cmd("AUTH LOGIN")
        c.cmd(base64.b64encode(b"alice@example.com").decode())
        assert c.cmd(base64.b64encode(b"demo-wrong-pw").decode()).startswith("535")
        c.close()
        sd.wait_log(r"< unknown\[127\.0\.0\.1\]: AUTH \*\*\*\*$")
        text = sd.log_text()
        for secret in (PLAIN_OK, "demo-wrong-pw", base64.b64encode(b"demo-wrong-pw").decode()):
            assert secret not in text
    finally:
        sd.cleanup()


def test_sasl_exceptions_networks(postern_build, postern, pki):
    main = main_cf(pki, smtpd_sasl_auth_enable="yes", smtpd_sasl_exceptions_networks="127.0.0.1")
    sd = start(postern_build, postern, pki, main=main, services=[])
    try:
        c = Raw(sd.host, sd.port)
        assert "AUTH" not in c.cmd("EHLO client.example")
        # Postfix 3.7: only the keyword is hidden; AUTH itself works.
        assert c.cmd("AUTH PLAIN " + PLAIN_OK) == "235 2.7.0 Authentication successful"
        c.close()
    finally:
        sd.cleanup()


def test_cyrus_sasldb(postern_build, postern, pki):
    """The seed guide's Cyrus setup: smtpd.conf in $config_directory/sasl,
    a user made with saslpasswd2."""
    sd = Smtpd(postern_build, main_cf=main_cf(pki, smtpd_sasl_type="cyrus",
                                              smtpd_sasl_path="smtpd",
                                              smtpd_sasl_local_domain="example.com"),
               services=[("submission", SUBMISSION)])
    sasldb = os.path.join(sd.tmpdir, "sasldb2")
    os.makedirs(os.path.join(sd.confdir, "sasl"))
    with open(os.path.join(sd.confdir, "sasl", "smtpd.conf"), "w") as f:
        f.write(f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
                f"sasldb_path: {sasldb}\n")
    r = subprocess.run(["saslpasswd2", "-p", "-c", "-f", sasldb, "-u", "example.com", "dave"],
                       input="cyrus-pw", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    shutil.chown(sasldb, user="postern")
    sd.start()
    try:
        for password, want in (("cyrus-pw", "235"), ("bad", "535")):
            c = tls_session(sd, sd.extra_ports[0])
            assert "250-AUTH PLAIN LOGIN" in c.cmd("EHLO client.example")
            resp = base64.b64encode(f"\0dave@example.com\0{password}".encode()).decode()
            assert c.cmd("AUTH PLAIN " + resp).startswith(want)
            c.close()
        sd.wait_log(r"warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed")
    finally:
        sd.cleanup()


def test_tab_separated_auth_and_auth_param(postern_build, postern, pki):
    """White space as smtp_cmd.c splits it: "AUTH PLAIN<TAB>resp" logs in
    (as with Postfix) and never puts the response in a log line; a
    mechanism name outside [A-Z0-9-_] is a syntax error. MAIL's AUTH=<>
    leaves no sasl_sender."""
    main = main_cf(pki, smtpd_sasl_auth_enable="yes")
    sd = start(postern_build, postern, pki, main=main, services=[], args=("-v",))
    try:
        c = Raw(sd.host, sd.port)
        c.cmd("EHLO client.example")
        assert c.cmd("AUTH PL\x01AIN " + PLAIN_OK) == "501 5.5.4 Syntax: AUTH mechanism"
        assert c.cmd("AUTH PLAIN " + PLAIN_OK + " extra") == "501 5.5.4 Syntax: AUTH mechanism"
        assert c.cmd("AUTH PLAIN\t" + PLAIN_OK) == "235 2.7.0 Authentication successful"
        assert c.cmd("MAIL FROM:<alice@example.com> AUTH=<>").startswith("250")
        assert c.cmd("RCPT TO:<bob@example.com>").startswith("250")
        c.close()
        line = sd.wait_log(r"client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN.*$").group(0)
        assert "sasl_sender" not in line, line
        assert PLAIN_OK not in sd.log_text()
    finally:
        sd.cleanup()
