"""The pipe delivery agent (build/bin/pipe, Postfix pipe(8)) in a whole
private postern: master + smtpd + qmgr + virtual + pipe services.

transport_maps sends a few made-up domains to pipe services of master.cf;
each service runs a small shell script (written by the test) that records
its argument vector, its uid and its standard input in a file. Asserted:
the macro expansion (${sender} ${recipient} ${nexthop} ${user}
${extension} ${mailbox} ${domain} ${original_recipient} ${client_*}
${queue_id} ${size}, ${name?text}/${name:text}), one argument per
recipient, the flags (D R q h u . > and the message on stdin), user= (the
command runs as nobody), the exit status mapping (0 sent, 75 deferred,
EX_NOUSER bounced with 5.1.1 and the output in the DSN, a "5.7.1 text"
output, an unknown status deferred), the time limit (deferred, the command
killed), the Postfix log line, and user=root refused at start.
"""

import os
import pwd
import re
import stat
import tempfile

import pytest

from harness.process import wait_until
from harness.system import MailSystem

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")


def make_scripts(tmp):
    """The recording script and the failing one, in a directory user=nobody
    can reach; output goes to tmp/out (world-writable)."""
    os.chmod(tmp, 0o755)
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    os.chmod(out, 0o777)
    record = os.path.join(tmp, "record.sh")
    with open(record, "w") as f:
        f.write("#!/bin/sh\n"
                f"f={out}/run.$$\n"
                "{ id -u; for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done; echo ---; cat; }"
                " > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n"
                "echo recorded\n")
    fail = os.path.join(tmp, "fail.sh")
    with open(fail, "w") as f:
        f.write("#!/bin/sh\n"
                "cat >/dev/null\n"
                "case \"$1\" in\n"
                "  dsn) echo '5.7.1 go away, says the script'; exit 1;;\n"
                "esac\n"
                "echo \"output for $1\"\n"
                "exit \"$1\"\n")
    for p in (record, fail):
        os.chmod(p, 0o755)
    return out, record, fail


def runs(out):
    """Every recorded run: (uid, argv list, stdin text)."""
    result = []
    for name in sorted(os.listdir(out)):
        if not name.startswith("run.") or name.endswith(".tmp"):
            continue
        with open(os.path.join(out, name)) as f:
            text = f.read()
        head, _, stdin = text.partition("\n---\n")
        lines = head.split("\n")
        result.append((int(lines[0]), [a[1:-1] for a in lines[1:]], stdin))
    return result


LOG_RE = (r"postern/pipe\[\d+\]: (\w+): to=<{to}>, (?:orig_to=<[^>]*>, )?"
          r"relay={service}, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
          r"dsn={dsn}, status={status} \({reason}\)")


def log_match(ms, service, to, dsn, status, reason):
    pattern = LOG_RE.format(service=re.escape(service), to=re.escape(to), dsn=re.escape(dsn),
                            status=status, reason=reason)
    return re.search(pattern, ms.log())


def wait_log_re(ms, service, to, dsn, status, reason, timeout=30):
    try:
        return wait_until(lambda: log_match(ms, service, to, dsn, status, reason),
                          timeout=timeout, what=f"{service} {status} line for {to}")
    except TimeoutError as e:
        raise AssertionError(f"{e}\n--- maillog tail ---\n{ms.log()[-4000:]}") from None


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="postern-pipe-")
    yield d


def body(subject, extra=""):
    return (f"From: sender@client.example\r\nTo: you\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.example>\r\n\r\nhello {subject}\r\n{extra}")


def test_pipe_arguments_flags_user_and_exit_codes(postern_build, postern, tmp):
    out, record, fail = make_scripts(tmp)
    argv = ("${sender} ${recipient} ${nexthop} ${user} ${extension} ${mailbox} ${domain} "
            "${original_recipient} ${client_address} ${client_helo} ${client_protocol} "
            "${queue_id} ${size} x${extension?+${extension}} ${extension:none} $$literal")
    ms = MailSystem(postern_build, postern, main_cf={
        "transport_maps": "inline:{ {flags.example = argvpipe:} "
                          "{ex75.example = failpipe:75} {ex67.example = failpipe:67} "
                          "{ex1.example = failpipe:1} {dsn.example = failpipe:dsn} "
                          "{slow.example = slowpipe:} {root.example = rootpipe:} }",
        "argvpipe_destination_recipient_limit": "1",
        "slowpipe_time_limit": "2s",
        "minimal_backoff_time": "300s", "maximal_backoff_time": "300s",
        "queue_run_delay": "300s",
    })
    ms.extra_master = (
        f"argvpipe unix - n n - - pipe flags=DRXhuq.> user=nobody argv={record} {argv}\n"
        f"failpipe unix - n n - - pipe user=nobody argv={fail} ${{nexthop}}\n"
        "slowpipe unix - n n - - pipe user=nobody argv=/bin/sleep 60\n"
        "rootpipe unix - n n - - pipe user=root argv=/bin/cat\n")
    with ms:
        ms.sd.sqlite_db(postern)
        ms.start()
        # -- argument expansion and flags (one recipient per run) --
        ms.send('"john doe"@Client.Example', ["Bob+Tag@FLAGS.example"],
                body("flags", ".dot line\r\nFrom here\r\n"))
        wait_log_re(ms, "argvpipe", "Bob+Tag@flags.example", "2.0.0", "sent",
                    r"delivered via argvpipe service \(recorded\)")
        (uid, args, stdin), = runs(out)
        if ROOT:
            assert uid == NOBODY.pw_uid
        qid = log_match(ms, "argvpipe", "Bob+Tag@flags.example", "2.0.0", "sent",
                        ".*").group(1)
        assert args[:13] == [
            '"john doe"@client.example',  # q quotes the local part
            "bob+tag@flags.example",      # u and h fold
            "flags.example",              # nexthop: the recipient domain
            "bob", "tag", "bob+tag", "flags.example",
            "bob+tag@flags.example",      # original recipient, folded too
            "127.0.0.1", "client.test.example", "ESMTP", qid, args[12]]
        assert args[12].isdigit() and int(args[12]) > 100
        assert args[13:] == ["x+tag", "", "$literal"]
        head, _, msgbody = stdin.partition("\n\n")
        lines = head.split("\n")
        assert lines[0] == 'Return-Path: <"john doe"@client.example>'
        assert lines[1] == "Delivered-To: bob+tag@flags.example"
        assert "Subject: flags" in lines
        assert "\r" not in stdin  # eol= is "\n"
        assert "\n..dot line\n>From here\n" in "\n" + msgbody

        # -- exit statuses --
        ms.send("alice@example.com", ["u@ex75.example"], body("ex75"))
        wait_log_re(ms, "failpipe", "u@ex75.example", "4.3.0", "deferred",
                    r"temporary failure\. Command output: output for 75 ")
        ms.send("alice@example.com", ["u@ex1.example"], body("ex1"))
        wait_log_re(ms, "failpipe", "u@ex1.example", "4.3.0", "deferred",
                    re.escape(f'Command died with status 1: "{fail}". '
                              "Command output: output for 1 "))
        ms.send("alice@example.com", ["u@ex67.example"], body("ex67"))
        wait_log_re(ms, "failpipe", "u@ex67.example", "5.1.1", "bounced",
                    r"user unknown\. Command output: output for 67 ")
        ms.send("alice@example.com", ["u@dsn.example"], body("dsn"))
        wait_log_re(ms, "failpipe", "u@dsn.example", "5.7.1", "bounced",
                    r"go away, says the script ")
        # The bounces reach the sender with the command's words.
        dsns = [ms.read_message(p) for p in ms.wait_maildir("example.com/alice/", 2)]
        texts = {}
        for d in dsns:
            assert d["Subject"] == "Undelivered Mail Returned to Sender"
            report = d.get_body(("plain",)).get_content()
            status = list(d.iter_parts())[1].get_payload()
            for block in status:
                if block.get("Final-Recipient"):
                    texts[block["Final-Recipient"]] = (block["Status"], report)
        assert texts["rfc822; u@ex67.example"][0] == "5.1.1"
        assert "output for 67" in texts["rfc822; u@ex67.example"][1]
        assert texts["rfc822; u@dsn.example"][0] == "5.7.1"
        assert "go away, says the script" in texts["rfc822; u@dsn.example"][1]

        # -- the time limit: deferred, the command killed --
        ms.send("alice@example.com", ["u@slow.example"], body("slow"))
        wait_log_re(ms, "slowpipe", "u@slow.example", "4.3.0", "deferred",
                    r'Command time limit exceeded: "/bin/sleep"')
        assert not [p for p in ms.children("pipe") if "sleep" in _cmdline_of_children(p)]

        # -- user=root is refused, as Postfix does --
        ms.send("alice@example.com", ["u@root.example"], body("root"))
        ms.wait_log("user= command-line attribute specifies root privileges")
        # Nothing was delivered or bounced for it: the message waits.
        assert not re.search(r"to=<u@root\.example>.*status=(sent|bounced)", ms.log())
        wait_until(lambda: len(ms.queue_ids("deferred")) == 3, timeout=30,
                   what="3 deferred messages (ex75, ex1, slow)")
        assert ms.queue_ids("incoming") + ms.queue_ids("active")


def _cmdline_of_children(pid):
    """The command lines of pid's child processes (the running scripts)."""
    text = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                text.append(f.read().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return " ".join(text)


def test_pipe_one_run_for_the_recipients_of_a_message(postern_build, postern, tmp):
    """${recipient} becomes one argument per recipient: qmgr hands a
    message's recipients for one destination to the agent in one request
    (up to TRANSPORT_destination_recipient_limit), so the command runs
    once for both."""
    out, record, _ = make_scripts(tmp)
    ms = MailSystem(postern_build, postern, main_cf={
        "transport_maps": "inline:{ {multi.example = multipipe:} }"})
    ms.extra_master = (f"multipipe unix - n n - - pipe user=nobody:nogroup argv={record} "
                "-f ${sender} -- ${recipient}\n")
    with ms:
        ms.sd.sqlite_db(postern)
        ms.start()
        ms.send("", ["one@multi.example", "two@multi.example"], body("multi"))
        wait_log_re(ms, "multipipe", "two@multi.example", "2.0.0", "sent",
                    r"delivered via multipipe service \(recorded\)")
        wait_log_re(ms, "multipipe", "one@multi.example", "2.0.0", "sent", ".*")
        (uid, args, stdin), = runs(out)
        # The null sender: null_sender= (default MAILER-DAEMON).
        assert args == ["-f", "MAILER-DAEMON", "--", "one@multi.example", "two@multi.example"]
        assert "Subject: multi" in stdin
