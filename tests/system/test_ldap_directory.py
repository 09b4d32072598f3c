"""The directory side of LDAP/Active Directory support: the ldap/ folder and
the harness's real directory servers, checked with the real ldap-utils
clients (ldapsearch, ldapadd over ldapi, slaptest), never through postern.

- postern.schema/.ldif and ad-test.schema/.ldif define the same things,
  load into slapd (slaptest for the slapd.conf form, ldapadd -Y EXTERNAL
  for the cn=config form);
- the three sample trees describe the same people (harness SAMPLE_*);
- on slapd with the AD-like schema AND on a Samba AD DC (ad_directory):
  the sample is there, anonymous reads nothing, the service account reads,
  the users' passwords bind, and the query_filter of every ad-*.cf, expanded
  the way ldap_table(5) says (%s, %u, %d, RFC 4515 escaped), selects what
  it should: a disabled user is left out by the bit-AND rule, secondary
  proxyAddresses match in any case, injection strings match nothing;
- on Samba only: the in-chain rule of ad-groups-in-chain.cf;
- on plain OpenLDAP (slapd_openldap): the openldap-*.cf filters;
- the harness helpers the ldap: table tests rely on: disable/enable a
  user, stop and relaunch on the same port.

Used by: make system (tests/system). Needs slapd, ldap-utils, samba,
samba-dsdb-modules (scripts/deps.sh); Samba needs 127.0.0.1:389 free.
"""

import base64
import os
import re

import pytest
from ldap.schema.models import AttributeType, ObjectClass

from harness import Slapd
from harness.process import run
from harness.slapd import (LDAP_DIR, SAMPLE_GROUPS, SAMPLE_USERS, SCHEMA_DIR,
                           expand_group, rewrite_cf)

CF_FILES = sorted(f for f in os.listdir(LDAP_DIR) if f.endswith(".cf"))
AD_CF = [f for f in CF_FILES if f.startswith("ad-")]
OPENLDAP_CF = [f for f in CF_FILES if f.startswith("openldap-")]

# ldap_table(5)'s parameters and postern's three additions (ldap/README.md).
CF_PARAMS = {
    "server_host", "server_port", "timeout", "search_base", "query_filter",
    "result_format", "result_filter", "domain", "result_attribute",
    "special_result_attribute", "terminal_result_attribute", "leaf_result_attribute",
    "scope", "bind", "bind_dn", "bind_pw", "recursion_limit", "expansion_limit",
    "size_limit", "dereference", "chase_referrals", "version", "debuglevel",
    "start_tls", "tls_ca_cert_dir", "tls_ca_cert_file", "tls_cert", "tls_key",
    "tls_require_cert", "tls_random_file", "tls_cipher_suite",
    "bind_pw_file", "recursion_filter", "special_result_in_chain",
}

# Keys the injection test sends; escaped they must match nothing.
# (A NUL is not among them: see test_nul_in_a_value_is_cut_by_the_servers.)
INJECTIONS = ["*", "*)(mail=*", ")(", "\\", "\\00", "a*@example.com",
              "*)(|(objectClass=*", "\\2a", "alice@example.com)(mail=*"]


# --- helpers ---------------------------------------------------------------

def read_cf(name):
    """ldap/NAME as {parameter: value} (Postfix .cf syntax: comments,
    `name = value`, continuation lines that start with white space)."""
    params, last = {}, None
    with open(os.path.join(LDAP_DIR, name)) as f:
        for line in f.read().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and last:
                params[last] += " " + line.strip()
                continue
            name_, sep, value = line.partition("=")
            assert sep, f"{name}: not a `name = value` line: {line!r}"
            last = name_.strip()
            params[last] = value.strip()
    return params


def escape(value):
    """RFC 4515: what postern does to a key before it enters a filter."""
    out = []
    for ch in value.encode():
        if ch in b"*()\\" or ch < 0x20 or ch >= 0x7f:
            out.append(f"\\{ch:02x}")
        else:
            out.append(chr(ch))
    return "".join(out)


def expand(template, key):
    """query_filter with %s, %u, %d (and %%) expanded as ldap_table(5)
    says, each value RFC 4515-escaped."""
    local, _, domain = key.rpartition("@") if "@" in key else (key, "", "")
    parts = {"s": key, "u": local, "d": domain, "%": "%"}

    def one(m):
        v = parts[m.group(1)]
        return v if m.group(1) == "%" else escape(v)
    return re.sub(r"%([sud%])", one, template)


def found(directory, cf, key):
    """DNs (lower case) the query_filter of ldap/cf selects for key, as
    the service account, from the file's own search_base."""
    p = read_cf(cf)
    return directory.search_dns(expand(p["query_filter"], key), base=p["search_base"])


def dns(directory, *names):
    """Lower-cased DNs of sample users/groups by name."""
    out = []
    for n in names:
        out.append((directory.users[n].dn if n in directory.users
                    else directory.groups[n]).lower())
    return sorted(out)


def schema_elements(path):
    """The attribute types and object classes of a .schema or .ldif file,
    parsed by python-ldap, as {name: normalised definition}."""
    with open(path) as f:
        text = f.read()
    defs = []
    if path.endswith(".schema"):
        body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        for m in re.finditer(r"\b(attributetype|objectclass)\s*\(", body, re.I):
            depth, i = 0, m.end() - 1
            for j in range(i, len(body)):
                depth += {"(": 1, ")": -1}.get(body[j], 0)
                if depth == 0:
                    defs.append((m.group(1).lower(), body[i:j + 1]))
                    break
    else:
        for rec in parse_ldif(text):
            for v in rec.get("olcattributetypes", []):
                defs.append(("attributetype", re.sub(r"^\{\d+\}", "", v)))
            for v in rec.get("olcobjectclasses", []):
                defs.append(("objectclass", re.sub(r"^\{\d+\}", "", v)))
    out = {}
    for kind, d in defs:
        obj = (AttributeType if kind == "attributetype" else ObjectClass)(" ".join(d.split()))
        out[obj.names[0]] = str(obj)
    return out


def parse_ldif(text):
    """A small LDIF reader: a list of {attr (lower case): [values]} with
    "dn" and "changetype"; `attr:: base64` decoded to bytes; modify records kept as
    they come (their "add"/"replace" lines are attributes here)."""
    unfolded = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(" ") and unfolded:
            unfolded[-1] += line[1:]
        else:
            unfolded.append(line)
    records, cur = [], {}
    for line in unfolded + [""]:
        if not line.strip() or line == "-":
            if not line.strip() and cur:
                records.append(cur)
                cur = {}
            continue
        attr, _, value = line.partition(":")
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip())  # bytes: unicodePwd
        else:
            value = value.strip()
        cur.setdefault(attr.strip().lower(), []).append(value)
    return records


def sample_entries(name):
    """ldap/NAME's entries as {dn (lower case): {attr: [values]}}, modify
    records folded into the entries they change."""
    entries = {}
    with open(os.path.join(LDAP_DIR, name)) as f:
        for rec in parse_ldif(f.read()):
            dn = rec.pop("dn")[0].lower()
            if rec.pop("changetype", ["add"])[0] == "modify":
                attr = rec.pop("add")[0].lower()
                entries[dn].setdefault(attr, []).extend(rec[attr])
            else:
                entries[dn] = rec
    return entries


# --- the ldap/ files -----------------------------------------------------------

@pytest.mark.parametrize("schema", ["postern", "ad-test"])
def test_schema_and_ldif_define_the_same(schema):
    a = schema_elements(os.path.join(LDAP_DIR, f"{schema}.schema"))
    b = schema_elements(os.path.join(LDAP_DIR, f"{schema}.ldif"))
    assert a == b
    want = {"postern": {"posternMailQuota", "posternMailEnabled", "posternMailUser"},
            "ad-test": {"proxyAddresses", "userAccountControl", "sAMAccountName",
                        "userPrincipalName", "maxStorage", "groupType", "user", "group"}}
    assert set(a) == want[schema]


def test_schema_files_load_in_slapd_conf(tmp_path):
    """The slapd.conf form: slaptest accepts the includes in the order
    ldap/README.md gives."""
    conf = tmp_path / "slapd.conf"
    incl = [f"{SCHEMA_DIR}/{s}.schema" for s in ("core", "cosine", "inetorgperson", "misc")]
    incl += [f"{LDAP_DIR}/postern.schema", f"{LDAP_DIR}/ad-test.schema"]
    conf.write_text("".join(f"include {p}\n" for p in incl) +
                    "database ldif\nsuffix dc=example,dc=com\n"
                    f"directory {tmp_path}\n")
    res = run(["/usr/sbin/slaptest", "-u", "-f", str(conf)], check=False, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ldif_schemas_load_over_ldapi_then_the_sample():
    """The cn=config form, loaded the way ldap/README.md tells an
    administrator (ldapadd -Y EXTERNAL -H ldapi:///) into a slapd that
    does not have them; then sample-openldap.ldif loads on top."""
    with Slapd(repo_schemas=()) as s:
        before = s.ldapi("ldapsearch", None, "-LLL", "-b", "cn=schema,cn=config",
                         "(cn=*postern)", "dn")
        assert "postern" not in before.stdout
        for name in ("postern.ldif", "ad-test.ldif"):
            with open(os.path.join(LDAP_DIR, name)) as f:
                res = s.ldapi("ldapadd", f.read())
            assert res.returncode == 0, res.stdout + res.stderr
        sub = run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", s.uri,
                   "-b", "cn=Subschema", "-s", "base", "(objectClass=*)",
                   "objectClasses", "attributeTypes"], env=s.env()).stdout
        for n in ("posternMailUser", "posternMailQuota", "proxyAddresses", "'user'"):
            assert n in sub
        # This instance already holds the base entry, ou=people and a
        # uid=alice of its own: those three already exist, the rest loads.
        with open(os.path.join(LDAP_DIR, "sample-openldap.ldif")) as f:
            res = run(["ldapadd", "-x", "-c", "-H", s.uri, "-D", s.bind_dn, "-w", s.bind_pw],
                      input=f.read(), env=s.env(), check=False)
        assert res.stderr.count("Already exists") == 3, res.stderr
        out = s.ldapsearch("(&(objectClass=posternMailUser)(posternMailEnabled=FALSE))", "uid")
        assert "uid: carol" in out


@pytest.mark.parametrize("name", ["sample-ad.ldif", "samba-sample.ldif",
                                  "sample-openldap.ldif"])
def test_sample_files_describe_the_same_directory(name):
    entries = sample_entries(name)
    ad = name != "sample-openldap.ldif"
    by_cn = {}
    for dn, e in entries.items():
        key = e.get("uid") or e.get("cn")
        if key:
            by_cn.setdefault(key[0].lower(), (dn, e))
    for user, (mail, others, password, enabled, quota) in SAMPLE_USERS.items():
        dn, e = by_cn[user]
        assert e["mail"] == [mail], (name, user)
        if ad:
            assert sorted(a.lower() for a in e["proxyaddresses"]) == \
                sorted(f"smtp:{a}" for a in [mail, *others])
            assert f"SMTP:{mail}" in e["proxyaddresses"], "the primary is SMTP:"
            assert e["samaccountname"] == [user]
            assert e["userprincipalname"] == [mail]
            assert int(e["useraccountcontrol"][0]) & 2 == (0 if enabled else 2)
            assert e.get("maxstorage") == ([str(quota)] if quota else None)
        else:
            assert sorted(e.get("maillocaladdress", [])) == sorted(others)
            assert e["posternmailenabled"] == ["TRUE" if enabled else "FALSE"]
            assert e.get("posternmailquota") == ([str(quota)] if quota else None)
        if name == "samba-sample.ldif":
            assert e["unicodepwd"] == [f'"{password}"'.encode("utf-16-le")]
        else:
            assert e["userpassword"][0].startswith("{SSHA}")
    for group, (mail, users, groups) in SAMPLE_GROUPS.items():
        dn, e = by_cn[group]
        addr = e.get("mail") or e.get("maillocaladdress")
        assert addr == [mail], (name, group)
        members = sorted(m.lower() for m in e.get("member", []))
        if group == "sales" and not ad:
            assert sorted(e["rfc822mailmember"]) == sorted(SAMPLE_USERS[u][0] for u in users)
            continue
        want = sorted([by_cn[u][0] for u in users] + [by_cn[g][0] for g in groups])
        assert members == want, (name, group)
    svc, e = by_cn["postern"]
    assert svc.startswith("cn=postern,ou=service,")


def test_cf_files_use_known_parameters_and_say_what_they_are_for():
    assert set(AD_CF) == {"ad-mailboxes.cf", "ad-aliases.cf", "ad-groups-in-chain.cf",
                          "ad-quota.cf", "ad-auth.cf"}
    assert set(OPENLDAP_CF) == {"openldap-mailboxes.cf", "openldap-aliases.cf",
                                "openldap-quota.cf", "openldap-auth.cf"}
    for cf in CF_FILES:
        p = read_cf(cf)
        assert set(p) <= CF_PARAMS, (cf, set(p) - CF_PARAMS)
        for need in ("server_host", "search_base", "query_filter", "bind_dn"):
            assert need in p, (cf, need)
        assert p["version"] == "3"
        head = open(os.path.join(LDAP_DIR, cf)).read().split("\n\n", 1)[0]
        assert re.search(r"(virtual_\w+_maps|smtpd_sasl_path) =", head), \
            f"{cf}: the header must name the main.cf parameter that uses it"
        # Balanced parentheses: a filter typo would only show at run time.
        f = p["query_filter"]
        assert f.count("(") == f.count(")") and f.startswith("("), cf


def test_rewrite_cf_sets_replaces_and_drops():
    text = "# c\nserver_host = ldap://a\n  ldap://b\nbind_pw_file = /x\nscope = sub\n"
    out = rewrite_cf(text, {"server_host": "ldap://127.0.0.1:1", "bind_pw_file": None,
                            "bind_pw": "pw"})
    assert out == "# c\nserver_host = ldap://127.0.0.1:1\nscope = sub\nbind_pw = pw\n"


# --- AD shape: slapd with ad-test.ldif and Samba -------------------------------

def test_ad_sample_loaded_and_read_by_the_service_account(ad_directory):
    d = ad_directory
    for name, u in d.users.items():
        out = d.search("(objectClass=user)", "mail", "proxyAddresses", base=u.dn,
                       scope="base").stdout
        assert f"mail: {u.mail}" in out
        for a in u.addresses:
            assert f"proxyAddresses: smtp:{a}" in out
    # (Samba has its built-in groups elsewhere: look in ou=groups only.)
    assert d.search_dns("(objectClass=group)", base=f"ou=groups,{d.base}") == \
        dns(d, *SAMPLE_GROUPS)


def test_ad_anonymous_reads_nothing(ad_directory):
    res = ad_directory.search("(mail=*)", "mail", bind_dn="", check=False)
    assert "dn:" not in res.stdout


def test_ad_passwords(ad_directory):
    d = ad_directory
    assert d.can_bind(d.service_dn, d.service_pw)
    for name, u in d.users.items():
        if u.enabled:
            assert d.can_bind(u.dn, u.password), name
        assert not d.can_bind(u.dn, u.password + "x"), name
    if d.flavour == "samba":
        # AD refuses the disabled account's bind itself, and takes a
        # userPrincipalName as bind DN; slapd knows neither.
        assert not d.can_bind(d.users["carol"].dn, d.users["carol"].password)
        assert d.can_bind("alice@example.com", "Alice-Pass-1")


@pytest.mark.parametrize("key,who", [
    ("alice@example.com", "alice"),
    ("a.smith@example.com", "alice"),
    ("ALICE@Example.NET", "alice"),
    ("bob@example.net", "bob"),
    ("Robert@example.com", "bob"),
    ("dave@example.com", "dave"),
    ("carol@example.com", None),          # disabled: userAccountControl 514
    ("nobody@example.com", None),
    ("engineering@example.com", None),    # a group has no mailbox
    ("smtp:alice@example.com", None),
])
def test_ad_mailboxes_filter(ad_directory, key, who):
    want = dns(ad_directory, who) if who else []
    assert found(ad_directory, "ad-mailboxes.cf", key) == want
    assert found(ad_directory, "ad-quota.cf", key) == want


def test_ad_disabled_user_is_left_out_by_bit_and(ad_directory):
    d = ad_directory
    f = "(&(objectClass=user)(mail=*)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
    assert d.search_dns(f) == dns(d, "alice", "bob", "dave")
    # (Samba's Guest and krbtgt are disabled too: look in ou=people only.)
    assert d.search_dns("(userAccountControl:1.2.840.113556.1.4.803:=2)",
                        base=f"ou=people,{d.base}") == dns(d, "carol")
    with d.disabled("dave"):
        assert d.search_dns(f) == dns(d, "alice", "bob")
        assert found(d, "ad-mailboxes.cf", "dave@example.com") == []
        assert found(d, "ad-auth.cf", "dave") == []
    assert d.search_dns(f) == dns(d, "alice", "bob", "dave")
    # The other flags of the account survive (66048 = 512 + never expires).
    out = d.search("(objectClass=*)", "userAccountControl", base=d.users["dave"].dn,
                   scope="base").stdout
    assert "userAccountControl: 512" in out


def test_ad_quota_attribute(ad_directory):
    d = ad_directory
    out = d.search(expand(read_cf("ad-quota.cf")["query_filter"], "alice@example.net"),
                   "maxStorage").stdout
    assert "maxStorage: 104857600" in out


@pytest.mark.parametrize("login,who", [
    ("alice", "alice"),                   # sAMAccountName
    ("alice@example.com", "alice"),       # userPrincipalName
    ("ALICE@EXAMPLE.COM", "alice"),
    ("bob@example.net", "bob"),
    ("bob", "bob"),
    ("carol", None),
    ("carol@example.com", None),
    ("postern", None),                    # the service account: no mail
    ("postern@example.com", None),
    ("nobody", None),
])
def test_ad_auth_filter(ad_directory, login, who):
    got = found(ad_directory, "ad-auth.cf", login)
    assert got == (dns(ad_directory, who) if who else [])


@pytest.mark.parametrize("key,who", [
    ("all-staff@example.com", "all-staff"),
    ("engineering@example.com", "engineering"),
    ("loop-a@example.com", "loop-a"),
    ("sales@example.com", "sales"),
    ("a.smith@example.com", "alice"),
    ("carol@example.com", None),
    ("support@example.com", "support"),
])
def test_ad_aliases_filter(ad_directory, key, who):
    for cf in ("ad-aliases.cf", "ad-groups-in-chain.cf"):
        assert found(ad_directory, cf, key) == (dns(ad_directory, who) if who else [])


def test_ad_recursion_filter_keeps_groups_and_enabled_users(ad_directory):
    """recursion_filter of ad-aliases.cf, tried on each member DN (scope
    base, as postern follows member): carol is left out, groups pass."""
    d = ad_directory
    f = read_cf("ad-aliases.cf")["recursion_filter"]

    def passes(dn):
        return d.search_dns(f, base=dn, scope="base") == [dn.lower()]
    assert not passes(d.users["carol"].dn)
    for n in ("alice", "bob", "dave"):
        assert passes(d.users[n].dn)
    for g in SAMPLE_GROUPS:
        assert passes(d.groups[g])


@pytest.mark.parametrize("key", INJECTIONS)
def test_ad_injection_keys_match_nothing(ad_directory, key):
    for cf in AD_CF:
        assert found(ad_directory, cf, key) == [], (cf, key)


def test_nul_in_a_value_is_cut_by_the_servers(ad_directory):
    """A directory fact postern has to live with: an escaped NUL (\\00) in
    an assertion value on `mail` is cut off by slapd (IA5String) and by
    Samba, so alice@example.com\\00 finds alice. Escaping alone does not
    make a key with a NUL match nothing: postern must refuse such a key
    before it reaches the directory."""
    d = ad_directory
    assert d.search_dns("(mail=alice@example.com\\00)") == dns(d, "alice")
    # Nothing else is cut: the NUL is not a wildcard.
    assert d.search_dns("(mail=alice@example.co\\00)") == []


def test_ad_stop_and_relaunch_same_port(ad_directory):
    d = ad_directory
    uri = d.uri
    with d.stopped():
        res = d.search("(mail=alice@example.com)", check=False)
        assert res.returncode != 0
        assert not d.can_bind(d.service_dn, d.service_pw)
    assert d.uri == uri
    assert d.search_dns("(mail=alice@example.com)") == dns(d, "alice")


def test_ad_cf_text_points_at_the_server(ad_directory, tmp_path):
    d = ad_directory
    path = d.write_cf("ad-mailboxes.cf", tmp_path, size_limit=5)
    text = open(path).read()
    assert f"server_host = {d.uri.rstrip('/')}\n" in text
    assert f"bind_pw = {d.service_pw}\n" in text
    assert "size_limit = 5\n" in text
    assert "bind_pw_file =" not in text.replace("#bind_pw_file", "")


# --- Samba only: the in-chain rule ---------------------------------------------

@pytest.mark.parametrize("group", sorted(SAMPLE_GROUPS))
def test_samba_in_chain_expands_groups(samba_ad, group):
    """What ad-groups-in-chain.cf asks a real AD: the members at every depth
    in one search, recursion_filter keeping enabled users only."""
    d = samba_ad
    keep = read_cf("ad-groups-in-chain.cf")["recursion_filter"]
    f = f"(&(memberOf:1.2.840.113556.1.4.1941:={escape(d.groups[group])}){keep})"
    out = d.search(f, "mail").stdout
    mails = sorted(ln[6:] for ln in out.splitlines() if ln.startswith("mail: "))
    assert mails == expand_group(group)


def test_samba_in_chain_reaches_nested_groups_and_loops(samba_ad):
    d = samba_ad
    f = "(memberOf:1.2.840.113556.1.4.1941:={})"
    assert d.search_dns(f.format(d.groups["all-staff"])) == \
        dns(d, "alice", "bob", "dave", "engineering")
    # A loop: loop-a is a member of itself through loop-b, reported once.
    assert d.search_dns(f.format(d.groups["loop-a"])) == dns(d, "dave", "loop-a", "loop-b")


def test_samba_timings(samba_ad):
    """Provisioning is the slow part; starting again is fast (the numbers
    go to the -rA report)."""
    t = samba_ad.timings
    print(f"samba: provision {t['provision']:.1f}s, start {t['start']:.1f}s, "
          f"load {t['load']:.1f}s")
    assert t["start"] < 60


# --- plain OpenLDAP: sample-openldap.ldif and openldap-*.cf --------------------

@pytest.mark.parametrize("key,who", [
    ("alice@example.com", "alice"),
    ("a.smith@example.com", "alice"),
    ("Alice@Example.Net", "alice"),
    ("robert@example.com", "bob"),
    ("carol@example.com", None),
    ("engineering@example.com", None),
    ("sales@example.com", None),
])
def test_openldap_mailboxes_filter(slapd_openldap, key, who):
    d = slapd_openldap
    want = dns(d, who) if who else []
    assert found(d, "openldap-mailboxes.cf", key) == want
    assert found(d, "openldap-quota.cf", key) == want


@pytest.mark.parametrize("key,who", [
    ("a.smith@example.com", "alice"),
    ("all-staff@example.com", "all-staff"),
    ("loop-b@example.com", "loop-b"),
    ("sales@example.com", "sales"),
    ("carol@example.com", None),
])
def test_openldap_aliases_filter(slapd_openldap, key, who):
    d = slapd_openldap
    assert found(d, "openldap-aliases.cf", key) == (dns(d, who) if who else [])


def test_openldap_alias_and_recursion_filter(slapd_openldap):
    d = slapd_openldap
    out = d.search("(mailLocalAddress=sales@example.com)", "rfc822MailMember").stdout
    assert sorted(ln.split(": ", 1)[1] for ln in out.splitlines()
                  if ln.startswith("rfc822MailMember")) == expand_group("sales")
    f = read_cf("openldap-aliases.cf")["recursion_filter"]
    assert d.search_dns(f, base=d.users["carol"].dn, scope="base") == []
    assert d.search_dns(f, base=d.users["dave"].dn, scope="base") == dns(d, "dave")
    assert d.search_dns(f, base=d.groups["engineering"], scope="base") == \
        dns(d, "engineering")


@pytest.mark.parametrize("login,who", [
    ("alice", "alice"), ("alice@example.com", "alice"), ("bob@example.net", "bob"),
    ("carol", None), ("nobody", None),
])
def test_openldap_auth_filter(slapd_openldap, login, who):
    d = slapd_openldap
    assert found(d, "openldap-auth.cf", login) == (dns(d, who) if who else [])
    if who:
        assert d.can_bind(d.users[who].dn, d.users[who].password)


def test_openldap_quota_and_disable(slapd_openldap):
    d = slapd_openldap
    out = d.search("(uid=alice)", "posternMailQuota").stdout
    assert "posternMailQuota: 104857600" in out
    with d.disabled("bob"):
        assert found(d, "openldap-mailboxes.cf", "bob@example.net") == []
        assert found(d, "openldap-aliases.cf", "robert@example.com") == []
    assert found(d, "openldap-mailboxes.cf", "bob@example.net") == dns(d, "bob")


def test_openldap_acl(slapd_openldap):
    d = slapd_openldap
    assert "dn:" not in d.search("(mail=*)", bind_dn="", check=False).stdout
    alice = d.users["alice"]
    # A user reads its own entry, not the others', and no password.
    own = d.search("(objectClass=*)", "*", base=alice.dn, scope="base", bind_dn=alice.dn,
                   bind_pw=alice.password).stdout
    assert f"dn: {alice.dn}" in own and "userPassword" not in own
    other = d.search("(objectClass=*)", base=d.users["bob"].dn, scope="base",
                     bind_dn=alice.dn, bind_pw=alice.password, check=False)
    assert "dn:" not in other.stdout
    svc = d.search("(uid=alice)", "userPassword", "mail").stdout
    assert "mail: alice@example.com" in svc and "userPassword" not in svc


@pytest.mark.parametrize("key", INJECTIONS)
def test_openldap_injection_keys_match_nothing(slapd_openldap, key):
    for cf in OPENLDAP_CF:
        assert found(slapd_openldap, cf, key) == [], (cf, key)
