"""Start, watch and stop one background server process.

Used by the server classes in this package (mariadb.py, pgsql.py, slapd.py,
dovecot.py) and by system tests that start postern daemons.  Everything here
is bounded in time: readiness is polled with a deadline, stopping sends a
signal to the recorded PID, waits a bounded time, then SIGKILLs.  Nothing is
ever stopped by name.
"""

import atexit
import os
import pwd
import signal
import subprocess
import time

# Default readiness deadline and polling interval, in seconds.
READY_TIMEOUT = 30.0
POLL_INTERVAL = 0.1

# Every ServerProcess that is running, so the atexit hook can stop them if
# the test run is interrupted before the fixture finalizers run.
_live = set()


class ServerError(RuntimeError):
    """A server failed to start, exited early or a setup command failed.

    log holds the tail of the server's log (or the command's output) so
    callers can look for specific messages, e.g. "address already in use".
    """

    def __init__(self, message, log=""):
        super().__init__(message + ("\n--- log tail ---\n" + log if log else ""))
        self.log = log


def tail(path, lines=40):
    """Return the last lines of the text file at path ("" if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(predicate, timeout=READY_TIMEOUT, interval=POLL_INTERVAL, what="condition"):
    """Poll predicate() until it returns a true value; return that value.

    Exceptions from predicate count as "not yet".  Raises TimeoutError naming
    what we waited for (and the last exception) after timeout seconds.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not ready yet; remember why
            last_exc = exc
        if time.monotonic() >= deadline:
            why = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{why}")
        time.sleep(interval)


def run(argv, *, timeout=60, check=True, user=None, **kwargs):
    """Run a setup command to completion, capturing its output as text.

    With check=True a non-zero exit raises ServerError carrying the output.
    user (a login name) runs the command as that user and its primary group.
    """
    if user is not None:
        kwargs.update(_user_kwargs(user))
    if "input" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL  # never wait on our stdin
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        # exc.stdout/stderr may be bytes even in text mode.
        out = b"".join(x if isinstance(x, bytes) else x.encode()
                       for x in (exc.stdout or b"", exc.stderr or b""))
        raise ServerError(f"{argv[0]} timed out after {timeout}s",
                          out.decode("utf-8", "replace")) from None
    if check and res.returncode != 0:
        raise ServerError(f"{' '.join(map(str, argv))} exited {res.returncode}",
                          res.stdout + res.stderr)
    return res


def _user_kwargs(user):
    """Popen arguments that drop root to user's uid, gid and no extra groups."""
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class ServerProcess:
    """One server process started in the background.

    stdout and stderr go to log_path.  The process gets its own session (so
    its process group id is its PID) and is stopped by PID: stop_signal,
    a bounded wait, then SIGKILL to the process and its group.
    """

    def __init__(self, name, argv, log_path, *, cwd=None, env=None, user=None,
                 stop_signal=signal.SIGTERM, extra_logs=()):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.user = user
        self.stop_signal = stop_signal
        # Other log files worth showing on failure (e.g. a daemon's own log).
        self.extra_logs = list(extra_logs)
        self.proc = None
        self.pid = None

    def start(self):
        """Start the process; return self.  Does not wait for readiness."""
        kwargs = _user_kwargs(self.user) if self.user else {}
        with open(self.log_path, "ab") as log:
            log.write(f"=== start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env,
                start_new_session=True, **kwargs)
        self.pid = self.proc.pid
        _live.add(self)
        return self

    def alive(self):
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        """Tail of the process log and of every extra log, for error messages."""
        parts = [f"[{self.log_path}]\n{tail(self.log_path, lines)}"]
        for path in self.extra_logs:
            parts.append(f"[{path}]\n{tail(path, lines)}")
        return "\n".join(parts)

    def wait_ready(self, check, timeout=READY_TIMEOUT, interval=POLL_INTERVAL):
        """Poll check() until it returns true; raise ServerError otherwise.

        Fails at once if the process exits, and after timeout seconds if it
        never becomes ready.  Exceptions from check() count as "not yet".
        """
        deadline = time.monotonic() + timeout
        last_exc = None
        while True:
            if not self.alive():
                raise ServerError(
                    f"{self.name} (pid {self.pid}) exited with status "
                    f"{self.proc.returncode} before it was ready", self.log_tail())
            try:
                if check():
                    return
            except Exception as exc:  # not ready yet
                last_exc = exc
            if time.monotonic() >= deadline:
                why = f"; last check error: {last_exc!r}" if last_exc else ""
                raise ServerError(
                    f"{self.name} (pid {self.pid}) not ready after {timeout:g}s{why}",
                    self.log_tail())
            time.sleep(interval)

    def stop(self, timeout=15.0):
        """Stop the process by PID; safe to call more than once.

        Returns the exit status (None if it was never started).
        """
        if self.proc is None:
            return None
        _live.discard(self)
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Did not stop in time: kill it and whatever it forked.
                for kill in (lambda: os.kill(self.pid, signal.SIGKILL),
                             lambda: os.killpg(self.pid, signal.SIGKILL)):
                    try:
                        kill()
                    except (ProcessLookupError, PermissionError):
                        pass
                self.proc.wait(timeout=10)
        return self.proc.returncode


@atexit.register
def _stop_leftovers():
    """Last resort: stop servers still running when Python exits."""
    for p in list(_live):
        p.stop(timeout=5)


def setgid_postdrop(path):
    """Make the postdrop binary at path what `make install` makes it:
    group postdrop (setgid_group; scripts/deps.sh creates it), mode 2755.
    Only root can; as another user, leave it (that user owns everything
    then, and postdrop needs no group). Returns path."""
    if os.geteuid() == 0:
        import grp
        try:
            gid = grp.getgrnam("postdrop").gr_gid
        except KeyError:
            raise AssertionError("no group postdrop: run scripts/deps.sh")
        os.chown(path, 0, gid)
        os.chmod(path, 0o2755)  # after chown, which clears set-id bits
    return path
