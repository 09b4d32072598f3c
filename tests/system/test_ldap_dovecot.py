"""The "AD-backed corporate mail" recipe, second half: Dovecot
authenticating against the same directory postern delivers from (issue 15).

A whole postern on the ldap/ .cf files (test_ldap.py's ad_system()) delivers
mail to alice, at her primary and her secondary addresses; then a real
Dovecot (harness/dovecot.py) runs conf/dovecot/10-postern.conf with its
passdb and userdb switched to "driver = ldap" and
conf/dovecot/ldap/dovecot-ldap-{ad,openldap}.conf.ext as shipped, with
only the values its README says to adapt changed: the server (uris), the
service account (dn, dnpass), base, virtual_mailbox_base (/var/vmail) and
the virtual_uid_maps/gid_maps ids (5000; here `nobody`, whom both postern's
virtual agent and Dovecot's mail processes run as, as in
test_dovecot_delivery.py). On AD the connection uses StartTLS with the
server's certificate checked, as the README recommends.

Run on the AD-shaped slapd and on the Samba AD DC (`ad_directory`), and on
plain OpenLDAP (`slapd_openldap`). Asserted, as a user sees it:
  - alice logs in over IMAP with her directory password, by mail address
    and by userPrincipalName / sAMAccountName (OpenLDAP: uid), and sees
    every message postern delivered; the session's user is her mail
    address whatever the login (doveadm auth test);
  - Dovecot's Maildir for her is the one postern's ad-mailboxes.cf names,
    and Dovecot's quota is postern's (maxStorage / posternMailQuota);
    Dovecot and postern keep sharing the Maildir (Dovecot moves and
    expunges, postern delivers again);
  - a wrong password, the disabled user carol with her right password, a
    secondary address as login and filter-injection strings are refused;
    disabling alice in the directory refuses her at once, enabling her
    lets her in again; `doveadm user '*'` lists the enabled users only;
  - a user whose mail attribute is in mixed case (added for the test, and
    removed after it) gets the same Maildir from postern and from Dovecot,
    whatever the login style and whatever case a lookup uses.
"""

import base64
import contextlib
import email
import email.policy
import imaplib
import os
import pwd
import re

from harness import Dovecot
from harness.dovecot import MAIL_USER, kb, read_maildirsize
from harness.process import wait_until
from test_ldap import ad_system, body

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "conf", "dovecot")
SENDER = "sender@remote.example"
ALICE_MAILDIR = "example.com/alice/"

# Logins that must find nothing: each would widen the filter if it were
# pasted into it unescaped.
INJECTIONS = ["*", "alice*", "*)(mail=*", "alice@example.com)(|(mail=*", "\\2a", "(mail=*)"]


def replace(text, old, new, what, count=1):
    """text with old replaced; fails when the recipe no longer has old
    exactly count times."""
    assert text.count(old) == count, f"conf/dovecot: {what} ({old!r}) not found {count}x"
    return text.replace(old, new)


def setting(text, name, value):
    """An .ext file with `name = value`: its one line `name = ...` (or the
    commented-out `#name = ...`) replaced."""
    text, n = re.subn(rf"(?m)^#?{re.escape(name)} = .*$", lambda _: f"{name} = {value}", text)
    assert n == 1, f"conf/dovecot/ldap: one {name} line expected, found {n}"
    return text


def render(kind, ms, d, uid, gid, base, tls):
    """(10-postern.conf, dovecot-ldap.conf.ext) adapted as
    conf/dovecot/ldap/README.md says."""
    with open(os.path.join(RECIPE, "10-postern.conf")) as f:
        main = f.read()
    with open(os.path.join(RECIPE, "ldap", f"dovecot-ldap-{kind}.conf.ext")) as f:
        ldap = f.read()
    # The README's one change to 10-postern.conf: the passdb and userdb
    # come from the directory.
    main = replace(main, "driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext",
                   "driver = ldap\n  args = @TMPDIR@/dovecot-ldap.conf.ext",
                   "the SQL passdb/userdb", count=2)
    # The values INSTALL adapts for every site, as test_dovecot_delivery.py.
    main = replace(main, "/var/vmail/", ms.vmail + "/", "virtual_mailbox_base")
    main = replace(main, "/var/spool/postern/private/auth", "@TMPDIR@/postern-auth",
                   "the auth listener")
    ldap = setting(ldap, "uris", d.uri.rstrip("/"))
    ldap = setting(ldap, "dn", d.service_dn)
    ldap = setting(ldap, "dnpass", d.service_pw)
    ldap = setting(ldap, "base", base)
    if tls:
        ldap = setting(ldap, "tls", "yes")
        ldap = setting(ldap, "tls_ca_cert_file", d.tls_ca)
        ldap = setting(ldap, "tls_require_cert", "hard")
    ldap = replace(ldap, "maildir:/var/vmail/", f"maildir:{ms.vmail}/", "virtual_mailbox_base")
    ldap = replace(ldap, "=uid=5000", f"=uid={uid}", "virtual_uid_maps")
    ldap = replace(ldap, "=gid=5000", f"=gid={gid}", "virtual_gid_maps")
    return main, ldap


def mail_ids():
    pw = pwd.getpwnam(MAIL_USER)
    return pw.pw_uid, pw.pw_gid


@contextlib.contextmanager
def postern_on(d, postern_build, postern, pki, **main):
    """postern delivering as the mail user (Dovecot's), started."""
    uid, gid = mail_ids()
    with ad_system(d, postern_build, postern, pki, virtual_uid_maps=f"static:{uid}",
                   virtual_gid_maps=f"static:{gid}", **main) as ms:
        os.chown(ms.vmail, uid, gid)
        ms.start()
        yield ms


@contextlib.contextmanager
def dovecot_on(kind, ms, d, user, base, tls=False):
    """A private Dovecot with the recipe pointed at directory d, started;
    its temp dir is kept (and named) when the block fails."""
    uid, gid = mail_ids()
    main, ldap = render(kind, ms, d, uid, gid, base, tls)
    dc = Dovecot(extra_config=main, passwd_file=False, user=user.mail, password=user.password,
                 files={"dovecot-ldap.conf.ext": ldap})
    failed = True
    try:
        dc.start()
        yield dc
        failed = False
    finally:
        kept = dc.cleanup(keep=failed)
        if failed:
            print(f"system: kept server dir {kept}")


def quoted(s):
    """s as an IMAP quoted string (imaplib quotes the password, not the
    user name)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def login(dc, user, password):
    conn = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        conn.login(quoted(user), password)
    except BaseException:
        conn.shutdown()
        raise
    return conn


def refused(dc, user, password):
    """True when Dovecot answers LOGIN with NO [AUTHENTICATIONFAILED]."""
    conn = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        conn.login(quoted(user), password)
    except imaplib.IMAP4.error as exc:
        return "AUTHENTICATIONFAILED" in str(exc)
    finally:
        conn.shutdown()
    return False


def subjects(dc, user, password):
    """The Subject of every message in the INBOX, after LOGIN as user."""
    conn = login(dc, user, password)
    try:
        typ, data = conn.select("INBOX", readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return []
        typ, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        return sorted(email.message_from_bytes(part[1], policy=email.policy.default)["Subject"]
                      for part in data if isinstance(part, tuple))
    finally:
        conn.logout()


def auth_user(dc, login_name, password):
    """The user name Dovecot's passdb gives for this login (doveadm auth
    test), or None when the login fails."""
    r = dc.doveadm("auth", "test", "-x", "service=imap", login_name, password)
    if r.returncode != 0:
        return None
    m = re.search(r"(?m)^\s*user=(\S+)$", r.stdout)
    return m.group(1) if m else login_name


def userdb(dc, user):
    """{field: value} of `doveadm user USER` (the userdb's answer)."""
    r = dc.doveadm("user", user)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(line.strip().split(None, 1) for line in r.stdout.splitlines()
                if len(line.strip().split(None, 1)) == 2)


def quota(dc, user):
    """{type: (value, limit)} from `doveadm quota get -u USER` (tab format)."""
    r = dc.doveadm("-f", "tab", "quota", "get", "-u", user)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    head = [h.strip().lower() for h in rows[0]]
    return {row[head.index("type")]: (row[head.index("value")], row[head.index("limit")])
            for row in rows[1:]}


def iterated_users(dc):
    """`doveadm user '*'`: the users iterate_filter lists, sorted."""
    r = dc.doveadm("user", "*")
    assert r.returncode == 0, r.stdout + r.stderr
    return sorted(r.stdout.split())


def enabled_mails(d):
    return sorted(u.mail for u in d.users.values() if u.enabled)


def dovecot_errors(dc):
    with open(dc.log_file, errors="replace") as f:
        return [line for line in f if " Error: " in line or " Fatal: " in line
                or " Panic: " in line]


def deliver_to_alice(ms, alice):
    """One message to each of alice's addresses; returns their subjects.

    The first is delivered alone: deliveries that run at the same time
    into a Maildir without maildirsize may each rebuild it, and one of
    their counts can be lost (Maildir++ has no lock; seen once in ten
    runs, a message not counted). The quota checks below need an exact
    count, so the others only append to the file the first one made."""
    sent = []
    for i, a in enumerate([alice.mail] + alice.addresses):
        ms.send(SENDER, [a], body(f"to {a}"))
        sent.append(f"to {a}")
        if i == 0:
            ms.wait_maildir(ALICE_MAILDIR, 1)
            wait_maildirsize(ms, 1)
    files = ms.wait_maildir(ALICE_MAILDIR, len(sent))
    st = os.stat(files[0])
    assert (st.st_uid, st.st_gid) == mail_ids(), "postern delivers as Dovecot's mail user"
    wait_maildirsize(ms, len(sent))
    return sorted(sent)


def wait_maildirsize(ms, count):
    """Wait until alice's maildirsize counts count messages: the virtual
    agent adds a delivery's line just after the message is in new/."""
    path = ms.maildir(ALICE_MAILDIR)
    wait_until(lambda: os.path.exists(os.path.join(path, "maildirsize"))
               and read_maildirsize(path)[2] == count, timeout=20,
               what=f"maildirsize counting {count} message(s)")


def check_shared_maildir(dc, ms, alice, sent, flavour):
    """The userdb's Maildir and quota are postern's (ldap/FLAVOUR-mailboxes.cf
    and FLAVOUR-quota.cf), and both keep using the Maildir: Dovecot moves a
    message to cur/ and expunges it, postern delivers again, Dovecot sees
    it."""
    r = ms.run("map", "query", alice.mail, f"ldap:{flavour}-mailboxes.cf")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == ALICE_MAILDIR
    assert userdb(dc, alice.mail)["mail"] == f"maildir:{ms.vmail}/{ALICE_MAILDIR}"

    r = ms.run("map", "query", alice.mail, f"ldap:{flavour}-quota.cf")
    assert r.returncode == 0 and int(r.stdout) == alice.quota, r.stdout + r.stderr
    limit, used, _ = read_maildirsize(ms.maildir(ALICE_MAILDIR))
    assert limit == f"{alice.quota}S", limit
    assert quota(dc, alice.mail)["STORAGE"] == (str(kb(used)), str(kb(alice.quota)))

    conn = login(dc, alice.mail, alice.password)
    try:
        typ, data = conn.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(sent), data
        conn.store("1", "+FLAGS", "\\Deleted")
        conn.expunge()
    finally:
        conn.logout()
    assert len(ms.messages(ALICE_MAILDIR, "cur")) == len(sent) - 1
    limit, after, count = read_maildirsize(ms.maildir(ALICE_MAILDIR))
    assert limit == f"{alice.quota}S" and count == len(sent) - 1 and after < used

    ms.send(SENDER, [alice.addresses[0]], body("after expunge"))
    ms.wait_maildir(ALICE_MAILDIR, 1)
    wait_maildirsize(ms, len(sent))
    got = subjects(dc, alice.mail, alice.password)
    assert len(got) == len(sent) and "after expunge" in got, got


# A user added for one test: a mail address in mixed case, as AD often
# holds them, and (on AD) a userPrincipalName that is not the address.
ERIN = {"name": "erin", "mail": "Erin.Baker@Example.com", "upn": "erin@example.com",
        "password": "Erin-Pass-1", "maildir": "Example.com/Erin.Baker/"}


def _erin_ldif(d):
    e = ERIN
    if d.flavour == "openldap":
        return (f"dn: uid={e['name']},ou=people,{d.base}\nchangetype: add\n"
                "objectClass: inetOrgPerson\nobjectClass: posternMailUser\n"
                f"uid: {e['name']}\ncn: Erin Baker\nsn: Baker\nmail: {e['mail']}\n"
                f"userPassword: {e['password']}\n"), f"uid={e['name']},ou=people,{d.base}"
    dn = f"cn={e['name']},ou=people,{d.base}"
    if d.flavour == "samba":
        # AD takes a password as unicodePwd: quoted, UTF-16LE (over TLS).
        pw = "unicodePwd:: " + base64.b64encode(f'"{e["password"]}"'.encode("utf-16-le")).decode()
    else:
        pw = f"userPassword: {e['password']}"
    return (f"dn: {dn}\nchangetype: add\nobjectClass: user\ncn: {e['name']}\nsn: Baker\n"
            f"mail: {e['mail']}\nproxyAddresses: SMTP:{e['mail']}\n"
            f"sAMAccountName: {e['name']}\nuserPrincipalName: {e['upn']}\n{pw}\n"
            "userAccountControl: 512\n"), dn


def _modify(d, ldif):
    if d.flavour == "samba":
        d.admin_ldapmodify(ldif, tls=True)
    else:
        d.ldapmodify(ldif)


@contextlib.contextmanager
def mixed_case_user(d):
    """ERIN in directory d for the block, removed afterwards (the sample
    stays as the other tests expect it)."""
    ldif, dn = _erin_ldif(d)
    _modify(d, ldif)
    try:
        yield ERIN
    finally:
        _modify(d, f"dn: {dn}\nchangetype: delete\n")


def check_mixed_case(dc, ms, d, logins):
    """A mail attribute in mixed case: postern delivers to DOMAIN/USER/ as
    the attribute writes them, whatever case the sender used, and Dovecot
    serves that Maildir after every login style and for a lookup by any
    case of the address (doveadm, LMTP)."""
    with mixed_case_user(d) as e:
        ms.send(SENDER, [e["mail"].lower()], body("to erin"))
        ms.wait_maildir(e["maildir"], 1)
        for name in logins(e):
            assert subjects(dc, name, e["password"]) == ["to erin"], name
            assert auth_user(dc, name, e["password"]) == e["mail"], name
        for name in (e["mail"], e["mail"].lower(), e["mail"].upper()):
            assert userdb(dc, name)["mail"] == f"maildir:{ms.vmail}/{e['maildir']}", name


def test_dovecot_on_ad(ad_directory, postern_build, postern, pki):
    d = ad_directory
    alice, carol = d.users["alice"], d.users["carol"]
    with postern_on(d, postern_build, postern, pki) as ms:
        sent = deliver_to_alice(ms, alice)
        with dovecot_on("ad", ms, d, alice, d.base, tls=True) as dc:
            # Every login style of ad-auth.cf, one mailbox, one user name.
            for name in (alice.mail, alice.upn, alice.name):
                assert subjects(dc, name, alice.password) == sent, name
                assert auth_user(dc, name, alice.password) == alice.mail, name

            assert refused(dc, alice.mail, alice.password + "x")
            assert refused(dc, alice.name, "")
            # Disabled: found by no filter, and Samba refuses its bind too.
            assert refused(dc, carol.mail, carol.password)
            assert refused(dc, carol.name, carol.password)
            # A secondary address is a recipient, not a login (as ad-auth.cf).
            assert refused(dc, alice.addresses[0], alice.password)
            for name in INJECTIONS:
                assert refused(dc, name, alice.password), name

            check_shared_maildir(dc, ms, alice, sent, "ad")

            # Disabled in the directory: refused at once (Dovecot keeps no
            # auth cache here), let in again once enabled.
            with d.disabled("alice"):
                assert refused(dc, alice.mail, alice.password)
                assert refused(dc, alice.name, alice.password)
            login(dc, alice.name, alice.password).logout()

            assert iterated_users(dc) == enabled_mails(d)
            check_mixed_case(dc, ms, d, lambda e: (e["mail"], e["upn"], e["name"]))
            assert dovecot_errors(dc) == []


def test_dovecot_on_openldap(slapd_openldap, postern_build, postern, pki):
    d = slapd_openldap
    alice, carol = d.users["alice"], d.users["carol"]
    cfs = ("openldap-mailboxes.cf", "openldap-aliases.cf", "openldap-quota.cf",
           "openldap-auth.cf")
    with postern_on(d, postern_build, postern, pki, cfs=cfs,
                    virtual_mailbox_maps="ldap:openldap-mailboxes.cf",
                    virtual_alias_maps="ldap:openldap-aliases.cf",
                    virtual_mailbox_limit_maps="ldap:openldap-quota.cf",
                    smtpd_sasl_path="openldap-auth.cf") as ms:
        sent = deliver_to_alice(ms, alice)
        with dovecot_on("openldap", ms, d, alice, f"ou=people,{d.base}") as dc:
            # By mail address and by uid.
            for name in (alice.mail, alice.name):
                assert subjects(dc, name, alice.password) == sent, name
                assert auth_user(dc, name, alice.password) == alice.mail, name

            assert refused(dc, alice.mail, alice.password + "x")
            assert refused(dc, carol.mail, carol.password)
            assert refused(dc, carol.name, carol.password)
            assert refused(dc, alice.addresses[0], alice.password)
            for name in INJECTIONS:
                assert refused(dc, name, alice.password), name

            check_shared_maildir(dc, ms, alice, sent, "openldap")

            with d.disabled("alice"):
                assert refused(dc, alice.mail, alice.password)
            login(dc, alice.mail, alice.password).logout()

            assert iterated_users(dc) == enabled_mails(d)
            check_mixed_case(dc, ms, d, lambda e: (e["mail"], e["name"]))
            assert dovecot_errors(dc) == []
