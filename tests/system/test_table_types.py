"""The table types of an existing Postfix install, against the real Postfix.

Files built by Debian's postmap/postalias (hash:, btree:, lmdb:, cdb:) must
answer the same keys through `postern map query`, and files built by
`postern map build` must answer through Debian's `postmap -q`; `-i` and `-d`
update files either one made. socketmap: and tcp: are asked of small
servers on 127.0.0.1 started here (including ones that never answer or
hang up: a temporary failure, exit 75); unionmap:/pipemap: and
unix:passwd.byname are compared with what postmap answers for them.
"""

import os
import pwd
import shutil
import socket
import subprocess
import threading
import urllib.parse

import pytest

POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
POSTALIAS = shutil.which("postalias") or "/usr/sbin/postalias"
TYPES = ["hash", "btree", "lmdb", "cdb"]

SOURCE = ("# a postmap source file\n"
          "Alice@Example.com   alice@mail.example.com\n"
          "bob@example.com     bob@mail.example.com,\n"
          "    bob-archive@example.com\n"
          "\n"
          "@example.net\tcatchall@example.net\n"
          "novalue\n"
          "alice@example.com   second@example.com\n")
EXPECT = {
    "alice@example.com": "alice@mail.example.com",
    "bob@example.com": "bob@mail.example.com,    bob-archive@example.com",
    "@example.net": "catchall@example.net",
}

ALIASES = ("# /etc/aliases\n"
           "Postmaster:    root\n"
           "root: alice,  bob@Example.COM,\"|/usr/bin/procmail -a x\"\n"
           "list: :include:/etc/mail/list.txt\n"
           "multi: a,\n"
           "  b,\n"
           "\tc\n"
           "comm: a (comment here), <b@c>, Real Name <d@e>\n"
           "esc: \"a\\\"b\", a\\b\n"
           "bad line\n"
           "at@domain: x\n")


@pytest.fixture
def pfconf(tmp_path):
    """A config dir for Debian's postmap (it wants a main.cf)."""
    d = tmp_path / "pf"
    d.mkdir()
    (d / "main.cf").write_text("myhostname = mx.example.com\n")
    return d


@pytest.fixture
def conf(tmp_path):
    d = tmp_path / "conf"
    d.mkdir()
    (d / "main.cf").write_text("myhostname = mx.example.com\n")
    return d


def postmap(pfconf, *args, input=None, prog=POSTMAP):
    return subprocess.run([prog, "-c", str(pfconf), *map(str, args)], input=input,
                          capture_output=True, text=True, timeout=30)


def query(postern, conf, *args, input=None, timeout=60):
    return postern("map", "-c", conf, "query", *args, input=input, timeout=timeout)


def dump_lines(text):
    return sorted(text.splitlines())


@pytest.mark.parametrize("typ", TYPES)
def test_postmap_files_answer_in_postern(postern, conf, pfconf, tmp_path, typ):
    src = tmp_path / "virtual"
    src.write_text(SOURCE)
    res = postmap(pfconf, f"{typ}:{src}")
    assert res.returncode == 0, res.stderr
    for key, value in EXPECT.items():
        res = query(postern, conf, key.upper(), f"{typ}:{src}")
        assert (res.returncode, res.stdout) == (0, value + "\n"), res.stderr
    res = query(postern, conf, "nobody@example.com", f"{typ}:{src}")
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "")
    res = postern("map", "-c", conf, "dump", f"{typ}:{src}")
    assert res.returncode == 0, res.stderr
    assert dump_lines(res.stdout) == sorted(f"{k}\t{v}" for k, v in EXPECT.items())


@pytest.mark.parametrize("typ", TYPES)
def test_postern_files_answer_in_postmap(postern, pfconf, tmp_path, typ):
    src = tmp_path / "virtual"
    src.write_text(SOURCE)
    res = postern("map", "build", f"{typ}:{src}")
    assert res.returncode == 0, res.stderr
    # postmap's warnings, in postmap's words
    assert f"{src}, line 7: expected format: key whitespace value" in res.stderr
    assert 'duplicate entry: "alice@example.com"' in res.stderr
    for key, value in EXPECT.items():
        res = postmap(pfconf, "-q", key, f"{typ}:{src}")
        assert (res.returncode, res.stdout) == (0, value + "\n"), res.stderr
    assert postmap(pfconf, "-q", "nobody@example.com", f"{typ}:{src}").returncode == 1
    if typ != "cdb":  # postmap cannot list a cdb file
        res = postmap(pfconf, "-s", f"{typ}:{src}")
        assert dump_lines(res.stdout) == sorted(f"{k}\t{v}" for k, v in EXPECT.items())


@pytest.mark.parametrize("typ", ["hash", "lmdb", "cdb"])
@pytest.mark.parametrize("flag", ["-N", "-n"])
def test_nul_conventions_both_ways(postern, conf, pfconf, tmp_path, typ, flag):
    src = tmp_path / "t"
    src.write_text("k1 v1\n")
    assert postern("map", "build", flag, f"{typ}:{src}").returncode == 0
    assert postmap(pfconf, "-q", "k1", f"{typ}:{src}").stdout == "v1\n"
    assert postmap(pfconf, flag, f"{typ}:{src}").returncode == 0
    assert query(postern, conf, "k1", f"{typ}:{src}").stdout == "v1\n"


@pytest.mark.parametrize("typ", ["hash", "btree", "lmdb"])
def test_incremental_and_delete_interoperate(postern, conf, pfconf, tmp_path, typ):
    src = tmp_path / "t"
    src.write_text("a 1\n")
    assert postmap(pfconf, f"{typ}:{src}").returncode == 0
    res = postern("map", "build", "-i", f"{typ}:{src}", input="B 2\na dup\n")
    assert res.returncode == 0 and 'duplicate entry: "a"' in res.stderr
    assert postmap(pfconf, "-q", "b", f"{typ}:{src}").stdout == "2\n"
    assert postmap(pfconf, "-q", "a", f"{typ}:{src}").stdout == "1\n"
    assert postmap(pfconf, "-i", f"{typ}:{src}", input="c 3\n").returncode == 0
    assert query(postern, conf, "c", f"{typ}:{src}").stdout == "3\n"
    assert postern("map", "build", "-d", "A", f"{typ}:{src}").returncode == 0
    assert postern("map", "build", "-d", "a", f"{typ}:{src}").returncode == 1
    assert postmap(pfconf, "-q", "a", f"{typ}:{src}").returncode == 1
    res = postern("map", "build", "-r", "-i", f"{typ}:{src}", input="b new\n")
    assert res.returncode == 0 and res.stderr == ""
    assert postmap(pfconf, "-q", "b", f"{typ}:{src}").stdout == "new\n"


def test_cdb_cannot_be_updated_in_place(postern, tmp_path):
    src = tmp_path / "t"
    src.write_text("a 1\n")
    assert postern("map", "build", f"cdb:{src}").returncode == 0
    res = postern("map", "build", "-i", f"cdb:{src}", input="b 2\n")
    assert res.returncode == 1
    assert "cdb files cannot be changed in place" in res.stderr


def test_a_rebuilt_file_is_read_by_a_running_query(postern_build, conf, tmp_path):
    """`map query -` keeps the table open: a rebuild (rename) is picked up."""
    src = tmp_path / "t"
    src.write_text("k old\n")
    binary = os.path.join(postern_build, "bin", "postern")
    subprocess.run([binary, "map", "build", f"hash:{src}"], check=True, timeout=30)
    p = subprocess.Popen([binary, "map", "-c", str(conf), "query", "-", f"hash:{src}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdin.write("k\n")
        p.stdin.flush()
        assert p.stdout.readline() == "k\told\n"
        src.write_text("k new\n")
        subprocess.run([binary, "map", "build", f"hash:{src}"], check=True, timeout=30)
        # the path is checked at most once a second: ask until it is seen
        for _ in range(50):
            p.stdin.write("k\n")
            p.stdin.flush()
            if p.stdout.readline() == "k\tnew\n":
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the rebuilt table was never read")
    finally:
        p.stdin.close()
        p.wait(timeout=30)


@pytest.mark.parametrize("typ", ["hash", "lmdb", "cdb"])
def test_aliases_build_like_postalias(postern, conf, pfconf, tmp_path, typ):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.write_text(ALIASES)
    theirs.write_text(ALIASES)
    res = postern("map", "-c", conf, "build", "-A", f"{typ}:{mine}")
    assert res.returncode == 0, res.stderr
    assert f"{mine}, line 10: need name:value pair" in res.stderr
    assert f"{mine}, line 11: name must be local" in res.stderr
    assert postmap(pfconf, f"{typ}:{theirs}", prog=POSTALIAS).returncode == 0
    keys = ["postmaster", "root", "list", "multi", "comm", "esc", "@"]
    for key in keys:
        want = postmap(pfconf, "-q", key, f"{typ}:{theirs}", prog=POSTALIAS)
        got = postmap(pfconf, "-q", key, f"{typ}:{mine}", prog=POSTALIAS)
        assert (got.returncode, got.stdout) == (0, want.stdout), key
        ours = query(postern, conf, key, f"{typ}:{mine}")
        assert ours.stdout == want.stdout, key
    if typ != "cdb":
        want = postmap(pfconf, "-s", f"{typ}:{theirs}", prog=POSTALIAS).stdout
        got = postmap(pfconf, "-s", f"{typ}:{mine}", prog=POSTALIAS).stdout
        strip = [line for line in dump_lines(want) if not line.startswith("YP_LAST")]
        assert [line for line in dump_lines(got) if not line.startswith("YP_LAST")] == strip
    assert query(postern, conf, "list", f"{typ}:{mine}").stdout == \
        ":include:/etc/mail/list.txt\n"


def test_newaliases_builds_every_alias_database(postern, conf, pfconf, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: root\nroot: admin@example.com\n")
    (conf / "main.cf").write_text(
        "myhostname = mx.example.com\n"
        f"alias_database = hash:{aliases}, cdb:{aliases}, texthash:{aliases}\n")
    res = postern("sendmail", "-C", conf, "-bi")
    assert res.returncode == 0, res.stderr
    for typ in ("hash", "cdb"):
        res = postmap(pfconf, "-q", "root", f"{typ}:{aliases}", prog=POSTALIAS)
        assert res.stdout == "admin@example.com\n"
    assert "YP_MASTER_NAME\tmx.example.com\n" in postmap(pfconf, "-s", f"hash:{aliases}").stdout
    (conf / "main.cf").write_text(f"alias_database = regexp:{aliases}\n")
    res = postern("sendmail", "-C", conf, "-bi")
    assert res.returncode == 1 and 'cannot build tables of type "regexp"' in res.stderr


def test_unionmap_and_pipemap_answer_as_postmap(postern, conf, pfconf):
    tables = [
        "unionmap:{inline:{x=a}, inline:{x=b, y=c}, static:s}",
        "pipemap:{inline:{x=A}, inline:{a=b}}",
        "pipemap:{inline:{x=a}, inline:{z=b}}",
        "unionmap:{inline:{q=1}, inline:{r=2}}",
    ]
    for table in tables:
        for key in ("x", "X", "y", "q"):
            want = postmap(pfconf, "-q", key, table)
            got = query(postern, conf, key, table)
            assert (got.returncode, got.stdout) == (want.returncode, want.stdout), \
                (table, key)


def test_union_of_a_failing_table_is_a_temporary_failure(postern, conf):
    port = free_port()
    res = query(postern, conf, "x", f"unionmap:{{inline:{{x=a}}, tcp:127.0.0.1:{port}}}")
    assert res.returncode == 75
    assert f"127.0.0.1:{port}: connect" in res.stderr


def test_unix_passwd_and_group_as_postmap(postern, conf, pfconf):
    name = pwd.getpwuid(0).pw_name
    for table in ("unix:passwd.byname", "unix:group.byname"):
        for key in (name, name.upper(), "no-such-user-here"):
            want = postmap(pfconf, "-q", key, table)
            got = query(postern, conf, key, table)
            assert (got.returncode, got.stdout) == (want.returncode, want.stdout), key
    res = query(postern, conf, "root", "unix:shadow.byname")
    assert res.returncode == 75 and "unix:passwd.byname" in res.stderr


# ---- socketmap: and tcp: against servers started here ----------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A loopback server in a thread: handler(conn) serves one connection."""

    def __init__(self, handler, family=socket.AF_INET, path=None):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        else:
            self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.handler = handler
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                self.handler(conn, self.stop)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def read_netstring(f):
    digits = b""
    while True:
        c = f.read(1)
        if not c:
            return None
        if c == b":":
            break
        digits += c
    data = f.read(int(digits))
    assert f.read(1) == b","
    return data.decode()


def netstring(text):
    data = text.encode()
    return str(len(data)).encode() + b":" + data + b","


SOCKETMAP = {"forward": {"alice@example.com": "OK SRS0=x=y=example.com=alice@srs.example",
                         "temp@example.com": "TEMP database down",
                         "perm@example.com": "PERM no such map",
                         "timeout@example.com": "TIMEOUT slow",
                         "Case@Example.com": "OK case kept"}}


def socketmap_handler(conn, stop):
    f = conn.makefile("rb")
    while not stop.is_set():
        req = read_netstring(f)
        if req is None:
            return
        name, key = req.split(" ", 1)
        reply = SOCKETMAP.get(name, {}).get(key, "NOTFOUND ")
        conn.sendall(netstring(reply))


@pytest.fixture
def socketmap_servers(tmp_path):
    inet = Server(socketmap_handler)
    path = str(tmp_path / "sockmap.sock")
    unix = Server(socketmap_handler, socket.AF_UNIX, path)
    yield f"inet:127.0.0.1:{inet.port}", f"unix:{path}"
    inet.close()
    unix.close()


def test_socketmap_replies(postern, conf, socketmap_servers):
    for endpoint in socketmap_servers:
        table = f"socketmap:{endpoint}:forward"
        res = query(postern, conf, "alice@example.com", table)
        assert (res.returncode, res.stdout) == (0, "SRS0=x=y=example.com=alice@srs.example\n")
        # no case folding: the server decides
        assert query(postern, conf, "Case@Example.com", table).stdout == "case kept\n"
        assert query(postern, conf, "case@example.com", table).returncode == 1
        res = query(postern, conf, "nobody@example.com", table)
        assert (res.returncode, res.stdout) == (1, "")
        for key, word in (("temp@example.com", "TEMP"), ("perm@example.com", "PERM"),
                          ("timeout@example.com", "TIMEOUT")):
            res = query(postern, conf, key, table)
            assert res.returncode == 75, key
            assert f"server said {word}" in res.stderr
        # several keys over the one kept connection
        res = query(postern, conf, "-", table, input="alice@example.com\nx\nalice@example.com\n")
        assert res.stdout.count("SRS0=") == 2


def test_socketmap_matches_postmap(postern, conf, pfconf, socketmap_servers):
    table = f"socketmap:{socketmap_servers[0]}:forward"
    for key in ("alice@example.com", "nobody@example.com"):
        want = postmap(pfconf, "-q", key, table)
        got = query(postern, conf, key, table)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout)


def test_socketmap_server_down_hangs_up_or_stalls(postern, conf):
    port = free_port()
    res = query(postern, conf, "a@b", f"socketmap:inet:127.0.0.1:{port}:forward")
    assert res.returncode == 75 and "connect" in res.stderr

    def hang_up(conn, stop):
        conn.recv(100)

    def garbage(conn, stop):
        conn.recv(100)
        conn.sendall(b"not a netstring\n")

    def stall(conn, stop):
        conn.recv(100)
        stop.wait(30)

    for handler, why in ((hang_up, "connection closed by the server"),
                         (garbage, "malformed reply"), (stall, "read: timed out")):
        srv = Server(handler)
        try:
            res = query(postern, conf, "a@b", f"socketmap:inet:127.0.0.1:{srv.port}:forward")
            assert res.returncode == 75, why
            assert why in res.stderr
        finally:
            srv.close()


TCP = {"alice@example.com": "200 alice%40mail.example.com",
       "with space": "200 value%20with%0Aline",
       "busy": "400 try later",
       "bad": "299 what"}


def tcp_handler(conn, stop):
    f = conn.makefile("rb")
    while not stop.is_set():
        line = f.readline()
        if not line:
            return
        assert line.startswith(b"get ") and line.endswith(b"\n")
        key = urllib.parse.unquote(line[4:-1].decode())
        conn.sendall((TCP.get(key, "500 not found") + "\n").encode())


def test_tcp_table(postern, conf, pfconf):
    srv = Server(tcp_handler)
    table = f"tcp:127.0.0.1:{srv.port}"
    try:
        res = query(postern, conf, "alice@example.com", table)
        assert (res.returncode, res.stdout) == (0, "alice@mail.example.com\n")
        res = query(postern, conf, "with space", table)
        assert (res.returncode, res.stdout) == (0, "value with\nline\n")
        assert query(postern, conf, "nobody", table).returncode == 1
        res = query(postern, conf, "busy", table)
        assert res.returncode == 75 and 'server said "400 try later"' in res.stderr
        res = query(postern, conf, "bad", table)
        assert res.returncode == 75 and "malformed reply" in res.stderr
        for key in ("alice@example.com", "nobody"):
            want = postmap(pfconf, "-q", key, table)
            got = query(postern, conf, key, table)
            assert (got.returncode, got.stdout) == (want.returncode, want.stdout)
    finally:
        srv.close()


def test_tcp_server_that_stalls_is_a_temporary_failure(postern, conf):
    def stall(conn, stop):
        conn.recv(100)
        conn.sendall(b"200 partial")  # never a newline
        stop.wait(30)

    srv = Server(stall)
    try:
        res = query(postern, conf, "k", f"tcp:127.0.0.1:{srv.port}")
        assert res.returncode == 75 and "read: timed out" in res.stderr
    finally:
        srv.close()


def test_proxy_prefix_is_the_table_itself(postern, conf, tmp_path):
    src = tmp_path / "t"
    src.write_text("k v\n")
    assert postern("map", "build", f"hash:{src}").returncode == 0
    assert query(postern, conf, "k", f"proxy:hash:{src}").stdout == "v\n"
