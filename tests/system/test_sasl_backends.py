"""lib/sasl against the real things, through tests/tools/sasl_probe (smtpd's
AUTH command drives the same library; its own tests go through SMTP).

Cyrus SASL (smtpd_sasl_type = cyrus): a sasldb made with saslpasswd2 and
$config_directory/sasl/smtpd.conf as a Postfix site writes it
(pwcheck_method: auxprop, auxprop_plugin: sasldb); PLAIN and LOGIN with
the right and a wrong password, an unknown user.

Dovecot (smtpd_sasl_type = dovecot): a private Dovecot whose passdb is
conf/dovecot/sqlite/dovecot-sql.conf.ext on postern's demo database and
whose auth service listens on a unix socket, as conf/dovecot/10-postern.conf
sets it up for postern; PLAIN and LOGIN right and wrong, an inactive
mailbox, the socket named relative to queue_directory, the security
options filtering Dovecot's MECH list, and a socket nobody listens on
(no mechanisms, TEMPFAIL).

postern (smtpd_sasl_type = postern) on the same demo database, for
comparison of the three answers.
"""

import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from harness import Dovecot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "conf", "dovecot")


@pytest.fixture(scope="module")
def probe_bin(postern_build):
    path = os.path.join(postern_build, "tests", "tools", "sasl_probe")
    assert os.access(path, os.X_OK), f"{path} missing: run make system"
    return path


def write_main(confdir, **params):
    os.makedirs(confdir, exist_ok=True)
    with open(os.path.join(confdir, "main.cf"), "w") as f:
        for k, v in params.items():
            f.write(f"{k} = {v}\n")


def probe(probe_bin, confdir, mech, user, password, tls=False):
    """(first word, rest, mechanisms line) of one exchange."""
    argv = [probe_bin, "-c", confdir, mech, user, password] + (["tls"] if tls else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("mechanisms:"), r.stdout + r.stderr
    word, _, rest = lines[1].partition(" ")
    assert (r.returncode == 0) == (word == "OK"), r.stdout + r.stderr
    if len(password) > 4:  # never logged (short ones could be any word)
        assert password not in r.stderr, r.stderr
    return word, rest, lines[0][len("mechanisms: "):]


# ---- Cyrus SASL with sasldb -------------------------------------------------

@pytest.fixture(scope="module")
def cyrus_conf(tmp_path_factory):
    if not shutil.which("saslpasswd2"):
        pytest.fail("saslpasswd2 missing: run scripts/deps.sh test (sasl2-bin)")
    d = str(tmp_path_factory.mktemp("cyrus"))
    sasldb = os.path.join(d, "sasldb2")
    os.makedirs(os.path.join(d, "sasl"))
    with open(os.path.join(d, "sasl", "smtpd.conf"), "w") as f:
        f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                f"mech_list: PLAIN LOGIN\nsasldb_path: {sasldb}\n")
    r = subprocess.run(["saslpasswd2", "-p", "-c", "-f", sasldb, "-u", "example.com", "alice"],
                       input="alice-secret", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    write_main(d, smtpd_sasl_type="cyrus", queue_directory=d)
    return d


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_cyrus_sasldb(probe_bin, cyrus_conf, mech):
    word, rest, mechs = probe(probe_bin, cyrus_conf, mech, "alice@example.com", "alice-secret")
    assert mechs == "PLAIN LOGIN"
    assert (word, rest) == ("OK", "alice@example.com")
    # Postfix 3.7's words: "SASL PLAIN authentication failed: authentication failure".
    assert probe(probe_bin, cyrus_conf, mech, "alice@example.com", "wrong")[:2] == \
        ("FAIL", "authentication failure")
    assert probe(probe_bin, cyrus_conf, mech, "mallory@example.com", "x")[:2] == \
        ("FAIL", "authentication failure")


def test_cyrus_noplaintext(probe_bin, cyrus_conf, tmp_path):
    d = str(tmp_path)
    shutil.copytree(os.path.join(cyrus_conf, "sasl"), os.path.join(d, "sasl"))
    write_main(d, smtpd_sasl_type="cyrus", queue_directory=d,
               smtpd_sasl_security_options="noanonymous, noplaintext",
               smtpd_sasl_tls_security_options="noanonymous")
    word, rest, mechs = probe(probe_bin, d, "PLAIN", "alice@example.com", "alice-secret")
    assert mechs == "" and word == "BAD_MECH"
    word, rest, mechs = probe(probe_bin, d, "PLAIN", "alice@example.com", "alice-secret",
                              tls=True)
    assert mechs == "PLAIN LOGIN" and (word, rest) == ("OK", "alice@example.com")


# ---- Dovecot and postern on postern's demo database --------------------------

@pytest.fixture(scope="module")
def demo_db(tmp_path_factory, postern):
    d = str(tmp_path_factory.mktemp("postern"))
    os.chmod(d, 0o755)
    db = os.path.join(d, "postern.db")
    write_main(d, database=f"sqlite:{db}")
    for cmd in (["db", "init"], ["db", "demo"]):
        r = postern("-c", d, *cmd)
        assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE mailboxes SET active = 0 WHERE address = 'bob@example.com'")
    conn.close()
    os.chmod(db, 0o644)
    return db


@pytest.fixture(scope="module")
def dovecot_auth(request, demo_db):
    with open(os.path.join(RECIPE, "sqlite", "dovecot-sql.conf.ext")) as f:
        sql = f.read()
    sql, n = re.subn(r"(?m)^connect = .*$", lambda _: f"connect = {demo_db}", sql)
    assert n == 1
    # The recipe's auth listener, with the test's path and a mode the
    # probe (root here, but not necessarily) can use.
    with open(os.path.join(RECIPE, "10-postern.conf")) as f:
        m = re.search(r"(?ms)^service auth \{\n.*?^\}\n", f.read())
    assert m, "conf/dovecot/10-postern.conf: no service auth block"
    listener = m.group(0)
    assert "unix_listener /var/spool/postern/private/auth" in listener
    listener = listener.replace("/var/spool/postern/private/auth", "@TMPDIR@/private/auth")
    listener = listener.replace("mode = 0660", "mode = 0666")
    extra = """
passdb {
  driver = sql
  args = @TMPDIR@/dovecot-sql.conf.ext
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=@TMPDIR@/home/%u
}
""" + listener
    dc = Dovecot(extra_config=extra, passwd_file=False, user=None,
                 files={"dovecot-sql.conf.ext": sql})
    request.addfinalizer(lambda: dc.cleanup(keep=request.session.testsfailed > 0))
    os.mkdir(dc.path("private"), 0o750)  # the recipe's install -d
    dc.start()
    return dc


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_dovecot(probe_bin, dovecot_auth, tmp_path, mech):
    d = str(tmp_path)
    write_main(d, smtpd_sasl_type="dovecot", smtpd_sasl_path=dovecot_auth.path("private/auth"))
    word, rest, mechs = probe(probe_bin, d, mech, "alice@example.com", "demo")
    assert mechs == "PLAIN LOGIN"
    assert (word, rest) == ("OK", "alice@example.com")
    word, rest, _ = probe(probe_bin, d, mech, "Alice@Example.com", "demo")
    assert (word, rest) == ("OK", "alice@example.com")
    assert probe(probe_bin, d, mech, "alice@example.com", "wrong")[0] == "FAIL"
    assert probe(probe_bin, d, mech, "bob@example.com", "demo")[0] == "FAIL"
    assert probe(probe_bin, d, mech, "nobody@example.com", "demo")[0] == "FAIL"


def test_dovecot_relative_path_and_options(probe_bin, dovecot_auth, tmp_path):
    d = str(tmp_path)
    # Relative to queue_directory, as postern's recipe says it.
    write_main(d, smtpd_sasl_type="dovecot", smtpd_sasl_path="private/auth",
               queue_directory=dovecot_auth.tmpdir,
               smtpd_sasl_security_options="noanonymous, noplaintext",
               smtpd_sasl_tls_security_options="noanonymous",
               smtpd_sasl_mechanism_filter="!login, static:rest")
    word, _, mechs = probe(probe_bin, d, "PLAIN", "alice@example.com", "demo")
    assert (mechs, word) == ("", "BAD_MECH")
    word, rest, mechs = probe(probe_bin, d, "PLAIN", "alice@example.com", "demo", tls=True)
    assert mechs == "PLAIN" and (word, rest) == ("OK", "alice@example.com")


def test_dovecot_down(probe_bin, tmp_path):
    d = str(tmp_path)
    write_main(d, smtpd_sasl_type="dovecot", smtpd_sasl_path=os.path.join(d, "no-auth"))
    argv = [probe_bin, "-c", d, "PLAIN", "alice@example.com", "demo"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines()[0] == "mechanisms: "
    assert "cannot connect to the Dovecot auth server" in r.stderr
    assert r.stdout.splitlines()[1].startswith("BAD_MECH")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_postern_backend(probe_bin, demo_db, tmp_path, mech):
    d = str(tmp_path)
    write_main(d, database=f"sqlite:{demo_db}", smtpd_sasl_local_domain="example.com")
    word, rest, mechs = probe(probe_bin, d, mech, "alice", "demo")
    assert mechs == "PLAIN LOGIN" and (word, rest) == ("OK", "alice@example.com")
    assert probe(probe_bin, d, mech, "alice", "wrong")[:2] == ("FAIL", "authentication failure")
    assert probe(probe_bin, d, mech, "bob@example.com", "demo")[:2] == \
        ("FAIL", "authentication failure")


# ---- through smtpd: AUTH on a submission port, and the same password in IMAP --

def test_smtpd_with_dovecot_and_imap_same_password(postern_build, dovecot_auth):
    """smtpd_sasl_type = dovecot through smtpd's AUTH command; the password
    that logs in over SMTP also opens the IMAP session of the same Dovecot
    (one database, one password)."""
    import base64
    import imaplib

    from harness.smtpclient import Raw
    from harness.smtpd import Smtpd

    # smtpd runs as mail_owner: the recipe's private/ belongs to it.
    import grp
    os.chown(dovecot_auth.path("private"), -1, grp.getgrnam("postern").gr_gid)
    sd = Smtpd(postern_build, main_cf={
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": dovecot_auth.path("private/auth"),
        "smtpd_sasl_failure_delay": "0",
    })
    with sd:
        for password, want in (("demo", "235 2.7.0 Authentication successful"),
                               ("wrong", "535 5.7.8 Error: authentication failed:")):
            c = Raw(sd.host, sd.port)
            assert "250-AUTH PLAIN LOGIN" in c.cmd("EHLO client.example")
            resp = base64.b64encode(f"\0alice@example.com\0{password}".encode()).decode()
            assert c.cmd("AUTH PLAIN " + resp).startswith(want)
            c.close()
        sd.wait_log(r"warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed")
    imap = imaplib.IMAP4(dovecot_auth.host, dovecot_auth.imap_port, timeout=10)
    try:
        assert imap.login("alice@example.com", "demo")[0] == "OK"
    finally:
        imap.logout()
    imap = imaplib.IMAP4(dovecot_auth.host, dovecot_auth.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@example.com", "wrong")
    imap.logout()


def test_smtpd_offers_auth_once_dovecot_answers(postern_build, dovecot_auth, owner_tmp_path):
    """Dovecot down when smtpd starts: no AUTH in EHLO (and a warning);
    once the socket answers, a later EHLO offers AUTH again (smtpd asks
    again in a worker, at most every 10 s)."""
    import grp
    import time

    from harness.process import wait_until
    from harness.smtpclient import Raw
    from harness.smtpd import Smtpd

    os.chown(dovecot_auth.path("private"), -1, grp.getgrnam("postern").gr_gid)
    link = str(owner_tmp_path / "auth")
    sd = Smtpd(postern_build, main_cf={
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": link,
    })
    with sd:
        c = Raw(sd.host, sd.port)
        assert "AUTH" not in c.cmd("EHLO client.example")
        c.close()
        sd.wait_log(r"cannot connect to the Dovecot auth server")
        os.symlink(dovecot_auth.path("private/auth"), link)

        def offered():
            c = Raw(sd.host, sd.port)
            try:
                return "250-AUTH PLAIN LOGIN" in c.cmd("EHLO client.example")
            finally:
                c.close()
        wait_until(offered, timeout=30, what="AUTH offered again")
