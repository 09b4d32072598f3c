"""Base class for the throwaway servers the system tests start.

Used by mariadb.py, pgsql.py, slapd.py and dovecot.py.  A Server owns one
fresh temp dir (tempfile.mkdtemp) holding its data, config, sockets and logs,
and one ServerProcess.  start() retries with new ports if another process
grabbed the port between free_port() and the server's bind().
"""

import os
import shutil
import stat
import tempfile

from .process import ServerError

# Log messages that mean "someone else took our port": try another one.
# MariaDB, PostgreSQL, slapd and Dovecot all print strerror(EADDRINUSE).
PORT_IN_USE = ("address already in use",)


def _tmp_parent():
    """Where to make server temp dirs: $TMPDIR if others can traverse it.

    PostgreSQL runs as `postgres` and Dovecot's mail processes as `nobody`,
    so every directory above their temp dir must be o+x; if $TMPDIR is e.g.
    under /root, fall back to /tmp.
    """
    path = os.path.realpath(tempfile.gettempdir())
    probe = path
    while True:
        try:
            if not os.stat(probe).st_mode & stat.S_IXOTH:
                return "/tmp"
        except OSError:
            return "/tmp"
        if probe == "/":
            return path
        probe = os.path.dirname(probe)


class Server:
    """A server in its own temp dir.  Subclasses fill in the three steps."""

    name = "server"
    start_attempts = 3

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix=f"postern-{self.name}-", dir=_tmp_parent())
        self.proc = None
        self._prepared = False

    # --- steps a subclass implements -------------------------------------

    def prepare(self):
        """One-time setup before the first launch (initdb, config files)."""

    def launch(self):
        """Pick ports, start self.proc and wait until it is ready."""
        raise NotImplementedError

    def configure(self):
        """One-time setup after the server is ready (users, databases)."""

    # --- lifecycle ---------------------------------------------------------

    def start(self):
        """Prepare, launch (retrying on a port clash) and configure; return self."""
        if not self._prepared:
            self.prepare()
            self._prepared = True
        for attempt in range(1, self.start_attempts + 1):
            try:
                self.launch()
                break
            except ServerError as exc:
                if self.proc is not None:
                    self.proc.stop()
                clash = any(m in exc.log.lower() for m in PORT_IN_USE)
                if not clash or attempt == self.start_attempts:
                    raise
        self.configure()
        return self

    def stop(self):
        """Stop the server process by PID (no-op if not running)."""
        if self.proc is not None:
            self.proc.stop()

    def cleanup(self, keep=False):
        """Stop, then remove the temp dir unless keep; return the dir path."""
        self.stop()
        if not keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.tmpdir

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(keep=exc_type is not None)
