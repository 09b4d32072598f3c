"""A private smtpd for system tests: config dir, free port, start, stop.

Used by tests/system/test_smtpd*.py:

    with Smtpd(build, main_cf={"smtpd_timeout": "2s"}) as sd:
        smtplib.SMTP(sd.host, sd.port) ...
        sd.log_lines()            # postern/smtpd[pid]: ... lines
        sd.queued_files()         # files under queue_directory/incoming

Writes main.cf (hermetic: myhostname, mynetworks, no DNS, the log to a
file) and master.cf (one `inet` smtpd service on 127.0.0.1:PORT with the
given -o overrides), creates the queue directory, starts
BUILD/bin/smtpd -c DIR in the foreground, waits for the 220 banner with
bounded polling, and stops it by PID.  `database` may point at a
`postern db init`-ed database for db: tables (see db_sqlite()).
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from .base import _tmp_parent
from .ports import free_port
from .process import ServerError, ServerProcess

HOSTNAME = "mx.test.example"
# Lines that mean ASan/UBSan/LSan found something (build/san).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _override(name, value):
    """A master.cf -o option; values with spaces in Postfix's { } form."""
    if " " in str(value):
        return f"\n  -o {{ {name} = {value} }}"
    return f"\n  -o {name}={value}"


class Smtpd:
    """One smtpd process in a temp dir of its own."""

    def __init__(self, build, main_cf=None, overrides=None, services=None):
        self.build = build
        self.tmpdir = tempfile.mkdtemp(prefix="postern-smtpd-", dir=_tmp_parent())
        # Daemons started by master run as mail_owner: they must reach
        # the config, the queue and the log below this directory.
        os.chmod(self.tmpdir, 0o755)
        self.confdir = os.path.join(self.tmpdir, "conf")
        self.queue = os.path.join(self.tmpdir, "queue")
        self.maillog = os.path.join(self.tmpdir, "maillog")
        self.host = "127.0.0.1"
        self.port = None
        self.main = {
            "myhostname": HOSTNAME,
            "mydomain": "test.example",
            "mydestination": "$myhostname, localhost",
            "mynetworks": "127.0.0.0/8",
            "queue_directory": self.queue,
            "maillog_file": self.maillog,
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "virtual_mailbox_domains": "",
            "virtual_mailbox_maps": "",
            "virtual_alias_maps": "",
            # Session tests send to made-up users of $mydestination; the
            # access tests (test_smtpd_access.py) turn validation back on.
            "smtpd_reject_unlisted_recipient": "no",
        }
        self.main.update(main_cf or {})
        self.overrides = dict(overrides or {})
        # Extra master.cf services: list of (name, {overrides}); ports are
        # filled in as "127.0.0.1:PORT" and kept in self.extra_ports.
        self.services = services or []
        self.extra_ports = []
        self.proc = None
        os.makedirs(self.confdir)

    def sqlite_db(self, postern):
        """Create a SQLite database with the demo data; point main.cf at it.
        It lives in data_directory, as installed: `postern db init` gives
        that directory to mail_owner's group (readers repair the WAL)."""
        data = os.path.join(self.tmpdir, "data")
        os.makedirs(data, exist_ok=True)
        path = os.path.join(data, "postern.sqlite")
        self.main["data_directory"] = data
        self.main["database"] = f"sqlite:{path}"
        self.write_config()
        for cmd in (["db", "init"], ["db", "demo"]):
            res = postern("-c", self.confdir, *cmd)
            assert res.returncode == 0, res.stderr
        return path

    def write_config(self):
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            for k, v in self.main.items():
                f.write(f"{k} = {v}\n")
        lines = []
        if self.port is None:
            self.port = free_port()
        opts = "".join(_override(k, v) for k, v in self.overrides.items())
        lines.append(f"{self.host}:{self.port} inet n - n - - smtpd{opts}")
        self.extra_ports = []
        for _, ov in self.services:
            p = free_port()
            self.extra_ports.append(p)
            opts = "".join(_override(k, v) for k, v in ov.items())
            lines.append(f"{self.host}:{p} inet n - n - - smtpd{opts}")
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _banner_ok(self):
        with socket.create_connection((self.host, self.port), timeout=2) as s:
            s.settimeout(2)
            data = s.recv(512)
            s.sendall(b"QUIT\r\n")
            # A greeting: 220, or a client reject that replaces it.
            return re.match(rb"^[2-5]\d\d[ -]", data) is not None

    def start(self, attempts=3, args=()):
        os.makedirs(self.queue, exist_ok=True)
        for attempt in range(attempts):
            self.port = None
            self.write_config()
            binary = os.path.join(self.build, "bin", "smtpd")
            self.proc = ServerProcess("smtpd", [binary, "-c", self.confdir, *args],
                                      os.path.join(self.tmpdir, "smtpd.out"),
                                      extra_logs=[self.maillog])
            self.proc.start()
            try:
                self.proc.wait_ready(self._banner_ok, timeout=20)
                return self
            except ServerError as exc:
                self.proc.stop()
                if "in use" not in exc.log or attempt == attempts - 1:
                    raise
        return self

    def stop(self):
        """Stop smtpd by PID; raise if a sanitizer reported anything."""
        if self.proc is None:
            return None
        status = self.proc.stop()
        self.proc = None
        out = os.path.join(self.tmpdir, "smtpd.out")
        try:
            with open(out, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError(f"smtpd sanitizer report in {out}:\n{text[-4000:]}")
        return status

    def cleanup(self, keep=False):
        try:
            self.stop()
        except AssertionError:
            keep = True
            raise
        finally:
            if not keep:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(keep=exc_type is not None)
        if exc_type is not None:
            print(f"smtpd test dir kept: {self.tmpdir}")

    # --- observing ------------------------------------------------------

    def log_lines(self):
        """Log lines without the timestamp/host prefix: 'postern/smtpd[pid]: text'."""
        try:
            with open(self.maillog, errors="replace") as f:
                raw = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in raw:
            m = re.search(r"(postern/\S+\[\d+\]: .*)$", line)
            out.append(m.group(1) if m else line)
        return out

    def log_text(self):
        """Only the message texts, one per line."""
        return "\n".join(re.sub(r"^postern/\S+\[\d+\]: ", "", l) for l in self.log_lines())

    def wait_log(self, pattern, timeout=10):
        """Wait until a log line matches the regexp; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log_text(), re.M)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r}:\n{self.log_text()}")
            time.sleep(0.05)

    def queued_files(self, queue="incoming"):
        """Paths of message files in a queue (temporary files excluded)."""
        root = os.path.join(self.queue, queue)
        out = []
        for dirpath, _, files in os.walk(root):
            out.extend(os.path.join(dirpath, f) for f in files if not f.startswith("tmp."))
        return sorted(out)

    def queued_bytes(self, queue="incoming"):
        """Contents of every queued file, concatenated."""
        data = b""
        for p in self.queued_files(queue):
            with open(p, "rb") as f:
                data += f.read()
        return data

    def all_queue_files(self):
        """Every file under the queue directory but the daemons' pid files
        (queue_directory/pid)."""
        out = []
        pid_dir = os.path.join(self.queue, "pid")
        for dirpath, _, files in os.walk(self.queue):
            if dirpath != pid_dir:
                out.extend(os.path.join(dirpath, f) for f in files)
        return out
