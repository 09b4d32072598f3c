"""pytest fixtures shared by every system test in tests/system.

Session-scoped servers (started lazily, on the first test that asks for
them, and stopped by PID when the session ends): `mariadb`, `postgres`,
`slapd`, `slapd_ad`, `slapd_openldap`, `samba_ad` (and `ad_directory`,
either AD-shaped one), `dovecot`.  Their temp dirs are removed at the end
unless a test failed, in which case the paths are printed so the logs can
be read.

Also `postern_build` (the build dir holding bin/postern), `postern`
(runs bin/postern with a timeout), `owner_tmp_path` (a temp dir that
mail_owner can read, for configurations `postern check` looks at), and a terminal summary line
`system: N passed, N failed[, N skipped]` that CI greps.
"""

import os
import subprocess
import sys

import pytest

# Make `import harness` work whatever the rootdir/cwd is.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Dovecot, MariaDB, PostgreSQL, Slapd  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Temp dirs kept because a test failed; listed in the terminal summary.
_kept_dirs = []


def _server_fixture(request, server):
    """Start server now; stop it (and clean up) when the session ends."""
    def finish():
        failed = request.session.testsfailed > 0
        path = server.cleanup(keep=failed)
        if failed:
            _kept_dirs.append(path)
    # Register first, so a server that fails half-way is still stopped.
    request.addfinalizer(finish)
    return server.start()


@pytest.fixture(scope="session")
def mariadb(request):
    """MariaDB: host, port, socket, user, password, dbname; sql(), connect()."""
    return _server_fixture(request, MariaDB())


@pytest.fixture(scope="session")
def postgres(request):
    """PostgreSQL: host, port, user, password, dbname; sql(), connect()."""
    return _server_fixture(request, PostgreSQL())


@pytest.fixture(scope="session")
def slapd(request):
    """slapd: uri, base, bind_dn, bind_pw, user_dn, user_mail; ldapadd()."""
    return _server_fixture(request, Slapd())


@pytest.fixture(scope="session")
def slapd_ad(request):
    """slapd in Active Directory shape: ldap/ad-test.ldif and
    ldap/sample-ad.ldif (harness/slapd.py). uri, base, service_dn,
    service_pw, users {name: SampleUser(.dn .mail .addresses .password
    .upn)}, groups {name: dn}, tls_ca, ldaps_uri; disable_user(name),
    enable_user(name), disabled(name), stop(), relaunch(), stopped(),
    write_cf(name, dir), search(), can_bind()."""
    return _server_fixture(request, Slapd(sample="ad"))


@pytest.fixture(scope="session")
def slapd_openldap(request):
    """slapd with postern.ldif and ldap/sample-openldap.ldif (plain
    OpenLDAP shape); the same attributes and helpers as slapd_ad."""
    return _server_fixture(request, Slapd(sample="openldap"))


@pytest.fixture(scope="session")
def samba_ad(request):
    """A Samba AD DC on 127.0.0.1:389 with ldap/samba-sample.ldif
    (harness/samba_ad.py); the same attributes and helpers as slapd_ad,
    plus timings, realm, set_password(). Fails (not skips) with the reason
    when Samba cannot run, e.g. port 389 taken."""
    from harness.samba_ad import SambaAD, unavailable
    why = unavailable()
    if why:
        pytest.fail(f"samba_ad: {why}", pytrace=False)
    return _server_fixture(request, SambaAD())


@pytest.fixture(scope="session", params=["slapd_ad", "samba_ad"], ids=["slapd", "samba"])
def ad_directory(request):
    """slapd_ad, then samba_ad: one test body against both AD-shaped
    directories (see slapd_ad for the attributes)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def dovecot(request):
    """Dovecot IMAP: host, imap_port, user, password; deliver(), imap()."""
    return _server_fixture(request, Dovecot())


@pytest.fixture(scope="session")
def postern_build():
    """The build dir containing bin/postern ($POSTERN_BUILD or REPO/build/std)."""
    return os.environ.get("POSTERN_BUILD") or os.path.join(REPO, "build", "std")


@pytest.fixture(scope="session")
def postern(postern_build):
    """A function running `BUILD/bin/postern ARGS...`; returns CompletedProcess.

    Usage: postern("-c", confdir, "check", timeout=30, input=None, env=None).
    Text mode, stdout and stderr captured; does not raise on non-zero exit.
    """
    binary = os.path.join(postern_build, "bin", "postern")

    def run_postern(*args, timeout=30, input=None, env=None, cwd=None):
        return subprocess.run([binary, *map(str, args)], input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=cwd)
    return run_postern


@pytest.fixture
def owner_tmp_path():
    """A temp dir (pathlib.Path) that mail_owner can reach: every directory
    above it is searchable by others, as a real config_directory is. Why:
    `postern check`, run as root, checks that mail_owner can read the
    configuration, and pytest's own tmp_path is under a 0700 directory.
    Removed at the end."""
    import pathlib
    import shutil
    import tempfile

    from harness.base import _tmp_parent
    path = tempfile.mkdtemp(prefix="postern-conf-", dir=_tmp_parent())
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pki():
    """Throw-away TLS certificates (harness/certs.py: a CA, a server and a
    client certificate signed by it, a self-signed client), where
    mail_owner can read them (smtpd reads the CA file and tables as
    mail_owner). Removed at the end."""
    import shutil
    import tempfile

    from harness.base import _tmp_parent
    from harness.certs import make_pki
    top = tempfile.mkdtemp(prefix="postern-pki-", dir=_tmp_parent())
    os.chmod(top, 0o755)
    yield make_pki(top)
    shutil.rmtree(top, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print kept temp dirs, then one line: system: N passed, N failed[, N skipped]."""
    for path in _kept_dirs:
        terminalreporter.write_line(f"system: kept server dir {path}")
    # One outcome per test (node id): any failure or error wins, then skip.
    outcome = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    kinds = {"passed": "passed", "xpassed": "passed", "skipped": "skipped",
             "xfailed": "skipped", "failed": "failed", "error": "failed"}
    for key, kind in kinds.items():
        for rep in terminalreporter.stats.get(key, []):
            nodeid = getattr(rep, "nodeid", None) or repr(rep)
            if rank[kind] >= rank[outcome.get(nodeid, "passed")]:
                outcome[nodeid] = kind
    counts = {k: list(outcome.values()).count(k) for k in rank}
    suffix = os.environ.get("SUITE_SUFFIX", "")
    line = f"system{suffix}: {counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        line += f", {counts['skipped']} skipped"
    terminalreporter.write_line(line)
