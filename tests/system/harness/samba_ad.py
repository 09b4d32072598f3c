"""A real Active Directory domain controller for the system tests: Samba
(Debian's samba and samba-dsdb-modules packages) provisioned into a temp
dir, listening on 127.0.0.1 only, loaded with the sample directory.

Used by the `samba_ad` and `ad_directory` fixtures in
tests/system/conftest.py, by test_ldap_directory.py (the filters of
ldap/ad-*.cf on a real AD: bit-AND, proxyAddresses, in-chain) and by the
system tests of postern's ldap: tables and LDAP SASL backend. It offers the
same attributes and helpers as a Slapd with a sample tree (harness/slapd.py,
class Directory): uri, base, service_dn, service_pw, users, groups,
disable_user/enable_user, stop/relaunch, cf_text/write_cf.

Steps (timings in self.timings):
  prepare    samba-tool domain provision (realm EXAMPLE.COM, domain
             EXAMPLE, --use-rfc2307, no DNS) into the temp dir, with an
             empty config file so the host's /etc/samba/smb.conf leaks
             nothing in; then smb.conf gets: only 127.0.0.1, only the ldap
             service, simple binds over plain LDAP allowed ("ldap server
             require strong auth = no"), a throw-away TLS certificate for
             127.0.0.1 (Samba's own would take seconds to generate);
             password complexity is turned off (it refuses a password
             containing the account name, e.g. Alice-Pass-1 for alice) and
             passwords never expire.
  launch     samba --foreground --no-process-group -M single, stopped by
             PID; ready when the Administrator can bind with ldapsearch.
  configure  ldap/samba-sample.ldif loaded with ldapmodify over ldaps://
             (AD sets passwords only over an encrypted connection).

Samba's LDAP ports are fixed (389, 636, and the global catalog's 3268,
3269): launch checks that 127.0.0.1 has them free and fails saying who
should free them if not. Samba runs as root (the tests do).
"""

import os
import socket
import time

from .base import Server
from .process import ServerError, ServerProcess, run
from .slapd import (LDAP_DIR, SAMPLE_GROUPS, SAMPLE_USERS, SERVICE_PW, Directory,
                    SampleUser, client_env, loopback_cert)

REALM = "EXAMPLE.COM"
DOMAIN = "EXAMPLE"
BASE = "DC=example,DC=com"
ADMIN_PW = "Admin-Pass-1"
# Samba's LDAP server has no port setting.
LDAP_PORTS = (389, 636, 3268, 3269)
# A samba the harness forgot stops by itself after this many seconds.
MAX_RUNTIME = 6 * 3600

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"


def port_free(port, host="127.0.0.1"):
    """True if we could listen on host:port ourselves right now (what
    Samba's bind() needs; a connect test would miss a listener on another
    address of the same port). SO_REUSEADDR as Samba sets it: connections
    of a stopped samba in TIME_WAIT do not count, a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def unavailable():
    """Why a Samba AD DC cannot run here (a sentence), or None."""
    for path in (SAMBA, SAMBA_TOOL):
        if not os.access(path, os.X_OK):
            return (f"{path} is missing: install samba and samba-dsdb-modules "
                    "(scripts/deps.sh test)")
    if os.geteuid() != 0:
        return "the Samba AD DC must run as root (it is a domain controller)"
    busy = [p for p in LDAP_PORTS if not port_free(p)]
    if busy:
        return (f"127.0.0.1 port(s) {', '.join(map(str, busy))} are in use; Samba's "
                "LDAP server cannot listen anywhere else. Stop the program that "
                "holds them (ss -ltnp 'sport = :389') and run again")
    return None


class SambaAD(Server, Directory):
    """Samba AD DC with the sample directory (see the module comment).

    Attributes: uri (ldap://127.0.0.1:389/), ldaps_uri, host, port, base
    (DC=example,DC=com), bind_dn/bind_pw (the domain Administrator),
    service_dn/service_pw (CN=postern,OU=service,...), tls_ca, realm,
    domain, users {name: SampleUser} (dn CN=NAME,OU=people,...; upn),
    groups {name: dn}, timings {"provision", "start", "load": seconds},
    tmpdir, smb_conf.
    """

    name = "samba"
    flavour = "samba"
    start_attempts = 1  # fixed ports: another try would meet the same clash

    def __init__(self):
        super().__init__()
        self.host = "127.0.0.1"
        self.port = 389
        self.uri = f"ldap://{self.host}:{self.port}/"
        self.ldaps_uri = f"ldaps://{self.host}:636/"
        self.realm = REALM
        self.domain = DOMAIN
        self.base = BASE
        self.bind_dn = f"CN=Administrator,CN=Users,{BASE}"
        self.bind_pw = ADMIN_PW
        self.service_dn = f"CN=postern,OU=service,{BASE}"
        self.service_pw = SERVICE_PW
        # The sample's logon names (userPrincipalName) are the primary
        # addresses.
        self.users = {n: SampleUser(n, f"CN={n},OU=people,{BASE}", upn=SAMPLE_USERS[n][0])
                      for n in SAMPLE_USERS}
        self.groups = {g: f"CN={g},OU=groups,{BASE}" for g in SAMPLE_GROUPS}
        self.smb_conf = os.path.join(self.tmpdir, "etc", "smb.conf")
        self.tls_ca = None
        self.timings = {}
        self._configured = False

    # --- steps ---------------------------------------------------------------

    def tool_env(self):
        """Environment for samba-tool and samba: nothing from the host's."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.tmpdir,
               "LANG": "C.UTF-8"}
        krb5 = os.path.join(self.tmpdir, "private", "krb5.conf")
        if os.path.exists(krb5):
            env["KRB5_CONFIG"] = krb5
        return env

    def prepare(self):
        why = unavailable()
        if why:
            raise ServerError(f"Samba AD DC: {why}")
        t0 = time.monotonic()
        empty = os.path.join(self.tmpdir, "host-smb.conf")
        open(empty, "w").close()
        run([SAMBA_TOOL, "domain", "provision", "-s", empty,
             f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
             "--dns-backend=NONE", "--use-rfc2307", f"--targetdir={self.tmpdir}",
             f"--adminpass={ADMIN_PW}", "--host-name=dc1", "--host-ip=127.0.0.1",
             "--option=interfaces = 127.0.0.1", "--option=bind interfaces only = yes",
             f"--option=log file = {self.tmpdir}/log.%m"],
            env=self.tool_env(), timeout=300)
        cert, key = loopback_cert(self.tmpdir)
        self.tls_ca = cert
        # Settings samba-tool does not write into the new smb.conf (it keeps
        # only those provisioning uses), added to its [global] section.
        extra = {
            "server services": "ldap",
            "ldap server require strong auth": "no",
            "tls enabled": "yes",
            "tls certfile": cert,
            "tls keyfile": key,
            "tls cafile": "",
        }
        with open(self.smb_conf) as f:
            lines = [ln for ln in f.read().splitlines()
                     if ln.split("=", 1)[0].strip().lower() not in extra]
        at = lines.index("[global]") + 1
        lines[at:at] = [f"\t{k} = {v}" for k, v in extra.items()]
        with open(self.smb_conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        run([SAMBA_TOOL, "domain", "passwordsettings", "set", "-s", self.smb_conf,
             "-H", os.path.join(self.tmpdir, "private", "sam.ldb"),
             "--complexity=off", "--history-length=0", "--min-pwd-age=0",
             "--max-pwd-age=0"], env=self.tool_env(), timeout=120)
        self.timings["provision"] = time.monotonic() - t0

    def launch(self):
        busy = [p for p in LDAP_PORTS if not port_free(p)]
        if busy:
            raise ServerError(f"Samba AD DC: 127.0.0.1 port(s) {busy} in use; Samba's LDAP "
                              "ports are fixed: free them and run again")
        t0 = time.monotonic()
        argv = [SAMBA, "--foreground", "--no-process-group", "--debug-stdout",
                "-M", "single", f"--maximum-runtime={MAX_RUNTIME}", "-s", self.smb_conf]
        self.proc = ServerProcess("samba", argv, os.path.join(self.tmpdir, "samba.log"),
                                  cwd=self.tmpdir, env=self.tool_env()).start()
        self.proc.wait_ready(lambda: run(
            ["ldapsearch", "-x", "-LLL", "-H", self.uri, "-D", self.bind_dn,
             "-w", self.bind_pw, "-b", self.base, "-s", "base", "1.1"],
            check=False, timeout=5, env=client_env()).returncode == 0, timeout=60)
        self.timings.setdefault("start", time.monotonic() - t0)

    def configure(self):
        t0 = time.monotonic()
        self.admin_ldapmodify(open(os.path.join(LDAP_DIR, "samba-sample.ldif")).read(),
                              tls=True)
        self.timings["load"] = time.monotonic() - t0
        self._configured = True

    def start(self):
        """First call: provision, start, load the sample. After stop(): the
        same as relaunch()."""
        if self._configured:
            self.relaunch()
            return self
        return super().start()

    def relaunch(self):
        """Start samba again after stop(): same ports and data."""
        if self.proc is not None and self.proc.alive():
            return
        self.launch()

    # --- helpers for tests -------------------------------------------------

    def env(self):
        """ldap-utils environment trusting this DC's certificate."""
        if self.tls_ca is None:
            return client_env()
        return client_env(home=self.tmpdir, ca=self.tls_ca)

    def admin_ldapmodify(self, ldif, tls=False):
        """ldapmodify (records with changetype) as Administrator; over
        ldaps:// when tls (needed to set unicodePwd). Raises ServerError on
        failure."""
        return run(["ldapmodify", "-x", "-H", self.ldaps_uri if tls else self.uri,
                    "-D", self.bind_dn, "-w", self.bind_pw], input=ldif, env=self.env(),
                   timeout=60)

    def set_password(self, name, password):
        """Give the sample user name a new password (samba-tool, on the
        running DC's database)."""
        run([SAMBA_TOOL, "user", "setpassword", name, f"--newpassword={password}",
             "-s", self.smb_conf, "-H", self.uri, "-U", f"Administrator%{ADMIN_PW}"],
            env=self.tool_env(), timeout=60)

    def _set_enabled(self, user, enabled):
        out = self.search("(objectClass=*)", "userAccountControl", base=user.dn,
                          scope="base", bind_dn=self.bind_dn, bind_pw=self.bind_pw).stdout
        uac = int(next(line.split(":", 1)[1] for line in out.splitlines()
                       if line.lower().startswith("useraccountcontrol:")))
        uac = uac & ~2 if enabled else uac | 2
        self.admin_ldapmodify(f"dn: {user.dn}\nchangetype: modify\n"
                              f"replace: userAccountControl\nuserAccountControl: {uac}\n-\n")
