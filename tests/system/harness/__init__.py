"""Harness for postern's system tests: throwaway real servers on loopback.

Used by tests/system/conftest.py (which wraps these classes in session
fixtures) and by system tests that need a server of their own, e.g. with a
special config:

    from harness import Dovecot
    with Dovecot(extra_config=SQL_USERDB) as dc:
        ...

Each server lives in a fresh temp dir, listens only on 127.0.0.1, is
started with bounded readiness polling and stopped by PID.
"""

from .dovecot import Dovecot
from .mariadb import MariaDB
from .pgsql import PostgreSQL
from .ports import free_port, port_open
from .process import ServerError, ServerProcess, run, wait_until
from .slapd import Slapd

__all__ = ["Dovecot", "MariaDB", "PostgreSQL", "Slapd", "ServerError",
           "ServerProcess", "free_port", "port_open", "run", "wait_until"]
