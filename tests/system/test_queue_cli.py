"""`postern queue`: list, cat, shape, delete, hold, release, requeue, flush
(postqueue -p, postcat -q, qshape, postsuper -d/-h/-H/-r, postqueue -f/-s).

Messages are queued by the real programs (`postern sendmail` -> maildrop
-> pickup -> incoming/, the environment of test_sendmail.py). Queue moves
are made with the commands under test. There is no queue manager yet, so
what it would write is written here by the file formats documented in
lib/queue/queue_file.h (a recipient's status slot: deferred, delivered) and
lib/queue/queue_log.h (a deferral reason); those helpers are small and
byte-exact, and the commands read them back through the C readers.
"""

import os
import re
import struct
import subprocess
import time

import pytest

from test_sendmail import Env

TIMEOUT = 20


@pytest.fixture(scope="module")
def env(postern_build):
    e = Env(postern_build)
    e.start_pickup()
    yield e
    e.cleanup()


def run(env, *args, input=None):
    return subprocess.run([env.postern, "queue", "-c", env.conf, *args], input=input,
                          capture_output=True, text=True, timeout=TIMEOUT)


def submit(env, *rcpts, sender="alice@example.com", subject="t"):
    msg = f"Subject: {subject}\nX-Test: yes\n\nbody line 1\nbody line 2\n"
    return env.submit("-f", sender, *rcpts, input=msg)["id"]


@pytest.fixture
def clean(env):
    """An empty queue before each test."""
    run(env, "delete", "ALL")
    res = run(env, "list")
    assert res.stdout == "Mail queue is empty\n"
    return env


def find(env, qid):
    """(queue, path) of a message file, at any hash depth."""
    for q in ("incoming", "active", "deferred", "hold", "corrupt"):
        for dirpath, _, files in os.walk(os.path.join(env.queue, q)):
            if qid in files:
                return q, os.path.join(dirpath, qid)
    return None, None


def rcpt_slots(path):
    """[(record offset of the status slot, address)] of a queue file."""
    data = open(path, "rb").read()
    content_off, content_len = struct.unpack(">QQ", data[16:32])
    out = []
    for start, stop in ((32, content_off), (content_off + content_len, len(data))):
        off = start
        while off < stop:
            typ = chr(data[off])
            (n,) = struct.unpack(">I", data[off + 1:off + 5])
            if typ == "R":
                (alen,) = struct.unpack(">H", data[off + 5 + 33:off + 5 + 35])
                out.append((off + 5, data[off + 5 + 35:off + 5 + 35 + alen].decode()))
            off += 5 + n
            if typ in "XZ":
                break
    return out


def read_slot(path, index):
    off, _ = rcpt_slots(path)[index]
    data = open(path, "rb").read()[off:off + 32]
    state, flags, attempts, next_retry, changed = struct.unpack(">BBHQQ", data[:20])
    return {"state": state, "attempts": attempts, "next_retry": next_retry}


def set_slot(path, index, state, next_retry=0, dsn=(4, 4, 1)):
    """What qmgr does after an attempt: update the slot in place."""
    off, _ = rcpt_slots(path)[index]
    now = int(time.time())
    slot = struct.pack(">BBHQQBHH", state, 0, 1, next_retry, now, *dsn) + b"\0" * 7
    assert len(slot) == 32
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(slot)


def append_reason(env, qid, index, reason, state=1):
    """A deferral reason in the message's status log (queue_log.h)."""
    path = os.path.join(env.queue, "defer", qid)
    new = not os.path.exists(path)
    body = struct.pack(">IBBHHQQ", index, state, 4, 4, 1, int(time.time()),
                       int(time.time()) + 3600) + reason.encode()
    with open(path, "ab") as f:
        if new:
            f.write(b"POSTERNL" + struct.pack(">H", 1) + b"\0" * 6)
        f.write(b"D" + struct.pack(">I", len(body)) + body)


def set_arrival(path, seconds_ago):
    """Age a message: rewrite its 'T' record (first record, offset 32)."""
    with open(path, "r+b") as f:
        f.seek(32)
        assert f.read(1) == b"T"
        f.seek(37)
        f.write(struct.pack(">QI", int(time.time()) - seconds_ago, 0))


HEADER = "-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------"
ID_LINE = re.compile(r"^(\w{14})([ *!]) +(\d+) (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d) +(\S+)$")
RCPT_INDENT = " " * 46


def parse_list(out):
    """The messages of a listing: [(id, mark, sender, [lines below])]."""
    lines = out.splitlines()
    assert lines[0] == HEADER
    msgs = []
    for line in lines[1:]:
        m = ID_LINE.match(line)
        if m:
            msgs.append((m.group(1), m.group(2), m.group(5), []))
        elif line and not line.startswith("--"):
            msgs[-1][3].append(line)
    return msgs


def test_list_layout_and_markers(clean):
    env = clean
    a = submit(env, "bob@example.org", "carol@example.net")
    b = submit(env, "dave@example.org", sender="")
    res = run(env, "list")
    assert res.returncode == 0, res.stderr
    msgs = parse_list(res.stdout)
    assert msgs == [
        (a, " ", "alice@example.com", [RCPT_INDENT + "bob@example.org",
                                       RCPT_INDENT + "carol@example.net"]),
        (b, " ", "MAILER-DAEMON", [RCPT_INDENT + "dave@example.org"]),
    ]
    lines = res.stdout.splitlines()
    assert lines[4] == "" and lines[-2] == ""
    assert re.fullmatch(r"-- \d+ Kbytes in 2 Requests\.", lines[-1])
    # mailq and sendmail -bp print the very same thing.
    assert env.sendmail(argv0="mailq").stdout == res.stdout
    assert env.sendmail("-bp").stdout == res.stdout

    # '!' for hold, '*' for active (moved there as qmgr would: a rename).
    res = run(env, "hold", b)
    assert res.returncode == 0
    assert res.stderr == "postern/queue: Placed on hold: 1 message\n"
    assert find(env, b)[0] == "hold"
    os.rename(find(env, a)[1], os.path.join(env.queue, "active", a))
    msgs = parse_list(run(env, "list").stdout)
    assert [(m[0], m[1]) for m in msgs] == [(a, "*"), (b, "!")]
    assert run(env, "list").stdout.splitlines()[-1].endswith("in 2 Requests.")


def test_deferral_reasons_and_done_recipients(clean):
    env = clean
    a = submit(env, "r1@example.org", "r2@example.org", "r3@example.net", "r4@example.net")
    res = run(env, "hold", a)
    res = run(env, "release", a)
    assert res.stderr == "postern/queue: Released from hold: 1 message\n"
    q, path = find(env, a)
    assert q == "deferred"
    later = int(time.time()) + 3600
    reason = "connect to mx.example.org[192.0.2.1]:25: Connection refused"
    set_slot(path, 0, 1, later)
    set_slot(path, 1, 1, later)
    set_slot(path, 2, 2, 0, (2, 0, 0))  # delivered: no longer listed
    set_slot(path, 3, 1, later)
    append_reason(env, a, 0, "old reason, replaced")
    append_reason(env, a, 0, reason)
    append_reason(env, a, 1, reason)
    hostile = "host mx.example.net said: 450 4.2.0 try\x1b[2J later"
    append_reason(env, a, 3, hostile)
    (_, _, _, below), = parse_list(run(env, "list").stdout)
    pad = " " * (76 - len(reason))
    assert below == [
        pad + "(" + reason + ")",
        RCPT_INDENT + "r1@example.org",
        RCPT_INDENT + "r2@example.org",
        " " * (76 - len(hostile)) + "(" + hostile.replace("\x1b", "?") + ")",
        RCPT_INDENT + "r4@example.net",
    ]


def test_flush_domain_then_all(clean):
    env = clean
    a = submit(env, "x@example.org")
    b = submit(env, "y@example.net", "z@example.org")
    c = submit(env, "w@example.com")
    later = int(time.time()) + 3600
    for qid in (a, b, c):
        run(env, "hold", qid)
    res = run(env, "release", "ALL")
    assert res.stderr == "postern/queue: Released from hold: 3 messages\n"
    for qid in (a, b, c):
        path = find(env, qid)[1]
        for i in range(len(rcpt_slots(path))):
            set_slot(path, i, 1, later)
    res = run(env, "flush", "EXAMPLE.net")
    assert res.returncode == 0, res.stderr
    assert find(env, b)[0] == "incoming"
    assert find(env, a)[0] == "deferred" and find(env, c)[0] == "deferred"
    now = time.time()
    path = find(env, b)[1]
    assert read_slot(path, 0)["next_retry"] <= now  # y@example.net: due now
    assert read_slot(path, 1)["next_retry"] == later  # other domain untouched
    assert read_slot(path, 0)["state"] == 1
    res = run(env, "flush")
    assert res.returncode == 0
    assert {find(env, q)[0] for q in (a, c)} == {"incoming"}
    assert read_slot(find(env, a)[1], 0)["next_retry"] <= time.time()


def test_requeue(clean):
    env = clean
    a = submit(env, "x@example.org")
    run(env, "hold", a)
    path = find(env, a)[1]
    set_slot(path, 0, 1, int(time.time()) + 3600)
    res = run(env, "requeue", a)
    assert res.returncode == 0
    assert res.stderr == "postern/queue: Requeued: 1 message\n"
    q, path = find(env, a)
    assert q == "incoming"
    assert read_slot(path, 0)["next_retry"] <= time.time()


def test_delete(clean):
    env = clean
    ids = [submit(env, f"u{i}@example.org") for i in range(5)]
    append_reason(env, ids[0], 0, "will go with the message")
    run(env, "hold", ids[1])
    res = run(env, "delete", ids[0], ids[1])
    assert (res.returncode, res.stderr) == (0, "postern/queue: Deleted: 2 messages\n")
    assert find(env, ids[0]) == (None, None) and find(env, ids[1]) == (None, None)
    assert not os.path.exists(os.path.join(env.queue, "defer", ids[0]))
    # From standard input, as piped from mailq ("ID!" accepted).
    run(env, "hold", ids[2])
    res = run(env, "delete", "-", input=f"{ids[2]}!\n\n{ids[3]}\n")
    assert (res.returncode, res.stderr) == (0, "postern/queue: Deleted: 2 messages\n")
    # Limited to a queue: ids[4] is in incoming, not in hold.
    res = run(env, "delete", ids[4], "hold")
    assert res.returncode == 1
    assert f"{ids[4]}: no such message in the queue" in res.stderr
    assert find(env, ids[4])[0] == "incoming"
    # Not found, and names that are not queue IDs (never used as paths).
    res = run(env, "delete", ids[0])
    assert res.returncode == 1 and "no such message" in res.stderr
    for bad in ("../incoming/" + ids[4], ids[4] + "/", "x" * 14, ""):
        res = run(env, "delete", bad)
        assert res.returncode == 1 and "invalid mail queue id" in res.stderr, bad
    assert find(env, ids[4])[0] == "incoming"
    res = run(env, "delete", "ALL", "incoming")
    assert res.stderr == "postern/queue: Deleted: 1 message\n"
    res = run(env, "delete", "ALL")
    assert (res.returncode, res.stderr) == (0, "")
    assert run(env, "delete").returncode == 64
    assert run(env, "delete", ids[0], "corrupt").returncode == 64
    assert run(env, "frobnicate").returncode == 64


def test_cat(clean):
    env = clean
    a = submit(env, "bob@example.org", "carol@example.net", subject="cat me")
    path = find(env, a)[1]
    set_slot(path, 1, 2, 0, (2, 0, 0))
    res = run(env, "cat", a)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    where = f"incoming/{a}"
    assert lines[0] == f"*** ENVELOPE RECORDS {where} ***"
    env_end = lines.index(f"*** MESSAGE CONTENTS {where} ***")
    envelope = lines[1:env_end]
    assert re.fullmatch(r"message_size: \d+ \d+ 2", envelope[0])
    assert envelope[1].startswith("message_arrival_time: ")
    assert envelope[2] == "sender: alice@example.com"
    assert "named_attribute: submit_uid=0" in envelope
    assert "recipient: bob@example.org" in envelope
    assert "recipient_status: pending attempts=0" in envelope
    assert "done_recipient: carol@example.net" in envelope
    assert "recipient_status: delivered attempts=1 dsn=2.0.0" in envelope
    content = lines[env_end + 1:lines.index(f"*** HEADER EXTRACTED {where} ***")]
    assert "Subject: cat me" in content and "X-Test: yes" in content
    assert content[-3:] == ["", "body line 1", "body line 2"]
    assert lines[-1] == f"*** MESSAGE FILE END {where} ***"

    res = run(env, "cat", "-h", a)
    lines = res.stdout.splitlines()
    assert lines[0] == f"*** MESSAGE CONTENTS {where} ***"
    assert "Subject: cat me" in lines and "body line 1" not in lines and "" not in lines
    res = run(env, "cat", "-b", a)
    assert res.stdout == f"*** MESSAGE CONTENTS {where} ***\nbody line 1\nbody line 2\n"
    res = run(env, "cat", "-e", a)
    assert "*** MESSAGE CONTENTS" not in res.stdout
    assert res.stdout.splitlines()[-1] == f"*** MESSAGE FILE END {where} ***"

    assert run(env, "cat", "0000000000000B").returncode == 1
    assert run(env, "cat", "../../etc/passwd").returncode == 1
    assert run(env, "cat").returncode == 64
    assert run(env, "cat", "-x", a).returncode == 64


def test_shape(clean):
    env = clean
    a = submit(env, "a@example.org", "b@example.org", "c@example.net")
    b = submit(env, "d@example.org")
    c = submit(env, "e@example.com")
    d = submit(env, "f@example.net")
    set_arrival(find(env, b)[1], 30 * 60)  # 20..40 minutes
    set_arrival(find(env, c)[1], 2000 * 60)  # 1280+
    run(env, "hold", d)
    res = run(env, "shape")
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0] == ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"]
    assert rows[1] == ["TOTAL", "4", "2", "0", "0", "1", "0", "0", "0", "0", "0", "1"]
    assert rows[2] == ["example.org", "2", "1", "0", "0", "1", "0", "0", "0", "0", "0", "0"]
    assert rows[3] == ["example.com", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "1"]
    assert rows[4] == ["example.net", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0"]
    assert len(rows) == 5
    # Right-aligned columns, as wide as the header or the longest domain.
    lines = res.stdout.splitlines()
    assert lines[0] == " " * 11 + " T 5 10 20 40 80 160 320 640 1280 1280+"
    assert lines[1] == "      TOTAL 4 2  0  0  1  0   0   0   0    0     1"
    res = run(env, "shape", "hold", "incoming")
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[1][:3] == ["TOTAL", "5", "3"]
    assert run(env, "shape", "nosuch").returncode == 64


def test_corrupt_file_is_reported_and_skipped(clean):
    env = clean
    a = submit(env, "bob@example.org")
    bad = "4Zb2Lk0FqK01Tm"
    with open(os.path.join(env.queue, "incoming", bad), "wb") as f:
        f.write(b"POSTERNQ" + b"\0" * 40)
    res = run(env, "list")
    assert res.returncode == 0
    assert [m[0] for m in parse_list(res.stdout)] == [a]
    assert bad in res.stderr and "corrupt" in res.stderr
    res = run(env, "cat", bad)
    assert res.returncode == 75 and "corrupt" in res.stderr
    res = run(env, "shape")
    assert res.returncode == 0 and res.stdout.splitlines()[1].split()[1] == "1"
    res = run(env, "delete", bad)
    assert res.returncode == 0 and not os.path.exists(os.path.join(env.queue, "incoming", bad))
