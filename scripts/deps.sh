#!/bin/sh
# deps.sh - the one list of Debian 12 packages postern needs, with why.
# Usage: scripts/deps.sh [build|test|bench|all]   (default: all = build + test;
# bench, for make bench only, installs perf and Debian's postfix)
# Used by README's quick-start commands and by .ci/run. Needs root (or sudo).
set -eu

# Build: compiler, pkg-config and one -dev package per library postern links.
BUILD_PKGS="
build-essential   # gcc, make
pkg-config        # configure finds every library with it
libssl-dev        # OpenSSL 3: STARTTLS, SMTPS, outbound TLS
libsasl2-dev      # Cyrus SASL: SMTP AUTH server and client
libmariadb-dev    # MariaDB/MySQL tables and database
libpq-dev         # PostgreSQL tables and database
libldap2-dev      # OpenLDAP client: ldap: tables, Active Directory
libmicrohttpd-dev # web admin and JSON API
libsqlite3-dev    # embedded default database
libevent-dev      # event loop for smtpd, qmgr, smtp client
libc-ares-dev     # asynchronous DNS (MX, RBL, SPF)
libpcre2-dev      # regexp:/pcre: tables, header and body checks
libargon2-dev     # {ARGON2ID} password hashes
libcrypt-dev      # {BLF-CRYPT}/{SHA512-CRYPT} password hashes
libdb5.3-dev      # hash:/btree: tables: the Berkeley DB files postmap/postalias build
liblmdb-dev       # lmdb: tables (postmap lmdb:FILE)
libcdb-dev        # cdb: tables (tinycdb, postmap cdb:FILE)
"

# Test: unit-test framework, linters, the real servers the system tests start
# on loopback, and the real clients they talk with. Debian's postfix is
# installed unconfigured ("No configuration") and its packaged service is
# left stopped and disabled (below): tests/diff and bench/inbound run
# private instances (postfix -c TMPDIR start-fg) on loopback ports only.
TEST_PKGS="
libcmocka-dev     # tests/unit
cppcheck          # make lint
clang-format      # make lint (format check)
clang             # make fuzz: libFuzzer targets
libclang-rt-14-dev # make fuzz: the libFuzzer and sanitizer runtimes
python3           # tests/system run under Debian's /usr/bin/python3
python3-pytest    # tests/system runner
python3-dnspython # tests/system: the authoritative DNS responder (harness/dnsserver.py)
python3-pymysql   # system tests query MariaDB directly
python3-psycopg2  # system tests query PostgreSQL directly
mariadb-server    # private MariaDB instances for tests
mariadb-client    # mariadb CLI used by fixtures
postgresql        # private PostgreSQL instances (initdb, postgres)
slapd             # private OpenLDAP instances
ldap-utils        # ldapadd/ldapsearch used by fixtures
python3-ldap      # test_ldap_directory.py: python-ldap's schema parser compares ldap/*.schema with ldap/*.ldif
samba             # a real Active Directory DC for the ldap: tests (harness/samba_ad.py:
                  # samba-tool domain provision into a temp dir, samba on 127.0.0.1)
samba-dsdb-modules # the AD directory database modules samba's DC role loads
dovecot-imapd     # Dovecot reads what postern delivers, over IMAP
dovecot-lmtpd     # LMTP delivery tests
dovecot-sqlite    # Dovecot's SQL passdb/userdb on postern's database (conf/dovecot)
dovecot-mysql     # the same on MariaDB
dovecot-pgsql     # the same on PostgreSQL
dovecot-ldap      # Dovecot's LDAP passdb/userdb on the same directory as postern's ldap: tables (conf/dovecot/ldap)
sqlite3           # inspecting the embedded database in tests
swaks             # real SMTP client in system tests
libnet-ssleay-perl # swaks --tls/--tlsc (a Recommends of swaks, which --no-install-recommends leaves out)
man-db            # test_cli_help.py renders the installed man pages with man
groff-base        # ... and checks them with groff -ww
pflogsumm         # proves the log lines are Postfix's: test_pflogsumm.py reads them
openssl           # certificates and s_client in TLS tests
procps            # pgrep/ps used when stopping servers
postfix           # tests/diff: the reference server of the differential test
                  # (and bench/inbound's, with smtp-source, its load)
postfix-sqlite    # tests/diff, bench/inbound: Postfix's sqlite: maps on postern's database
postfix-lmdb      # test_table_types.py: Debian's postmap builds and reads lmdb: files
postfix-cdb       # test_table_types.py: Debian's postmap builds and reads cdb: files
sasl2-bin         # tests/diff: saslpasswd2 makes the Cyrus sasldb both servers authenticate against;
                  # test_sasl_backends.py: lib/sasl's cyrus backend on a sasldb
libsasl2-modules  # Cyrus's PLAIN, LOGIN and sasldb plugins (smtpd_sasl_type = cyrus)
fail2ban          # fail2ban-regex 'postfix[mode=auth]' must count postern's SASL failure log lines
"

# Bench: how postern looks inside under bench/inbound's load. (Debian's
# postfix and postfix-sqlite, which bench/inbound compares postern with,
# are in TEST_PKGS: tests/diff needs them too.)
BENCH_PKGS="
linux-perf        # bench/inbound: perf record of the server's processes
"

strip() { printf '%s\n' "$1" | sed 's/#.*//' | tr -s ' \n' '  '; }

case "${1:-all}" in
build) pkgs=$(strip "$BUILD_PKGS") ;;
test) pkgs=$(strip "$TEST_PKGS") ;;
bench) pkgs="$(strip "$BENCH_PKGS") postfix postfix-sqlite" ;;  # postfix: see TEST_PKGS
all) pkgs="$(strip "$BUILD_PKGS") $(strip "$TEST_PKGS")" ;;  # bench: only for make bench
*) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# The unprivileged user postern's daemons run as (mail_owner = postern);
# master, started as root, refuses to run without it.
ensure_mail_owner() {
    getent passwd postern >/dev/null && return 0
    echo "deps: creating the system user postern (mail_owner)"
    $SUDO adduser --system --group --no-create-home --home /nonexistent --quiet postern
}
# The group of the setgid postdrop helper (setgid_group = postdrop):
# `make install` installs postdrop setgid to it and master gives it
# queue_directory/maildrop (mode 1730).
ensure_setgid_group() {
    getent group postdrop >/dev/null && return 0
    echo "deps: creating the system group postdrop (setgid_group)"
    $SUDO addgroup --system --quiet postdrop
}
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    ensure_mail_owner
    ensure_setgid_group
    exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
case " $missing " in
*" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" |
    $SUDO debconf-set-selections ;;
esac
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
# Nothing may rely on a packaged service: stop each one the install may
# have started, and keep it from starting at boot. Why these: postfix
# would take port 25, and a packaged slapd or Samba would take
# 127.0.0.1:389, which the Samba AD DC of the system tests needs (its
# LDAP port cannot be moved).
quiet_service() {
    $SUDO invoke-rc.d "$1" stop >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable "$1" >/dev/null 2>&1 || true
    fi
    $SUDO update-rc.d "$1" disable >/dev/null 2>&1 || true
}
case " $missing " in *" postfix "*) quiet_service postfix ;; esac
case " $missing " in *" slapd "*) quiet_service slapd ;; esac
case " $missing " in
*" samba "*) for s in samba-ad-dc smbd nmbd; do quiet_service "$s"; done ;;
esac
ensure_mail_owner
ensure_setgid_group
