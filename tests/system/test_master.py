"""The master process: postern start-fg|start|stop|reload|status.

Each test writes a private config (tests/system/harness/smtpd.py: main.cf
plus an smtpd inet service on a free 127.0.0.1 port, and a pickup line),
runs the master, talks SMTP to it with smtplib and stops it by PID.
Children are found through /proc (their parent PID) and checked gone
by PID at the end.
"""

import os
import re
import signal
import smtplib

import pytest

from harness import free_port
from harness.process import wait_until
from harness.smtpd import Smtpd
from harness.system import (alive, child_pids as children, exe_name, start_master,
                            stop_master)

MSG = b"From: a@test.example\r\nTo: b@test.example\r\nSubject: hi\r\n\r\nbody\r\n"




class Master:
    def __init__(self, build, postern):
        self.sd = Smtpd(build)
        self.build = build
        self.postern = postern
        self.proc = None

    def config(self):
        self.sd.port = None
        self.sd.write_config()
        with open(os.path.join(self.sd.confdir, "master.cf"), "a") as f:
            f.write("pickup unix n - n 60 1 pickup\n"
                    "qmgr-missing unix n - n 300 1 no-such-daemon\n")
        os.makedirs(self.sd.queue, exist_ok=True)

    def start_fg(self):
        self.config()
        self.proc = start_master(self.build, self.sd.confdir, self.sd.tmpdir)
        self.wait_smtp()
        return self

    def wait_smtp(self):
        wait_until(self.sd._banner_ok, timeout=20, what="smtp banner via master")

    def log(self):
        try:
            with open(self.sd.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def run(self, *args):
        return self.postern("-c", self.sd.confdir, *args)

    def send(self, client=None):
        c = client or smtplib.SMTP(self.sd.host, self.sd.port, timeout=10)
        c.ehlo("client.test.example")
        c.sendmail("a@test.example", ["b@localhost"], MSG)
        if client is None:
            c.quit()

    def stop(self):
        stop_master(self.proc)


@pytest.fixture
def master(postern_build, postern):
    m = Master(postern_build, postern)
    yield m
    m.stop()
    # A test that failed after `postern start` (a daemon, not m.proc)
    # must not leave that master running.
    if m.run("status").returncode == 0:
        m.run("stop")
    m.sd.cleanup()


def queued(m):
    return m.sd.queued_files()


def test_start_fg_serves_smtp_and_stops_cleanly(master):
    master.start_fg()
    pid = master.proc.pid
    kids = children(pid)
    names = sorted(exe_name(k) for k in kids)
    assert "pickup" in names and "smtpd" in names, names
    assert "no-such-daemon" not in names
    master.send()
    wait_until(lambda: len(queued(master)) == 1, timeout=10, what="message queued")
    res = master.run("status")
    assert res.returncode == 0 and res.stdout.strip() == f"postern is running (PID {pid})"
    # A second master on the same queue refuses, naming the PID.
    res = master.run("start-fg")
    assert res.returncode == 1
    assert f"already running (PID {pid})" in res.stderr
    log = master.log()
    assert "postern/master[" in log and "daemon started -- version" in log
    assert "warning: service qmgr-missing: program" in log and "not found: not started" in log
    res = master.run("stop")
    assert res.returncode == 0, res.stderr
    assert master.proc.wait(timeout=20) == 0
    assert "terminating on signal 15" in master.log()
    for k in kids:
        wait_until(lambda: not alive(k), timeout=10, what=f"child {k} gone")
    assert not os.path.exists(os.path.join(master.sd.queue, "pid", "master.pid"))
    res = master.run("status")
    assert res.returncode == 1 and res.stdout.strip() == "postern is not running"


def test_killed_smtpd_is_respawned(master):
    master.start_fg()
    pid = master.proc.pid
    smtpds = [k for k in children(pid) if exe_name(k) == "smtpd"]
    assert smtpds
    for k in smtpds:
        os.kill(k, signal.SIGKILL)
    wait_until(lambda: "killed by signal 9" in master.log(), timeout=10, what="death logged")
    wait_until(lambda: "service " in master.log() and ": respawning" in master.log(),
               timeout=10, what="respawn logged")
    assert f"warning: process {os.path.join(master.build, 'bin', 'smtpd')} pid {smtpds[0]}" \
        in master.log()
    wait_until(lambda: [k for k in children(pid) if exe_name(k) == "smtpd"
                        and k not in smtpds], timeout=10, what="new smtpd")
    master.wait_smtp()
    master.send()
    wait_until(lambda: len(queued(master)) == 1, timeout=10, what="message queued")


def test_reload_keeps_established_session(master):
    master.start_fg()
    pid = master.proc.pid
    old = [k for k in children(pid) if exe_name(k) == "smtpd"]
    c = smtplib.SMTP(master.sd.host, master.sd.port, timeout=10)
    c.ehlo("client.test.example")
    res = master.run("reload")
    assert res.returncode == 0, res.stderr
    # New children take over; the old smtpd with our session stays.
    wait_until(lambda: [k for k in children(pid) if exe_name(k) == "smtpd"
                        and k not in old], timeout=10, what="new smtpd after reload")
    wait_until(lambda: "stopped accepting" in master.log(), timeout=10, what="old smtpd drains")
    master.send(c)
    c.quit()
    wait_until(lambda: len(queued(master)) == 1, timeout=10, what="message queued")
    # The drained smtpd processes exit once their sessions are over.
    for k in old:
        wait_until(lambda: not alive(k), timeout=10, what=f"old smtpd {k} exits")
    master.send()
    wait_until(lambda: len(queued(master)) == 2, timeout=10, what="second message queued")


def test_daemon_mode_start_status_stop(master):
    master.config()
    res = master.run("start")
    assert res.returncode == 0, res.stderr
    master.wait_smtp()
    res = master.run("status")
    assert res.returncode == 0, res.stdout
    pid = int(res.stdout.split("PID ")[1].rstrip(")\n"))
    assert alive(pid)
    kids = children(pid)
    assert kids
    master.send()
    res = master.run("stop")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: not alive(pid), timeout=10, what="master gone")
    for k in kids:
        wait_until(lambda: not alive(k), timeout=10, what=f"child {k} gone")
    res = master.run("stop")
    assert res.returncode == 1 and "not running" in res.stderr


def test_start_and_reload_warn_about_parameters_not_implemented_yet(master):
    """A parameter accepted but not implemented yet, set in main.cf or as a
    master.cf -o override, is named by `postern start` on stderr and by
    master in the log, at start and again at reload."""
    master.sd.main["smtpd_client_connection_rate_limit"] = "10"
    master.config()
    with open(os.path.join(master.sd.confdir, "master.cf"), "a") as f:
        f.write(f"127.0.0.1:{free_port()} inet n - n - 1 smtpd "
                "-o milter_macro_daemon_name=ORIGINATING\n")
    res = master.run("start")
    assert res.returncode == 0, res.stderr
    master.wait_smtp()
    pid = int(master.run("status").stdout.split("PID ")[1].rstrip(")\n"))
    maincf = os.path.join(master.sd.confdir, "main.cf")
    mastercf = os.path.join(master.sd.confdir, "master.cf")
    assert re.search(re.escape(maincf) + r", line \d+: smtpd_client_connection_rate_limit is "
                     r"accepted but not implemented yet", res.stderr), res.stderr
    assert re.search(re.escape(mastercf) + r", line \d+ .*milter_macro_daemon_name is "
                     r"accepted but not implemented yet", res.stderr), res.stderr
    wait_until(lambda: "smtpd_client_connection_rate_limit is accepted but not "
               "implemented yet" in master.log(), timeout=10, what="warning in the log")
    count = master.log().count("milter_macro_daemon_name is accepted but not implemented yet")
    assert count >= 1
    res = master.run("reload")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: master.log().count("milter_macro_daemon_name is accepted but not "
                                          "implemented yet") > count,
               timeout=10, what="the warning again after reload")
    res = master.run("stop")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: not alive(pid), timeout=10, what="master gone")


def listen_inode(port):
    """The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return fields[9]
    return None


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.mark.parametrize("maxproc", ["1", "-"])
def test_smtpd_processes_share_the_listener(postern_build, postern, maxproc):
    """min(maxproc, CPUs) smtpd processes, every one on the same socket."""
    m = Master(postern_build, postern)
    try:
        m.config()
        path = os.path.join(m.sd.confdir, "master.cf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(" inet n - n - - smtpd", f" inet n - n - {maxproc} smtpd", 1))
        m.config = lambda: None  # keep the edited master.cf
        m.start_fg()
        expect = 1 if maxproc == "1" else min(100, os.cpu_count())
        wait_until(lambda: len([k for k in children(m.proc.pid) if exe_name(k) == "smtpd"])
                   == expect, timeout=10, what=f"{expect} smtpd processes")
        inode = listen_inode(m.sd.port)
        assert inode is not None
        smtpds = [k for k in children(m.proc.pid) if exe_name(k) == "smtpd"]
        for k in smtpds:
            assert inode in socket_inodes(k), f"smtpd {k} does not hold the listener"
        m.send()
        wait_until(lambda: len(queued(m)) == 1, timeout=10, what="message queued")
    finally:
        m.stop()
        m.sd.cleanup()
