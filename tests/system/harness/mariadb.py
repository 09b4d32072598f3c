"""A private MariaDB server on 127.0.0.1 in a temp dir.

Used by the `mariadb` fixture in tests/system/conftest.py, and through it by
system tests of postern's mysql: tables and MariaDB database backend.

mariadb-install-db creates the data dir; mariadbd runs with --no-defaults (no
/etc/mysql config leaks in) as root (--user=root), on a free TCP port bound
to 127.0.0.1 and on a unix socket in the temp dir.  The admin is root@localhost
over the socket with no password; tests use a normal user with a password
over TCP, like postern will.
"""

import os

import pymysql

from .base import Server
from .ports import free_port
from .process import ServerProcess, run


class MariaDB(Server):
    """MariaDB with one test database and one password user.

    Attributes: host, port, socket, user, password, dbname, tmpdir.
    """

    name = "mariadb"

    def __init__(self, user="postern", password="postern-secret", dbname="postern"):
        super().__init__()
        self.host = "127.0.0.1"
        self.port = None
        self.socket = os.path.join(self.tmpdir, "mysqld.sock")
        self.datadir = os.path.join(self.tmpdir, "data")
        self.user = user
        self.password = password
        self.dbname = dbname

    def prepare(self):
        run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
             "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"], timeout=120)

    def launch(self, port=None):
        self.port = port or free_port()
        argv = [
            "/usr/sbin/mariadbd", "--no-defaults",
            f"--datadir={self.datadir}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
            f"--pid-file={self.tmpdir}/mariadbd.pid", f"--tmpdir={self.tmpdir}",
            "--skip-name-resolve", "--skip-log-bin",
            # Small and fast: tests do not need durability.
            "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
            "--skip-innodb-use-native-aio",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
        ]
        self.proc = ServerProcess("mariadbd", argv,
                                  os.path.join(self.tmpdir, "mariadbd.log")).start()
        self.proc.wait_ready(self._ping, timeout=60)

    def _ping(self):
        with self.admin_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)

    def configure(self):
        # Only root@localhost (socket) stays an admin; no passwordless TCP root.
        self.admin_sql("DELETE FROM mysql.global_priv WHERE User='root' AND Host<>'localhost'")
        self.admin_sql("FLUSH PRIVILEGES")
        for host in ("%", "localhost"):
            self.admin_sql("CREATE USER %s@%s IDENTIFIED BY %s",
                           (self.user, host, self.password))
        self.create_database(self.dbname)

    # --- helpers for tests -------------------------------------------------

    def relaunch(self):
        """Start the server again after stop(): same data dir, port and users.

        For tests that stop the database under a running client and check
        that the client reconnects once it is back.
        """
        self.launch(port=self.port)

    def admin_connect(self, database=None):
        """A pymysql connection as root over the unix socket (autocommit)."""
        return pymysql.connect(unix_socket=self.socket, user="root", database=database,
                               autocommit=True, connect_timeout=5)

    def connect(self, database=None, **kwargs):
        """A pymysql connection as the test user over TCP with its password."""
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password,
                               database=database or self.dbname,
                               autocommit=True, connect_timeout=5, **kwargs)

    def sql(self, query, args=None, database=None):
        """Run one statement as the test user; return all rows (a list of tuples)."""
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    def admin_sql(self, query, args=None, database=None):
        """Run one statement as root; return all rows (a list of tuples)."""
        with self.admin_connect(database) as conn, conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    def create_database(self, name):
        """Create database name (dropping any old one) and grant it to the user."""
        self.admin_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self.admin_sql(f"CREATE DATABASE `{name}`")
        for host in ("%", "localhost"):
            self.admin_sql(f"GRANT ALL ON `{name}`.* TO %s@%s", (self.user, host))
        return name
