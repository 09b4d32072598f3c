"""`postern map`: the postmap -q / -q - / -s equivalent, as a user runs it.

Runs the built binary on table files in temp dirs and checks what a user
sees: standard output, the messages on standard error, and the exit
status (0 found, 1 not found, 75 temporary failure or a table that cannot
be opened, 64 usage).  `query -` is also driven as a long-lived process,
one key at a time, the way a script or a test harness would use it, and
shows a texthash: file edited underneath it being picked up.
"""

import os
import select
import subprocess
import time

import pytest

# A regexp that backtracks catastrophically on "aaaa...b": the table's
# match limit turns it into a temporary failure instead of a hang.
SLOW_RE = "/^(a+)+$/ hit\n"
SLOW_KEY = "a" * 40 + "b"


@pytest.fixture
def tables(tmp_path):
    """A config dir with an empty main.cf and a few tables."""
    (tmp_path / "main.cf").write_text("recipient_delimiter = +\n")
    (tmp_path / "virtual").write_text(
        "# virtual aliases\n"
        "Alice@Example.com   alice@mail.example.com\n"
        "bob@example.com     bob@mail.example.com,\n"
        "    bob-archive@example.com\n"
        "@example.net        catchall@example.net\n")
    (tmp_path / "checks.regexp").write_text(
        "/^(.*)\\+(.*)@example\\.com$/ user=$1 ext=$2\n"
        "/@spam\\./ REJECT spam domain\n")
    (tmp_path / "slow.regexp").write_text(SLOW_RE)
    (tmp_path / "clients.cidr").write_text(
        "10.0.0.0/8 OK\n2001:db8::/32 REJECT documentation\n")
    return tmp_path


def run(postern, tables, *args, **kw):
    return postern("map", "-c", str(tables), *args, **kw)


def test_query_found_prints_the_value(postern, tables):
    res = run(postern, tables, "query", "alice@example.com", f"texthash:{tables}/virtual")
    assert (res.returncode, res.stdout, res.stderr) == (0, "alice@mail.example.com\n", "")
    res = run(postern, tables, "query", "bob@example.com", f"texthash:{tables}/virtual")
    assert res.stdout == "bob@mail.example.com,    bob-archive@example.com\n"


def test_query_not_found_exits_1_silently(postern, tables):
    res = run(postern, tables, "query", "carol@example.com", f"texthash:{tables}/virtual")
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "")


def test_query_several_keys_and_table_types(postern, tables):
    res = run(postern, tables, "query", "joe+news@example.com", "x@spam.example",
              "nobody@example.org", f"regexp:{tables}/checks.regexp")
    assert res.returncode == 0
    assert res.stdout == ("joe+news@example.com\tuser=joe ext=news\n"
                          "x@spam.example\tREJECT spam domain\n")
    res = run(postern, tables, "query", "10.9.8.7", "2001:db8::25", "192.0.2.1",
              f"cidr:{tables}/clients.cidr")
    assert res.stdout == "10.9.8.7\tOK\n2001:db8::25\tREJECT documentation\n"
    res = run(postern, tables, "query", "k", "inline:{ { k = v w }, x=y }")
    assert (res.returncode, res.stdout) == (0, "v w\n")
    res = run(postern, tables, "query", "anything", "static:{ 5000 }")
    assert (res.returncode, res.stdout) == (0, "5000\n")


def test_table_list_first_match_wins(postern, tables):
    lst = f"inline:{{ alice@example.com=from-inline }}, texthash:{tables}/virtual"
    res = run(postern, tables, "query", "alice@example.com", lst)
    assert (res.returncode, res.stdout) == (0, "from-inline\n")
    res = run(postern, tables, "query", "bob@example.com", lst)
    assert res.stdout.startswith("bob@mail.example.com,")


def test_relative_names_use_the_config_dir(postern, tables, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")
    res = postern("map", "query", "-c", str(tables), "alice@example.com", "texthash:virtual",
                  cwd=str(elsewhere))
    assert (res.returncode, res.stdout) == (0, "alice@mail.example.com\n")
    # proxy: is accepted as in Postfix configurations
    res = run(postern, tables, "query", "alice@example.com", "proxy:texthash:virtual")
    assert (res.returncode, res.stdout) == (0, "alice@mail.example.com\n")


def test_temporary_failure_exits_75_and_names_the_table(postern, tables):
    res = run(postern, tables, "query", SLOW_KEY, f"regexp:{tables}/slow.regexp")
    assert res.returncode == 75
    assert res.stdout == ""
    assert f"regexp:{tables}/slow.regexp, line 1: pattern too complex for this key" in res.stderr
    assert "match limit exceeded" in res.stderr
    # a temporary failure before a table that has the key is still a failure
    lst = f"regexp:{tables}/slow.regexp, static:fallback"
    res = run(postern, tables, "query", SLOW_KEY, lst)
    assert (res.returncode, res.stdout) == (75, "")


def test_broken_tables_exit_75_with_file_and_line(postern, tables):
    res = run(postern, tables, "query", "k", f"texthash:{tables}/missing")
    assert res.returncode == 75
    assert f"texthash:{tables}/missing: open {tables}/missing: No such file or directory" \
        in res.stderr
    (tables / "bad.cidr").write_text("10.0.0.0/8 OK\n10.1.2.3/8 typo\n")
    res = run(postern, tables, "query", "10.0.0.1", f"cidr:{tables}/bad.cidr")
    assert res.returncode == 75
    assert (f"cidr:{tables}/bad.cidr, line 2: non-null host address bits in \"10.1.2.3/8\", "
            "perhaps you should use \"10.0.0.0/8\" instead") in res.stderr
    (tables / "bad.pcre").write_text("/ok/ fine\n/(unclosed/ x\n")
    res = run(postern, tables, "query", "ok", f"pcre:{tables}/bad.pcre")
    assert res.returncode == 75
    assert f"pcre:{tables}/bad.pcre, line 2: error in pattern /(unclosed/ at offset" in res.stderr
    res = run(postern, tables, "query", "k", "dbm:/etc/postfix/virtual")
    assert res.returncode == 75
    assert "use texthash:/etc/postfix/virtual" in res.stderr
    res = run(postern, tables, "query", "k", "hash:/nonexistent/postern/virtual")
    assert res.returncode == 75
    assert ("hash:/nonexistent/postern/virtual: open /nonexistent/postern/virtual.db: No such "
            "file or directory (build it from the text file with `postern map build "
            "hash:/nonexistent/postern/virtual`)") in res.stderr


@pytest.mark.parametrize("args", [
    (),
    ("query",),
    ("query", "texthash:/x"),
    ("dump",),
    ("dump", "key", "texthash:/x"),
    ("query", "-", "extra", "texthash:/x"),
    ("frobnicate", "texthash:/x"),
    ("-Z", "query", "k", "texthash:/x"),
])
def test_usage_errors_exit_64(postern, tables, args):
    res = run(postern, tables, *args)
    assert res.returncode == 64, res
    assert "usage: postern map" in res.stderr
    assert res.stdout == ""


def test_query_stdin(postern, tables):
    keys = ("alice@example.com\n"
            "nobody@example.com\n"
            "\n"
            "BOB@EXAMPLE.COM\r\n"
            "@example.net\n"
            + "x" * 5000 + "\n"
            "no-newline-at-end@example.net")
    res = run(postern, tables, "query", "-", f"texthash:{tables}/virtual", input=keys)
    assert res.returncode == 0
    assert res.stdout == ("alice@example.com\talice@mail.example.com\n"
                          "BOB@EXAMPLE.COM\tbob@mail.example.com,    bob-archive@example.com\n"
                          "@example.net\tcatchall@example.net\n")
    res = run(postern, tables, "query", "-", f"texthash:{tables}/virtual",
              input="nobody\nnothing\n")
    assert (res.returncode, res.stdout) == (1, "")


def test_query_stdin_continues_across_temporary_failures(postern, tables):
    lst = f"inline:{{ known=yes }}, regexp:{tables}/slow.regexp"
    res = run(postern, tables, "query", "-", lst, input=f"known\n{SLOW_KEY}\naaa\n")
    assert res.returncode == 75
    assert res.stdout == "known\tyes\naaa\thit\n"
    assert f"lookup error for \"{SLOW_KEY}\"" in res.stderr
    assert "match limit exceeded" in res.stderr


def read_line(proc, timeout=10.0):
    """One line of the child's stdout, waiting at most timeout seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from postern map query - within %s s" % timeout
    return proc.stdout.readline()


def test_query_stdin_long_lived_sees_file_changes(postern_build, tables):
    binary = os.path.join(postern_build, "bin", "postern")
    proc = subprocess.Popen([binary, "map", "-c", str(tables), "query", "-", "texthash:virtual"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        proc.stdin.write("alice@example.com\n")
        proc.stdin.flush()
        assert read_line(proc) == "alice@example.com\talice@mail.example.com\n"
        # an edit by rename, as editors and configuration tools do
        new = tables / "virtual.new"
        new.write_text("alice@example.com alice@new.example.com\n")
        os.rename(new, tables / "virtual")
        deadline = time.monotonic() + 10
        while True:
            proc.stdin.write("alice@example.com\n")
            proc.stdin.flush()
            line = read_line(proc)
            if line == "alice@example.com\talice@new.example.com\n":
                break
            assert line == "alice@example.com\talice@mail.example.com\n"
            assert time.monotonic() < deadline, "the edited table was not reloaded in 10 s"
            time.sleep(0.2)
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        assert "reloaded, 1 entries" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_dump(postern, tables):
    res = run(postern, tables, "dump", f"texthash:{tables}/virtual")
    assert res.returncode == 0
    assert res.stdout == ("alice@example.com\talice@mail.example.com\n"
                          "bob@example.com\tbob@mail.example.com,    bob-archive@example.com\n"
                          "@example.net\tcatchall@example.net\n")
    res = run(postern, tables, "dump", "inline:{ b=2, a=1 }")
    assert (res.returncode, res.stdout) == (0, "b\t2\na\t1\n")
    res = run(postern, tables, "dump", f"regexp:{tables}/checks.regexp")
    assert res.returncode == 1
    assert "regexp tables cannot be listed" in res.stderr


def test_verbose_trace(postern, tables):
    res = postern("-v", "-v", "map", "-c", str(tables), "query", "Alice@Example.COM",
                  "texthash:virtual")
    assert res.returncode == 0
    assert (f"lookup alice@example.com in texthash:virtual: found \"alice@mail.example.com\""
            in res.stderr)
