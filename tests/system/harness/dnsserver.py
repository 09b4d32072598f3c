"""A tiny authoritative DNS responder on loopback, for hermetic DNS tests.

Used by tests/system/test_smtpd_dns.py: smtpd is pointed at it with
`dns_servers = 127.0.0.1:PORT`.

    with DnsServer({"a-only.test": {"A": ["192.0.2.10"]},
                    "nullmx.test": {"MX": ["0 ."]}},
                   drop={"slow.test"}) as dns:
        dns.port             # UDP and TCP port on 127.0.0.1
        dns.queries          # [(name, type), ...] in arrival order

Names in the zone answer NOERROR with their records of the asked type
(none: an empty answer, "no data"); other names answer NXDOMAIN; names in
drop (or under them) get no answer at all (the client times out); names in
servfail get SERVFAIL.  UDP and TCP (c-ares retries over TCP when an
answer is truncated) are served by one thread each, stopped by stop().
Built on dnspython (Debian python3-dnspython).
"""

import socket
import struct
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .ports import free_port


def _under(name, names):
    return any(name == n or name.endswith("." + n) for n in names)


class DnsServer:
    def __init__(self, zone, drop=(), servfail=()):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.drop = {n.lower().rstrip(".") for n in drop}
        self.servfail = {n.lower().rstrip(".") for n in servfail}
        self.queries = []
        self.host = "127.0.0.1"
        self.port = None
        self._udp = self._tcp = None
        self._threads = []
        self._stopping = threading.Event()

    # --- answering ------------------------------------------------------

    def answer(self, wire):
        """The response to one query in wire form, or None to drop it."""
        try:
            q = dns.message.from_wire(wire)
        except Exception:
            return None
        if not q.question:
            return None
        question = q.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        if _under(name, self.drop):
            return None
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if _under(name, self.servfail):
            r.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            r.set_rcode(dns.rcode.NXDOMAIN)
        else:
            records = self.zone[name].get(rtype, [])
            if records:
                r.answer.append(dns.rrset.from_text_list(
                    question.name, 300, dns.rdataclass.IN, question.rdtype, records,
                    origin=dns.name.root, relativize=False))
        return r.to_wire()

    # --- serving --------------------------------------------------------

    def _serve_udp(self):
        while not self._stopping.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                out = self.answer(wire)
            except Exception as exc:  # a bad zone entry: say so, keep serving
                print(f"DnsServer: cannot answer: {exc!r}")
                continue
            if out is not None:
                self._udp.sendto(out, peer)

    def _serve_tcp(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(2)
                    if len(head) < 2:
                        continue
                    want = struct.unpack("!H", head)[0]
                    wire = b""
                    while len(wire) < want:
                        chunk = conn.recv(want - len(wire))
                        if not chunk:
                            break
                        wire += chunk
                    out = self.answer(wire)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    continue

    def start(self):
        for _ in range(5):
            port = free_port(self.host)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, port))
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(8)
            udp.settimeout(0.2)
            tcp.settimeout(0.2)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("no free port for the DNS responder")
        for fn in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=5)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
