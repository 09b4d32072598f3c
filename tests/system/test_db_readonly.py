"""The network-facing daemons hold no database write credentials.

On MariaDB and PostgreSQL, with the GRANTs INSTALL shows: a SELECT-only
account for `database_readonly` and the owner account for `database`.
The whole system runs (master, smtpd, pickup, qmgr, virtual):

  1. the read-only account really is read-only: an INSERT under it is
     refused by the database itself;
  2. mail sent with smtplib to alice@example.com reaches her Maildir and
     virtual writes her quota_usage row (with `database`);
  3. with `database` pointing at a wrong password (the write account
     unusable), smtpd still says 250 to RCPT for a known mailbox and
     550 5.1.1 for an unknown one: its lookups use database_readonly
     only; virtual still delivers, and logs that it could not update
     quota_usage: its write uses `database`;
  4. with database_readonly pointing at the wrong password and `database`
     good, RCPT for a known mailbox is 451 4.3.0: smtpd's lookups do go
     through database_readonly (a check that would fail if smtpd used
     `database`).
"""

import os
import re
import smtplib
import uuid

import pytest

from harness.process import wait_until
from harness.system import MailSystem, write_secret

ALICE = "alice@example.com"
BOB = "bob@example.com"  # a mailbox of the demo data
# The lookup tables of postern's schema (lib/table/table_db.c) and
# quota_usage: what INSTALL grants to the read-only account.
READ_TABLES = ("domains", "alias_domains", "mailboxes", "aliases", "alias_targets",
               "quota_usage")


def message(subject):
    return (f"From: sender@client.example\r\nTo: {ALICE}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@client.example>\r\n"
            f"\r\nhello\r\n")


def write_password(ms, name, password):
    """A password file readable by root and mail_owner only (INSTALL)."""
    return write_secret(os.path.join(ms.sd.confdir, name), password + "\n")


def create_readonly(kind, server, dbname, user, password):
    """The read-only account of INSTALL, on the database `postern db init`
    made; returns a function that tries an INSERT as that user."""
    tables = ", ".join(READ_TABLES)
    if kind == "mysql":
        for host in ("%", "localhost"):
            server.admin_sql("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            for t in READ_TABLES:
                server.admin_sql(f"GRANT SELECT ON `{dbname}`.`{t}` TO %s@%s", (user, host))

        def try_insert():
            import pymysql
            with pymysql.connect(host=server.host, port=server.port, user=user,
                                 password=password, database=dbname, autocommit=True,
                                 connect_timeout=5) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM mailboxes")
                assert cur.fetchone()[0] > 0
                with pytest.raises(pymysql.err.OperationalError) as exc:
                    cur.execute("INSERT INTO quota_usage (username, bytes, messages) "
                                "VALUES ('x@example.com', 1, 1)")
                return str(exc.value)
    else:
        server.admin_sql(f'CREATE ROLE "{user}" LOGIN PASSWORD %s', (password,))
        server.admin_sql(f'GRANT CONNECT ON DATABASE "{dbname}" TO "{user}"')
        server.admin_sql(f'GRANT USAGE ON SCHEMA public TO "{user}"', dbname=dbname)
        server.admin_sql(f'GRANT SELECT ON {tables} TO "{user}"', dbname=dbname)

        def try_insert():
            import psycopg2
            conn = psycopg2.connect(host=server.host, port=server.port, user=user,
                                    password=password, dbname=dbname, connect_timeout=5)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM mailboxes")
                    assert cur.fetchone()[0] > 0
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as exc:
                        cur.execute("INSERT INTO quota_usage (username, bytes, messages) "
                                    "VALUES ('x@example.com', 1, 1)")
                    return str(exc.value)
            finally:
                conn.close()
    return try_insert


def rcpt_codes(ms, rcpts):
    """(code, text) of RCPT TO for each address, one session."""
    out = []
    with smtplib.SMTP(ms.sd.host, ms.sd.port, timeout=30) as c:
        c.ehlo("client.test.example")
        assert c.mail("sender@client.example")[0] == 250
        for r in rcpts:
            out.append(c.rcpt(r))
        c.rset()
    return out


def quota_row(server, dbname):
    """alice's quota_usage row (bytes, messages), None when there is none."""
    rows = server.sql("SELECT bytes, messages FROM quota_usage WHERE username = %s",
                      (ALICE,), dbname)
    return rows[0] if rows else None


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_smtpd_uses_the_readonly_account(kind, postern_build, postern, request):
    with MailSystem(postern_build, postern) as ms:
        server = ms.make_db(kind, request)  # database: the owner account
        dsn = ms.sd.main["database"]
        dbname = dsn.rsplit("/", 1)[1]
        ro_user = "ro_" + uuid.uuid4().hex[:8]
        ro_password = "ro-" + uuid.uuid4().hex
        try_insert = create_readonly(kind, server, dbname, ro_user, ro_password)
        ro_dsn = f"{kind}://{ro_user}@{server.host}:{server.port}/{dbname}"
        ms.set(database_readonly=ro_dsn,
               database_readonly_password_file=write_password(ms, "ro.password",
                                                              ro_password))
        good_pw = ms.sd.main["database_password_file"]
        bad_pw = write_password(ms, "wrong.password", "not-the-password")

        # 1. The database itself refuses a write by the read-only account.
        why = try_insert()
        assert "denied" in why.lower(), why

        # 2. Delivery with both accounts good: virtual writes quota_usage.
        assert quota_row(server, dbname) is None
        ms.start()
        assert [c for c, _ in rcpt_codes(ms, [ALICE])] == [250]
        ms.send("sender@client.example", [ALICE], message("first"))
        ms.wait_maildir("example.com/alice/", 1)
        row = wait_until(lambda: quota_row(server, dbname), timeout=20, what="quota_usage row")
        assert row[0] > 0 and row[1] == 1
        ms.stop()

        # 3. The write account unusable: smtpd's answers are unchanged.
        ms.set(database_password_file=bad_pw)
        ms.start()
        (c1, _), (c2, t2) = rcpt_codes(ms, [ALICE, "nobody@example.com"])
        assert c1 == 250
        assert c2 == 550 and t2.startswith(b"5.1.1"), (c2, t2)
        ms.send("sender@client.example", [ALICE], message("second"))
        ms.wait_maildir("example.com/alice/", 2)
        # virtual delivered (its lookups are read-only too) but its one
        # write, with `database`, failed: the row still says 1 message.
        wait_until(lambda: re.search(r"warning: quota_usage.* not updated", ms.log()),
                   timeout=20, what="virtual's quota_usage warning")
        assert quota_row(server, dbname)[1] == 1
        ms.stop()

        # 4. The read-only account unusable, `database` good: smtpd's
        # lookups fail (4xx, never 5xx): they never used `database`. bob
        # is a mailbox no process looked up before; alice was, and the
        # answers shared between processes (which outlive a restart)
        # still stand in for the failing account, as in an outage.
        ms.set(database_password_file=good_pw, database_readonly_password_file=bad_pw)
        ms.start()
        [(c, t)] = rcpt_codes(ms, [BOB])
        assert c == 451 and t.startswith(b"4.3.0"), (c, t)
        [(c, t)] = rcpt_codes(ms, [ALICE])
        assert c == 250, (c, t)
        assert re.search(r"serving cached answer for alice@example\.com", ms.log())
        ms.stop()
