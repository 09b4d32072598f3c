"""pflogsumm reads postern's log: the line formats are Postfix's.

An administrator's log tooling is the proof that "Postfix's log formats"
holds: Debian's pflogsumm (run with --syslog-name=postern) must count the
messages smtpd received, the client that sent them, and the recipient
smtpd rejected, from the maillog_file smtpd wrote.
"""

import re
import shutil
import smtplib
import subprocess

from harness.smtpd import Smtpd

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
    m = re.search(r"^\s*(\d+)\s+" + re.escape(label) + r"\s*$", text, re.M)
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
