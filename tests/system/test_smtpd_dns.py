"""smtpd's DNS restrictions against a real DNS server on loopback.

reject_unknown_sender_domain and reject_unknown_recipient_domain, with
smtpd pointed at a private authoritative responder (harness/dnsserver.py)
through `dns_servers = 127.0.0.1:PORT`, as a client sees them with
smtplib, and the NOQUEUE log lines:

  - a domain with only an A record, or only an MX record, is accepted;
  - a domain that does not exist (NXDOMAIN), or has no MX/A/AAAA record,
    gets 450 4.1.8 (sender) / 450 4.1.2 (recipient) "Domain not found"
    (unknown_address_reject_code);
  - a null MX (RFC 7505 "0 .") gets 556 5.7.27 / 556 5.1.10 "Domain ...
    does not accept mail (nullMX)";
  - a server that does not answer (timeout) or answers SERVFAIL gives a
    4xx (defer_if_permit), never a 5xx;
  - the null sender, address literals and domains this server is final
    destination for are not looked up at all;
  - unknown_address_reject_code and unknown_address_tempfail_action as
    master.cf -o overrides.
"""

import os
import smtplib

import pytest

from harness.dnsserver import DnsServer
from harness.smtpd import Smtpd

ZONE = {
    "a-only.test": {"A": ["192.0.2.10"]},
    "aaaa-only.test": {"AAAA": ["2001:db8::10"]},
    "mx-only.test": {"MX": ["10 mail.elsewhere.test"]},
    "nullmx.test": {"MX": ["0 ."]},
    "nodata.test": {"TXT": ['"no mail here"']},
}


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(ZONE, drop={"slow.test"}, servfail={"broken.test"}) as d:
        yield d


@pytest.fixture(scope="module")
def sd(postern_build, dns_server):
    # One try, one second: a dropped query fails fast. c-ares reads
    # RES_OPTIONS like the system resolver; c-ares 1.18 (Debian 12) knows
    # the retrans:/retry: spellings, later ones timeout:/attempts:.
    old = os.environ.get("RES_OPTIONS")
    os.environ["RES_OPTIONS"] = "timeout:1 attempts:1 retrans:1000 retry:1"
    s = Smtpd(postern_build,
              main_cf={
                  "dns_servers": f"127.0.0.1:{dns_server.port}",
                  "smtpd_sender_restrictions": "reject_unknown_sender_domain",
                  "smtpd_recipient_restrictions": "reject_unknown_recipient_domain",
              },
              services=[("strict", {"unknown_address_reject_code": "550",
                                    "unknown_address_tempfail_action": "defer"})])
    try:
        s.start()
        yield s
    finally:
        if old is None:
            os.environ.pop("RES_OPTIONS", None)
        else:
            os.environ["RES_OPTIONS"] = old
        s.cleanup()



@pytest.fixture
def tmp_path(owner_tmp_path):
    """Configurations live where mail_owner can read them: `postern check`
    run as root checks that it can (conftest.py)."""
    return owner_tmp_path

def transaction(sd, sender, rcpt, port=None):
    """MAIL FROM:<sender>, RCPT TO:<rcpt>: the RCPT reply as (code, text)."""
    s = smtplib.SMTP(sd.host, port or sd.port, timeout=30)
    try:
        s.ehlo("client.example")
        code, msg = s.mail(sender)
        assert code == 250, (code, msg)
        code, msg = s.rcpt(rcpt)
        return code, msg.decode()
    finally:
        s.quit()


@pytest.mark.parametrize("sender,rcpt", [
    ("s@a-only.test", "u@mx-only.test"),
    ("s@mx-only.test", "u@a-only.test"),
    ("s@aaaa-only.test", "u@A-Only.Test"),
])
def test_existing_domains_accepted(sd, sender, rcpt):
    assert transaction(sd, sender, rcpt) == (250, "2.1.5 Ok")


@pytest.mark.parametrize("domain", ["nx.test", "nodata.test"])
def test_unknown_sender_domain(sd, domain):
    sender = f"s@{domain}"
    code, msg = transaction(sd, sender, "u@a-only.test")
    assert (code, msg) == (450, f"4.1.8 <{sender}>: Sender address rejected: Domain not found")
    sd.wait_log(rf"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 450 4\.1\.8 "
                rf"<{sender}>: Sender address rejected: Domain not found; "
                rf"from=<{sender}> to=<u@a-only\.test> proto=ESMTP helo=<client\.example>$")


def test_unknown_recipient_domain(sd):
    code, msg = transaction(sd, "s@a-only.test", "u@nx.test")
    assert (code, msg) == (450, "4.1.2 <u@nx.test>: Recipient address rejected: Domain not found")
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 450 4\.1\.2 "
                r"<u@nx\.test>: Recipient address rejected: Domain not found; "
                r"from=<s@a-only\.test> to=<u@nx\.test> proto=ESMTP")


def test_null_mx(sd):
    assert transaction(sd, "s@nullmx.test", "u@a-only.test") == (
        556, "5.7.27 <s@nullmx.test>: Sender address rejected: "
             "Domain nullmx.test does not accept mail (nullMX)")
    assert transaction(sd, "s@a-only.test", "u@nullmx.test") == (
        556, "5.1.10 <u@nullmx.test>: Recipient address rejected: "
             "Domain nullmx.test does not accept mail (nullMX)")
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 556 5\.1\.10 "
                r"<u@nullmx\.test>: Recipient address rejected: Domain nullmx\.test does "
                r"not accept mail \(nullMX\);")


@pytest.mark.parametrize("domain", ["slow.test", "broken.test"])
def test_dns_failure_is_temporary(sd, domain):
    code, msg = transaction(sd, f"s@{domain}", "u@a-only.test")
    assert (code, msg) == (450, f"4.1.8 <s@{domain}>: Sender address rejected: Domain not found")
    code, msg = transaction(sd, "s@a-only.test", f"u@{domain}")
    assert (code, msg) == (450, f"4.1.2 <u@{domain}>: Recipient address rejected: "
                                "Domain not found")


def test_tempfail_defer_if_permit_lets_a_reject_win(sd):
    # defer_if_permit: a later 5xx decides, not the DNS failure.
    code, msg = transaction(sd, "s@slow.test", "u@nullmx.test")
    assert code == 556, (code, msg)


def test_no_lookup_for_null_sender_literals_and_own_domains(sd, dns_server):
    before = len(dns_server.queries)
    assert transaction(sd, "", "u@a-only.test") == (250, "2.1.5 Ok")
    assert transaction(sd, "s@[192.0.2.1]", "postmaster@localhost") == (250, "2.1.5 Ok")
    assert transaction(sd, "s@mx.test.example", "u@mx.test.example") == (250, "2.1.5 Ok")
    asked = {name for name, _ in dns_server.queries[before:]}
    assert asked == {"a-only.test"}, asked


def test_service_overrides(sd):
    port = sd.extra_ports[0]
    # unknown_address_reject_code = 550: the class digit follows the code.
    assert transaction(sd, "s@nx.test", "u@a-only.test", port) == (
        550, "5.1.8 <s@nx.test>: Sender address rejected: Domain not found")
    # unknown_address_tempfail_action = defer: 450 even when a reject follows.
    code, msg = transaction(sd, "s@slow.test", "u@nullmx.test", port)
    assert (code, msg) == (450, "4.1.8 <s@slow.test>: Sender address rejected: Domain not found")


def test_check_accepts_the_dns_restrictions(postern, tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    (d / "master.cf").write_text("smtp inet n - n - - smtpd\n")
    (d / "main.cf").write_text(
        "myhostname = a.example\n"
        "dns_servers = 127.0.0.1:5353, [::1]:53\n"
        "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
        "smtpd_recipient_restrictions = reject_unknown_recipient_domain\n")
    r = postern("check", "-c", str(d))
    assert r.returncode == 0, r.stderr
    with open(d / "main.cf", "a") as f:
        f.write("unknown_address_tempfail_action = bounce\n")
    r = postern("check", "-c", str(d))
    assert r.returncode != 0
    assert ('main.cf, line 5: unknown_address_tempfail_action: "bounce": '
            "expected defer or defer_if_permit") in r.stderr, r.stderr
