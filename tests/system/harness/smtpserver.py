"""A scriptable SMTP/LMTP server on loopback, from the standard library
only (socketserver, ssl), for the outbound client's tests.

Used by tests/system/test_smtp_client.py (and the content-filter tests):

    with SmtpServer(features=["PIPELINING", "SIZE 1000"], tls=(cert, key),
                    auth={"user": "secret"}, require_tls=True,
                    rcpt_replies={"bad@x.test": "550 5.1.1 No such user"}) as srv:
        srv.port                 # on 127.0.0.1 (or srv.host)
        srv.messages             # [Message(sender, rcpts, data, params...)]
        srv.commands             # every command line received, in order
        srv.wait_messages(1)

Each connection runs in its own thread; replies follow RFC 5321 closely
enough for a client test: greeting (or `greeting="554 go away"`), EHLO
with the features given (STARTTLS and AUTH added when configured),
HELO, STARTTLS (ssl), AUTH PLAIN/LOGIN, MAIL/RCPT/DATA/RSET/NOOP/QUIT,
XFORWARD (recorded), LMTP (LHLO, one reply per recipient after DATA).
Per-recipient and per-stage replies are configurable; `data_reply`
answers the end of DATA; `lmtp_replies` maps a recipient to its LMTP
reply. `hang_after` = a command name after which the server stops
answering (timeouts). Stopped by stop() (joins the threads).
"""

import base64
import socket
import socketserver
import ssl
import threading
import time

from .ports import free_port


class Message:
    def __init__(self, sender, mail_params, rcpts, rcpt_params, data, tls, auth, xforward):
        self.sender = sender
        self.mail_params = mail_params
        self.rcpts = rcpts
        self.rcpt_params = rcpt_params
        self.data = data
        self.tls = tls
        self.auth = auth
        self.xforward = xforward


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def setup(self):
        super().setup()
        self.srv = self.server.owner
        self.tls = False
        self.auth_user = None
        self.xforward = {}
        self.reset()

    def reset(self):
        self.bdat_data = b""
        self.bdat_failed = False
        self.sender = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = []

    def send(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(8192)
        if not line:
            return None
        line = line.rstrip(b"\r\n").decode("utf-8", "replace")
        with self.srv.lock:
            self.srv.commands.append(line)
        return line

    def ehlo_lines(self, name):
        feats = list(self.srv.features)
        if self.srv.tls and not self.tls:
            feats.append("STARTTLS")
        if self.srv.auth and (self.tls or not self.srv.auth_needs_tls):
            feats.append("AUTH " + " ".join(self.srv.auth_mechs))
        lines = [f"{self.srv.hostname} hello {name}"] + feats
        return [f"250{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines)]

    def handle(self):
        s = self.srv
        with s.lock:
            s.connections += 1
        self.send(s.greeting)
        if not s.greeting.startswith("2"):
            self.readline()
            return
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip()
            if s.hang_after and s.hang_after == "CONNECT":
                time.sleep(s.hang_seconds)
                return
            if verb in ("EHLO", "LHLO"):
                if verb == "EHLO" and s.ehlo_reply:
                    self.send(s.ehlo_reply)
                    continue
                for text in self.ehlo_lines(arg):
                    self.send(text)
            elif verb == "HELO":
                self.send(f"250 {s.hostname}")
            elif verb == "STARTTLS" and s.tls and not self.tls:
                if s.starttls_reply:
                    self.send(s.starttls_reply)
                    continue
                self.send("220 2.0.0 Ready to start TLS")
                try:
                    conn = s.tls_context().wrap_socket(self.request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                self.request = conn
                self.rfile = conn.makefile("rb")
                self.wfile = conn.makefile("wb")
                self.tls = True
                with s.lock:
                    s.tls_resumed.append(conn.session_reused)
                self.reset()
            elif verb == "AUTH" and s.auth:
                self.do_auth(arg)
            elif verb == "XFORWARD":
                for item in arg.split():
                    k, _, v = item.partition("=")
                    self.xforward[k.upper()] = v
                self.send("250 2.0.0 Ok")
            elif verb == "MAIL":
                if s.require_tls and not self.tls:
                    self.send("530 5.7.0 Must issue a STARTTLS command first")
                    continue
                if s.auth and s.require_auth and not self.auth_user:
                    self.send("530 5.7.0 Authentication required")
                    continue
                rest = arg[5:] if arg.upper().startswith("FROM:") else arg
                addr, _, params = rest.partition(">")
                self.sender = addr.lstrip("<")
                self.mail_params = params.strip()
                self.send(s.mail_reply)
            elif verb == "RCPT":
                rest = arg[3:] if arg.upper().startswith("TO:") else arg
                addr, _, params = rest.partition(">")
                addr = addr.lstrip("<")
                reply = s.rcpt_replies.get(addr.lower(), "250 2.1.5 Ok")
                if s.max_rcpts and len(self.rcpts) >= s.max_rcpts:
                    reply = "452 4.5.3 Error: too many recipients"
                if reply.startswith("2"):
                    self.rcpts.append(addr)
                    self.rcpt_params.append(params.strip())
                self.send(reply)
            elif verb == "DATA":
                if s.hang_after == "DATA":
                    time.sleep(s.hang_seconds)
                    return
                if not self.rcpts:
                    self.send("554 5.5.1 Error: no valid recipients")
                    continue
                if s.data_init_reply:
                    self.send(s.data_init_reply)
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                data = self.read_data()
                if data is None:
                    return
                if s.hang_after == "DOT":
                    time.sleep(s.hang_seconds)
                    return
                msg = Message(self.sender, self.mail_params, list(self.rcpts),
                              list(self.rcpt_params), data, self.tls, self.auth_user,
                              dict(self.xforward))
                if s.lmtp:
                    for r in self.rcpts:
                        self.send(s.lmtp_replies.get(r.lower(), "250 2.0.0 Ok delivered"))
                else:
                    self.send(s.data_reply)
                if s.data_reply.startswith("2") or s.lmtp:
                    with s.lock:
                        s.messages.append(msg)
                self.reset()
            elif verb == "BDAT":
                self.do_bdat(arg)
            elif verb == "RSET":
                self.reset()
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def do_bdat(self, arg):
        s = self.srv
        parts = arg.split()
        size = int(parts[0])
        last = len(parts) > 1 and parts[1].upper() == "LAST"
        chunk = self.rfile.read(size) if size else b""
        with s.lock:
            s.bdat_chunks.append((size, last))
        if s.bdat_reply and not self.bdat_failed:
            self.bdat_failed = True
            self.send(s.bdat_reply)
            return
        if self.bdat_failed:
            self.send("503 5.5.1 Error: previous chunk refused")
            return
        self.bdat_data += chunk
        if not last:
            self.send(f"250 2.0.0 {size} bytes received")
            return
        msg = Message(self.sender, self.mail_params, list(self.rcpts), list(self.rcpt_params),
                      self.bdat_data, self.tls, self.auth_user, dict(self.xforward))
        self.send(s.data_reply)
        if s.data_reply.startswith("2"):
            with s.lock:
                s.messages.append(msg)
        self.reset()

    def read_data(self):
        lines = []
        while True:
            raw = self.rfile.readline(1 << 20)
            if not raw:
                return None
            if raw in (b".\r\n", b".\n"):
                break
            if raw.startswith(b".."):
                raw = raw[1:]
            lines.append(raw)
        return b"".join(lines)

    def do_auth(self, arg):
        s = self.srv
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        user = password = None
        if mech == "PLAIN":
            if len(parts) > 1:
                blob = parts[1]
            else:
                self.send("334 ")
                blob = self.readline() or ""
            try:
                _, user, password = base64.b64decode(blob).decode().split("\0")
            except Exception:
                self.send("501 5.5.2 Syntax error")
                return
        elif mech == "LOGIN":
            self.send("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.readline() or "").decode()
            self.send("334 UGFzc3dvcmQ6")
            password = base64.b64decode(self.readline() or "").decode()
        else:
            self.send("504 5.5.4 Unrecognized authentication type")
            return
        with s.lock:
            s.auth_attempts.append((mech, user, password))
        if s.auth.get(user) == password:
            self.auth_user = user
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Error: authentication failed: bad credentials")


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class SmtpServer:
    def __init__(self, features=("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                                 "DSN"),
                 host="127.0.0.1", port=None, hostname="sink.test", greeting=None,
                 tls=None, auth=None, auth_mechs=("PLAIN", "LOGIN"), auth_needs_tls=False,
                 require_tls=False, require_auth=False, rcpt_replies=None,
                 mail_reply="250 2.1.0 Ok", data_reply="250 2.0.0 Ok: queued as SINK1",
                 data_init_reply=None, ehlo_reply=None, starttls_reply=None, lmtp=False,
                 lmtp_replies=None, hang_after=None, hang_seconds=5, tls_min_version=None,
                 bdat_reply=None, max_rcpts=0):
        self.features = list(features)
        self.host = host
        self.port = port or free_port()
        self.hostname = hostname
        self.greeting = greeting or f"220 {hostname} ESMTP test"
        self.tls = tls
        self.tls_min_version = tls_min_version
        self.auth = auth or {}
        self.auth_mechs = list(auth_mechs)
        self.auth_needs_tls = auth_needs_tls
        self.require_tls = require_tls
        self.require_auth = require_auth
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.data_init_reply = data_init_reply
        self.ehlo_reply = ehlo_reply
        self.starttls_reply = starttls_reply
        self.lmtp = lmtp
        self.lmtp_replies = {k.lower(): v for k, v in (lmtp_replies or {}).items()}
        self.hang_after = hang_after
        self.hang_seconds = hang_seconds
        self.bdat_reply = bdat_reply
        self.max_rcpts = max_rcpts
        self.bdat_chunks = []
        self.tls_resumed = []  # per handshake: was the session resumed?
        self.messages = []
        self.commands = []
        self.auth_attempts = []
        self.connections = 0
        self.lock = threading.Lock()
        self._server = None
        self._thread = None
        self._tls_ctx = None

    def start(self):
        cls = _Server6 if ":" in self.host else _Server
        self._server = cls((self.host, self.port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def tls_context(self):
        """One server context for every connection, so that its session
        tickets resume (a client's session resumption is testable)."""
        with self.lock:
            if self._tls_ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self.tls)
                if self.tls_min_version is not None:
                    ctx.minimum_version = self.tls_min_version
                self._tls_ctx = ctx
            return self._tls_ctx

    def wait_messages(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s) at {self.host}:{self.port}, "
                             f"got {len(self.messages)}; commands: {self.commands[-20:]}")
