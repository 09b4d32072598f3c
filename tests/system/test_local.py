"""The local delivery agent (build/bin/local, Postfix local(8)) in a whole
postern (master, smtpd, pickup, qmgr, local) for $mydestination users.

Real UNIX accounts are made for the test (useradd, unique names, homes in
a temp dir; userdel at the end), so the test needs root. Asserted, each
through what a user would see (files in the home, the maillog, SMTP
replies, queue files):
  - user@$myhostname into ~/Maildir/new (Delivered-To, Return-Path, owner
    is the user) and, with home_mailbox = Mailbox, into an mbox (From_
    line, >From quoting, blank line at the end); an extension address
    (user+ext) to the same mailbox; mail_spool_directory;
  - root@$myhostname and postmaster@ through the aliases file (built by
    `postern map build -A`, as newaliases) into the admin's ~/Maildir;
  - an alias to two users, :include: (re-submitted as new mail), a
    |command alias and a /file alias (run as default_privs), and their
    refusal with allow_mail_to_commands / allow_mail_to_files = forward;
  - .forward (own mailbox with \\user plus another user, re-submitted),
    .forward+ext for an extension address, a .forward loop bounced with
    "mail forwarding loop for ...";
  - an alias to an outside address: "status=sent (forwarded as NEWID)",
    the new queue file has that recipient, the sender and Delivered-To;
  - unknown users: 550 5.1.1 at RCPT with local_recipient_maps =
    proxy:unix:passwd.byname $alias_maps, and "unknown user" bounces for
    queued mail when that check is off;
  - mailbox_command runs as the user with Postfix's environment.
"""

import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid

import pytest

from harness.process import wait_until
from harness.smtpd import HOSTNAME
from harness.system import MailSystem

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make UNIX users")

SENDER = "sender@remote.example"
LOG_RE = re.compile(
    r"(?P<id>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?"
    r"relay=local, delay=\d+(?:\.\d{1,2})?, "
    r"delays=(?:\d+(?:\.\d{1,2})?/){3}\d+(?:\.\d{1,2})?, "
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>sent|deferred|bounced) "
    r"\((?P<reason>.*)\)$", re.M)


def body(subject, extra=""):
    return (f"From: {SENDER}\r\nTo: somebody\r\nSubject: {subject}\r\n\r\n"
            f"hello {subject}\r\n{extra}").encode()


class Users:
    """UNIX accounts with homes in a temp dir, removed at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="postern-local-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.names = {}
        self.tag = uuid.uuid4().hex[:6]

    def add(self, role):
        name = f"pl{self.tag}{role}"
        home = os.path.join(self.dir, name)
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", name], check=True,
                       capture_output=True)
        pw = pwd.getpwnam(name)
        os.mkdir(home, 0o755)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        self.names[role] = name
        return name

    def home(self, role):
        return os.path.join(self.dir, self.names[role])

    def pw(self, role):
        return pwd.getpwnam(self.names[role])

    def write(self, role, rel, text, mode=0o644):
        path = os.path.join(self.home(role), rel)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        pw = self.pw(role)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def remove(self):
        for name in self.names.values():
            subprocess.run(["userdel", name], capture_output=True)
            try:
                grp.getgrnam(name)
                subprocess.run(["groupdel", name], capture_output=True)
            except KeyError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def users():
    u = Users()
    try:
        for role in ("admin", "bob", "carol", "dave", "eve", "loopa", "loopb"):
            u.add(role)
        yield u
    finally:
        u.remove()


class LocalSystem(MailSystem):
    """MailSystem with the local agent in master.cf."""

    def __init__(self, build, postern, main_cf, services=("pickup", "qmgr")):
        main = {"virtual_mailbox_domains": "", "virtual_mailbox_maps": "",
                "virtual_alias_maps": ""}
        main.update(main_cf)
        super().__init__(build, postern, main_cf=main, services=services)

    def write_config(self, extra_master=""):
        super().write_config(extra_master + "local unix - n n - - local\n")

    def lines(self):
        return [m.groupdict() for m in LOG_RE.finditer(self.log())]

    def wait_line(self, **want):
        def find():
            for d in self.lines():
                if all(re.fullmatch(v, d[k] or "") for k, v in want.items()):
                    return d
            return None
        wait_until(lambda: find() is not None, timeout=30, what=f"local log line {want}")
        return find()

    def sendmail(self, rcpts, msg, sender=SENDER):
        res = subprocess.run(
            [os.path.join(self.build, "bin", "postern"), "-c", self.sd.confdir,
             "sendmail", "-i", "-f", sender, "--", *rcpts],
            input=msg, capture_output=True, timeout=30)
        assert res.returncode == 0, res.stderr


def maildir_files(home, sub="new"):
    d = os.path.join(home, "Maildir", sub)
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d))
    except FileNotFoundError:
        return []


def wait_maildir(home, count):
    wait_until(lambda: len(maildir_files(home)) >= count, timeout=30,
               what=f"{count} message(s) in {home}/Maildir/new")
    return maildir_files(home)


def find_message(home, subject):
    for path in maildir_files(home):
        with open(path, "rb") as f:
            data = f.read()
        if f"Subject: {subject}".encode() in data:
            return path, data
    return None, None


def wait_message(home, subject):
    wait_until(lambda: find_message(home, subject)[0] is not None, timeout=30,
               what=f"message {subject!r} in {home}/Maildir/new")
    return find_message(home, subject)


def build_aliases(ms, text):
    path = os.path.join(ms.sd.confdir, "aliases")
    with open(path, "w") as f:
        f.write(text)
    res = ms.run("map", "build", "-A", f"hash:{path}")
    assert res.returncode == 0, res.stderr
    return f"hash:{path}"


@pytest.fixture(scope="module")
def outdir():
    d = tempfile.mkdtemp(prefix="postern-local-out-", dir="/tmp")
    # Alias commands and files run as default_privs (nobody).
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- Maildir instance ------------------------------------------------------

@pytest.fixture(scope="module")
def mdsys(postern_build, postern, users, outdir):
    n = users.names
    main = {
        "home_mailbox": "Maildir/",
        "recipient_delimiter": "+",
        "local_recipient_maps": "proxy:unix:passwd.byname $alias_maps",
        "mailbox_size_limit": "0",
    }
    ms = LocalSystem(postern_build, postern, main)
    incl = os.path.join(ms.sd.confdir, "team.list")
    with open(incl, "w") as f:
        f.write(f"# the team\n{n['bob']}\n{n['carol']}\n")
    ms.sd.main["alias_maps"] = build_aliases(ms, f"""\
# test aliases
postmaster: root
root: {n['admin']}
team: {n['admin']},
  {n['bob']}
listed: :include:{incl}
cmd: "|cat > {outdir}/cmd.out; echo $RECIPIENT $SENDER > {outdir}/cmd.env"
file: {outdir}/file.mbox
outside: friend@remote.example
owner-outside: {n['admin']}
""")
    ms.sd.main["alias_database"] = ms.sd.main["alias_maps"]
    # dave: own mailbox and bob; dave+ext: a file of his own.
    users.write("dave", ".forward", f"\\{n['dave']}, {n['bob']}\n")
    users.write("dave", ".forward+ext", f"{users.home('dave')}/ext.mbox\n")
    # A .forward loop between loopa and loopb.
    users.write("loopa", ".forward", f"{n['loopb']}@{HOSTNAME}\n")
    users.write("loopb", ".forward", f"{n['loopa']}@{HOSTNAME}\n")
    ms.start()
    yield ms
    ms.cleanup()


def test_maildir_delivery(mdsys, users):
    name = users.names["bob"]
    mdsys.send(SENDER, [f"{name}@{HOSTNAME}"], body("plain"))
    path, data = wait_message(users.home("bob"), "plain")
    head = data.split(b"\n\n", 1)[0].decode()
    assert head.startswith(f"Return-Path: <{SENDER}>\nDelivered-To: {name}@{HOSTNAME}\n")
    st = os.stat(path)
    assert st.st_uid == users.pw("bob").pw_uid
    d = mdsys.wait_line(to=f"{name}@{HOSTNAME}", reason="delivered to maildir")
    assert d["status"] == "sent" and d["dsn"] == "2.0.0" and d["orig"] is None


def test_extension_address(mdsys, users):
    name = users.names["carol"]
    mdsys.send(SENDER, [f"{name}+news@{HOSTNAME}"], body("extension"))
    wait_message(users.home("carol"), "extension")
    mdsys.wait_line(to=f"{name}\\+news@{HOSTNAME}", status="sent",
                    reason="delivered to maildir")


def test_root_lands_in_admin_maildir(mdsys, users):
    admin = users.names["admin"]
    mdsys.send(SENDER, [f"root@{HOSTNAME}"], body("for-root"))
    _, data = wait_message(users.home("admin"), "for-root")
    assert f"Delivered-To: root@{HOSTNAME}".encode() in data
    d = mdsys.wait_line(to=f"{admin}@{HOSTNAME}", orig=f"root@{HOSTNAME}")
    assert d["status"] == "sent" and d["reason"] == "delivered to maildir"
    # postermaster -> root -> admin.
    mdsys.send(SENDER, [f"postmaster@{HOSTNAME}"], body("for-postmaster"))
    wait_message(users.home("admin"), "for-postmaster")


def test_alias_to_two_users(mdsys, users):
    mdsys.send(SENDER, [f"team@{HOSTNAME}"], body("team-mail"))
    wait_message(users.home("admin"), "team-mail")
    wait_message(users.home("bob"), "team-mail")
    for role in ("admin", "bob"):
        mdsys.wait_line(to=f"{users.names[role]}@{HOSTNAME}", orig=f"team@{HOSTNAME}",
                        status="sent")


def test_include_resubmits(mdsys, users):
    mdsys.send(SENDER, [f"listed@{HOSTNAME}"], body("included"))
    wait_message(users.home("bob"), "included")
    _, data = wait_message(users.home("carol"), "included")
    # Postfix: every address of an :include: file becomes new mail.
    d = mdsys.wait_line(to=f"{users.names['carol']}@{HOSTNAME}", orig=f"listed@{HOSTNAME}",
                        reason="forwarded as [0-9A-Za-z]+")
    assert d["status"] == "sent"
    assert f"Delivered-To: listed@{HOSTNAME}".encode() in data


def test_command_alias(mdsys, outdir):
    mdsys.send(SENDER, [f"cmd@{HOSTNAME}"], body("to-command"))
    out = os.path.join(outdir, "cmd.out")
    wait_until(lambda: os.path.exists(os.path.join(outdir, "cmd.env")), timeout=30,
               what="command output")
    d = mdsys.wait_line(to=f"cmd@{HOSTNAME}", status="sent")
    assert d["reason"].startswith("delivered to command: cat > ")
    data = open(out, "rb").read()
    assert data.startswith(f"From {SENDER}  ".encode())
    assert b"Subject: to-command" in data and f"Delivered-To: cmd@{HOSTNAME}".encode() in data
    assert open(os.path.join(outdir, "cmd.env")).read().split() == [f"cmd@{HOSTNAME}", SENDER]
    # Run as default_privs, never as root.
    assert os.stat(out).st_uid == pwd.getpwnam("nobody").pw_uid


def test_file_alias(mdsys, outdir):
    mdsys.send(SENDER, [f"file@{HOSTNAME}"], body("to-file", "From the start\r\n"))
    path = os.path.join(outdir, "file.mbox")
    d = mdsys.wait_line(to=f"file@{HOSTNAME}", status="sent")
    assert d["reason"] == f"delivered to file: {path}"
    data = open(path, "rb").read()
    assert data.startswith(f"From {SENDER}  ".encode())
    assert b"\n>From the start\n" in data and data.endswith(b"\n\n")
    assert os.stat(path).st_uid == pwd.getpwnam("nobody").pw_uid


def test_forward_file(mdsys, users):
    dave, bob = users.names["dave"], users.names["bob"]
    mdsys.send(SENDER, [f"{dave}@{HOSTNAME}"], body("via-forward"))
    wait_message(users.home("dave"), "via-forward")
    _, data = wait_message(users.home("bob"), "via-forward")
    assert f"Delivered-To: {dave}@{HOSTNAME}".encode() in data
    mdsys.wait_line(to=f"{bob}@{HOSTNAME}", orig=f"{dave}@{HOSTNAME}",
                    reason="forwarded as [0-9A-Za-z]+")


def test_forward_extension(mdsys, users):
    dave = users.names["dave"]
    mdsys.send(SENDER, [f"{dave}+ext@{HOSTNAME}"], body("ext-forward"))
    path = os.path.join(users.home("dave"), "ext.mbox")
    mdsys.wait_line(to=f"{dave}\\+ext@{HOSTNAME}", reason=f"delivered to file: {path}")
    assert b"Subject: ext-forward" in open(path, "rb").read()
    assert os.stat(path).st_uid == users.pw("dave").pw_uid


def test_forwarding_loop_bounces(mdsys, users):
    a = users.names["loopa"]
    mdsys.send(SENDER, [f"{a}@{HOSTNAME}"], body("loop"))
    d = mdsys.wait_line(to=f"{a}@{HOSTNAME}", status="bounced")
    assert d["dsn"] == "5.4.6"
    assert d["reason"] == f"mail forwarding loop for {a}@{HOSTNAME}"
    assert maildir_files(users.home("loopa")) == []


def test_outside_address_forwarded(mdsys, users):
    mdsys.send(SENDER, [f"outside@{HOSTNAME}"], body("leaving"))
    d = mdsys.wait_line(to="friend@remote.example", orig=f"outside@{HOSTNAME}",
                        reason="forwarded as [0-9A-Za-z]+")
    newid = d["reason"].split()[-1]
    # The new message: cleanup logged it, qmgr took it (owner-outside is
    # its sender, as Postfix's owner- alias convention).
    mdsys.wait_log(f"{newid}: from=<owner-outside@{HOSTNAME}>")
    res = mdsys.run("queue", "cat", newid)
    assert res.returncode == 0, res.stderr
    assert "friend@remote.example" in res.stdout
    assert f"Delivered-To: outside@{HOSTNAME}" in res.stdout
    assert "Subject: leaving" in res.stdout


def test_unknown_user_rejected_at_rcpt(mdsys):
    import smtplib
    with smtplib.SMTP(mdsys.sd.host, mdsys.sd.port, timeout=30) as c:
        c.ehlo("client.test.example")
        c.mail(SENDER)
        code, msg = c.rcpt(f"nosuchuser@{HOSTNAME}")
    assert code == 550
    assert msg.decode() == (f"5.1.1 <nosuchuser@{HOSTNAME}>: Recipient address rejected: "
                            "User unknown in local recipient table")


# ---- mbox instance, restrictions, unknown users ---------------------------

@pytest.fixture(scope="module")
def mboxsys(postern_build, postern, users, outdir):
    spool = tempfile.mkdtemp(prefix="postern-spool-", dir="/tmp")
    os.chmod(spool, 0o755)
    main = {
        "home_mailbox": "Mailbox",
        "allow_mail_to_commands": "forward",
        "allow_mail_to_files": "forward",
        "smtpd_reject_unlisted_recipient": "no",
        "mail_spool_directory": spool,
    }
    ms = LocalSystem(postern_build, postern, main)
    ms.spool = spool
    ms.sd.main["alias_maps"] = build_aliases(ms, f"""\
cmd: "|cat > {outdir}/refused.out"
file: {outdir}/refused.mbox
""")
    ms.start()
    yield ms
    ms.cleanup()
    shutil.rmtree(spool, ignore_errors=True)


def test_mbox_delivery(mboxsys, users):
    name = users.names["eve"]
    mboxsys.send(SENDER, [f"{name}@{HOSTNAME}"], body("mbox-one", "From me\r\n"))
    mboxsys.send(SENDER, [f"{name}@{HOSTNAME}"], body("mbox-two"))
    path = os.path.join(users.home("eve"), "Mailbox")
    wait_until(lambda: len(mboxsys.lines()) >= 2 and os.path.exists(path), timeout=30,
               what="two mbox deliveries")
    mboxsys.wait_line(to=f"{name}@{HOSTNAME}", reason="delivered to mailbox")
    wait_until(lambda: open(path, "rb").read().count(b"\nSubject: mbox-") == 2, timeout=30,
               what="both messages in the mbox")
    data = open(path, "rb").read()
    # Two From_ lines, each message ends with an empty line, >From quoted.
    assert len(re.findall(rb"^From sender@remote\.example  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$",
                          data, re.M)) == 2
    assert b"\n>From me\n" in data
    assert data.endswith(b"\n\n")
    assert f"Delivered-To: {name}@{HOSTNAME}".encode() in data
    st = os.stat(path)
    assert st.st_uid == users.pw("eve").pw_uid and (st.st_mode & 0o777) == 0o600
    assert not os.path.exists(path + ".lock")


def test_alias_command_and_file_refused(mboxsys, outdir):
    mboxsys.send(SENDER, [f"cmd@{HOSTNAME}"], body("no-cmd"))
    mboxsys.send(SENDER, [f"file@{HOSTNAME}"], body("no-file"))
    d = mboxsys.wait_line(to=f"cmd@{HOSTNAME}", status="bounced")
    assert (d["dsn"], d["reason"]) == ("5.7.1", "mail to command is restricted")
    d = mboxsys.wait_line(to=f"file@{HOSTNAME}", status="bounced")
    assert (d["dsn"], d["reason"]) == ("5.7.1", "mail to file is restricted")
    assert not os.path.exists(os.path.join(outdir, "refused.out"))
    assert not os.path.exists(os.path.join(outdir, "refused.mbox"))


def test_unknown_user_bounced_when_queued(mboxsys):
    mboxsys.sendmail([f"nosuchuser@{HOSTNAME}"], body("nobody-home"))
    d = mboxsys.wait_line(to=f"nosuchuser@{HOSTNAME}", status="bounced")
    assert (d["dsn"], d["reason"]) == ("5.1.1", 'unknown user: "nosuchuser"')


# ---- mailbox_command and the spool ------------------------------------------

def test_mailbox_command_and_spool(postern_build, postern, users):
    name = users.names["carol"]
    home = users.home("carol")
    main = {
        "mailbox_command": "/bin/sh -c 'env > $home/env.out; cat > $home/mc.mail'",
        "smtpd_reject_unlisted_recipient": "no",
        "alias_maps": "",
    }
    with LocalSystem(postern_build, postern, main) as ms:
        ms.start()
        ms.send(SENDER, [f"{name}+tag@{HOSTNAME}"], body("by-command"))
        d = ms.wait_line(to=f"{name}\\+tag@{HOSTNAME}", status="sent")
        assert d["reason"] == (f"delivered to command: /bin/sh -c 'env > {home}/env.out; "
                               f"cat > {home}/mc.mail'")
    env = dict(line.split("=", 1) for line in open(os.path.join(home, "env.out")).read().splitlines()
               if "=" in line)
    assert env["HOME"] == home and env["USER"] == name and env["LOGNAME"] == name
    assert env["EXTENSION"] == "tag" and env["DOMAIN"] == HOSTNAME
    assert env["LOCAL"] == f"{name}+tag" and env["RECIPIENT"] == f"{name}+tag@{HOSTNAME}"
    assert env["SENDER"] == SENDER and env["ORIGINAL_RECIPIENT"] == f"{name}+tag@{HOSTNAME}"
    assert env["SHELL"] == "/bin/sh"
    assert os.stat(os.path.join(home, "mc.mail")).st_uid == users.pw("carol").pw_uid
    assert b"Subject: by-command" in open(os.path.join(home, "mc.mail"), "rb").read()

    # No home_mailbox: the spool directory, file made by root for the user.
    spool = tempfile.mkdtemp(prefix="postern-spool-", dir="/tmp")
    try:
        main = {"mail_spool_directory": spool, "smtpd_reject_unlisted_recipient": "no",
                "alias_maps": ""}
        with LocalSystem(postern_build, postern, main) as ms:
            ms.start()
            ms.send(SENDER, [f"{name}@{HOSTNAME}"], body("to-spool"))
            ms.wait_line(to=f"{name}@{HOSTNAME}", status="sent", reason="delivered to mailbox")
        path = os.path.join(spool, name)
        assert b"Subject: to-spool" in open(path, "rb").read()
        assert os.stat(path).st_uid == users.pw("carol").pw_uid
    finally:
        shutil.rmtree(spool, ignore_errors=True)


# ---- fallback_transport: the recipient handed to another agent -----------

def test_fallback_transport_hands_over(postern_build, postern, tmp_path):
    """A user without an account goes to fallback_transport (here the
    virtual agent, which finds it in its own table): the other agent logs
    and delivers, local reports its answer."""
    main = {"fallback_transport": "virtual", "smtpd_reject_unlisted_recipient": "no",
            "alias_maps": ""}
    with LocalSystem(postern_build, postern, main,
                     services=("pickup", "qmgr", "virtual")) as ms:
        table = os.path.join(ms.sd.confdir, "vmailbox")
        with open(table, "w") as f:
            f.write(f"ghost@{HOSTNAME} ghost/\n")
        ms.sd.main["virtual_mailbox_maps"] = f"texthash:{table}"
        ms.start()
        ms.send(SENDER, [f"ghost@{HOSTNAME}", f"nobody-at-all@{HOSTNAME}"], body("fallback"))
        files = ms.wait_maildir("ghost/", 1)
        assert b"Subject: fallback" in open(files[0], "rb").read()
        ms.wait_log(f"to=<ghost@{HOSTNAME}>, relay=virtual")
        # virtual's own answer for an address it does not know either.
        ms.wait_log(f'to=<nobody-at-all@{HOSTNAME}>, relay=virtual')
        assert 'status=bounced (unknown user: "nobody-at-all@' in ms.log()
