"""TLS under master, as installed (run as root):

  - the private key is mode 0600, owned by root, and smtpd runs as
    mail_owner: master opens the key for it (privfiles.h), STARTTLS
    works, smtpd's uid is not 0;
  - master keeps the smtpd ticket keys in $data_directory (mode 0600,
    owned by mail_owner); a session made with one smtpd process resumes
    with the next one after `postern reload`;
  - `postern reload` picks up a renewed certificate (the Let's Encrypt
    routine: files replaced, then reload);
  - `postern check` warns about a key file others can read.
"""

import os
import pwd
import shutil
import ssl
import tempfile

import pytest

from harness.base import _tmp_parent
from harness.certs import client_ctx, make_pki, selfsigned
from harness.process import wait_until
from harness.smtpclient import Raw
from harness.smtpd import Smtpd
from harness.system import child_pids, exe_name, start_master, stop_master


@pytest.fixture
def tls_master(postern_build, postern):
    top = tempfile.mkdtemp(prefix="postern-tlsm-", dir=_tmp_parent())
    os.chmod(top, 0o755)
    pki = make_pki(os.path.join(top, "pki"))
    # As certbot leaves them: the key root's alone.
    for key in (pki.server_key,):
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)
    sd = Smtpd(postern_build, main_cf={
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki.server_cert,
        "smtpd_tls_key_file": pki.server_key,
        "smtpd_tls_loglevel": "1",
        "data_directory": os.path.join(top, "data"),
    })
    os.makedirs(os.path.join(top, "data"))
    sd.write_config()
    os.makedirs(sd.queue, exist_ok=True)
    proc = start_master(postern_build, sd.confdir, sd.tmpdir)
    m = type("M", (), {})()
    m.sd, m.pki, m.proc, m.top = sd, pki, proc, top
    m.run = lambda *a: postern("-c", sd.confdir, *a)
    try:
        wait_until(sd._banner_ok, timeout=20, what="smtp banner via master")
        yield m
    finally:
        stop_master(proc)
        sd.cleanup()
        shutil.rmtree(top, ignore_errors=True)


def smtpd_pids(m):
    return sorted(p for p in child_pids(m.proc.pid) if exe_name(p) == "smtpd")


def tls_connect(m, context, session=None):
    c = Raw(m.sd.host, m.sd.port)
    c.cmd("EHLO client.example")
    assert c.cmd("STARTTLS").startswith("220")
    s = c.starttls(context, session=session)
    assert c.cmd("EHLO client.example").startswith("250")
    return c, s


def test_root_only_key_and_shared_tickets(tls_master):
    m = tls_master
    owner = pwd.getpwnam("postern")
    pids = smtpd_pids(m)
    assert pids
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        assert all(int(u) == owner.pw_uid for u in uids), uids
    st = os.stat(m.pki.server_key)
    assert st.st_uid == 0 and st.st_mode & 0o077 == 0
    context = client_ctx(maxv=ssl.TLSVersion.TLSv1_2)
    c, s = tls_connect(m, context)
    session = s.session
    c.close()
    wait_until(lambda: "Anonymous TLS connection established" in open(m.sd.maillog).read(),
               timeout=10, what="TLS log line")
    tickets = os.path.join(m.top, "data", "smtpd_tls_tickets")
    st = os.stat(tickets)
    assert st.st_uid == owner.pw_uid and st.st_mode & 0o777 == 0o600
    # A reload retires this smtpd; the next connection is served by a
    # new process, which still resumes the session: same ticket keys.
    before = smtpd_pids(m)
    assert m.run("reload").returncode == 0
    wait_until(lambda: smtpd_pids(m) and set(smtpd_pids(m)).isdisjoint(before), timeout=20,
               what="a new smtpd after reload")
    c, s = tls_connect(m, context, session=session)
    assert s.session_reused
    c.close()


def test_reload_picks_up_a_renewed_certificate(tls_master):
    m = tls_master
    c, s = tls_connect(m, client_ctx())
    first = s.getpeercert(binary_form=True)
    c.close()
    # Renewal: new files in place (as certbot's symlinks switch), reload.
    cert, key = selfsigned(os.path.join(m.top, "pki"), "renewed", "renewed.test.example")
    shutil.copy(cert, m.pki.server_cert)
    shutil.copy(key, m.pki.server_key)
    os.chmod(m.pki.server_key, 0o600)
    before = smtpd_pids(m)
    assert m.run("reload").returncode == 0
    wait_until(lambda: smtpd_pids(m) and set(smtpd_pids(m)).isdisjoint(before), timeout=20,
               what="a new smtpd after reload")
    c, s = tls_connect(m, client_ctx())
    assert s.getpeercert(binary_form=True) != first
    der = s.getpeercert(binary_form=True)
    c.close()
    with open(cert) as f:
        assert ssl.DER_cert_to_PEM_cert(der).split()[1:-2] == f.read().split()[1:-2]


def test_check_warns_about_a_readable_key(tls_master):
    m = tls_master
    os.chmod(m.pki.server_key, 0o644)
    r = m.run("check")
    assert r.returncode == 0, r.stderr
    assert f"smtpd_tls_key_file {m.pki.server_key} holds a private key and is readable by " \
           "others than its owner (mode 644)" in r.stderr, r.stderr
    os.chmod(m.pki.server_key, 0o600)
    r = m.run("check")
    assert "holds a private key" not in r.stderr, r.stderr
    # Owned by mail_owner: its processes could read it.
    os.chown(m.pki.server_key, pwd.getpwnam("postern").pw_uid, -1)
    r = m.run("check")
    assert "holds a private key and is owned by uid" in r.stderr, r.stderr
    os.chown(m.pki.server_key, 0, -1)
