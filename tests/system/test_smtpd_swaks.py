"""smtpd driven by swaks, with Postfix-style access table files.

swaks is what administrators reach for to test a mail server; these tests
run it (the real Debian program) against a running smtpd whose
restrictions use table files as a Postfix guide writes them: a cidr: table
for clients, a texthash: table for senders and a regexp: table for HELO
names, with the demo database for recipients. Each case asserts swaks's
exit status, the reply it shows, and what reached the queue.
"""

import os
import shutil
import subprocess

import pytest

from harness.smtpd import Smtpd


@pytest.fixture
def sd(postern_build, postern, request):
    sd = Smtpd(postern_build, main_cf={
        "virtual_mailbox_domains": "db:domains",
        "virtual_mailbox_maps": "db:mailboxes",
        "virtual_alias_maps": "db:aliases",
        "mynetworks": "192.0.2.0/24",
        "smtpd_reject_unlisted_recipient": "yes",
        "smtpd_client_restrictions": "check_client_access cidr:$config_directory/clients.cidr",
        "smtpd_helo_restrictions": "check_helo_access regexp:$config_directory/helo.re",
        "smtpd_sender_restrictions":
            "reject_non_fqdn_sender, check_sender_access texthash:$config_directory/senders",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    })
    conf = sd.confdir
    with open(os.path.join(conf, "clients.cidr"), "w") as f:
        f.write("# clients\n127.0.0.9/32   REJECT no mail from this test network\n"
                "::1/128        DUNNO\n")
    with open(os.path.join(conf, "helo.re"), "w") as f:
        f.write("/^localhost$/ REJECT you are not localhost\n"
                "/\\.invalid$/  550 5.7.1 invalid domain in HELO\n")
    with open(os.path.join(conf, "senders"), "w") as f:
        f.write("spammer@example.org   REJECT\n"
                "example.net           DISCARD\n"
                "boss@example.org      OK\n")
    sd.sqlite_db(postern)
    sd.start()
    yield sd
    sd.cleanup(keep=request.session.testsfailed > 0)


def swaks(sd, *args):
    exe = shutil.which("swaks")
    assert exe, "swaks missing: run scripts/deps.sh test"
    cmd = [exe, "--server", f"{sd.host}:{sd.port}", "--timeout", "20",
           "--header", "Subject: swaks test", "--body", "hello from swaks", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_swaks_delivers_to_a_mailbox(sd):
    r = swaks(sd, "--from", "someone@example.org", "--to", "alice@example.com",
              "--helo", "client.example.org")
    assert r.returncode == 0, r.stdout
    assert "<-  250 2.0.0 Ok: queued as " in r.stdout
    qid = r.stdout.split("queued as ")[1].split()[0]
    files = sd.queued_files()
    assert len(files) == 1 and os.path.basename(files[0]) == qid
    assert b"hello from swaks" in sd.queued_bytes()
    sd.wait_log(rf"^{qid}: client=unknown\[127\.0\.0\.1\]$")


def test_swaks_unknown_user_and_relay(sd):
    r = swaks(sd, "--from", "someone@example.org", "--to", "nobody@example.com",
              "--helo", "client.example.org")
    assert r.returncode != 0
    assert ("<** 550 5.1.1 <nobody@example.com>: Recipient address rejected: "
            "User unknown in virtual mailbox table") in r.stdout
    r = swaks(sd, "--from", "someone@example.org", "--to", "victim@elsewhere.example",
              "--helo", "client.example.org")
    assert "<** 554 5.7.1 <victim@elsewhere.example>: Relay access denied" in r.stdout
    assert sd.queued_files() == []


def test_swaks_client_helo_and_sender_tables(sd):
    # cidr: the client 127.0.0.9 is refused (reported at RCPT: smtpd_delay_reject).
    r = swaks(sd, "--from", "someone@example.org", "--to", "alice@example.com",
              "--helo", "client.example.org", "--local-interface", "127.0.0.9")
    assert ("<** 554 5.7.1 <unknown[127.0.0.9]>: Client host rejected: "
            "no mail from this test network") in r.stdout, r.stdout
    # regexp: HELO names
    r = swaks(sd, "--from", "someone@example.org", "--to", "alice@example.com",
              "--helo", "localhost")
    assert ("<** 554 5.7.1 <localhost>: Helo command rejected: "
            "you are not localhost") in r.stdout, r.stdout
    r = swaks(sd, "--from", "someone@example.org", "--to", "alice@example.com",
              "--helo", "host.invalid")
    assert ("<** 550 5.7.1 <host.invalid>: Helo command rejected: "
            "invalid domain in HELO") in r.stdout, r.stdout
    # texthash: senders, full address and domain keys
    r = swaks(sd, "--from", "spammer@example.org", "--to", "alice@example.com",
              "--helo", "client.example.org")
    assert ("<** 554 5.7.1 <spammer@example.org>: Sender address rejected: "
            "Access denied") in r.stdout, r.stdout
    r = swaks(sd, "--from", "anyone@example.net", "--to", "alice@example.com",
              "--helo", "client.example.org")
    assert r.returncode == 0 and "250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    assert sd.queued_files() == []  # DISCARD: accepted, nothing kept
    r = swaks(sd, "--from", "boss@example.org", "--to", "alice@example.com",
              "--helo", "client.example.org")
    assert r.returncode == 0 and "250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    assert len(sd.queued_files()) == 1
    sd.wait_log(r"^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.9\]: 554 5\.7\.1 "
                r"<unknown\[127\.0\.0\.9\]>: Client host rejected: no mail from this test "
                r"network; from=<someone@example\.org> to=<alice@example\.com> proto=ESMTP "
                r"helo=<client\.example\.org>$")
