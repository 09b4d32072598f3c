"""A whole private postern for system tests: master with smtpd, pickup,
qmgr and virtual, on a database of each kind, mail into Maildirs.

Used by tests/system/test_qmgr.py, test_delivery*.py and the Dovecot test:

    with MailSystem(build, postern) as ms:      # SQLite demo database
        ms.start()                               # postern start-fg
        ms.send("a@x.example", ["alice@example.com"], body)
        ms.wait_maildir("example.com/alice/", 1)
        ms.log()                                 # the maillog

Built on harness.smtpd.Smtpd for main.cf (hermetic: no DNS, log to a
file) and its SMTP port; master.cf gets the services of conf/master.cf
that exist today. make_db() loads postern's schema and demo data into
SQLite, or a fresh database on the MariaDB/PostgreSQL session fixtures.
Mailboxes are owned by the uid/gid given (default: the test's own), so
no root-only paths are needed. Everything is stopped by PID.
"""

import email
import email.policy
import os
import signal
import smtplib
import subprocess
import uuid

from .process import setgid_postdrop, wait_until
from .smtpd import SANITIZER_MARKERS, Smtpd

# The hosted-domain configuration of conf/main.cf, on postern's own tables.
VIRTUAL = {
    "virtual_mailbox_domains": "db:domains",
    "virtual_mailbox_maps": "db:mailboxes",
    "virtual_alias_maps": "db:aliases",
    "smtpd_reject_unlisted_recipient": "yes",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "recipient_delimiter": "+",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "queue_run_delay": "1s",
    "2bounce_notice_recipient": "alice@example.com",
}


def write_secret(path, text):
    """Write a password file readable by root and mail_owner only, as
    INSTALL says (0640, group postern when run as root); returns path."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o640)
    if os.getuid() == 0:
        import grp
        try:
            os.chown(path, 0, grp.getgrnam("postern").gr_gid)
        except KeyError:
            pass
    return path


def make_db(kind, sd, postern, request, server=None, prefix="pt_"):
    """Point sd (an Smtpd or MailSystem.sd) at a fresh demo database, on
    server or else the session's MariaDB/PostgreSQL; returns the server
    (None for SQLite). The database's name is the last part of
    sd.main["database"]."""
    if kind == "sqlite":
        sd.sqlite_db(postern)
        return None
    if server is None:
        server = request.getfixturevalue("mariadb" if kind == "mysql" else "postgres")
    name = prefix + uuid.uuid4().hex[:10]
    server.create_database(name)
    pw = write_secret(f"{sd.confdir}/database.password", server.password + "\n")
    sd.main["database"] = f"{kind}://{server.user}@{server.host}:{server.port}/{name}"
    sd.main["database_password_file"] = pw
    sd.write_config()
    for cmd in (["db", "init"], ["db", "demo"]):
        res = postern("-c", sd.confdir, *cmd)
        assert res.returncode == 0, res.stderr
    return server


def child_pids(pid):
    """PIDs of the live (not zombie) processes whose parent is pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def exe_name(pid):
    """The program a process runs ("smtpd"), "" when it is gone."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_ids(pid, field):
    """The four ids of /proc/PID/status's Uid: or Gid: line (real,
    effective, saved, file system)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:5]]
    raise AssertionError(f"no {field} line for pid {pid}")


def proc_groups(pid):
    """The supplementary groups of pid, sorted."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                return sorted(int(g) for g in line.split()[1:])
    return []


def start_master(build, confdir, outdir):
    """`postern -c confdir start-fg`, output to outdir/master.out."""
    out = open(os.path.join(outdir, "master.out"), "a")
    proc = subprocess.Popen(
        [os.path.join(build, "bin", "postern"), "-c", confdir, "start-fg"],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


def stop_master(proc):
    """SIGTERM, wait (master stops its children), SIGKILL after 30 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class MailSystem:
    def __init__(self, build, postern, main_cf=None, uid=None, gid=None,
                 services=("pickup", "qmgr", "virtual")):
        self.build = build
        self.postern = postern
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        main = dict(VIRTUAL)
        self.vmail = None
        main.update(main_cf or {})
        self.sd = Smtpd(build, main_cf=main)
        self.vmail = os.path.join(self.sd.tmpdir, "vmail")
        self.sd.main.setdefault("virtual_mailbox_base", self.vmail)
        self.sd.main.setdefault("virtual_uid_maps", f"static:{self.uid}")
        self.sd.main.setdefault("virtual_gid_maps", f"static:{self.gid}")
        self.sd.main.setdefault("virtual_minimum_uid", "0")
        self.services = services
        # master.cf lines appended after the services (smtp, pipe ...).
        self.extra_master = ""
        self.proc = None
        # `postern sendmail` runs the postdrop next to it: setgid, as installed.
        setgid_postdrop(os.path.join(build, "bin", "postdrop"))
        os.makedirs(self.vmail, exist_ok=True)
        os.chown(self.vmail, self.uid, self.gid)

    # ---- configuration ----

    def make_db(self, kind, request):
        return make_db(kind, self.sd, self.postern, request)

    # The virtual agent's process limit in master.cf (change before start()).
    virtual_limit = 4

    def set(self, **params):
        """Change main.cf parameters (takes effect at the next start)."""
        self.sd.main.update({k: str(v) for k, v in params.items()})
        self.write_config()

    def write_config(self, extra_master=""):
        self.sd.write_config()
        lines = {
            "pickup": "pickup unix n - n 60 1 pickup",
            "qmgr": "qmgr unix n - n 300 1 qmgr",
            "virtual": f"virtual unix - n n - {self.virtual_limit} virtual",
        }
        with open(os.path.join(self.sd.confdir, "master.cf"), "a") as f:
            for s in self.services:
                f.write(lines[s] + "\n")
            f.write(extra_master or self.extra_master)
        os.makedirs(self.sd.queue, exist_ok=True)

    # ---- running ----

    def start(self):
        self.write_config()
        self.proc = start_master(self.build, self.sd.confdir, self.sd.tmpdir)
        wait_until(self.sd._banner_ok, timeout=20, what="smtp banner via master")
        for s in self.services:
            if s in ("pickup", "qmgr"):
                wait_until(lambda: f"postern/{s}[" in self.log(), timeout=20,
                           what=f"{s} started")
        return self

    def stop(self):
        stop_master(self.proc)
        self.proc = None

    def cleanup(self):
        self.stop()
        out = os.path.join(self.sd.tmpdir, "master.out")
        text = open(out, errors="replace").read() if os.path.exists(out) else ""
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError(f"sanitizer report in {out}:\n{text[-4000:]}")
        self.sd.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def run(self, *args, **kw):
        return self.postern("-c", self.sd.confdir, *args, **kw)

    def children(self, name):
        """PIDs of master's children running program name."""
        if self.proc is None:
            return []
        return [p for p in child_pids(self.proc.pid) if exe_name(p) == name]

    # ---- mail ----

    def send(self, sender, rcpts, body, **kw):
        with smtplib.SMTP(self.sd.host, self.sd.port, timeout=30) as c:
            c.ehlo("client.test.example")
            return c.sendmail(sender, rcpts, body, **kw)

    def log(self):
        try:
            with open(self.sd.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=20, count=1):
        wait_until(lambda: self.log().count(text) >= count, timeout=timeout,
                   what=f"log line {text!r}")

    def maildir(self, rel):
        return os.path.join(self.vmail, rel)

    def messages(self, rel, sub="new"):
        d = os.path.join(self.vmail, rel, sub)
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def wait_maildir(self, rel, count, timeout=30):
        wait_until(lambda: len(self.messages(rel)) >= count, timeout=timeout,
                   what=f"{count} message(s) in {rel}new")
        return self.messages(rel)

    def read_message(self, path):
        with open(path, "rb") as f:
            return email.message_from_binary_file(f, policy=email.policy.default)

    def queue_ids(self, queue):
        return self.sd.queued_files(queue)

    def queue_empty(self):
        return all(not self.sd.queued_files(q) for q in ("incoming", "active", "deferred"))
