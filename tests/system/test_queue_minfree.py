"""queue_minfree: smtpd refuses MAIL FROM with Postfix's "452 4.3.1
Insufficient system storage" while the queue file system has no more free
bytes than queue_minfree or than 1.5 x message_size_limit (postconf(5)),
and takes mail again once the limit fits. The queue lives on a small
tmpfs mounted for the test (the tests run as root) and unmounted after.
"""

import os
import smtplib
import subprocess

import pytest

from harness.smtpd import Smtpd

TMPFS_SIZE = 8 * 1024 * 1024


@pytest.fixture
def small_queue(postern_build):
    """make(main_cf) -> a started Smtpd whose queue is an 8 MB tmpfs."""
    made = []

    def make(**main_cf):
        sd = Smtpd(postern_build, main_cf=main_cf)
        os.makedirs(sd.queue)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", sd.queue],
                       check=True, timeout=30)
        made.append(sd)
        return sd.start()
    yield make
    for sd in made:
        try:
            sd.stop()
        finally:
            subprocess.run(["umount", sd.queue], check=False, timeout=30)
            sd.cleanup()


def send(sd):
    with smtplib.SMTP(sd.host, sd.port, timeout=15) as c:
        c.ehlo("client.example")
        code, msg = c.mail("sender@example.org")
        if code != 250:
            return code, msg.decode()
        assert c.rcpt("user@localhost")[0] == 250
        code, msg = c.data(b"Subject: space\r\n\r\nbody\r\n")
        return code, msg.decode()


def test_queue_minfree_above_free_space(small_queue):
    sd = small_queue(queue_minfree=str(2 * TMPFS_SIZE), message_size_limit="1000000")
    code, msg = send(sd)
    assert (code, msg) == (452, "4.3.1 Insufficient system storage")
    sd.wait_log(r"^NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: 452 4\.3\.1 "
                r"Insufficient system storage; proto=ESMTP helo=<client\.example>$")
    sd.wait_log(r"^warning: not enough free space in mail queue: \d+ bytes < queue_minfree$")
    assert sd.queued_files() == []


def test_queue_minfree_lowered_accepts(small_queue):
    sd = small_queue(queue_minfree=str(TMPFS_SIZE // 2), message_size_limit="1000000")
    code, msg = send(sd)
    assert code == 250, msg
    assert "queued as" in msg


def test_one_and_a_half_message_size_limit(small_queue):
    """queue_minfree 0 still needs 1.5 x message_size_limit free (Postfix 2.1+)."""
    sd = small_queue(queue_minfree="0", message_size_limit=str(TMPFS_SIZE))
    code, msg = send(sd)
    assert (code, msg) == (452, "4.3.1 Insufficient system storage")
    sd.wait_log(r"^warning: not enough free space in mail queue: \d+ bytes < "
                r"1\.5\*message size limit$")
