"""The daemon skeleton (lib/daemon): privilege drop, pid files,
"daemon started", and children that exit when master dies.

smtpd is started by hand (`smtpd -c DIR`, as an administrator would) and
under master (MailSystem: smtpd, pickup, qmgr, virtual); uids come from
/proc/PID/status, pids from /proc, the log from maillog_file. Every wait
is a bounded poll.
"""

import glob
import os
import pwd
import signal
import smtplib
import subprocess

from harness.process import wait_until
from harness.smtpd import Smtpd
from harness.system import MailSystem, alive, child_pids, exe_name, proc_groups, proc_ids

MSG = b"From: a@test.example\r\nTo: b@localhost\r\nSubject: hi\r\n\r\nbody\r\n"








def send_one(sd):
    with smtplib.SMTP(sd.host, sd.port, timeout=10) as c:
        c.ehlo("client.test.example")
        c.sendmail("a@test.example", ["b@localhost"], MSG)


def expected_owner():
    """Who a daemon started by this test runs as."""
    if os.getuid() == 0:
        pw = pwd.getpwnam("postern")
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


def pid_file_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def test_smtpd_by_hand_runs_as_mail_owner_and_serves(postern_build):
    uid, gid = expected_owner()
    with Smtpd(postern_build) as sd:  # started by __enter__: smtpd -c DIR
        pid = sd.proc.pid
        assert proc_ids(pid, "Uid") == [uid] * 4
        assert proc_ids(pid, "Gid") == [gid] * 4
        if os.getuid() == 0:
            assert proc_groups(pid) == [gid]
        send_one(sd)
        wait_until(lambda: len(sd.queued_files()) == 1, timeout=10, what="queued message")
        # The queue file belongs to mail_owner: qmgr (mail_owner) can take it.
        assert os.stat(sd.queued_files()[0]).st_uid == uid
        line = f"postern/smtpd[{pid}]: daemon started -- version "
        assert any(l.startswith(line) and l.endswith(f", configuration {sd.confdir}")
                   for l in sd.log_lines()), sd.log_lines()
        path = os.path.join(sd.queue, "pid", f"smtpd.{pid}.pid")
        assert pid_file_pid(path) == pid
        sd.stop()
        assert not os.path.exists(path), "pid file left after a clean exit"


def test_smtpd_debug_flag_keeps_root(postern_build):
    sd = Smtpd(postern_build)
    try:
        sd.start(args=("-R",))
        pid = sd.proc.pid
        assert proc_ids(pid, "Uid") == [os.getuid()] * 4
        if os.getuid() == 0:
            assert (f"postern/smtpd[{pid}]: warning: running as root (-R): for debugging "
                    "only, never in production") in sd.log_lines()
        send_one(sd)
        wait_until(lambda: len(sd.queued_files()) == 1, timeout=10, what="queued message")
    finally:
        sd.cleanup()


def test_postern_smtpd_runs_as_mail_owner(postern_build, postern):
    uid, _ = expected_owner()
    sd = Smtpd(postern_build)
    try:
        sd.write_config()
        os.makedirs(sd.queue, exist_ok=True)
        proc = subprocess.Popen([os.path.join(postern_build, "bin", "postern"), "-c",
                                 sd.confdir, "smtpd"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(sd._banner_ok, timeout=20, what="banner of postern smtpd")
            assert proc_ids(proc.pid, "Uid") == [uid] * 4
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
    finally:
        sd.cleanup()


def system(postern_build, postern):
    ms = MailSystem(postern_build, postern)
    ms.sd.sqlite_db(postern)
    return ms


def test_children_pid_files_started_log_and_privileges(postern_build, postern):
    uid, _ = expected_owner()
    with system(postern_build, postern) as ms:
        ms.start()
        kids = {p: exe_name(p) for p in child_pids(ms.proc.pid)}
        assert sorted(set(kids.values())) == ["pickup", "qmgr", "smtpd", "virtual"], kids
        # Each child (event servers and the virtual request server) logs
        # "daemon started" and writes its pid file.
        for pid, name in kids.items():
            ms.wait_log(f"postern/{name}[{pid}]: daemon started -- version")
        files = [f for f in glob.glob(os.path.join(ms.sd.queue, "pid", "*.pid"))
                 if not f.endswith("/master.pid")]
        named = {pid_file_pid(f): os.path.basename(f) for f in files}
        assert set(named) == set(kids), (named, kids)
        for pid, base in named.items():
            assert base == f"{kids[pid]}.{kids[pid]}.{pid}.pid" or \
                base == f"{kids[pid]}.smtp.{pid}.pid" or base.endswith(f".{pid}.pid"), base
            assert base.startswith(kids[pid] + ".")
        assert pid_file_pid(os.path.join(ms.sd.queue, "pid", "master.pid")) == ms.proc.pid
        # unpriv y/-: mail_owner; pickup keeps root for now (maildrop).
        for pid, name in kids.items():
            if name in ("smtpd", "qmgr"):
                assert proc_ids(pid, "Uid") == [uid] * 4, name


def test_children_exit_when_master_is_killed(postern_build, postern):
    with system(postern_build, postern) as ms:
        ms.start()
        kids = child_pids(ms.proc.pid)
        assert len(kids) >= 4
        os.kill(ms.proc.pid, signal.SIGKILL)
        ms.proc.wait(timeout=10)
        wait_until(lambda: not any(alive(p) for p in kids), timeout=15,
                   what=f"children {kids} to exit after master was killed")
        ms.wait_log("master is gone")
