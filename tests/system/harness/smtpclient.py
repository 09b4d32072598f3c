"""A line-level SMTP client for system tests: raw bytes out, whole
(multi-line) replies in, bounded by a 15 s socket timeout.

Used by tests/system/test_smtpd.py and test_smtpd_xclient.py:

    c = Raw(host, port)          # reads the banner into c.banner
    c.cmd("EHLO x.example")      # one reply, lines joined by "\n"
    c.send(b"raw bytes"); c.reply()
    c.closed()                   # True once the server hung up
"""

import socket


class Raw:
    """A line-level SMTP client: send bytes, read whole replies."""

    def __init__(self, host, port, banner=True):
        self.s = socket.create_connection((host, port), timeout=15)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """One (possibly multi-line) reply as text, CRLF-joined lines."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % (self.buf,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self, timeout=10):
        """True when the server closed the connection (EOF)."""
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
