"""Delivery status notifications (lib/message/bounce) checked by a real MIME
parser: Python's `email` package with policy=email.policy.default.

The notices are the ones tests/unit/test_bounce.c writes through
bounce_write() into a real queue and reads back with queue_file_open: run
with POSTERN_BOUNCE_DUMP=DIR, that test leaves each notice's stored content
(NAME.dsn), the original it reports on (NAME.orig) and what it should hold
(NAME.expect) in DIR. One generator, so the bytes parsed here are exactly
the bytes the unit test asserts on. For each notice: the MIME tree is
multipart/report (report-type=delivery-status) with a text/plain part, a
message/delivery-status part whose per-message and per-recipient fields
parse, and the original (message/rfc822) or its header
(text/rfc822-headers); the returned message equals the original, byte for
byte and as parsed; no line is longer than 998 bytes and no CR appears.
"""

import email
import email.policy
import email.utils
import os
import re
import subprocess

import pytest

TIMEOUT = 60

# Every notice test_bounce.c leaves; a new one there must be added here.
CASES = ["failure", "delay", "success", "ret_hdrs", "too_large", "envid_orcpt",
         "double_bounce", "double_bounce2", "eightbit", "hostile", "odd0", "odd1", "odd2"]

ACTION = {"failed": "failed", "delayed": "delayed", "delivered": "delivered"}
STATUS_CLASS = {"failed": "5", "delayed": "4", "delivered": "2"}


@pytest.fixture(scope="module")
def dumps(postern_build, tmp_path_factory):
    binary = os.path.join(postern_build, "tests", "test_bounce")
    assert os.path.exists(binary), f"{binary} missing: build it with `make unit`"
    out = tmp_path_factory.mktemp("bounce")
    env = dict(os.environ, POSTERN_BOUNCE_DUMP=str(out))
    run = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def load(dumps, name):
    dsn = (dumps / f"{name}.dsn").read_bytes()
    orig = (dumps / f"{name}.orig").read_bytes()
    expect = dict(line.split("=", 1) for line in
                  (dumps / f"{name}.expect").read_text().splitlines() if line)
    return dsn, orig, expect


def test_every_case_dumped(dumps):
    names = sorted(p.name[:-4] for p in dumps.iterdir() if p.name.endswith(".dsn"))
    assert names == sorted(CASES)


def check_defects(msg):
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)


def raw_part3(dsn, boundary):
    """The body of the third part as stored, from the raw bytes."""
    segments = dsn.split(b"\n--" + boundary.encode())
    # preamble, three parts, and the closing "--\n"
    assert len(segments) == 5, len(segments)
    assert segments[4] == b"--\n"
    head, body = segments[3].split(b"\n\n", 1)
    return body


@pytest.mark.parametrize("name", CASES)
def test_notice_parses(dumps, name):
    dsn, orig, expect = load(dumps, name)
    kind = expect["kind"]

    assert b"\r" not in dsn
    assert all(len(line) <= 998 for line in dsn.split(b"\n")), name

    msg = email.message_from_bytes(dsn, policy=email.policy.default)
    check_defects(msg)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"].datetime is not None
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.com"
    # Postfix's form: the name is a comment (email drops it), not a display name
    assert b"\nFrom: MAILER-DAEMON@mx.example.com (Mail Delivery System)\n" in dsn
    assert len(msg["To"].addresses) == 1
    assert re.fullmatch(r"<[0-9]{14}\.[0-9A-Za-z]{14}@mx\.example\.com>", msg["Message-Id"])
    subject = {"failed": "Undelivered Mail Returned to Sender",
               "delayed": "Delayed Mail (still being retried)",
               "delivered": "Successful Mail Delivery Report"}[kind]
    if name.startswith("double_bounce"):
        assert "Postmaster Copy" in msg["Subject"]
    else:
        assert msg["Subject"] == subject

    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts[:2]] == ["text/plain",
                                                         "message/delivery-status"]
    assert len(parts) == 3

    text = parts[0].get_content()
    assert "postern" in text and "mx.example.com" in text

    # message/delivery-status: the per-message block, then one per recipient
    blocks = parts[1].get_payload()
    assert len(blocks) == 1 + int(expect["rcpts"])
    per_msg = blocks[0]
    assert per_msg["Reporting-MTA"] == "dns; mx.example.com"
    assert re.fullmatch(r"[0-9A-Za-z]{14}", per_msg["X-Postern-Queue-ID"])
    assert per_msg["X-Postern-Sender"].startswith("rfc822;")
    assert email.utils.parsedate_to_datetime(per_msg["Arrival-Date"]) is not None
    if "envid" in expect:
        assert per_msg["Original-Envelope-Id"] == expect["envid"]
    else:
        assert per_msg["Original-Envelope-Id"] is None
    for block in blocks[1:]:
        assert block["Final-Recipient"].startswith("rfc822; ")
        assert "@" in block["Final-Recipient"]
        assert block["Action"] == ACTION[kind]
        assert re.fullmatch(STATUS_CLASS[kind] + r"\.[0-9]{1,3}\.[0-9]{1,3}", block["Status"])
        if "orcpt" in expect:
            assert block["Original-Recipient"] == expect["orcpt"]
        diag = block["Diagnostic-Code"]
        if diag is not None:
            assert diag.split(";")[0] in ("X-Postfix", "smtp")
        if kind == "delayed":
            until = email.utils.parsedate_to_datetime(block["Will-Retry-Until"])
            arrival = email.utils.parsedate_to_datetime(per_msg["Arrival-Date"])
            assert until > arrival
        else:
            assert block["Will-Retry-Until"] is None

    # the returned original
    returned = raw_part3(dsn, msg.get_boundary())
    third = parts[2]
    if expect["return"].startswith("message"):
        assert third.get_content_type() == "message/rfc822"
        want = orig + b"\n" if expect["return"] == "message-lf" else orig
        assert returned == want
        inner = third.get_payload()[0]
        parsed_orig = email.message_from_bytes(want, policy=email.policy.default)
        assert inner.items() == parsed_orig.items()
        assert inner.get_payload() == parsed_orig.get_payload()
    else:
        assert expect["return"] == "headers"
        assert third.get_content_type() == "text/rfc822-headers"
        header_end = orig.find(b"\n\n")
        assert returned == (orig if header_end < 0 else orig[:header_end + 1])
        assert third.get_payload(decode=True) == returned
    if any(b >= 0x80 for b in returned):
        assert third["Content-Transfer-Encoding"] == "8bit"
        assert msg["Content-Transfer-Encoding"] == "8bit"
