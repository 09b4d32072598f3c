"""Local submission: `postern sendmail` (and its sendmail/mailq/newaliases
links) -> postdrop (setgid postdrop) -> maildrop/ -> pickup -> cleanup ->
incoming/.

Runs the real programs against a private configuration and queue under
/tmp with pickup in the foreground; reads queue files back by the format
documented in lib/queue/queue_file.h.
"""

import grp
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from harness.process import ServerProcess, setgid_postdrop, wait_until

TIMEOUT = 20


def parse_queue_file(path):
    """Envelope and content of a queue file (format of queue_file.h)."""
    data = open(path, "rb").read()
    assert data[:8] == b"POSTERNQ"
    content_off, content_len = struct.unpack(">QQ", data[16:32])
    env = {"sender": None, "rcpts": [], "attrs": {}}

    def records(off, stop):
        while off < stop:
            typ = chr(data[off])
            (n,) = struct.unpack(">I", data[off + 1:off + 5])
            yield typ, data[off + 5:off + 5 + n]
            off += 5 + n
            if typ in "XZ":
                return

    def take(typ, p):
        if typ == "S":
            env["sender"] = p.decode()
        elif typ == "A":
            name, _, value = p.partition(b"\0")
            env["attrs"][name.decode()] = value.decode()
        elif typ == "R":
            (alen,) = struct.unpack(">H", p[33:35])
            env["rcpts"].append(p[35:35 + alen].decode())

    for typ, p in records(32, content_off):
        take(typ, p)
    for typ, p in records(content_off + content_len, len(data)):
        take(typ, p)
    env["content"] = data[content_off:content_off + content_len].decode("utf-8", "replace")
    return env


class Env:
    """A private config + queue, pickup running, helpers to submit and wait."""

    def __init__(self, build):
        self.root = tempfile.mkdtemp(prefix="postern-sendmail-")
        os.chmod(self.root, 0o755)
        self.conf = os.path.join(self.root, "conf")
        self.queue = os.path.join(self.root, "queue")
        self.maillog = os.path.join(self.root, "maillog")
        os.mkdir(self.conf)
        os.chmod(self.conf, 0o755)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(f"queue_directory = {self.queue}\n"
                    "myhostname = host.example.com\nmydomain = example.com\n"
                    "message_size_limit = 200000\n"
                    f"maillog_file = {self.maillog}\n")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("pickup unix n - n 60 1 pickup\n")
        for name in ("main.cf", "master.cf"):
            os.chmod(os.path.join(self.conf, name), 0o644)
        # A copy of postern that every user may run, and the links.
        self.bin = os.path.join(self.root, "bin")
        os.mkdir(self.bin)
        os.chmod(self.bin, 0o755)
        self.postern = os.path.join(self.bin, "postern")
        shutil.copy(os.path.join(build, "bin", "postern"), self.postern)
        os.chmod(self.postern, 0o755)
        for link in ("sendmail", "mailq", "newaliases"):
            os.symlink(self.postern, os.path.join(self.bin, link))
        # sendmail runs the postdrop next to it, installed as make install does.
        self.postdrop = os.path.join(self.bin, "postdrop")
        shutil.copy(os.path.join(build, "bin", "postdrop"), self.postdrop)
        setgid_postdrop(self.postdrop)
        self.pickup_bin = os.path.join(build, "bin", "pickup")
        self.pickup = None

    def start_pickup(self):
        self.pickup = ServerProcess("pickup", [self.pickup_bin, "-c", self.conf, "-e"],
                                    os.path.join(self.root, "pickup.out")).start()
        sock = os.path.join(self.queue, "public", "pickup")
        wait_until(lambda: os.path.exists(sock) and self.log_has("starting:"),
                   timeout=TIMEOUT, what="pickup socket")

    def stop_pickup(self):
        if self.pickup is not None:
            self.pickup.stop()
            self.pickup = None

    def log_has(self, text):
        try:
            return text in open(self.maillog, errors="replace").read()
        except OSError:
            return False

    def log(self):
        try:
            return open(self.maillog, errors="replace").read()
        except OSError:
            return ""

    def dir_names(self, sub):
        path = os.path.join(self.queue, sub)
        if not os.path.isdir(path):
            return set()
        # tmp.* are writers' files in progress, not messages
        return {n for n in os.listdir(path) if not n.startswith("tmp.")}

    def sendmail(self, *args, input="", argv0=None, user=None):
        prog = os.path.join(self.bin, argv0) if argv0 else self.postern
        argv = [prog] if argv0 else [prog, "sendmail"]
        argv += ["-C", self.conf, *args]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        return subprocess.run(argv, input=input, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def submit(self, *args, input="", user=None):
        """Submit one message; return its parsed queue file once picked up."""
        before = self.dir_names("incoming")
        res = self.sendmail(*args, input=input, user=user)
        assert res.returncode == 0, res.stderr
        new = wait_until(lambda: self.dir_names("incoming") - before, timeout=TIMEOUT,
                         what="message in incoming/")
        assert len(new) == 1
        qid = new.pop()
        wait_until(lambda: not self.dir_names("maildrop"), timeout=TIMEOUT,
                   what="maildrop emptied")
        env = parse_queue_file(os.path.join(self.queue, "incoming", qid))
        env["id"] = qid
        return env

    def poke(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(os.path.join(self.queue, "public", "pickup"))
        s.send(b"W")
        s.close()

    def cleanup(self):
        self.stop_pickup()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def env(postern_build):
    e = Env(postern_build)
    e.start_pickup()
    yield e
    e.cleanup()


MSG = "Subject: plain test\nX-Test: 1\n\nhello world\n"


def test_plain_message(env):
    m = env.submit("bob@example.org", "carol", input=MSG)
    assert m["sender"] == "root@host.example.com"
    assert m["rcpts"] == ["bob@example.org", "carol@host.example.com"]
    assert "Subject: plain test" in m["content"]
    assert "hello world" in m["content"]
    assert "(postern, from userid 0)" in m["content"]
    assert m["attrs"].get("submit_uid") == "0"
    assert f"{m['id']}: uid=0 from=<root>" in env.log()
    # Missing headers were added for a local submission.
    assert "Message-ID:" in m["content"] and "Date:" in m["content"]


def test_dot_ends_input_unless_i(env):
    body = "Subject: dots\n\nbefore\n.\nafter\n"
    m = env.submit("bob@example.org", input=body)
    assert "before" in m["content"] and "after" not in m["content"]
    for flag in ("-i", "-oi"):
        m = env.submit(flag, "bob@example.org", input=body)
        assert "before" in m["content"] and "\n.\n" in m["content"].replace("\r\n", "\n")
        assert "after" in m["content"]


def test_crlf_input_stored_as_lines(env):
    m = env.submit("bob@example.org", input="Subject: crlf\r\n\r\nline one\r\nline two\r\n")
    assert "line one" in m["content"] and "line two" in m["content"]
    assert "\r\r" not in m["content"]


def test_extract_recipients_t(env):
    msg = ("To: to@example.org\nCc: Cee <cc@example.org>\nBcc: hidden@example.org\n"
           "Subject: t\n\nbody\n")
    m = env.submit("-t", input=msg)
    assert sorted(m["rcpts"]) == ["cc@example.org", "hidden@example.org", "to@example.org"]
    assert "Bcc:" not in m["content"] and "hidden@example.org" not in m["content"]
    assert "To: to@example.org" in m["content"]


def test_sender_and_full_name(env):
    m = env.submit("-f", "someone@example.net", "-F", "Jo Q. Public", "bob@example.org",
                   input="Subject: f\n\nx\n")
    assert m["sender"] == "someone@example.net"
    from_lines = [l for l in m["content"].splitlines() if l.startswith("From:")]
    assert from_lines and "Jo Q. Public" in from_lines[0]
    m = env.submit("-f", "<>", "bob@example.org", input="Subject: null\n\nx\n")
    assert m["sender"] == ""


def test_links_sendmail_mailq_newaliases(env):
    before = env.dir_names("incoming")
    res = env.sendmail("-oi", "viasymlink@example.org", input="Subject: link\n\nx\n",
                       argv0="sendmail")
    assert res.returncode == 0, res.stderr
    new = wait_until(lambda: env.dir_names("incoming") - before, timeout=TIMEOUT,
                     what="symlinked sendmail message")
    qid = new.pop()
    res = env.sendmail(argv0="mailq")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("-Queue ID-")
    lines = res.stdout.splitlines()
    idx = [i for i, l in enumerate(lines) if l.startswith(qid)]
    assert idx, res.stdout
    assert lines[idx[0]].split()[-1] == "root@host.example.com"
    assert lines[idx[0] + 1].strip() == "viasymlink@example.org"
    assert "Kbytes in" in lines[-1] and "Request" in lines[-1]
    res = env.sendmail("-bp")
    assert qid in res.stdout
    # newaliases rebuilds alias_database (here one file of the test's own).
    aliases = os.path.join(env.root, "aliases")
    with open(aliases, "w") as f:
        f.write("postmaster: root\nRoot: admin@example.com\n")
    with open(os.path.join(env.conf, "main.cf"), "a") as f:
        f.write(f"alias_database = hash:{aliases}\n")
    res = env.sendmail(argv0="newaliases")
    assert res.returncode == 0, res.stderr
    assert os.path.exists(aliases + ".db")
    res = subprocess.run([env.postern, "map", "query", "root", f"hash:{aliases}"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.stdout == "admin@example.com\n", res.stderr
    os.unlink(aliases + ".db")
    assert env.sendmail("-bi").returncode == 0
    assert os.path.exists(aliases + ".db")


def test_mailq_empty(postern_build, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "main.cf").write_text(f"queue_directory = {tmp_path}/queue\n")
    for sub in ("incoming", "active", "deferred", "hold", "corrupt", "defer"):
        os.makedirs(tmp_path / "queue" / sub)
    res = subprocess.run([os.path.join(postern_build, "bin", "postern"), "sendmail", "-C",
                          str(conf), "-bp"], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Mail queue is empty\n"
    # A queue that cannot be read is an error, never "empty".
    shutil.rmtree(tmp_path / "queue" / "deferred")
    res = subprocess.run([os.path.join(postern_build, "bin", "postern"), "sendmail", "-C",
                          str(conf), "-bp"], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 75 and "Mail queue is empty" not in res.stdout


def test_bs_smtp_conversation(env):
    before = env.dir_names("incoming")
    conv = ("EHLO client.example\r\nMAIL FROM:<bs@example.net>\r\n"
            "RCPT TO:<r1@example.org>\r\nRCPT TO:<r2@example.org>\r\nDATA\r\n"
            "Subject: bs\r\n\r\n..leading dot\r\nline\r\n.\r\nVRFY x\r\nRCPT TO:<x@y>\r\n"
            "QUIT\r\n")
    res = env.sendmail("-bs", input=conv)
    assert res.returncode == 0, res.stderr
    # text mode turns the replies' CRLF into "\n"
    codes = [l[:4] for l in res.stdout.splitlines() if l]
    assert codes[0] == "220 "
    assert "250-" in codes and "354 " in codes and codes[-1] == "221 "
    assert any(l.startswith("250 2.0.0 Ok: queued as ") for l in res.stdout.splitlines())
    assert "502 5.5.1 VRFY command is disabled" in res.stdout
    assert "503 5.5.1 Error: need MAIL command" in res.stdout
    new = wait_until(lambda: env.dir_names("incoming") - before, timeout=TIMEOUT,
                     what="-bs message")
    m = parse_queue_file(os.path.join(env.queue, "incoming", new.pop()))
    assert m["sender"] == "bs@example.net"
    assert m["rcpts"] == ["r1@example.org", "r2@example.org"]
    assert "\n.leading dot" in m["content"].replace("\r\n", "\n")
    assert "..leading" not in m["content"]


def test_usage_and_limits(env):
    assert env.sendmail("-Z").returncode == 64
    res = env.sendmail(input="Subject: x\n\n")
    assert res.returncode == 64 and "Recipient addresses must be specified" in res.stderr
    before = env.dir_names("maildrop")
    res = env.sendmail("bob@example.org", input="Subject: big\n\n" + ("x" * 999 + "\n") * 300)
    assert res.returncode == 65 and "too big" in res.stderr
    assert env.dir_names("maildrop") == before  # nothing left behind


def test_restart_picks_up_files_written_while_down(env):
    env.stop_pickup()
    before = env.dir_names("incoming")
    for i in range(3):
        res = env.sendmail("down@example.org", input=f"Subject: down {i}\n\nx\n")
        assert res.returncode == 0, res.stderr
    assert len(env.dir_names("maildrop")) == 3
    env.start_pickup()
    wait_until(lambda: len(env.dir_names("incoming") - before) == 3, timeout=TIMEOUT,
               what="3 messages queued after restart")
    assert not env.dir_names("maildrop")


def test_pickup_waits_while_the_queue_is_short_of_space(env):
    """queue_minfree: pickup leaves maildrop files where they are while the
    queue file system has less free space than it needs, and moves them
    into the queue once it has enough (here: once the limit is lowered)."""
    main_cf = os.path.join(env.conf, "main.cf")
    with open(main_cf) as f:
        original = f.read()
    env.stop_pickup()
    before = env.dir_names("incoming")
    try:
        with open(main_cf, "a") as f:
            f.write("queue_minfree = 1000000000000000000\n")  # 1 EB: never free
        res = env.sendmail("space@example.org", input="Subject: space\n\nx\n")
        assert res.returncode == 0, res.stderr
        env.start_pickup()
        wait_until(lambda: env.log_has("not enough free space in mail queue"),
                   timeout=TIMEOUT, what="pickup's free-space warning")
        assert len(env.dir_names("maildrop")) == 1
        assert env.dir_names("incoming") == before
    finally:
        env.stop_pickup()
        with open(main_cf, "w") as f:
            f.write(original)
        env.start_pickup()
    wait_until(lambda: len(env.dir_names("incoming") - before) == 1, timeout=TIMEOUT,
               what="the waiting message queued")
    assert not env.dir_names("maildrop")


def maildrop_bytes(sender, rcpts, content):
    def rec(t, p):
        return t + struct.pack(">I", len(p)) + p
    out = b"POSTERNM\0\1" + b"\0" * 6 + rec(b"S", sender)
    for r in rcpts:
        out += rec(b"R", r)
    for i in range(0, len(content), 65536):
        out += rec(b"C", content[i:i + 65536])
    return out + rec(b"E", struct.pack(">Q", len(content)))


def test_hostile_maildrop_files(env):
    md = os.path.join(env.queue, "maildrop")
    corrupt_before = env.dir_names("corrupt")
    good = maildrop_bytes(b"x", [b"y@example.org"], b"Subject: ok\n\nx\n")
    files = {
        "truncated": good[:-3],
        "garbage": os.urandom(5000),
        "empty": b"",
        "huge": maildrop_bytes(b"x", [b"y@example.org"], b"A" * 300000),
        "ctlrcpt": maildrop_bytes(b"x", [b"y@example.org\r\nX-Bad: 1"], b"x\n"),
    }
    for name, data in files.items():
        with open(os.path.join(md, name), "wb") as f:
            f.write(data)
    os.symlink("/etc/passwd", os.path.join(md, "symlink"))
    os.mkfifo(os.path.join(md, "fifo"))
    with open(os.path.join(md, "linked"), "wb") as f:
        f.write(good)
    os.link(os.path.join(md, "linked"), os.path.join(md, "hardlink"))
    env.poke()
    wait_until(lambda: not (env.dir_names("maildrop") & (set(files) | {"symlink", "fifo", "hardlink",
                                                                       "linked"})),
               timeout=TIMEOUT, what="hostile files handled")
    assert env.pickup.alive()
    assert os.path.exists("/etc/passwd")
    moved = env.dir_names("corrupt") - corrupt_before
    assert len(moved) >= 3
    log = env.log()
    assert "maildrop/garbage: corrupt maildrop file at offset 0: bad magic" in log
    assert "maildrop/huge: reject: message file too big" in log
    assert "maildrop/symlink: symbolic link: removed" in log
    assert "maildrop/fifo: not a regular file: removed" in log
    assert "more than one hard link: removed" in log
    assert "maildrop/truncated: corrupt maildrop file" in log
    assert "maildrop/ctlrcpt: corrupt maildrop file" in log and "bad recipient" in log
    # A well-formed file that did not come through postdrop: no trusted uid.
    assert "no submit_uid record: not written by postdrop" in log
    # pickup still works
    m = env.submit("after@example.org", input="Subject: after\n\nx\n")
    assert m["rcpts"] == ["after@example.org"]


def test_non_root_user(env):
    m = env.submit("bob@example.org", input="Subject: nobody\n\nx\n", user="nobody")
    uid = str(pwd.getpwnam("nobody").pw_uid)
    assert m["sender"] == "nobody@host.example.com"
    assert m["attrs"].get("submit_uid") == uid
    assert f"{m['id']}: uid={uid} from=<nobody>" in env.log()
    assert f"(postern, from userid {uid})" in m["content"]
    # maildrop/ is mail_owner:postdrop 1730; nobody cannot list or enter it
    st = os.stat(os.path.join(env.queue, "maildrop"))
    assert st.st_mode & 0o7777 == 0o1730
    assert st.st_uid == pwd.getpwnam("postern").pw_uid
    assert st.st_gid == grp.getgrnam("postdrop").gr_gid
    res = subprocess.run(["runuser", "-u", "nobody", "--", "ls", os.path.join(env.queue, "maildrop")],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode != 0 and "Permission denied" in res.stderr
    res = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c",
                          f"echo x > {env.queue}/maildrop/planted"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode != 0 and "Permission denied" in res.stderr


def postdrop_run(env, data, user="nobody", conf=None):
    argv = [env.postdrop, "-c", conf or env.conf]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, input=data, capture_output=True, timeout=TIMEOUT)


def test_postdrop_records_the_real_uid_not_the_claimed_one(env):
    """A user talking to postdrop directly cannot claim another uid."""
    def rec(t, p):
        return t + struct.pack(">I", len(p)) + p
    content = b"Subject: forged\n\nx\n"
    data = (b"POSTERNM\0\1" + b"\0" * 6 + rec(b"S", b"nobody") + rec(b"R", b"bob@example.org")
            + rec(b"A", b"submit_uid\x000") + rec(b"C", content)
            + rec(b"E", struct.pack(">Q", len(content))))
    before = env.dir_names("incoming")
    res = postdrop_run(env, data)
    assert res.returncode == 0, res.stderr
    qid = res.stdout.decode().strip()
    assert len(qid) > 5 and qid.isalnum()
    new = wait_until(lambda: env.dir_names("incoming") - before, timeout=TIMEOUT,
                     what="message in incoming/")
    m = parse_queue_file(os.path.join(env.queue, "incoming", new.pop()))
    uid = str(pwd.getpwnam("nobody").pw_uid)
    assert m["attrs"].get("submit_uid") == uid
    assert f"from userid {uid})" in m["content"]


def test_postdrop_refuses_bad_input_and_foreign_config(env):
    good = maildrop_bytes(b"x", [b"y@example.org"], b"Subject: s\n\nx\n")
    for data in (b"", b"garbage" * 10, good[:-4], good + b"extra",
                 maildrop_bytes(b"x", [b"y@example.org"], b"A" * 300000)):
        res = postdrop_run(env, data)
        assert res.returncode == 65, (data[:20], res.stderr)
    assert b"message file too big" in res.stderr
    # No half-written file is left behind (as root: nobody cannot look).
    assert not [n for n in os.listdir(os.path.join(env.queue, "maildrop")) if n.startswith("tmp.")]
    # A configuration directory the caller could have written is refused.
    mine = os.path.join(env.root, "nobody-conf")
    os.mkdir(mine)
    shutil.copy(os.path.join(env.conf, "main.cf"), os.path.join(mine, "main.cf"))
    os.chown(mine, pwd.getpwnam("nobody").pw_uid, -1)
    os.chmod(mine, 0o755)
    res = postdrop_run(env, good, conf=mine)
    assert res.returncode == 64
    assert b"not a configuration directory postdrop may use: the directory must be owned by root" in res.stderr
    # Not setgid postdrop (e.g. a plain copy): it cannot write maildrop/.
    plain = os.path.join(env.root, "plain-postdrop")
    shutil.copy(env.postdrop, plain)
    os.chmod(plain, 0o755)
    res = subprocess.run(["runuser", "-u", "nobody", "--", plain, "-c", env.conf],
                         input=good, capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 75 and b"Permission denied" in res.stderr
