"""A private OpenLDAP slapd on 127.0.0.1 in a temp dir.

Used by the `slapd` fixture in tests/system/conftest.py, and through it by
system tests of postern's ldap: tables (recipient lookup, aliases, auth).

A slapd.conf in the temp dir loads the core, cosine, inetorgperson and nis
schemas from /etc/ldap/schema and one mdb database for dc=example,dc=com
with rootdn cn=admin,dc=example,dc=com.  slapd runs in the foreground
(-d stats) as root (no -u/-g), listening only on ldap://127.0.0.1:PORT/.
The base entry, ou=people and one inetOrgPerson user are loaded with the
real ldapadd client.
"""

import os

from .base import Server
from .ports import free_port
from .process import ServerProcess, run

SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

# The entries every instance starts with; {base} is the suffix.
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


class Slapd(Server):
    """slapd with dc=example,dc=com, ou=people and one user.

    Attributes: uri, host, port, base, bind_dn, bind_pw, user_dn, user_mail,
    user_pw, tmpdir.
    """

    name = "slapd"

    def __init__(self, base="dc=example,dc=com", bind_pw="admin-secret",
                 uid="alice", mail="alice@example.com", user_pw="alice-secret"):
        super().__init__()
        self.host = "127.0.0.1"
        self.port = None
        self.uri = None
        self.base = base
        self.bind_dn = f"cn=admin,{base}"
        self.bind_pw = bind_pw
        self.user_uid = uid
        self.user_dn = f"uid={uid},ou=people,{base}"
        self.user_mail = mail
        self.user_pw = user_pw
        self.conf = os.path.join(self.tmpdir, "slapd.conf")
        self.datadir = os.path.join(self.tmpdir, "data")

    def prepare(self):
        os.mkdir(self.datadir, 0o700)
        schemas = "".join(f"include {SCHEMA_DIR}/{s}.schema\n"
                          for s in ("core", "cosine", "inetorgperson", "nis"))
        with open(self.conf, "w") as f:
            f.write(f"""\
{schemas}
pidfile   {self.tmpdir}/slapd.pid
argsfile  {self.tmpdir}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb

database  mdb
maxsize   33554432
suffix    "{self.base}"
rootdn    "{self.bind_dn}"
rootpw    {self.bind_pw}
directory {self.datadir}
index     objectClass eq
index     uid,mail eq
""")

    def launch(self):
        self.port = free_port()
        self.uri = f"ldap://{self.host}:{self.port}/"
        # -d keeps slapd in the foreground; "stats" logs errors plus one line
        # per connection and operation, handy when an ldap: test fails.
        argv = ["/usr/sbin/slapd", "-h", self.uri, "-f", self.conf, "-d", "stats"]
        self.proc = ServerProcess("slapd", argv, os.path.join(self.tmpdir, "slapd.log"),
                                  cwd=self.tmpdir, env=self.client_env()).start()
        # Ready when the rootdn can bind, through the real client.
        self.proc.wait_ready(lambda: run(
            ["ldapwhoami", "-x", "-H", self.uri, "-D", self.bind_dn, "-w", self.bind_pw],
            check=False, timeout=5, env=self.client_env()).returncode == 0)

    def configure(self):
        self.ldapadd(BASE_LDIF.format(base=self.base, uid=self.user_uid,
                                      mail=self.user_mail, user_pw=self.user_pw))

    # --- helpers for tests -------------------------------------------------

    @staticmethod
    def client_env():
        """Environment for ldap-utils: ignore ldap.conf and ~/.ldaprc."""
        return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LDAPNOINIT": "1"}

    def ldapadd(self, ldif):
        """Add the entries in the LDIF string as rootdn; return CompletedProcess.

        Raises ServerError (with ldapadd's output) if ldapadd fails.
        """
        return run(["ldapadd", "-x", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw], input=ldif, env=self.client_env(),
                   timeout=30)

    def ldapmodify(self, ldif):
        """Apply an LDIF change record string as rootdn; return CompletedProcess."""
        return run(["ldapmodify", "-x", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw], input=ldif, env=self.client_env(),
                   timeout=30)

    def ldapsearch(self, filt, *attrs, base=None):
        """ldapsearch as rootdn with LDIF output; return stdout text."""
        return run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-D", self.bind_dn,
                    "-w", self.bind_pw, "-b", base or self.base, filt, *attrs],
                   env=self.client_env(), timeout=30).stdout
