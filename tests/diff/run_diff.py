#!/usr/bin/python3
"""Differential SMTP test: postern vs Debian's Postfix 3.7, reply by reply.

Run by tests/system/test_diff_postfix.py (and so by `make system`), or by
hand, as root:

    python3 tests/diff/run_diff.py --build build/std [--self-check]
        [--only FILE[:TITLE]]... [-v] [--keep]

Reads every tests/diff/dialogs/*.dlg (the format is tests/diff/FORMAT.md),
starts, for each profile the dialogs use (tests/diff/profiles/NAME.cf),
one private Postfix (`postfix -c DIR start-fg`) and one private postern
smtpd (`BUILD/bin/smtpd -c DIR`, one inet smtpd service), each in a temp
dir of its own on a free 127.0.0.1 port, plays each dialog once against
each server (one TCP connection per play; plays run in a thread pool) and
compares the replies step by step: how many, each one's code and enhanced
status code, and whether the server closed the connection. Texts are
shown, never compared. With --self-check the second server is another
Postfix instead of postern: the corpus itself must then show no
difference (a dialog whose outcome depends on timing is a bad dialog).

Both servers read the same SQLite database (postern's schema, from
`postern db init`, with the data of FORMAT.md) through the same
Postfix-style sqlite: .cf files. Accepted mail: Postfix delivers it with
virtual(8) into a temp Maildir; postern's lone smtpd leaves it queued.

A profile may name files the runner makes per run through placeholders
(FORMAT.md): @TLSDIR@ (a certificate from `openssl req`) and @SASLDIR@
(a Cyrus smtpd.conf and sasldb2 from saslpasswd2, per server).

Deliberate differences are listed in tests/diff/deviations.txt
(`FILE | TITLE | STEP | reason`): a difference that matches an entry is
reported as listed and does not fail; an entry that matches nothing that
ran fails as stale. The last line is

    diff: N dialogs, M steps, D differences (L listed), U undocumented, S stale

and the exit status is 0 only when U and S are both 0 (and nothing went
wrong in the runner itself). With --self-check every difference counts
and the deviations file is not read.

Steps are numbered as reported: 0 is the banner, then one per ">" line
(or ">>" group), "~" line and "|" line of the dialog, and last the
closing NOOP of FORMAT.md; all of them count in M and are compared.

Everything is bounded: connect and send have a deadline, and so has each
line of a reply (5 s; 10 s once the connection has had as many 4xx/5xx
replies as the profile's smtpd_soft_error_limit; 3 s for the closing
NOOP); a reply is at most 100 lines and 64 KiB; one play at most 90 s;
the servers' startup is polled with a deadline. All servers live below
one temp dir /tmp/postern-diff-XXXX (mode 0755: the postfix and postern
users read the database there), one subdirectory each, and are stopped
by PID in a finally block (SIGTERM and SIGHUP unwind the same way):
postern's smtpd directly, Postfix's master by the PID in its pid file.
Must run as root (Postfix's master); stdlib only.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

DIALOG_DIR = os.path.join(HERE, "dialogs")
PROFILE_DIR = os.path.join(HERE, "profiles")
DEVIATIONS = os.path.join(HERE, "deviations.txt")
POSTFIX = "/usr/sbin/postfix"
MAIL_USER = "nobody"  # owner of Postfix's virtual Maildirs

# Timeouts (seconds) of FORMAT.md.
REPLY_TIMEOUT = 5.0
SLOW_REPLY_TIMEOUT = 10.0  # past the soft error limit: the server sleeps
FINAL_TIMEOUT = 3.0  # the NOOP after the last step
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
DIALOG_DEADLINE = 90.0  # one play; the steps left are not played
# Bounds on one reply.
REPLY_MAX_BYTES = 64 * 1024
REPLY_MAX_LINES = 100
# Bounds on the corpus.
MAX_REPEAT = 100000  # $[COUNT*TEXT]
MAX_SEND = 4 * 1024 * 1024  # bytes of one step
MAX_REPLIES = 100  # ~N
MAX_SLEEP = 30.0
WORKERS = 8  # dialogs at once (each plays both servers at once)
SHOW_SENT = 80  # characters of what was sent, in reports

# The test data of FORMAT.md, and the lookups both servers make.
DOMAINS_QUERY = ("SELECT name FROM domains WHERE name = '%s' AND active = '1' "
                 "AND backup_mx = '0'")
MAILBOX_QUERY = "SELECT maildir FROM mailboxes WHERE address = '%s' AND active = '1'"
ALIAS_QUERY = ("SELECT t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id "
               "WHERE a.address = '%s' AND a.active = '1'")
DOMAINS = ["example.com"]
MAILBOXES = [("example.com", "alice"), ("example.com", "bob")]
ALIASES = [("example.com", "postmaster@example.com", "alice@example.com"),
           ("example.com", "sales@example.com", "bob@example.com")]
# main.cf lines every server gets before the profile's.
SHARED_MAIN = {
    "myhostname": "mx.diff.test",
    "mydomain": "diff.test",
    "mydestination": "",
    "mynetworks": "192.0.2.0/24",
    "smtpd_peername_lookup": "no",
}
# Files a profile may name through placeholders (FORMAT.md, "Placeholders").
# Why generated: a certificate and a Cyrus sasldb are binary, per-run and
# need the servers' users to read them; nothing of the kind is committed.
TLS_SUBJECT = "/CN=mx.diff.test"
SASL_USERS = [("alice", "example.com", "secret")]  # saslpasswd2 -u REALM USER
SASL_MECHS = "PLAIN LOGIN"
PLACEHOLDERS = ("@TLSDIR@", "@SASLDIR@")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class CorpusError(Exception):
    """Bad syntax in a dialog, profile or deviations file (names file:line)."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: unwind like ^C so the servers are stopped."""


# --- the corpus -----------------------------------------------------------------

class Step:
    """One step: bytes to send (None for the banner) and replies to read."""

    def __init__(self, line, data, nreplies, shown=None, timeout=None):
        self.line = line
        self.data = data
        self.nreplies = nreplies
        self.sleep = 0.0
        self.shown = shown if shown is not None else (
            "<banner>" if data is None else escape(data))
        self.timeout = timeout  # None: the reply timeout of FORMAT.md


class Dialog:
    def __init__(self, file, line, title, profile):
        self.file = file  # basename, as in reports and deviations.txt
        self.line = line
        self.title = title
        self.profile = profile
        self.steps = []
        self.final_sleep = 0.0  # a "sleep:" after the last step

    def all_steps(self):
        """Banner, the file's steps, the closing NOOP."""
        banner = Step(self.line, None, 1)
        final = Step(self.line, b"NOOP\r\n", 1, shown="NOOP\\r\\n (after the last step)",
                     timeout=FINAL_TIMEOUT)
        final.sleep = self.final_sleep
        return [banner] + self.steps + [final]


REPEAT_RE = re.compile(r"\$\[(\d+)\*([^\]]*)\]")


def expand(text, where):
    """Expand every $[COUNT*TEXT] in text."""
    out = []
    pos = 0
    while True:
        i = text.find("$[", pos)
        if i < 0:
            out.append(text[pos:])
            return "".join(out)
        m = REPEAT_RE.match(text, i)
        if not m:
            raise CorpusError(f"{where}: bad $[COUNT*TEXT] at column {i + 1}")
        count = int(m.group(1))
        if count > MAX_REPEAT:
            raise CorpusError(f"{where}: $[{count}*...]: COUNT over {MAX_REPEAT}")
        out.append(text[pos:i])
        out.append(m.group(2) * count)
        pos = m.end()


ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def unescape(text, where):
    """Decode \\r \\n \\t \\0 \\\\ \\xHH; other characters as UTF-8."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            j = text.find("\\", i)
            j = n if j < 0 else j
            out += text[i:j].encode("utf-8")
            i = j
            continue
        e = text[i + 1:i + 2]
        if e in ESCAPES:
            out += ESCAPES[e]
            i += 2
        elif e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise CorpusError(f"{where}: bad escape \\{e} (\\r \\n \\t \\0 \\\\ \\xHH)")
    return bytes(out)


def escape(data):
    """Bytes as one printable line: \\r \\n \\t \\0 \\\\ and \\xHH for the rest."""
    out = []
    for b in data:
        if b == 0x5c:
            out.append("\\\\")
        elif 0x20 <= b < 0x7f:
            out.append(chr(b))
        elif b == 13:
            out.append("\\r")
        elif b == 10:
            out.append("\\n")
        elif b == 9:
            out.append("\\t")
        elif b == 0:
            out.append("\\0")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def shorten(text, limit=SHOW_SENT, size=None):
    if len(text) <= limit:
        return text
    note = f"... ({size} bytes)" if size is not None else "..."
    return text[:limit - len(note)] + note


def line_bytes(text, where):
    data = expand(text, where).encode("utf-8") + b"\r\n"
    if len(data) > MAX_SEND:
        raise CorpusError(f"{where}: more than {MAX_SEND} bytes")
    return data


def parse_dialogs(path):
    """The dialogs of one .dlg file, in order; CorpusError on bad syntax."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}: not UTF-8: {exc}") from None
    if lines and lines[-1] == "":
        lines.pop()
    profile = None
    dialogs = []
    titles = {}
    cur = None
    pipe = []  # pending ">>" lines: (lineno, bytes)
    pending_sleep = 0.0

    def add(step):
        nonlocal pending_sleep
        step.sleep, pending_sleep = pending_sleep, 0.0
        cur.steps.append(step)

    for no, raw in enumerate(lines, 1):
        where = f"{name}:{no}"
        text = raw[:-1] if raw.endswith("\r") else raw
        if text.strip() == "" or text.startswith("#"):
            continue
        if pipe and not text.startswith(">"):
            raise CorpusError(f"{name}:{pipe[0][0]}: a \">>\" group must end with a "
                              "\">\" line")
        if text.startswith("profile:"):
            if profile is not None:
                raise CorpusError(f"{where}: second profile: line")
            if dialogs:
                raise CorpusError(f"{where}: profile: must come before the first dialog")
            profile = text[len("profile:"):].strip()
            if not re.fullmatch(r"[A-Za-z0-9_-]+", profile):
                raise CorpusError(f"{where}: bad profile name {profile!r}")
            if not os.path.exists(os.path.join(PROFILE_DIR, profile + ".cf")):
                raise CorpusError(f"{where}: no profile {profile} "
                                  f"(tests/diff/profiles/{profile}.cf)")
            continue
        if text.startswith("==="):
            title = text[3:].strip()
            if not title:
                raise CorpusError(f"{where}: dialog without a title")
            if "|" in title:
                raise CorpusError(f"{where}: \"|\" in a title (deviations.txt separator)")
            if title in titles:
                raise CorpusError(f"{where}: title {title!r} already used at "
                                  f"{name}:{titles[title]}")
            if cur is not None:
                cur.final_sleep, pending_sleep = pending_sleep, 0.0
            titles[title] = no
            cur = Dialog(name, no, title, profile or "default")
            dialogs.append(cur)
            continue
        if cur is None:
            raise CorpusError(f"{where}: step before the first \"=== TITLE\" line")
        if text.startswith(">>"):
            body = text[2:]
            body = body[1:] if body.startswith(" ") else body
            pipe.append((no, line_bytes(body, where)))
        elif text.startswith(">"):
            body = text[1:]
            body = body[1:] if body.startswith(" ") else body
            data = line_bytes(body, where)
            if pipe:
                parts = [d for _, d in pipe] + [data]
                step = Step(pipe[0][0], b"".join(parts), len(parts))
                pipe = []
            else:
                step = Step(no, data, 1)
            add(step)
        elif text.startswith("~"):
            m = re.match(r"~(\d+)(?: (.*))?$", text)
            if not m:
                raise CorpusError(f"{where}: expected \"~N RAW\"")
            n = int(m.group(1))
            if n > MAX_REPLIES:
                raise CorpusError(f"{where}: ~{n}: more than {MAX_REPLIES} replies")
            data = unescape(expand(m.group(2) or "", where), where)
            if len(data) > MAX_SEND:
                raise CorpusError(f"{where}: more than {MAX_SEND} bytes")
            add(Step(no, data, n))
        elif text.startswith("|"):
            body = text[1:]
            body = body[1:] if body.startswith(" ") else body
            add(Step(no, line_bytes(body, where), 0))
        elif text.startswith("sleep:"):
            try:
                secs = float(text[len("sleep:"):].strip())
            except ValueError:
                raise CorpusError(f"{where}: expected \"sleep: SECONDS\"") from None
            if not 0 <= secs <= MAX_SLEEP:
                raise CorpusError(f"{where}: sleep: between 0 and {MAX_SLEEP:g} s")
            pending_sleep += secs
        else:
            raise CorpusError(f"{where}: unrecognised line (see tests/diff/FORMAT.md): "
                              f"{shorten(text, 60)!r}")
    if pipe:
        raise CorpusError(f"{name}:{pipe[0][0]}: a \">>\" group must end with a \">\" line")
    if cur is not None:
        cur.final_sleep = pending_sleep
    elif pending_sleep:
        raise CorpusError(f"{name}: sleep: outside a dialog")
    return dialogs


def read_profile(name):
    """The main.cf lines of a profile, as text, and its parameters as a dict."""
    path = os.path.join(PROFILE_DIR, name + ".cf")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    params = {}
    last = None
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if last is None:
                raise CorpusError(f"profiles/{name}.cf:{no}: continuation without a parameter")
            params[last] += " " + line.strip()
            continue
        k, eq, v = line.partition("=")
        if not eq or not re.fullmatch(r"[a-z0-9_]+", k.strip()):
            raise CorpusError(f"profiles/{name}.cf:{no}: expected \"name = value\"")
        last = k.strip()
        if last in params:
            raise CorpusError(f"profiles/{name}.cf:{no}: {last} set twice")
        params[last] = v.strip()
    for ph in re.findall(r"@[A-Z]+@", text):
        if ph not in PLACEHOLDERS:
            raise CorpusError(f"profiles/{name}.cf: unknown placeholder {ph} "
                              f"(known: {', '.join(PLACEHOLDERS)})")
    return text, params


class Deviation:
    def __init__(self, line, file, title, step, reason):
        self.line, self.file, self.title, self.step, self.reason = (
            line, file, title, step, reason)
        self.used = False

    def matches(self, file, title, step):
        return (self.file == file and self.title == title
                and (self.step == "*" or int(self.step) == step))


DEVIATION_RE = re.compile(r"^\s*([^|]+?)\s*\|\s*(.+?)\s*\|\s*(\d+|\*)\s*\|\s*(\S.*?)\s*$")


def parse_deviations(path):
    devs = []
    if not os.path.exists(path):
        return devs
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = DEVIATION_RE.match(line)
            if not m:
                raise CorpusError(f"deviations.txt:{no}: expected "
                                  "\"FILE | TITLE | STEP | reason\"")
            devs.append(Deviation(no, *m.groups()))
    return devs


# --- talking SMTP ---------------------------------------------------------------

TIMEOUT = ("<timeout>", "", "")
ENHANCED_RE = re.compile(rb"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})(?= |$)")


class Conn:
    """A client connection with a bounded SMTP reply reader."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        # Each step is one write: no Nagle delay between a step's write
        # and the server's reply to the one before.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Send data; False if the server had closed the connection."""
        self.sock.settimeout(SEND_TIMEOUT)
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True
            return False

    def read_reply(self, timeout):
        """One reply: (code, enhanced, text); TIMEOUT; or None at EOF.

        timeout bounds the wait for each line of the reply, not the whole
        reply. Why: past the soft error limit Postfix sleeps
        smtpd_error_sleep_time before every line it writes, so a
        10-line EHLO reply takes 10 s.

        A reply over REPLY_MAX_LINES lines or REPLY_MAX_BYTES bytes, or a
        line that is not "DDD", "DDD text" or "DDD-text", is returned as
        ("<bad reply>", "", why) and ends the play (the stream is lost).
        """
        deadline = time.monotonic() + timeout
        lines = []
        size = 0
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                size += nl + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                lines.append(line)
                if not re.match(rb"^\d{3}(?:[ -]|$)", line):
                    return self.bad(f"not a reply line: {escape(line[:60])}")
                if line[:3] != lines[0][:3]:
                    return self.bad(f"code changes within a reply: {escape(line[:60])}")
                if len(lines) > REPLY_MAX_LINES or size > REPLY_MAX_BYTES:
                    return self.bad(f"reply over {REPLY_MAX_LINES} lines or "
                                    f"{REPLY_MAX_BYTES} bytes")
                if line[3:4] == b"-":
                    deadline = time.monotonic() + timeout
                    continue
                first = lines[0]
                m = ENHANCED_RE.match(first)
                text = "\n".join(l.decode("utf-8", "replace") for l in lines)
                return (first[:3].decode(), m.group(1).decode() if m else "", text)
            if len(self.buf) + size > REPLY_MAX_BYTES:
                return self.bad(f"reply over {REPLY_MAX_BYTES} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMEOUT
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return TIMEOUT
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
                return None
            self.buf += chunk

    def bad(self, why):
        self.eof = True  # nothing more can be read in step with the server
        return ("<bad reply>", "", why)


def is_error(reply):
    return reply[0][:1] in ("4", "5")


def play(dialog, port, soft_limit):
    """Play dialog on 127.0.0.1:port; one (replies, eof) per step of all_steps()."""
    results = []
    steps = dialog.all_steps()
    try:
        conn = Conn(port)
    except OSError as exc:
        return [([("<connect failed>", "", str(exc))], True)] + [([], True)] * (len(steps) - 1)
    errors = 0
    deadline = time.monotonic() + DIALOG_DEADLINE
    try:
        for step in steps:
            if time.monotonic() > deadline:
                results.append(([("<dialog deadline>", "", f"{DIALOG_DEADLINE:g} s")],
                                conn.eof))
                continue
            if step.sleep:
                time.sleep(step.sleep)
            if conn.eof:
                results.append(([], True))
                continue
            replies = []
            if step.data is not None:
                try:
                    ok = conn.send(step.data)
                except socket.timeout:
                    replies.append(("<send timeout>", "", ""))
                    results.append((replies, conn.eof))
                    continue
                if not ok and not step.nreplies:
                    results.append((replies, True))
                    continue
            for _ in range(step.nreplies):
                timeout = step.timeout or (
                    SLOW_REPLY_TIMEOUT if errors >= soft_limit else REPLY_TIMEOUT)
                r = conn.read_reply(timeout)
                if r is None:
                    break
                replies.append(r)
                if r is TIMEOUT or r[0] == "<bad reply>":
                    break  # the rest of this step would only time out too
                if is_error(r):
                    errors += 1
            results.append((replies, conn.eof))
    finally:
        conn.close()
    return results


# --- the servers ----------------------------------------------------------------

class ServerError(RuntimeError):
    """A server did not start; the message carries its log tail."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (start() retries
    with another one if the server then finds it taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children_of(ppid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def is_master_of(pid, conf):
    """True if pid is a Postfix master started for config dir conf."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if not f.read().split(b"\0")[0].endswith(b"/master"):
                return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"MAIL_CONFIG={conf}".encode() in f.read().split(b"\0")
    except OSError:
        return False


class Proc:
    """One server process in a session of its own, stopped by PID.

    The same approach as tests/system/harness/process.py (not imported:
    that package needs the test-only Python modules; this script is
    stdlib only): SIGTERM to the recorded PID, a bounded wait, then
    SIGKILL to it and its process group.
    """

    def __init__(self, argv, out, logs):
        self.argv = argv
        self.out = out
        self.logs = logs
        with open(out, "ab") as f:
            f.write(f"=== start: {' '.join(argv)}\n".encode())
            f.flush()
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self):
        return "\n".join(f"[{p}]\n{tail(p)}" for p in [self.out] + self.logs)

    def wait_ready(self, check, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.alive():
                raise ServerError(f"{self.argv[0]} (pid {self.pid}) exited with status "
                                  f"{self.popen.returncode} before it was ready\n"
                                  + self.log_tail())
            try:
                if check():
                    return
            except OSError as exc:  # not listening yet
                last = exc
            if time.monotonic() > deadline:
                raise ServerError(f"{self.argv[0]} (pid {self.pid}) not ready after "
                                  f"{timeout} s (last error: {last!r})\n" + self.log_tail())
            time.sleep(0.05)

    def stop(self, timeout=15):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for kill in (lambda: os.kill(self.pid, signal.SIGKILL),
                             lambda: os.killpg(self.pid, signal.SIGKILL)):
                    try:
                        kill()
                    except (ProcessLookupError, PermissionError):
                        pass
                self.popen.wait(timeout=10)
        # Anything the server forked into its session and left behind.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode


def wait_banner(port, proc, timeout=30):
    def ready():
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            data = s.recv(512)
            s.sendall(b"QUIT\r\n")
            return re.match(rb"^[2-5]\d\d[ -]", data) is not None
    proc.wait_ready(ready, timeout=timeout)


class Server:
    """One private server in dir: main.cf = shared + profile + own lines."""

    kind = "server"

    def __init__(self, label, dir, profile_text, maps):
        self.label = label
        self.dir = dir
        self.conf = os.path.join(dir, "conf")
        self.queue = os.path.join(dir, "queue")
        self.data = os.path.join(dir, "data")
        self.maillog = os.path.join(dir, "maillog")
        self.out = os.path.join(dir, "server.out")
        # $config_directory/sasl: Debian's Postfix reads smtpd.conf only
        # there (its patch 07_sasl_config ignores cyrus_sasl_config_path);
        # postern reads it through cyrus_sasl_config_path = @SASLDIR@.
        self.sasldir = os.path.join(self.conf, "sasl")
        self.profile_text = profile_text.replace("@SASLDIR@", self.sasldir)
        self.maps = maps
        self.port = None
        self.proc = None
        os.makedirs(self.conf, mode=0o755)
        os.makedirs(self.queue, mode=0o755)
        if "@SASLDIR@" in profile_text:
            make_sasl(self.sasldir)

    def main_cf(self):
        shared = dict(SHARED_MAIN)
        shared.update({"virtual_mailbox_domains": self.maps["domains"],
                       "virtual_mailbox_maps": self.maps["mailboxes"],
                       "virtual_alias_maps": self.maps["aliases"]})
        text = f"# Generated by tests/diff/run_diff.py for {self.label}\n"
        text += "# --- shared test data\n"
        text += "".join(f"{k} = {v}\n" for k, v in shared.items())
        text += "# --- the profile\n" + self.profile_text.rstrip("\n") + "\n"
        text += f"# --- {self.kind} only\n"
        text += "".join(f"{k} = {v}\n" for k, v in self.own_main().items())
        return text

    def write_config(self):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(self.master_cf()) + "\n")

    def start(self, attempts=3):
        for attempt in range(attempts):
            self.port = free_port()
            self.write_config()
            self.proc = Proc(self.argv(), self.out, [self.maillog])
            try:
                wait_banner(self.port, self.proc)
                return self
            except ServerError as exc:
                self.stop()
                if "in use" not in str(exc) or attempt == attempts - 1:
                    raise
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def warnings(self):
        """Warnings and errors the server printed (not Postfix's routine ones)."""
        out = []
        for path in (self.out, self.maillog):
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if re.search(r"\b(warning|error|fatal|panic):", line):
                            out.append(line.rstrip())
            except FileNotFoundError:
                pass
        return out


class Postfix(Server):
    kind = "Postfix"

    def __init__(self, *a):
        super().__init__(*a)
        self.vmail = os.path.join(self.dir, "vmail")
        os.makedirs(self.vmail, mode=0o755)
        import pwd
        pw = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.chown(self.vmail, self.uid, self.gid)

    def own_main(self):
        return {
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_mailbox_base": self.vmail,
            "virtual_uid_maps": f"static:{self.uid}",
            "virtual_gid_maps": f"static:{self.gid}",
        }

    def master_cf(self):
        # Debian's master.cf without chroot, only what inbound virtual
        # delivery (with its bounces and logging) uses.
        return [
            f"127.0.0.1:{self.port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "postlog unix-dgram n - n - 1 postlogd",
        ]

    def argv(self):
        return [POSTFIX, "-c", self.conf, "start-fg"]

    def stop(self):
        """Stop the master by the PID in its pid file, as `postfix stop` does.

        Why not just our child: `postfix start-fg` is postfix-script, a
        shell that runs `master -s` as its child (it execs the master only
        as PID 1), and the master makes a session of its own. A signal to
        the shell would leave the master and its daemons running. On
        SIGTERM the master stops every process of its session.
        """
        if self.proc is None:
            return
        pid = self.master_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        deadline = time.monotonic() + 15
        while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None and pid_alive(pid):
            for kill in (lambda: os.killpg(pid, signal.SIGKILL),
                         lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        super().stop()  # the postfix-script shell, which exits with the master

    def master_pid(self):
        """The master's PID: its pid file, else the start-fg shell's child."""
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            if is_master_of(pid, self.conf):
                return pid
        except (OSError, ValueError, IndexError):
            pass
        for pid in children_of(self.proc.pid):
            if is_master_of(pid, self.conf):
                return pid
        return None

    def warnings(self):
        # Postfix's own startup chatter is not news.
        return [w for w in super().warnings()
                if "not owned by" not in w and "symlink leaves directory" not in w]


class Postern(Server):
    kind = "postern"

    def __init__(self, label, dir, profile_text, maps, build, db):
        super().__init__(label, dir, profile_text, maps)
        self.build = build
        self.db = db

    def own_main(self):
        return {
            "database": f"sqlite:{self.db}",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            # As Postfix's: address literals of these addresses are local.
            "inet_interfaces": "127.0.0.1",
        }

    def master_cf(self):
        return [f"127.0.0.1:{self.port} inet n - n - - smtpd"]

    def argv(self):
        return [os.path.join(self.build, "bin", "smtpd"), "-c", self.conf]

    def sanitizer_report(self):
        try:
            with open(self.out, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return ""
        return text[-4000:] if any(m in text for m in SANITIZER_MARKERS) else ""


def make_tls(work):
    """A throw-away self-signed certificate for @TLSDIR@ (cert.pem, key.pem)."""
    d = os.path.join(work, "tls")
    os.mkdir(d, 0o755)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    res = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-days", "2", "-subj", TLS_SUBJECT, "-keyout", key, "-out", cert],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"openssl req failed: {(res.stdout + res.stderr).strip()}")
    # Why world-readable: a test key, read by whichever user each server
    # loads it as; a permission difference is not what is compared here.
    for f in (cert, key):
        os.chmod(f, 0o644)
    return d


def make_sasl(d):
    """@SASLDIR@: smtpd.conf (sasldb auxprop, SASL_MECHS) and its sasldb2
    holding SASL_USERS (FORMAT.md)."""
    if shutil.which("saslpasswd2") is None:
        raise RuntimeError("saslpasswd2 missing: scripts/deps.sh test (sasl2-bin)")
    os.makedirs(d, mode=0o755, exist_ok=True)
    db = os.path.join(d, "sasldb2")
    for user, realm, password in SASL_USERS:
        res = subprocess.run(["saslpasswd2", "-p", "-c", "-f", db, "-u", realm, user],
                             input=password + "\n", capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise RuntimeError(f"saslpasswd2 failed: {(res.stdout + res.stderr).strip()}")
    with open(os.path.join(d, "smtpd.conf"), "w") as f:
        f.write(f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                f"mech_list: {SASL_MECHS}\nsasldb_path: {db}\n")
    # Why world-readable: Postfix's smtpd reads it as postfix, postern's
    # as its own user; the passwords are the test's own.
    for f in ("sasldb2", "smtpd.conf"):
        os.chmod(os.path.join(d, f), 0o644)


def make_database(work, build):
    """postern's schema plus FORMAT.md's data; the three sqlite: .cf maps."""
    data = os.path.join(work, "db")
    os.mkdir(data, 0o755)
    conf = os.path.join(work, "dbinit")
    os.mkdir(conf, 0o755)
    db = os.path.join(data, "diff.sqlite")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(f"database = sqlite:{db}\ndata_directory = {data}\n")
    res = subprocess.run([os.path.join(build, "bin", "postern"), "-c", conf, "db", "init"],
                         capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"postern db init failed: {(res.stdout + res.stderr).strip()}")
    conn = sqlite3.connect(db)
    with conn:
        ids = {}
        for d in DOMAINS:
            ids[d] = conn.execute("INSERT INTO domains (name, description) VALUES (?, 'diff')",
                                  (d,)).lastrowid
        for d, local in MAILBOXES:
            conn.execute("INSERT INTO mailboxes (domain_id, local_part, address, password, "
                         "maildir) VALUES (?, ?, ?, '{PLAIN}x', ?)",
                         (ids[d], local, f"{local}@{d}", f"{d}/{local}/"))
        for d, address, target in ALIASES:
            aid = conn.execute("INSERT INTO aliases (domain_id, address) VALUES (?, ?)",
                               (ids[d], address)).lastrowid
            conn.execute("INSERT INTO alias_targets (alias_id, target) VALUES (?, ?)",
                         (aid, target))
    # Why: the servers' smtpd processes read it as postfix and postern;
    # in WAL mode a reader must be able to write the -shm file, so give
    # them a plain rollback journal, which read-only readers can use.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    for name in os.listdir(data):
        os.chmod(os.path.join(data, name), 0o644)
    os.chmod(data, 0o755)
    maps = {}
    for name, query in (("domains", DOMAINS_QUERY), ("mailboxes", MAILBOX_QUERY),
                        ("aliases", ALIAS_QUERY)):
        path = os.path.join(work, f"sqlite-{name}.cf")
        with open(path, "w") as f:
            f.write(f"dbpath = {db}\nquery = {query}\n")
        os.chmod(path, 0o644)
        maps[name] = f"sqlite:{path}"
    return db, maps


# --- comparing and reporting ------------------------------------------------------

def show_reply(r):
    code, enh, text = r
    if code.startswith("<"):
        return code + (f" {text}" if text else "")
    first, *rest = text.split("\n")
    # The text without its code (and enhanced code): "250 2.1.0 Ok".
    body = first[4:]
    if enh and body.startswith(enh):
        body = body[len(enh):].lstrip(" ")
    shown = " ".join(x for x in (code, enh, body) if x)
    if rest:
        shown += f" (+{len(rest)} lines)"
    return shown


def show_step(replies, eof):
    parts = [show_reply(r) for r in replies]
    if eof:
        parts.append("<closed>")
    return " | ".join(parts) if parts else "<nothing>"


def step_key(replies, eof):
    return ([(c, e) for c, e, _ in replies], eof)


def main():
    ap = argparse.ArgumentParser(description="postern vs Postfix, SMTP dialog by dialog")
    ap.add_argument("--build", required=True, help="postern build dir (holds bin/smtpd)")
    ap.add_argument("--self-check", action="store_true",
                    help="Postfix against Postfix: the corpus must show no difference")
    ap.add_argument("--only", action="append", default=[], metavar="FILE[:TITLE]",
                    help="only this file (or dialog); may be repeated")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print every step of every dialog, both sides")
    ap.add_argument("--keep", action="store_true", help="keep the servers' temp dirs")
    args = ap.parse_args()

    def interrupted(signum, frame):
        raise Interrupted(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    if os.geteuid() != 0:
        sys.exit("run_diff.py: must run as root (Postfix's master needs it)")
    if not os.access(POSTFIX, os.X_OK):
        sys.exit(f"run_diff.py: {POSTFIX} missing: scripts/deps.sh test")
    build = os.path.abspath(args.build)
    for prog in ("postern", "smtpd"):
        if not os.access(os.path.join(build, "bin", prog), os.X_OK):
            sys.exit(f"run_diff.py: {build}/bin/{prog} missing: run make")

    try:
        dialogs, devs = load_corpus(args)
    except CorpusError as exc:
        sys.exit(f"run_diff.py: {exc}")
    if not dialogs:
        sys.exit("run_diff.py: no dialogs selected")
    profiles = sorted({d.profile for d in dialogs})
    sides = ("postfix", "postfix2") if args.self_check else ("postfix", "postern")

    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="postern-diff-", dir="/tmp")
    os.chmod(work, 0o755)  # the postfix and postern users read the database here
    servers = {}
    failed_runner = []
    try:
        db, maps = make_database(work, build)
        texts = {p: read_profile(p)[0] for p in profiles}
        tlsdir = (make_tls(work) if any("@TLSDIR@" in t for t in texts.values())
                  else None)
        for p in profiles:
            text = texts[p].replace("@TLSDIR@", tlsdir or "@TLSDIR@")
            for side in sides:
                d = os.path.join(work, f"{p}-{side}")
                os.mkdir(d, 0o755)
                if side.startswith("postfix"):
                    servers[p, side] = Postfix(f"{side}/{p}", d, text, maps)
                else:
                    servers[p, side] = Postern(f"{side}/{p}", d, text, maps, build, db)
        start_all(servers)
        t_started = time.monotonic()
        notes = []
        for (p, side), srv in sorted(servers.items()):
            for w in srv.warnings():
                notes.append(f"note: {side}/{p}: {w}")
        for n in notes:
            print(n)
        soft = {p: int(read_profile(p)[1].get("smtpd_soft_error_limit", "10"))
                for p in profiles}
        results = play_all(dialogs, servers, sides, soft)
        t_played = time.monotonic()
        for (p, side), srv in servers.items():
            if srv.proc is not None and not srv.proc.alive():
                failed_runner.append(f"{side}/{p}: server exited during the run:\n"
                                     + srv.proc.log_tail())
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"run_diff.py: interrupted ({exc or 'SIGINT'}); stopping the servers",
              file=sys.stderr)
        raise SystemExit(130)
    except (ServerError, RuntimeError, CorpusError) as exc:
        print(f"run_diff.py: {exc}", file=sys.stderr)
        raise SystemExit(2)
    finally:
        for srv in servers.values():
            try:
                srv.stop()
            except Exception as exc:  # keep stopping the others
                print(f"run_diff.py: stopping {srv.label}: {exc}", file=sys.stderr)
        # After the stop: LeakSanitizer reports when the process exits.
        for (p, side), srv in servers.items():
            rep = srv.sanitizer_report() if isinstance(srv, Postern) else ""
            if rep:
                failed_runner.append(f"{side}/{p}: sanitizer report:\n{rep}")
        if args.keep:
            print(f"run_diff.py: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    code = report(dialogs, results, sides, devs, args)
    # Plays that could not be made are the runner's failures, even when
    # both sides failed alike.
    for (i, side), (steps, _) in sorted(results.items()):
        for replies, _ in steps:
            for r in replies:
                if r[0] in ("<connect failed>", "<dialog deadline>"):
                    d = dialogs[i]
                    failed_runner.append(f"{d.file}:{d.line} {d.title}: {side}: "
                                         f"{r[0]} {r[2]}")
    for f in failed_runner:
        print(f"run_diff.py: {f}")
        code = 1
    print(f"run_diff.py: servers up in {t_started - t0:.1f} s, dialogs played in "
          f"{t_played - t_started:.1f} s")
    sys.exit(code)


def load_corpus(args):
    files = sorted(f for f in os.listdir(DIALOG_DIR) if f.endswith(".dlg"))
    # {file: set of titles}; an empty set: the whole file.
    selected = {}
    for o in args.only:
        f, _, title = o.partition(":")
        f = os.path.basename(f)
        if f not in files:
            raise CorpusError(f"--only {o}: no dialog file {f} in tests/diff/dialogs")
        if title:
            if selected.get(f, {None}):
                selected.setdefault(f, set()).add(title)
        else:
            selected[f] = set()
    dialogs = []
    for f in files:
        ds = parse_dialogs(os.path.join(DIALOG_DIR, f))  # every file is checked
        if selected and f not in selected:
            continue
        want = selected.get(f)
        if want:
            missing = want - {d.title for d in ds}
            if missing:
                raise CorpusError(f"--only: no dialog {sorted(missing)[0]!r} in {f}")
            ds = [d for d in ds if d.title in want]
        dialogs.extend(ds)
    devs = [] if args.self_check else parse_deviations(DEVIATIONS)
    return dialogs, devs


def start_all(servers):
    """Start every server at once (Postfix takes a second or two)."""
    errors = []

    def one(srv):
        try:
            srv.start()
        except ServerError as exc:
            errors.append(f"{srv.label} did not start: {exc}")

    threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in servers.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if any(t.is_alive() for t in threads):
        errors.append("a server did not start within 120 s")
    if errors:
        raise RuntimeError("\n".join(errors))


def timed_play(dialog, port, soft_limit):
    t = time.monotonic()
    steps = play(dialog, port, soft_limit)
    return steps, time.monotonic() - t


def play_all(dialogs, servers, sides, soft):
    """{(dialog index, side): results}; dialogs run WORKERS at once."""
    results = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * WORKERS)
    try:
        futures = {}
        # Slow dialogs first, so that they do not start last: those of
        # profiles with a low soft error limit (their replies wait
        # smtpd_error_sleep_time), then the longer ones.
        order = sorted(range(len(dialogs)),
                       key=lambda i: (soft[dialogs[i].profile], -len(dialogs[i].steps)))
        for i in order:
            d = dialogs[i]
            for side in sides:
                srv = servers[d.profile, side]
                futures[pool.submit(timed_play, d, srv.port, soft[d.profile])] = (i, side)
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut]] = fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def report(dialogs, results, sides, devs, args):
    """Print the differences (with -v first every step) and the summary line;
    return the exit status."""
    a, b = sides
    width = max(len(a), len(b))
    rows = []  # (dialog, step number, step, side a, side b, same)
    secs = {}  # dialog: seconds of its slower play
    for i, d in enumerate(dialogs):
        (sa, ta), (sb, tb) = results[i, a], results[i, b]
        secs[d] = max(ta, tb)
        for n, step in enumerate(d.all_steps()):
            rows.append((d, n, step, sa[n], sb[n], step_key(*sa[n]) == step_key(*sb[n])))

    def sent(step):
        return shorten(step.shown, size=len(step.data) if step.data else None)

    if args.verbose:
        for d, n, step, ra, rb, same in rows:
            if n == 0:
                print(f"{d.file}:{d.line} === {d.title} (profile {d.profile}, "
                      f"{secs[d]:.1f} s)")
            print(f"{' ' if same else '!'} step {n}: {sent(step)}")
            print(f"    {a:<{width}}: {show_step(*ra)}")
            print(f"    {b:<{width}}: {show_step(*rb)}")
        slow = sorted(dialogs, key=lambda d: -secs[d])[:5]
        print("slowest: " + ", ".join(f"{d.file}:{d.line} {secs[d]:.1f} s" for d in slow))
        print()
    ndiff = nlisted = 0
    for d, n, step, ra, rb, same in rows:
        if same:
            continue
        ndiff += 1
        dev = next((x for x in devs if x.matches(d.file, d.title, n)), None)
        tag = ""
        if dev is not None:
            dev.used = True
            nlisted += 1
            tag = f"  [deviation (listed): {dev.reason}]"
        print(f"{d.file}:{step.line} {d.title} step {n}: {sent(step)}{tag}")
        print(f"  {a:<{width}}: {show_step(*ra)}")
        print(f"  {b:<{width}}: {show_step(*rb)}")
    # An entry is stale when its dialog ran without that difference, or
    # when it names a dialog that does not exist (whole-corpus runs only).
    ran = {(d.file, d.title) for d in dialogs}
    stale = [x for x in devs if not x.used and ((x.file, x.title) in ran or not args.only)]
    for x in stale:
        why = "no such difference" if (x.file, x.title) in ran else "no such dialog"
        print(f"deviations.txt:{x.line}: stale deviation: {x.file} | {x.title} | "
              f"{x.step}: {why}")
    undoc = ndiff - nlisted
    print(f"diff: {len(dialogs)} dialogs, {len(rows)} steps, {ndiff} differences "
          f"({nlisted} listed), {undoc} undocumented, {len(stale)} stale")
    return 0 if undoc == 0 and not stale else 1


if __name__ == "__main__":
    main()
