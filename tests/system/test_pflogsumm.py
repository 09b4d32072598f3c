"""pflogsumm reads postern's log: the line formats are Postfix's.

An administrator's log tooling is the proof that "Postfix's log formats"
holds: Debian's pflogsumm (run with --syslog-name=postern) must count the
messages smtpd received, the client that sent them, and the recipient
smtpd rejected, from the maillog_file smtpd wrote; and, for the whole
system, the messages delivered, deferred and bounced by qmgr and the
virtual agent.
"""

import re
import shutil
import smtplib
import subprocess

from harness.process import wait_until
from harness.smtpd import Smtpd
from harness.system import MailSystem

ACCESS = {
    "virtual_mailbox_domains": "db:domains",
    "virtual_mailbox_maps": "db:mailboxes",
    "virtual_alias_maps": "db:aliases",
    "mynetworks": "192.0.2.0/24",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtpd_reject_unlisted_recipient": "yes",
}


def summary_count(text, label):
    """The number in front of label in pflogsumm's grand totals."""
    m = re.search(r"^\s*(\d+)\s+" + re.escape(label) + r"\s*(\(\d+\s+\w+\))?\s*$",
                  text, re.M)
    assert m, f"no '{label}' line in:\n{text}"
    return int(m.group(1))


def test_pflogsumm_counts_what_smtpd_did(postern_build, postern, request):
    pflogsumm = shutil.which("pflogsumm")
    assert pflogsumm, "pflogsumm missing: run scripts/deps.sh test"
    sd = Smtpd(postern_build, main_cf=ACCESS)
    try:
        sd.sqlite_db(postern)
        sd.start()
        for i in range(3):
            with smtplib.SMTP(sd.host, sd.port, timeout=20) as c:
                c.ehlo("client.example.org")
                c.sendmail("sender@example.org", ["alice@example.com"],
                           f"Subject: t{i}\r\n\r\nbody {i}\r\n")
        with smtplib.SMTP(sd.host, sd.port, timeout=20) as c:
            c.ehlo("client.example.org")
            c.mail("sender@example.org")
            code, _ = c.rcpt("nobody@example.com")
            assert code == 550
        sd.wait_log(r"disconnect from .* rcpt=0/1")
        sd.stop()
        res = subprocess.run([pflogsumm, "--syslog-name=postern", sd.maillog],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert summary_count(out, "received") == 3, out
        assert re.search(r"^\s*1\s+rejected \(\d+%\)\s*$", out, re.M), out
        # The reject details quote the reason smtpd gave.
        assert "User unknown in virtual mailbox table" in out, out
    finally:
        sd.cleanup(keep=request.session.testsfailed > 0)


def test_pflogsumm_counts_deliveries(postern_build, postern):
    pflogsumm = shutil.which("pflogsumm")
    assert pflogsumm, "pflogsumm missing: run scripts/deps.sh test"
    with MailSystem(postern_build, postern) as ms:
        ms.sd.sqlite_db(postern)
        ms.set(transport_maps="inline:{ {carol@example.net = retry:4.4.1 carol is away} }")
        ms.start()
        for i in range(2):
            ms.send("sender@example.org", ["alice@example.com"], f"Subject: d{i}\r\n\r\nx\r\n")
        ms.send("sender@example.org", ["carol@example.net"], "Subject: later\r\n\r\nx\r\n")
        res = ms.run("sendmail", "-f", "bob@example.com", "ghost@example.com",
                     input="Subject: lost\n\nx\n")
        assert res.returncode == 0, res.stderr
        ms.wait_maildir("example.com/alice/", 2)
        ms.wait_log("status=deferred (carol is away)")
        # bob gets the bounce about ghost: a third delivery
        ms.wait_maildir("example.com/bob/", 1)
        wait_until(lambda: ms.log().count(": removed") >= 4, timeout=20, what="removed lines")
        ms.stop()
        res = subprocess.run([pflogsumm, "--syslog-name=postern", ms.sd.maillog],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert summary_count(out, "delivered") == 3, out
        assert summary_count(out, "deferred") == 1, out
        assert summary_count(out, "bounced") == 1, out
        assert "carol is away" in out and "User unknown in virtual mailbox table" in out, out
