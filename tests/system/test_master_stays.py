"""Issue 11 "Stays up": master refuses what would break it, and a master
killed by SIGKILL is recoverable at once.

- a reload with a main.cf that `postern check` rejects keeps the running
  children and exits non-zero; a start with one exits non-zero and
  serves nothing;
- run as root, check/start refuse a file mail_owner cannot read;
- a service whose processes fail at startup is throttled
  (service_throttle_time), as Postfix's master does;
- after kill -9 of master, idle children exit within a second, one in a
  transaction finishes it; status and stop see leftovers by PID, and
  `postern start` right away works.

Real master, real children (tests/system/test_master.py's Master), SMTP
with smtplib; everything stopped by PID.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from harness.process import wait_until
from harness.system import alive, child_pids as children, exe_name
from test_master import MSG, Master

BAD_LINES = [
    ("smtpd_timeout = 12parsecs", "smtpd_timeout"),
    ("smtpd_recipient_restrictions = permit_mynetworks, reject_no_such_thing",
     "reject_no_such_thing"),
    ("virtual_alias_maps = texthash:/nonexistent/postern-aliases", "/nonexistent/postern-aliases"),
]


@pytest.fixture
def master(postern_build, postern):
    m = Master(postern_build, postern)
    yield m
    m.stop()
    pid = daemon_pid(m)
    if pid:
        m.run("stop")
    m.sd.cleanup()


def daemon_pid(m):
    res = m.run("status")
    if res.returncode == 0:
        return int(res.stdout.split("PID ")[1].rstrip(")\n"))
    return None


def maincf(m):
    return os.path.join(m.sd.confdir, "main.cf")


def kids_of(pid, name):
    return sorted(k for k in children(pid) if exe_name(k) == name)


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_reload_with_a_bad_main_cf_keeps_the_running_configuration(master):
    master.start_fg()
    pid = master.proc.pid
    smtpds = kids_of(pid, "smtpd")
    assert smtpds
    with open(maincf(master)) as f:
        good = f.read()
    for n, (line, what) in enumerate(BAD_LINES, 1):
        with open(maincf(master), "w") as f:
            f.write(good + line + "\n")
        res = master.run("reload")
        assert res.returncode != 0, (line, res.stdout, res.stderr)
        assert "reload failed:" in res.stderr and what in res.stderr, res.stderr
        assert maincf(master) + ", line" in res.stderr, res.stderr
        wait_until(lambda: master.log().count("reload failed: keeping the running "
                                              "configuration") == n,
                   timeout=10, what="reload failure logged")
        assert what in master.log()
        # The children were not retired: same processes, still serving.
        assert kids_of(pid, "smtpd") == smtpds
        master.send()
        wait_until(lambda: len(master.sd.queued_files()) == n, timeout=10,
                   what="message queued after the failed reload")
    # A good configuration reloads, exit 0.
    with open(maincf(master), "w") as f:
        f.write(good)
    res = master.run("reload")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: [k for k in kids_of(pid, "smtpd") if k not in smtpds],
               timeout=10, what="new smtpd after the good reload")


def test_start_with_a_bad_main_cf_refuses_with_the_errors(master):
    master.config()
    with open(maincf(master)) as f:
        good = f.read()
    for line, what in BAD_LINES:
        with open(maincf(master), "w") as f:
            f.write(good + line + "\n")
        res = master.run("start")
        assert res.returncode != 0, (line, res.stderr)
        assert what in res.stderr and maincf(master) + ", line" in res.stderr, res.stderr
        assert "not starting" in res.stderr, res.stderr
        assert master.run("status").returncode == 1
        assert not listening(master.sd.port)


def test_check_and_start_check_as_mail_owner(master):
    master.config()
    path = maincf(master)
    os.chmod(path, 0o600)
    res = master.run("check")
    assert res.returncode == 1
    assert f"{path}: not readable by mail_owner postern (Permission denied)" in res.stderr
    assert f"chgrp postern {path}; chmod 0640 {path}" in res.stderr, res.stderr
    res = master.run("start")
    assert res.returncode != 0 and "not readable by mail_owner postern" in res.stderr
    assert not listening(master.sd.port)
    os.chmod(path, 0o644)
    assert master.run("check").returncode == 0


def test_a_service_that_fails_at_startup_is_throttled(master):
    master.sd.main["service_throttle_time"] = "3s"
    master.config()
    with open(os.path.join(master.sd.confdir, "master.cf"), "a") as f:
        f.write("broken unix n - n - 1 /bin/false\n")
    master.config = lambda: None  # keep the edited master.cf
    master.start_fg()
    throttled = "warning: /bin/false: bad command startup -- throttling"
    wait_until(lambda: throttled in master.log(), timeout=10, what="throttling logged")
    assert "warning: process /bin/false pid " in master.log()
    assert " exit status 1" in master.log()
    t0 = time.monotonic()
    # Once per interval: within one interval, one start and one message.
    time.sleep(2)
    assert master.log().count(throttled) == 1
    assert master.log().count("process /bin/false pid ") == 1
    # After service_throttle_time it is tried again (and throttled again).
    wait_until(lambda: master.log().count(throttled) == 2, timeout=10,
               what="second throttling after service_throttle_time")
    assert time.monotonic() - t0 >= 0.5
    assert master.log().count("process /bin/false pid ") == 2
    master.wait_smtp()  # the other services are unaffected


def session_in_transaction(m):
    c = smtplib.SMTP(m.sd.host, m.sd.port, timeout=10)
    c.ehlo("client.test.example")
    code, _ = c.mail("a@test.example")
    assert code == 250
    code, _ = c.rcpt("b@localhost")
    assert code == 250
    return c


def test_kill_9_master_children_finish_and_exit_status_stop_start(master):
    master.start_fg()
    pid = master.proc.pid
    kids = children(pid)
    assert {"smtpd", "pickup"} <= {exe_name(k) for k in kids}
    c = session_in_transaction(master)
    os.kill(pid, signal.SIGKILL)
    master.proc.wait(timeout=5)
    # Idle children notice within a second; the smtpd holding our
    # transaction stays for it.
    t0 = time.monotonic()
    wait_until(lambda: len([k for k in kids if alive(k)]) <= 1, timeout=1.0,
               what="idle children exit within 1 s of master's death")
    left = [k for k in kids if alive(k)]
    assert len(left) == 1 and exe_name(left[0]) == "smtpd", left
    assert time.monotonic() - t0 <= 1.5
    # status sees the leftover by PID.
    res = master.run("status")
    assert res.returncode == 1
    assert "not running, but 1 of its daemons still run" in res.stdout, res.stdout
    assert f"smtpd pid {left[0]}" in res.stdout
    # The transaction completes, then that smtpd exits too.
    code, _ = c.data(MSG)
    assert code == 250
    c.quit()
    wait_until(lambda: not alive(left[0]), timeout=2, what="smtpd exits after the transaction")
    assert len(master.sd.queued_files()) == 1
    assert master.run("status").stdout.strip() == "postern is not running"

    # Again, and this time `postern start` at once: it stops the leftover
    # by PID and serves within 2 s.
    master.proc = None
    master.config = lambda: None
    master.start_fg()
    pid = master.proc.pid
    kids = children(pid)
    c = session_in_transaction(master)
    os.kill(pid, signal.SIGKILL)
    master.proc.wait(timeout=5)
    t0 = time.monotonic()
    res = master.run("start")
    assert res.returncode == 0, res.stderr
    master.wait_smtp()
    assert time.monotonic() - t0 < 2.0, time.monotonic() - t0
    assert not [k for k in kids if alive(k)], "an orphan of the killed master is left"
    c.close()
    new = daemon_pid(master)
    assert new and new != pid
    master.send()

    # And `postern stop` after a kill -9 stops the leftovers by PID.
    kids = children(new)
    c = session_in_transaction(master)
    os.kill(new, signal.SIGKILL)
    res = master.run("stop")
    assert res.returncode == 0, res.stderr
    # At least the smtpd holding the open transaction; an idle one may or
    # may not have exited on its own already.
    # Whether `stop` found master already gone or saw it exit after its
    # SIGTERM (kill -9 takes effect asynchronously), it stops the leftovers.
    assert re.search(r"(master is not running|master exited without stopping its daemons): "
                     r"stopped \d+ daemons? it left running: .*smtpd pid \d+",
                     res.stdout), res.stdout
    assert not [k for k in kids if alive(k)]
    c.close()
    res = master.run("stop")
    assert res.returncode == 1 and "not running" in res.stderr


def test_stop_whose_master_dies_before_stopping_children_stops_them(master, postern_build):
    """`postern stop` sends SIGTERM; if master is killed before it acts on
    it, its children are still running when the master lock is released.
    A stop must not return with them running. Made deterministic: master is
    SIGSTOPped, stop sends its SIGTERM, then master gets SIGKILL."""
    master.config()
    res = master.run("start")
    assert res.returncode == 0, res.stderr
    master.wait_smtp()
    pid = daemon_pid(master)
    kids = children(pid)
    c = session_in_transaction(master)
    os.kill(pid, signal.SIGSTOP)
    stop = subprocess.Popen([os.path.join(postern_build, "bin", "postern"), "-c",
                             master.sd.confdir, "stop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert stop.stdout.readline() == "postern: stopping the postern mail system\n"
        os.kill(pid, signal.SIGKILL)
        out, err = stop.communicate(timeout=30)
    finally:
        if stop.poll() is None:
            stop.kill()
            stop.wait()
    assert stop.returncode == 0, err
    assert re.search(r"^postern: master exited without stopping its daemons: stopped \d+ "
                     r"daemons? it left running: .*smtpd pid \d+", out, re.M), out
    assert not [k for k in kids if alive(k)]
    c.close()
