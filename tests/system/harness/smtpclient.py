"""A line-level SMTP client for system tests: raw bytes out, whole
(multi-line) replies in, bounded by a 15 s socket timeout.

Used by tests/system/test_smtpd.py, test_smtpd_xclient.py, test_smtpd_tls.py
and test_smtpd_auth.py:

    c = Raw(host, port)          # reads the banner into c.banner
    c.cmd("EHLO x.example")      # one reply, lines joined by "\n"
    c.send(b"raw bytes"); c.reply()
    c.closed()                   # True once the server hung up
    c.starttls(ssl_context)      # after "220 2.0.0 Ready to start TLS"
    Raw(host, port, tls=ctx)     # smtps: TLS from the first byte
"""

import socket


class Raw:
    """A line-level SMTP client: send bytes, read whole replies."""

    def __init__(self, host, port, banner=True, tls=None):
        """tls: an ssl.SSLContext to speak TLS from the first byte (smtps)."""
        self.s = socket.create_connection((host, port), timeout=15)
        if tls is not None:
            self.s = tls.wrap_socket(self.s, server_hostname=host)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def starttls(self, ctx, session=None, server_hostname=None):
        """TLS handshake on the open connection (after "220 Ready to start
        TLS"); whatever the server sent in plaintext and was not read yet
        is an error."""
        assert self.buf == b"", self.buf
        self.s = ctx.wrap_socket(self.s, server_hostname=server_hostname, session=session)
        return self.s

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
