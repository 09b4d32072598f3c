"""A private OpenLDAP slapd on 127.0.0.1 in a temp dir, and the sample
directory that postern's ldap: tests run against.

Used by the `slapd`, `slapd_ad`, `slapd_openldap` and `ad_directory`
fixtures in tests/system/conftest.py, by test_ldap_directory.py (the ldap/
folder: schemas, sample trees, the filters of the .cf files) and by the
system tests of postern's ldap: tables and LDAP SASL backend.
harness/samba_ad.py (the Samba AD DC) shares the sample description and the
Directory helpers defined here.

slapd is configured the cn=config way: a slapd.d built with `slapadd -n0`
from an LDIF that loads /etc/ldap/schema/{core,cosine,nis,inetorgperson,
misc}.ldif and the repository's ldap/postern.ldif and ldap/ad-test.ldif,
so what is proven is the .ldif an administrator would load. One mdb
database; rootdn cn=admin,BASE. slapd runs in the foreground (-d stats) as
the current user, listening only on ldap://127.0.0.1:PORT/ (StartTLS with
a throw-away certificate), ldaps://127.0.0.1:PORT2/ and an ldapi:// socket
in the temp dir (SASL EXTERNAL maps the current uid to manage on
cn=config, as Debian's package does for root).

Three trees (the `sample` argument):
  None        (the original `slapd` fixture) dc=example,dc=com, ou=people
              and one inetOrgPerson user; slapd's default ACL (anyone
              reads).
  "ad"        ldap/sample-ad.ldif: the sample directory in Active
              Directory shape (class user, proxyAddresses,
              userAccountControl...), as on Samba.
  "openldap"  ldap/sample-openldap.ldif: the same people with
              inetOrgPerson + posternMailUser, groupOfNames groups.
The sample trees get the ACL postern's INSTALL recipe asks for: anyone may
bind (auth on userPassword), the service account cn=postern,ou=service,BASE
reads everything else, each user reads its own entry, nobody else reads.

Stop with stop() (by PID) and start again with relaunch() (or start()):
same port, same data.
"""

import contextlib
import os

from .base import Server
from .ports import free_port
from .process import ServerError, ServerProcess, run

SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
LDAP_DIR = os.path.join(REPO, "ldap")

# Schemas in load order: Debian's standard ones, then the repository's.
STANDARD_SCHEMAS = ("core", "cosine", "nis", "inetorgperson", "misc")
REPO_SCHEMAS = ("postern", "ad-test")

# The entries the original one-user instance starts with; {base} is the
# suffix.
BASE_LDIF = """\
dn: {base}
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{base}
objectClass: organizationalUnit
ou: people

dn: uid={uid},ou=people,{base}
objectClass: inetOrgPerson
uid: {uid}
cn: Test User
sn: User
mail: {mail}
userPassword: {user_pw}
"""

# --- the sample directory -------------------------------------------------
#
# One description of the people, groups and addresses that
# ldap/sample-ad.ldif, ldap/sample-openldap.ldif and ldap/samba-sample.ldif
# hold (test_ldap_directory.py checks the files against it). Tests read it
# through a Directory's users/groups attributes.

SAMPLE_BASE = "dc=example,dc=com"
SERVICE_PW = "Service-Pass-1"

SAMPLE_USERS = {
    # name: (primary mail, other addresses, password, enabled, quota bytes)
    "alice": ("alice@example.com", ("a.smith@example.com", "alice@example.net"),
              "Alice-Pass-1", True, 104857600),
    "bob": ("bob@example.net", ("robert@example.com",), "Bob-Pass-1", True, None),
    "carol": ("carol@example.com", (), "Carol-Pass-1", False, None),
    "dave": ("dave@example.com", (), "Dave-Pass-1", True, None),
}

SAMPLE_GROUPS = {
    # name: (mail, member user names, member group names)
    "engineering": ("engineering@example.com", ("bob", "dave", "alice"), ()),
    "all-staff": ("all-staff@example.com", ("alice",), ("engineering",)),
    "loop-a": ("loop-a@example.com", (), ("loop-b",)),
    "loop-b": ("loop-b@example.com", ("dave",), ("loop-a",)),
    "support": ("support@example.com", ("carol", "dave"), ()),
    # The alias: sales@ goes to alice and bob (AD: a distribution group;
    # plain OpenLDAP: a nisMailAlias entry with rfc822MailMember).
    "sales": ("sales@example.com", ("alice", "bob"), ()),
}


class SampleUser:
    """One user of the sample directory on one server.

    name, dn, mail (primary), addresses (other addresses of the same
    mailbox), password, enabled (as loaded), quota (bytes or None),
    upn (AD logon name user@domain; None on plain OpenLDAP).
    """

    def __init__(self, name, dn, upn=None):
        mail, others, password, enabled, quota = SAMPLE_USERS[name]
        self.name = name
        self.dn = dn
        self.mail = mail
        self.addresses = list(others)
        self.password = password
        self.enabled = enabled
        self.quota = quota
        self.upn = upn

    def __repr__(self):
        return f"SampleUser({self.name!r}, {self.dn!r})"


def expand_group(name):
    """The sample's answer for a group: the mail addresses of its enabled
    members, nested groups expanded, each address once (sorted)."""
    seen, out = set(), set()

    def walk(g):
        if g in seen:
            return
        seen.add(g)
        _, users, groups = SAMPLE_GROUPS[g]
        for u in users:
            if SAMPLE_USERS[u][3]:
                out.add(SAMPLE_USERS[u][0])
        for sub in groups:
            walk(sub)
    walk(name)
    return sorted(out)


def client_env(home=None, ca=None):
    """Environment for ldap-utils that ignores the host's ldap.conf and
    ~/.ldaprc. With ca, TLS trusts that CA file (LDAPNOINIT, which the
    original harness used, would also ignore the LDAPTLS_* variables)."""
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    if ca is None:
        env["LDAPNOINIT"] = "1"
    else:
        env.update({"LDAPCONF": "/dev/null", "LDAPRC": "postern-no-ldaprc",
                    "HOME": home or "/nonexistent", "LDAPTLS_CACERT": ca,
                    "LDAPTLS_REQCERT": "demand"})
    return env


def loopback_cert(directory):
    """A self-signed certificate for 127.0.0.1 and localhost in directory
    (it is its own CA: clients trust it with tls_ca_cert_file = the cert).
    Returns (cert, key); the key is mode 0600."""
    cert = os.path.join(directory, "tls-cert.pem")
    key = os.path.join(directory, "tls-key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], timeout=60)
    os.chmod(key, 0o600)
    # postern's daemons read tls_ca_cert_file as mail_owner: the
    # certificate (public) is readable and its directory searchable, not
    # listable; everything else in it stays the server's own.
    os.chmod(cert, 0o644)
    os.chmod(directory, 0o711)
    return cert, key


def rewrite_cf(text, settings):
    """Postfix-style .cf text with the parameters in settings set: an
    existing `name = value` line (and its continuation lines) is replaced,
    a missing one appended; a value of None removes the parameter."""
    out, done, skipping = [], set(), False
    for line in text.splitlines():
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue  # continuation of a replaced parameter
        skipping = False
        name = line.split("=", 1)[0].strip() if "=" in line and line[:1] not in "# \t" else None
        if name in settings:
            skipping = True
            if name not in done and settings[name] is not None:
                out.append(f"{name} = {settings[name]}")
            done.add(name)
            continue
        out.append(line)
    for name, value in settings.items():
        if name not in done and value is not None:
            out.append(f"{name} = {value}")
    return "\n".join(out) + "\n"


class Directory:
    """What slapd (with a sample tree) and the Samba AD DC share, so one
    test body can run against either.

    A subclass sets: uri, base, service_dn, service_pw, bind_dn, bind_pw
    (an administrator), tls_ca (the CA file for ldaps/StartTLS),
    flavour ("ad", "openldap" or "samba"), users {name: SampleUser},
    groups {name: dn}; and implements env(), stop(), relaunch() and
    _set_enabled(user, enabled).
    """

    flavour = None
    users = {}
    groups = {}

    # --- the .cf files of ldap/ ------------------------------------------

    def cf_settings(self):
        """The parameters that point a .cf of ldap/ at this server."""
        return {"server_host": self.uri.rstrip("/"), "bind": "yes",
                "bind_dn": self.service_dn, "bind_pw": self.service_pw, "bind_pw_file": None}

    def cf_text(self, name, **overrides):
        """ldap/NAME (e.g. "ad-mailboxes.cf") pointed at this server:
        server_host, bind_dn, bind_pw set (bind_pw_file dropped), then
        overrides (None removes a parameter). search_base stays the
        file's: every sample tree has the base dc=example,dc=com."""
        with open(os.path.join(LDAP_DIR, name)) as f:
            text = f.read()
        return rewrite_cf(text, {**self.cf_settings(), **overrides})

    def write_cf(self, name, directory, **overrides):
        """Write cf_text(name, **overrides) into directory; return its path."""
        path = os.path.join(str(directory), name)
        with open(path, "w") as f:
            f.write(self.cf_text(name, **overrides))
        return path

    # --- changing the directory ------------------------------------------

    def disable_user(self, name):
        """Disable the sample user name (AD: userAccountControl bit 2;
        OpenLDAP: posternMailEnabled FALSE)."""
        self._set_enabled(self.users[name], False)

    def enable_user(self, name):
        """Enable the sample user name again."""
        self._set_enabled(self.users[name], True)

    @contextlib.contextmanager
    def disabled(self, name):
        """with d.disabled("alice"): ...  -- enabled again afterwards."""
        self.disable_user(name)
        try:
            yield self.users[name]
        finally:
            self.enable_user(name)

    @contextlib.contextmanager
    def stopped(self):
        """with d.stopped(): ...  -- the server is down inside the block
        (stopped by PID) and up again, same port and data, afterwards."""
        self.stop()
        try:
            yield self
        finally:
            self.relaunch()

    # --- searching -------------------------------------------------------

    def search(self, filt, *attrs, base=None, scope="sub", bind_dn=None, bind_pw=None,
               check=True):
        """ldapsearch (LDIF, -LLL) as the service account unless bind_dn is
        given; returns the CompletedProcess (stdout: LDIF)."""
        dn = self.service_dn if bind_dn is None else bind_dn
        pw = self.service_pw if bind_pw is None else bind_pw
        argv = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri,
                "-b", base or self.base, "-s", scope]
        if dn:
            argv += ["-D", dn, "-w", pw]
        return run(argv + [filt, *attrs], env=self.env(), timeout=30, check=check)

    def search_dns(self, filt, **kwargs):
        """The DNs (lower-cased, as DN comparison is case-insensitive here)
        that filt selects, as a sorted list; search references ignored."""
        out = self.search(filt, "1.1", **kwargs).stdout
        return sorted(line[4:].strip().lower() for line in out.splitlines()
                      if line.startswith("dn: "))

    def can_bind(self, dn, password):
        """True if a simple bind as dn with password succeeds (then reads
        the root DSE, which every bound client may; AD has no WhoAmI)."""
        res = run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-D", dn, "-w", password,
                   "-b", "", "-s", "base", "1.1"], env=self.env(), timeout=30,
                  check=False)
        return res.returncode == 0

    def env(self):
        return client_env()


class Slapd(Server, Directory):
    """slapd with one of three trees (see the module comment).

    Attributes: uri (ldap://127.0.0.1:PORT/), ldaps_uri, ldapi_uri, host,
    port, base, bind_dn and bind_pw (the rootdn), tls_ca, tmpdir.
    sample=None (the original fixture): user_dn, user_uid, user_mail,
    user_pw. sample="ad"/"openldap": flavour, service_dn, service_pw,
    users {name: SampleUser}, groups {name: dn}. repo_schemas: which of
    ldap/postern.ldif and ldap/ad-test.ldif go into cn=config at build
    time (() to load them later over ldapi(), as an administrator would).
    """

    name = "slapd"

    def __init__(self, base="dc=example,dc=com", bind_pw="admin-secret",
                 uid="alice", mail="alice@example.com", user_pw="alice-secret",
                 *, sample=None, repo_schemas=REPO_SCHEMAS):
        super().__init__()
        self.repo_schemas = tuple(repo_schemas)
        if sample not in (None, "ad", "openldap"):
            raise ValueError(f"sample: {sample!r}: expected None, 'ad' or 'openldap'")
        self.sample = sample
        self.flavour = sample
        self.host = "127.0.0.1"
        self.port = None
        self.ldaps_port = None
        self.uri = self.ldaps_uri = None
        self.base = base if sample is None else SAMPLE_BASE
        self.bind_dn = f"cn=admin,{self.base}"
        self.bind_pw = bind_pw
        self.confdir = os.path.join(self.tmpdir, "slapd.d")
        self.datadir = os.path.join(self.tmpdir, "data")
        self.socket = os.path.join(self.tmpdir, "ldapi")
        self.ldapi_uri = "ldapi://" + self.socket.replace("/", "%2F")
        self.tls_ca = None
        self._configured = False
        if sample is None:
            self.user_uid = uid
            self.user_dn = f"uid={uid},ou=people,{self.base}"
            self.user_mail = mail
            self.user_pw = user_pw
            self.service_dn = self.service_pw = None
            return
        self.service_dn = f"cn=postern,ou=service,{self.base}"
        self.service_pw = SERVICE_PW
        if sample == "ad":
            # The sample's logon names (userPrincipalName) are the primary
            # addresses.
            self.users = {n: SampleUser(n, f"cn={n},ou=people,{self.base}",
                                        upn=SAMPLE_USERS[n][0])
                          for n in SAMPLE_USERS}
            self.groups = {g: f"cn={g},ou=groups,{self.base}" for g in SAMPLE_GROUPS}
        else:
            self.users = {n: SampleUser(n, f"uid={n},ou=people,{self.base}")
                          for n in SAMPLE_USERS}
            self.groups = {g: f"cn={g},ou=groups,{self.base}" for g in SAMPLE_GROUPS}
            self.groups["sales"] = f"cn=sales,ou=aliases,{self.base}"

    # --- cn=config ---------------------------------------------------------

    def config_ldif(self):
        """The LDIF slapadd -n0 turns into slapd.d."""
        uid, gid = os.getuid(), os.getgid()
        peer = f"gidNumber={gid}+uidNumber={uid},cn=peercred,cn=external,cn=auth"
        schemas = [os.path.join(SCHEMA_DIR, f"{s}.ldif") for s in STANDARD_SCHEMAS]
        schemas += [os.path.join(LDAP_DIR, f"{s}.ldif") for s in self.repo_schemas]
        includes = "".join(f"include: file://{p}\n\n" for p in schemas)
        if self.sample is None:
            acl = "olcAccess: {0}to * by * read\n"  # as slapd's default
        else:
            acl = (f"olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none\n"
                   f"olcAccess: {{1}}to * by dn.exact=\"{self.service_dn}\" read "
                   f"by self read by * none\n")
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.tmpdir}/slapd.pid
olcArgsFile: {self.tmpdir}/slapd.args
olcTLSCertificateFile: {self.tls_cert}
olcTLSCertificateKeyFile: {self.tls_key}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcAccess: {{0}}to * by dn.exact={peer} manage by * break
olcAccess: {{1}}to dn.exact="" by * read
olcAccess: {{2}}to dn.base="cn=Subschema" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact={peer} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbMaxSize: 33554432
olcSuffix: {self.base}
olcRootDN: {self.bind_dn}
olcRootPW: {self.bind_pw}
olcDbDirectory: {self.datadir}
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,cn eq
{acl}"""

    def prepare(self):
        os.mkdir(self.datadir, 0o700)
        os.mkdir(self.confdir, 0o700)
        self.tls_cert, self.tls_key = loopback_cert(self.tmpdir)
        self.tls_ca = self.tls_cert
        path = os.path.join(self.tmpdir, "config.ldif")
        with open(path, "w") as f:
            f.write(self.config_ldif())
        run(["/usr/sbin/slapadd", "-n0", "-F", self.confdir, "-l", path],
            env=self.env(), timeout=60)

    def launch(self, port=None, ldaps_port=None):
        self.port = port or free_port()
        self.ldaps_port = ldaps_port or free_port()
        self.uri = f"ldap://{self.host}:{self.port}/"
        self.ldaps_uri = f"ldaps://{self.host}:{self.ldaps_port}/"
        # -d keeps slapd in the foreground; "stats" logs errors plus one line
        # per connection and operation, handy when an ldap: test fails.
        argv = ["/usr/sbin/slapd", "-h", f"{self.uri} {self.ldaps_uri} {self.ldapi_uri}",
                "-F", self.confdir, "-d", "stats"]
        self.proc = ServerProcess("slapd", argv, os.path.join(self.tmpdir, "slapd.log"),
                                  cwd=self.tmpdir, env=self.env()).start()
        # Ready when the rootdn can bind, through the real client.
        self.proc.wait_ready(lambda: run(
            ["ldapwhoami", "-x", "-H", self.uri, "-D", self.bind_dn, "-w", self.bind_pw],
            check=False, timeout=5, env=self.env()).returncode == 0)

    def configure(self):
        if self.sample is None:
            self.ldapadd(BASE_LDIF.format(base=self.base, uid=self.user_uid,
                                          mail=self.user_mail, user_pw=self.user_pw))
        else:
            with open(os.path.join(LDAP_DIR, f"sample-{self.sample}.ldif")) as f:
                self.ldapadd(f.read())
        self._configured = True

    def start(self):
        """First call: prepare, launch, load the tree. After stop(): the
        same as relaunch()."""
        if self._configured:
            self.relaunch()
            return self
        return super().start()

    def relaunch(self):
        """Start slapd again after stop(): same ports, config and data."""
        if self.proc is not None and self.proc.alive():
            return
        self.launch(port=self.port, ldaps_port=self.ldaps_port)

    # --- helpers for tests -------------------------------------------------

    @staticmethod
    def client_env():
        """Environment for ldap-utils: ignore ldap.conf and ~/.ldaprc."""
        return client_env()

    def env(self):
        """client_env() that also trusts this server's certificate (for
        ldaps_uri and ldapsearch -ZZ)."""
        if self.tls_ca is None:
            return client_env()
        return client_env(home=self.tmpdir, ca=self.tls_ca)

    def ldapadd(self, ldif):
        """Add the entries in the LDIF string as rootdn; return CompletedProcess.

        Raises ServerError (with ldapadd's output) if ldapadd fails.
        """
        return run(["ldapadd", "-x", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw], input=ldif, env=self.env(),
                   timeout=30)

    def ldapmodify(self, ldif):
        """Apply an LDIF change record string as rootdn; return CompletedProcess."""
        return run(["ldapmodify", "-x", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw], input=ldif, env=self.env(),
                   timeout=30)

    def ldapsearch(self, filt, *attrs, base=None):
        """ldapsearch as rootdn with LDIF output; return stdout text."""
        return run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw, "-b", base or self.base, filt, *attrs],
                   env=self.env(), timeout=30).stdout

    def ldapi(self, tool, ldif=None, *args):
        """Run an ldap-utils tool (ldapadd, ldapmodify, ldapsearch) over the
        ldapi socket with SASL EXTERNAL, as an administrator loads schemas
        into cn=config; returns the CompletedProcess (check=False)."""
        return run([tool, "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri, *args],
                   input=ldif, env=self.env(), timeout=30, check=False)

    def _set_enabled(self, user, enabled):
        if self.sample == "ad":
            out = self.ldapsearch("(objectClass=*)", "userAccountControl", base=user.dn)
            uac = int(next(line.split(":", 1)[1] for line in out.splitlines()
                           if line.lower().startswith("useraccountcontrol:")))
            uac = uac & ~2 if enabled else uac | 2
            change = f"replace: userAccountControl\nuserAccountControl: {uac}\n"
        elif self.sample == "openldap":
            change = ("replace: posternMailEnabled\nposternMailEnabled: "
                      f"{'TRUE' if enabled else 'FALSE'}\n")
        else:
            raise ServerError("disable_user/enable_user need a sample tree")
        self.ldapmodify(f"dn: {user.dn}\nchangetype: modify\n{change}-\n")

