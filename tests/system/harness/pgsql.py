"""A private PostgreSQL 15 server on 127.0.0.1 in a temp dir.

Used by the `postgres` fixture in tests/system/conftest.py, and through it by
system tests of postern's pgsql: tables and PostgreSQL database backend.

postgres refuses to run as root, so initdb and postgres run as the Debian
package's `postgres` system user, which owns the temp dir.  Debian's
binaries in /usr/lib/postgresql/15/bin are used (never whatever is on PATH).
pg_hba: trust on the unix socket (the admin, superuser `postgres`), and
scram-sha-256 over TCP on 127.0.0.1 (the test role, like postern will).
"""

import os
import pwd
import signal

import psycopg2

from .base import Server
from .ports import free_port
from .process import ServerProcess, run

PG_BIN = "/usr/lib/postgresql/15/bin"
RUN_AS = "postgres"  # system user from the postgresql-common package


class PostgreSQL(Server):
    """PostgreSQL with one test database owned by one password role.

    Attributes: host, port, socket_dir, user, password, dbname, tmpdir.
    """

    name = "pgsql"

    def __init__(self, user="postern", password="postern-secret", dbname="postern"):
        super().__init__()
        self.host = "127.0.0.1"
        self.port = None
        self.socket_dir = self.tmpdir
        self.datadir = os.path.join(self.tmpdir, "data")
        self.user = user
        self.password = password
        self.dbname = dbname
        pw = pwd.getpwnam(RUN_AS)
        os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
        # A clean environment: no PGDATA/PGHOST/locale from the caller leaks in.
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.tmpdir, "LANG": "C", "LC_ALL": "C"}

    def prepare(self):
        run([f"{PG_BIN}/initdb", "-D", self.datadir, "-U", "postgres",
             "--no-locale", "--encoding=UTF8", "--no-sync",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            user=RUN_AS, env=self.env, cwd=self.tmpdir, timeout=120)
        # Our own pg_hba.conf: nothing but these two lines.
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n")

    def launch(self, port=None):
        self.port = port or free_port()
        argv = [
            f"{PG_BIN}/postgres", "-D", self.datadir, "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "password_encryption=scram-sha-256",
            # Fast, not durable: fine for throwaway test data.
            "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
            "-c", "max_connections=50", "-c", "logging_collector=off",
        ]
        # SIGINT is PostgreSQL's "fast shutdown": it does not wait for clients.
        self.proc = ServerProcess("postgres", argv,
                                  os.path.join(self.tmpdir, "postgres.log"),
                                  cwd=self.tmpdir, env=self.env, user=RUN_AS,
                                  stop_signal=signal.SIGINT).start()
        self.proc.wait_ready(self._ping, timeout=60)

    def _ping(self):
        return self.admin_sql("SELECT 1") == [(1,)]

    def configure(self):
        self.admin_sql(f'CREATE ROLE "{self.user}" LOGIN PASSWORD %s', (self.password,))
        self.create_database(self.dbname)

    # --- helpers for tests -------------------------------------------------

    def relaunch(self):
        """Start the server again after stop(): same data dir, port and users.

        For tests that stop the database under a running client and check
        that the client reconnects once it is back.
        """
        self.launch(port=self.port)

    def admin_connect(self, dbname="postgres"):
        """A psycopg2 connection as superuser over the unix socket (autocommit)."""
        conn = psycopg2.connect(host=self.socket_dir, port=self.port, user="postgres",
                                dbname=dbname, connect_timeout=5)
        conn.autocommit = True
        return conn

    def connect(self, dbname=None, **kwargs):
        """A psycopg2 connection as the test role over TCP with its password."""
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                password=self.password, dbname=dbname or self.dbname,
                                connect_timeout=5, **kwargs)
        conn.autocommit = True
        return conn

    @staticmethod
    def _execute(conn, query, args):
        # psycopg2's "with conn" only ends a transaction; close explicitly.
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def sql(self, query, args=None, dbname=None):
        """Run one statement as the test role; return rows (list of tuples)."""
        return self._execute(self.connect(dbname), query, args)

    def admin_sql(self, query, args=None, dbname="postgres"):
        """Run one statement as superuser; return rows (list of tuples)."""
        return self._execute(self.admin_connect(dbname), query, args)

    def create_database(self, name):
        """Create database name (dropping any old one) owned by the test role."""
        self.admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin_sql(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return name
