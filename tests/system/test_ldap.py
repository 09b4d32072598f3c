"""postern on a directory, with no SQL database: the ldap: table and
smtpd_sasl_type = ldap (issue 15), against real servers.

Each AD test runs twice through the `ad_directory` fixture: on slapd loaded
with ldap/ad-test.ldif and ldap/sample-ad.ldif, and on a Samba AD DC
provisioned by the harness (harness/samba_ad.py). A whole postern (master,
smtpd with a submission service, qmgr, virtual) takes recipients, aliases,
groups, quotas and passwords from the ready .cf files of ldap/, pointed at
the server by the harness (server_host, bind_dn, bind_pw):

  - mail to a user's primary and secondary addresses (proxyAddresses,
    whatever their case) lands in the user's one mailbox;
  - a disabled user (userAccountControl bit 2) is refused at RCPT, and so
    is every filter-injection string; a nested group reaches each member
    once;
  - AUTH PLAIN and LOGIN over submission with the directory password (mail
    address, userPrincipalName or sAMAccountName) works; a wrong password,
    a disabled account or an injection string fails;
  - with the directory stopped, recipients seen before are still accepted
    (the cache's last known answers), others get 4xx, never 5xx; the mail
    is delivered, and postern answers anew once the directory is back;
  - `postern trace` names the ldap table and the DN that answered, and
    `postern map query` answers from every .cf file of ldap/.
"""

import base64
import glob
import os
import smtplib

import pytest

from harness.certs import client_ctx
from harness.process import wait_until
from harness.slapd import LDAP_DIR, expand_group
from harness.smtpclient import Raw
from harness.system import MailSystem, write_secret

SUBMISSION = {
    "smtpd_tls_security_level": "encrypt",
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_tls_auth_only": "yes",
    "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
    "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
}

# Keys that must match nothing: each would widen or break the filter if it
# were pasted into it.
INJECTIONS = ["*", "*@example.com", "a*@example.com", "*)(mail=*", "alice@example.com)(|(mail=*",
              "\\2a@example.com", "alice\\@example.com", "(mail=*)"]


def install_cf(directory, name, confdir):
    """ldap/NAME pointed at directory, installed in confdir as INSTALL
    says (it holds the service password: 0640, group mail_owner)."""
    return write_secret(os.path.join(confdir, name), directory.cf_text(name))


def ad_system(directory, postern_build, postern, pki, cfs=None, **main):
    """A MailSystem on the directory's AD .cf files (written into its
    config_directory), with a submission service; not started."""
    ms = MailSystem(postern_build, postern, main_cf={
        "virtual_mailbox_domains": "example.com, example.net",
        "virtual_mailbox_maps": "ldap:ad-mailboxes.cf",
        "virtual_alias_maps": "ldap:ad-aliases.cf",
        "virtual_mailbox_limit_maps": "ldap:ad-quota.cf",
        "smtpd_sasl_type": "ldap",
        "smtpd_sasl_path": "ad-auth.cf",
        "smtpd_sasl_failure_delay": "0",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki.server_cert,
        "smtpd_tls_key_file": pki.server_key,
        **main})
    for name in cfs or ("ad-mailboxes.cf", "ad-aliases.cf", "ad-quota.cf", "ad-auth.cf"):
        install_cf(directory, name, ms.sd.confdir)
    ms.sd.services = [("submission", SUBMISSION)]
    return ms


def rcpt(ms, address):
    """The reply to RCPT TO:<address> in a fresh transaction."""
    c = Raw(ms.sd.host, ms.sd.port)
    try:
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<sender@remote.example>").startswith("250")
        return c.cmd(f"RCPT TO:<{address}>")
    finally:
        c.close()


def auth(ms, mech, login, password):
    """AUTH over submission after STARTTLS: the reply code."""
    s = smtplib.SMTP(ms.sd.host, ms.sd.extra_ports[0], timeout=30)
    try:
        s.starttls(context=client_ctx())
        s.ehlo()
        s.user, s.password = login, password
        try:
            code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            code = e.smtp_code
        return code
    finally:
        s.close()


def body(subject):
    return f"From: sender@remote.example\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


def test_ad_mail_users_groups(ad_directory, postern_build, postern, pki):
    d = ad_directory
    alice, bob, dave = d.users["alice"], d.users["bob"], d.users["dave"]
    with ad_system(d, postern_build, postern, pki) as ms:
        ms.start()
        # Every address of alice, in any case, reaches her one mailbox.
        addresses = [alice.mail] + alice.addresses
        for i, a in enumerate(addresses):
            ms.send("sender@remote.example", [a.upper() if i == 1 else a], body(f"to {a}"))
        ms.send("sender@remote.example", bob.addresses, body("to robert"))
        ms.wait_maildir("example.com/alice/", len(addresses))
        ms.wait_maildir("example.net/bob/", 1)

        # The disabled user and the injections: refused as unknown (5xx).
        reply = rcpt(ms, d.users["carol"].mail)
        assert reply.startswith("550 5.1.1"), reply
        for key in INJECTIONS:
            if "@" not in key:
                key += "@example.com"
            local, _, domain = key.rpartition("@")
            if any(ch in local for ch in '()\\'):
                local = '"' + local.replace("\\", "\\\\") + '"'
            reply = rcpt(ms, f"{local}@{domain}")
            assert reply[:1] == "5", (key, reply)

        # A NUL byte never reaches a lookup (a directory would cut the
        # value there and find alice): smtpd refuses the command.
        c = Raw(ms.sd.host, ms.sd.port)
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<sender@remote.example>")
        c.send(b"RCPT TO:<" + alice.mail.encode() + b"\0x>\r\n")
        reply = c.reply()
        c.close()
        assert reply[:1] == "5", reply

        # A nested group: each member once (alice is in all-staff and in
        # engineering, which all-staff holds).
        assert sorted(expand_group("all-staff")) == sorted([alice.mail, bob.mail, dave.mail])
        ms.send("sender@remote.example", ["all-staff@example.com"], body("all staff"))
        ms.wait_maildir("example.com/dave/", 1)
        ms.wait_maildir("example.net/bob/", 2)
        ms.wait_maildir("example.com/alice/", len(addresses) + 1)
        ms.wait_log("status=sent", count=len(addresses) + 1 + 3)
        assert len(ms.messages("example.com/alice/")) == len(addresses) + 1
        assert len(ms.messages("example.net/bob/")) == 2
        assert len(ms.messages("example.com/dave/")) == 1
        # A group loop ends: loop-a holds loop-b, which holds loop-a and dave.
        ms.send("sender@remote.example", ["loop-a@example.com"], body("loop"))
        ms.wait_maildir("example.com/dave/", 2)
        assert "status=bounced" not in ms.log()

        # postern trace: the ldap table and the entry that answered.
        r = ms.run("trace", "a.smith@example.com")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "virtual_mailbox_maps ldap:" in r.stdout, r.stdout
        assert f'from "{alice.dn}"'.lower() in r.stdout.lower(), r.stdout
        assert "quota: ldap:" in r.stdout and "104857600 bytes" in r.stdout, r.stdout
        r = ms.run("trace", "all-staff@example.com")
        assert "alias: virtual_alias_maps ldap:" in r.stdout, r.stdout


def test_ad_auth(ad_directory, postern_build, postern, pki):
    d = ad_directory
    alice = d.users["alice"]
    with ad_system(d, postern_build, postern, pki) as ms:
        ms.start()
        for mech in ("PLAIN", "LOGIN"):
            assert auth(ms, mech, alice.mail, alice.password) == 235
        assert auth(ms, "PLAIN", alice.upn or alice.mail, alice.password) == 235
        # The sAMAccountName style: a bare logon name.
        assert auth(ms, "PLAIN", alice.name, alice.password) == 235
        assert auth(ms, "PLAIN", alice.mail, alice.password + "x") == 535
        assert auth(ms, "PLAIN", alice.mail, "") in (535, 501)
        carol = d.users["carol"]
        assert auth(ms, "PLAIN", carol.mail, carol.password) == 535
        for login in ("*", "*)(mail=*", "alice*", "\\2a"):
            assert auth(ms, "PLAIN", login, alice.password) == 535, login
        # Logged in with the bare logon name: the session's name is the
        # entry's mail (ad-auth.cf's result_attribute), and mail goes.
        s = smtplib.SMTP(ms.sd.host, ms.sd.extra_ports[0], timeout=30)
        s.starttls(context=client_ctx())
        s.login(alice.name, alice.password)
        s.sendmail(alice.mail, ["dave@example.com"], body("from alice"))
        s.quit()
        ms.wait_log("sasl_method=PLAIN, sasl_username=alice@example.com")
        ms.wait_maildir("example.com/dave/", 1)


def test_ad_directory_outage(ad_directory, postern_build, postern, pki):
    d = ad_directory
    alice, dave = d.users["alice"], d.users["dave"]
    with ad_system(d, postern_build, postern, pki) as ms:
        ms.start()
        assert rcpt(ms, alice.mail).startswith("250")
        with d.stopped():
            # Known before: the cache's last known answer; never asked: 4xx.
            assert rcpt(ms, alice.mail).startswith("250")
            reply = rcpt(ms, dave.mail)
            assert reply[:1] == "4", reply
            ms.send("sender@remote.example", [alice.mail], body("during the outage"))
            r = ms.run("map", "query", dave.mail, "ldap:ad-mailboxes.cf")
            assert r.returncode == 75, r.stdout + r.stderr
            # AUTH cannot be checked: a temporary failure, not a refusal.
            assert auth(ms, "PLAIN", alice.mail, alice.password) == 454
        # Back: new answers, and the message is delivered, not bounced.
        wait_until(lambda: rcpt(ms, dave.mail).startswith("250"), timeout=60,
                   what="dave accepted once the directory is back")
        ms.wait_maildir("example.com/alice/", 1, timeout=90)
        assert "status=bounced" not in ms.log()


def test_in_chain_groups_on_samba(samba_ad, postern, tmp_path):
    """AD's in-chain rule (1.2.840.113556.1.4.1941) expands nested groups in
    one search; the same answers as the member-by-member recursion."""
    chain = samba_ad.write_cf("ad-groups-in-chain.cf", tmp_path)
    plain = samba_ad.write_cf("ad-aliases.cf", tmp_path)
    for group in ("all-staff", "engineering", "loop-a"):
        key = f"{group}@example.com"
        for cf in (chain, plain):
            r = postern("map", "query", key, f"ldap:{cf}")
            assert r.returncode == 0, (cf, r.stderr)
            got = sorted(r.stdout.strip().split(","))
            assert got == expand_group(group), (cf, group, got)


# The answer each .cf file of ldap/ gives for one key of the sample tree.
def _expected(cf, users):
    alice, bob = users["alice"], users["bob"]
    return {
        "mailboxes": ("a.smith@example.com", "example.com/alice/"),
        "aliases": ("all-staff@example.com", ",".join(expand_group("all-staff"))),
        "groups-in-chain": ("all-staff@example.com", ",".join(expand_group("all-staff"))),
        "quota": (alice.mail, str(alice.quota)),
        "auth": (alice.mail, alice.mail),
    }[cf.split("-", 1)[1][:-3]]


@pytest.mark.parametrize("cf", sorted(os.path.basename(p)
                                      for p in glob.glob(os.path.join(LDAP_DIR, "*.cf"))))
def test_map_query_every_cf(cf, request, postern, tmp_path):
    if cf.startswith("openldap-"):
        directory = request.getfixturevalue("slapd_openldap")
    elif cf == "ad-groups-in-chain.cf":
        directory = request.getfixturevalue("samba_ad")
    else:
        directory = request.getfixturevalue("slapd_ad")
    key, want = _expected(cf, directory.users)
    path = directory.write_cf(cf, tmp_path)
    r = postern("map", "query", key, f"ldap:{path}")
    assert r.returncode == 0, r.stdout + r.stderr
    got = r.stdout.strip()
    if "," in want:
        assert sorted(got.lower().split(",")) == sorted(want.split(",")), got
    else:
        assert got.lower() == want, got
    # A disabled user has no answer, an injection string neither.
    carol = directory.users["carol"]
    for k in [carol.mail] + INJECTIONS:
        r = postern("map", "query", k, f"ldap:{path}")
        assert r.returncode == 1, (k, r.stdout, r.stderr)


def test_openldap_tree(slapd_openldap, postern_build, postern, pki):
    """The plain OpenLDAP recipe (postern.schema): mailboxes, aliases,
    quota and AUTH from ldap/openldap-*.cf, mail delivered."""
    d = slapd_openldap
    alice = d.users["alice"]
    with MailSystem(postern_build, postern, main_cf={
            "virtual_mailbox_domains": "example.com, example.net",
            "virtual_mailbox_maps": "ldap:openldap-mailboxes.cf",
            "virtual_alias_maps": "ldap:openldap-aliases.cf",
            "virtual_mailbox_limit_maps": "ldap:openldap-quota.cf",
            "smtpd_sasl_type": "ldap",
            "smtpd_sasl_path": "openldap-auth.cf",
            "smtpd_sasl_failure_delay": "0",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": pki.server_cert,
            "smtpd_tls_key_file": pki.server_key}) as ms:
        for name in ("openldap-mailboxes.cf", "openldap-aliases.cf", "openldap-quota.cf",
                     "openldap-auth.cf"):
            install_cf(d, name, ms.sd.confdir)
        ms.sd.services = [("submission", SUBMISSION)]
        ms.start()
        # One message per address: in one message, addresses that alias
        # to the same mailbox would be delivered once (duplicate removal).
        for a in alice.addresses + ["sales@example.com"]:
            ms.send("sender@remote.example", [a], body(f"to {a}"))
        ms.wait_maildir("example.com/alice/", len(alice.addresses) + 1)
        ms.wait_maildir("example.net/bob/", 1)
        assert rcpt(ms, d.users["carol"].mail).startswith("550 5.1.1")
        assert auth(ms, "PLAIN", alice.mail, alice.password) == 235
        assert auth(ms, "PLAIN", alice.mail, "wrong") == 535
        r = ms.run("trace", alice.mail)
        assert "104857600 bytes" in r.stdout, r.stdout


# The seed guide's "LDAP/Active Directory Authentication" table file, as
# printed there.
SEED_CF = """\
server_host = ldap://dc.example.com
search_base = dc=example,dc=com
version = 3
bind = yes
bind_dn = cn=postfix,ou=service,dc=example,dc=com
bind_pw = password123
query_filter = (mail=%s)
result_attribute = mail
"""


def test_seed_guide_table_file(slapd_openldap, postern, owner_tmp_path):
    """The seed guide's ldap-users.cf and main.cf line load unchanged
    (`postern check` is clean once the file is private), and the same file
    with only the server and the service account changed answers."""
    import grp
    d = owner_tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text("virtual_mailbox_domains = example.com\n"
                               f"virtual_mailbox_maps = ldap:{d}/ldap-users.cf\n"
                               "smtpd_sasl_type = ldap\nsmtpd_sasl_path = ldap-users.cf\n")
    (d / "master.cf").write_text("smtp inet n - n - - smtpd\n")
    cf = d / "ldap-users.cf"
    cf.write_text(SEED_CF)
    os.chmod(cf, 0o644)
    r = postern("check", "-c", d)
    assert r.returncode == 0, r.stderr
    # The service password is in it: both uses are named.
    assert f"table file {cf} is readable by other users" in r.stderr, r.stderr
    assert f"ldap file {cf} is readable by other users" in r.stderr, r.stderr
    os.chmod(cf, 0o640)
    os.chown(cf, 0, grp.getgrnam("postern").gr_gid)
    r = postern("check", "-c", d)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    from harness.slapd import rewrite_cf
    alice = slapd_openldap.users["alice"]
    cf.write_text(rewrite_cf(SEED_CF, {"server_host": slapd_openldap.uri,
                                       "bind_dn": slapd_openldap.service_dn,
                                       "bind_pw": slapd_openldap.service_pw}))
    r = postern("map", "query", alice.mail, f"ldap:{cf}")
    assert r.returncode == 0 and r.stdout.strip() == alice.mail, r.stdout + r.stderr
    r = postern("map", "query", "nobody@example.com", f"ldap:{cf}")
    assert r.returncode == 1, r.stdout + r.stderr
    # A mistake in the file: `postern check` names it (for the table and
    # for smtpd_sasl_path), before any smtpd would stop on it.
    cf.write_text(SEED_CF + "scope = tree\n")
    r = postern("check", "-c", d)
    assert r.returncode == 1, r.stderr
    assert "smtpd_sasl_type = ldap" in r.stderr and 'bad value for scope: "tree"' in r.stderr, \
        r.stderr


def query(postern, directory, tmp_path, key, cf="ad-mailboxes.cf", **overrides):
    """postern map query KEY on ldap/CF pointed at directory, with the
    .cf parameters in overrides changed (None removes one)."""
    path = tmp_path / f"q-{len(list(tmp_path.iterdir()))}.cf"
    path.write_text(directory.cf_text(cf, **overrides))
    return postern("map", "query", key, f"ldap:{path}")


def test_table_connection_settings(slapd_ad, postern, tmp_path):
    """server_host failover, StartTLS, ldaps://, ldapi://, certificate
    checks, and the limits: each as ldap_table(5) says."""
    d = slapd_ad
    alice = d.users["alice"].mail
    ok = "example.com/alice/"

    def answer(key=alice, **kw):
        r = query(postern, d, tmp_path, key, **kw)
        return r.returncode, r.stdout.strip(), r.stderr

    # Failover: a dead server first, then the live one; a host:port form.
    assert answer(server_host=f"ldap://127.0.0.1:1 {d.uri}")[:2] == (0, ok)
    assert answer(server_host=f"127.0.0.1:{d.port}")[:2] == (0, ok)
    # TLS: StartTLS and ldaps with the server's CA, checked.
    tls = {"tls_ca_cert_file": d.tls_ca, "tls_require_cert": "yes"}
    assert answer(start_tls="yes", **tls)[:2] == (0, ok)
    assert answer(server_host=d.ldaps_uri, **tls)[:2] == (0, ok)
    # A certificate that the CA file does not vouch for: no answer, 4xx.
    code, _, err = answer(start_tls="yes", tls_require_cert="yes",
                          tls_ca_cert_file="/etc/ssl/certs/ca-certificates.crt")
    assert code == 75 and "start_tls" in err, err
    # ldapi:// (a unix socket), bound as the service account.
    assert answer(server_host=d.ldapi_uri)[:2] == (0, ok)
    # A wrong service password: a temporary failure naming the bind.
    code, _, err = answer(bind_pw="wrong")
    assert code == 75 and "bind as" in err and "Invalid credentials" in err, err
    # scope = base under the people OU finds nobody; one finds alice.
    base = "ou=people,dc=example,dc=com"
    assert answer(search_base=base, scope="base")[0] == 1
    assert answer(search_base=base, scope="one")[:2] == (0, ok)
    # %d in search_base is DN-escaped: a key cannot leave the base.
    assert answer(key="alice@example.com,dc=com", search_base="dc=%d")[0] in (1, 75)
    # domain: keys outside the list are not looked up.
    assert answer(domain="example.net")[0] == 1
    assert answer(domain="example.com, example.net")[:2] == (0, ok)
    # size_limit: more entries than allowed is a temporary failure.
    code, _, err = answer(query_filter="(objectClass=user)", size_limit="1")
    assert code == 75 and "size_limit" in err, err
    # expansion_limit on a group's members.
    code, _, err = answer(key="all-staff@example.com", cf="ad-aliases.cf", expansion_limit="2")
    assert code == 75 and "expansion_limit" in err, err
    # recursion_limit = 1: all-staff's nested group is one level too deep.
    code, _, err = answer(key="all-staff@example.com", cf="ad-aliases.cf", recursion_limit="1")
    assert code == 75 and "recursion_limit" in err, err
    # result_format.
    assert answer(result_format="%u at %d")[:2] == (0, "alice at example.com")


def test_hung_directory(slapd_ad, postern_build, postern, pki):
    """A directory that accepts connections and never answers (SIGSTOP):
    lookups end after the .cf file's timeout with 4xx, and answers resume
    when it wakes."""
    import signal
    d = slapd_ad
    with ad_system(d, postern_build, postern, pki) as ms:
        for name in ("ad-mailboxes.cf", "ad-aliases.cf", "ad-quota.cf"):
            write_secret(os.path.join(ms.sd.confdir, name), d.cf_text(name, timeout="2"))
        ms.start()
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            reply = rcpt(ms, d.users["dave"].mail)
            assert reply[:1] == "4", reply
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        wait_until(lambda: rcpt(ms, d.users["dave"].mail).startswith("250"), timeout=60,
                   what="dave accepted once the directory answers again")


def test_quota_from_the_directory(slapd_ad, postern_build, postern, pki):
    """maxStorage (ad-quota.cf through virtual_mailbox_limit_maps) is the
    mailbox's quota: a full mailbox is refused at RCPT as with db:quota."""
    d = slapd_ad
    alice = d.users["alice"]
    with ad_system(d, postern_build, postern, pki) as ms:
        ms.start()
        ms.send("sender@remote.example", [alice.mail], body("first"))
        ms.wait_maildir("example.com/alice/", 1)
        # Usage over alice's 100 MiB, as a Maildir++ maildirsize says it
        # (readable by smtpd, which runs as mail_owner: the test's
        # mailboxes belong to root, see harness/system.py).
        md = ms.maildir("example.com/alice/")
        with open(os.path.join(md, "maildirsize"), "a") as f:
            f.write(f"{alice.quota} 1\n")
        for path in (os.path.dirname(md.rstrip("/")), md):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(md, "maildirsize"), 0o644)
        reply = rcpt(ms, alice.addresses[0])
        assert reply.startswith("552 5.2.2"), reply
        assert rcpt(ms, d.users["dave"].mail).startswith("250")
