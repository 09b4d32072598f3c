"""smtpd_client_connection_count_limit under master: simultaneous
connections from one client address are counted across every smtpd
process of the service (maxproc 2 here), the one over the limit gets
Postfix's `421 4.7.0 <myhostname> Error: too many connections from <addr>`
and the warning `Connection concurrency limit exceeded: N from
unknown[addr] for service S`; closing connections makes room again; the
connections of a killed smtpd stop counting; a client listed in
smtpd_client_event_limit_exceptions (default $mynetworks) is not limited.
"""

import os
import signal
import socket
import time

import pytest

from harness.process import wait_until
from harness.smtpd import HOSTNAME, Smtpd
from harness.system import alive, child_pids, exe_name, start_master, stop_master

LIMIT = 5
EXTRA = 4


class Master:
    def __init__(self, build, main_cf):
        self.sd = Smtpd(build, main_cf=main_cf)
        self.sd.write_config()
        path = os.path.join(self.sd.confdir, "master.cf")
        with open(path) as f:
            text = f.read()
        # Two smtpd processes share the listener (maxproc 2).
        with open(path, "w") as f:
            f.write(text.replace(" inet n - n - - smtpd", " inet n - n - 2 smtpd", 1))
        os.makedirs(self.sd.queue, exist_ok=True)
        self.proc = start_master(build, self.sd.confdir, self.sd.tmpdir)
        wait_until(self.sd._banner_ok, timeout=20, what="smtp banner via master")
        wait_until(lambda: len(self.smtpds()) == 2, timeout=20, what="two smtpd processes")

    def smtpds(self):
        return [p for p in child_pids(self.proc.pid) if exe_name(p) == "smtpd"]

    def service(self):
        return f"{self.sd.host}:{self.sd.port}"

    def log(self):
        with open(self.sd.maillog, errors="replace") as f:
            return f.read()

    def stop(self):
        stop_master(self.proc)
        self.sd.cleanup()


@pytest.fixture
def make_master(postern_build):
    made = []

    def make(main_cf):
        m = Master(postern_build, main_cf)
        made.append(m)
        return m
    yield make
    for m in made:
        m.stop()


def greet(m):
    """Connect and read the greeting: (socket, first line)."""
    s = socket.create_connection((m.sd.host, m.sd.port), timeout=10)
    s.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    return s, data.decode().rstrip("\r\n")


def open_many(m, n):
    """n connections open at once; returns (kept 220 sockets, 421 lines)."""
    socks = [socket.create_connection((m.sd.host, m.sd.port), timeout=10) for _ in range(n)]
    ok, refused = [], []
    for s in socks:
        s.settimeout(10)
        line = s.recv(512).decode().rstrip("\r\n")
        if line.startswith("220 "):
            ok.append(s)
        else:
            refused.append(line)
            s.close()
    return ok, refused


TOO_MANY = f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"


def wait_greeting_220(m, timeout=10, respawning=False):
    """A new connection gets the banner again (the server notices closed
    connections on its own loop turn): retry within a bound. respawning:
    a connection may also be closed without a reply (taken by a process
    that is being killed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s, line = greet(m)
        except OSError:
            s, line = None, ""
        if line.startswith("220 "):
            return s
        if s is not None:
            s.close()
        assert line == TOO_MANY or (respawning and line == ""), line
        assert time.monotonic() < deadline, "no room made by closed connections"
        time.sleep(0.1)


def test_limit_across_processes(make_master):
    m = make_master({"smtpd_client_connection_count_limit": str(LIMIT),
                     "smtpd_client_event_limit_exceptions": ""})
    ok, refused = open_many(m, LIMIT + EXTRA)
    assert len(ok) == LIMIT, refused
    assert refused == [TOO_MANY] * EXTRA
    # Both processes took connections, and the count was still one count.
    wait_until(lambda: m.log().count("Connection concurrency limit exceeded") >= EXTRA,
               timeout=10, what="the warnings")
    log = m.log()
    assert (f"warning: Connection concurrency limit exceeded: {LIMIT + 1} from "
            f"unknown[127.0.0.1] for service {m.service()}") in log
    # Closing two makes room for exactly two.
    for s in ok[:2]:
        s.sendall(b"QUIT\r\n")
        s.close()
    ok = ok[2:]
    ok.append(wait_greeting_220(m))
    ok.append(wait_greeting_220(m))
    s, line = greet(m)
    s.close()
    assert line == TOO_MANY
    for s in ok:
        s.close()


def test_killed_smtpd_connections_stop_counting(make_master):
    m = make_master({"smtpd_client_connection_count_limit": str(LIMIT),
                     "smtpd_client_event_limit_exceptions": ""})
    ok, refused = open_many(m, LIMIT)
    assert len(ok) == LIMIT and refused == [], refused
    # SIGKILL both: nothing of theirs may be left to deny anybody.
    for pid in m.smtpds():
        os.kill(pid, signal.SIGKILL)
    for s in ok:
        s.close()
    wait_until(lambda: len([p for p in m.smtpds() if alive(p)]) == 2, timeout=30,
               what="smtpd respawned")
    ok = [wait_greeting_220(m, timeout=30, respawning=True) for _ in range(LIMIT)]
    s, line = greet(m)
    s.close()
    assert line == TOO_MANY
    for s in ok:
        s.close()


def test_exempt_client_not_limited(make_master):
    # Default exceptions: $mynetworks (127.0.0.0/8 in the harness).
    m = make_master({"smtpd_client_connection_count_limit": str(LIMIT)})
    ok, refused = open_many(m, LIMIT + EXTRA)
    assert len(ok) == LIMIT + EXTRA, refused
    for s in ok:
        s.close()
    assert "Connection concurrency limit exceeded" not in m.log()
