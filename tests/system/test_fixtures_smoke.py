"""Smoke tests for the system-test harness itself.

Each test talks to one fixture server through a real client, the way later
postern tests will: pymysql and psycopg2 over TCP with the test user's
password, ldapsearch against slapd, imaplib against Dovecot.  If these fail,
every system test that uses the server would fail too, so run them first.
"""

import imaplib
import subprocess
import uuid

import psycopg2
import pymysql
import pytest


def test_mariadb_tcp_password_roundtrip(mariadb):
    # Connect exactly as postern will: TCP to 127.0.0.1 with a password.
    conn = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                           password=mariadb.password, database=mariadb.dbname,
                           autocommit=True, connect_timeout=5)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE smoke (id INT PRIMARY KEY, addr VARCHAR(255))")
        cur.execute("INSERT INTO smoke VALUES (1, %s), (2, %s)",
                    ("alice@example.com", "bob@example.com"))
        cur.execute("SELECT addr FROM smoke WHERE id = 2")
        assert cur.fetchall() == (("bob@example.com",),)
        cur.execute("SELECT @@bind_address, @@port")
        assert cur.fetchone() == ("127.0.0.1", mariadb.port)
    # The password really is checked.
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                        password="wrong", connect_timeout=5)


def test_postgres_tcp_password_roundtrip(postgres):
    conn = psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                            password=postgres.password, dbname=postgres.dbname,
                            connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:  # "with conn" commits
            cur.execute("CREATE TABLE smoke (id int PRIMARY KEY, addr text)")
            cur.execute("INSERT INTO smoke VALUES (1, %s), (2, %s)",
                        ("alice@example.com", "bob@example.com"))
        with conn.cursor() as cur:
            cur.execute("SELECT addr FROM smoke WHERE id = 2")
            assert cur.fetchall() == [("bob@example.com",)]
            cur.execute("SELECT current_user, inet_server_addr()::text")
            assert cur.fetchone() == (postgres.user, "127.0.0.1/32")
    finally:
        conn.close()
    # scram-sha-256 over TCP: a wrong password is refused.
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                         password="wrong", dbname=postgres.dbname, connect_timeout=5)


def test_slapd_ldapsearch_finds_mail(slapd):
    res = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", slapd.bind_dn,
         "-w", slapd.bind_pw, "-b", slapd.base, f"(mail={slapd.user_mail})", "mail"],
        env=slapd.client_env(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert f"dn: {slapd.user_dn}" in res.stdout
    assert f"mail: {slapd.user_mail}" in res.stdout.splitlines()
    # A mail address nobody has finds nothing.
    res = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", slapd.bind_dn,
         "-w", slapd.bind_pw, "-b", slapd.base, "(mail=nobody@example.com)", "mail"],
        env=slapd.client_env(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_dovecot_imap_reads_delivered_message(dovecot):
    subject = f"smoke {uuid.uuid4().hex}"
    dovecot.deliver(dovecot.user,
                    "From: sender@example.org\n"
                    f"To: {dovecot.user}\n"
                    f"Subject: {subject}\n"
                    "Message-ID: <smoke@example.org>\n"
                    "\n"
                    "hello from the harness\n")
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        imap.login(dovecot.user, dovecot.password)
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) >= 1
        # imaplib does not quote arguments; the subject has a space.
        typ, data = imap.search(None, "HEADER", "Subject", f'"{subject}"')
        assert typ == "OK"
        (num,) = data[0].split()
        typ, data = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert data[0][1].decode().strip() == f"Subject: {subject}"
        imap.logout()
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass
    # A wrong password is refused.
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(dovecot.user, "wrong")
    finally:
        imap.shutdown()
