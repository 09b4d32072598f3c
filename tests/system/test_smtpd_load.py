"""smtpd under load: many sessions in one process, and slow lookups.

  - 1,000 concurrent sessions to one smtpd process (asyncio clients, one
    connection each, all open at once): every one gets the banner, then
    every one completes a transaction, and 1,000 queue files exist.
  - A slow database (a MariaDB check_recipient_access table whose query
    sleeps 2 s) stalls only the session that waits for it: a client in
    mynetworks (127.0.0.1) completes a whole transaction while the other
    client's (127.0.0.2) RCPT is still waiting, which is checked by order
    of events, not by timing.
"""

import asyncio
import os
import socket
import uuid

from harness.smtpd import HOSTNAME, Smtpd

N_SESSIONS = 1000


async def _read_reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


async def _session(host, port, i, opened, go):
    reader, writer = await asyncio.open_connection(host, port)
    banner = await _read_reply(reader)
    assert banner.startswith(b"220 " + HOSTNAME.encode())
    opened.append(i)
    await go.wait()
    out = []
    for cmd in (b"EHLO c%d.example" % i, b"MAIL FROM:<s%d@client.example>" % i,
                b"RCPT TO:<u%d@mx.test.example>" % i, b"DATA"):
        writer.write(cmd + b"\r\n")
        out.append(await _read_reply(reader))
    writer.write(b"Subject: load %d\r\n\r\nbody %d\r\n.\r\nQUIT\r\n" % (i, i))
    out.append(await _read_reply(reader))
    out.append(await _read_reply(reader))
    writer.close()
    return out


async def _many(host, port, n):
    opened, go = [], asyncio.Event()
    tasks = [asyncio.create_task(_session(host, port, i, opened, go)) for i in range(n)]
    # Every session is open and greeted before any of them goes on.
    for _ in range(600):
        if len(opened) == n or any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.1)
    assert len(opened) == n, f"only {len(opened)} of {n} sessions got a banner"
    go.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=240)


def test_thousand_concurrent_sessions(postern_build):
    with Smtpd(postern_build) as sd:
        results = asyncio.run(_many(sd.host, sd.port, N_SESSIONS))
        assert len(results) == N_SESSIONS
        for out in results:
            assert out[1] == b"250 2.1.0 Ok\r\n"
            assert out[2] == b"250 2.1.5 Ok\r\n"
            assert out[3].startswith(b"354 ")
            assert out[4].startswith(b"250 2.0.0 Ok: queued as ")
            assert out[5] == b"221 2.0.0 Bye\r\n"
        assert len(sd.queued_files()) == N_SESSIONS
        assert sd.proc.alive()


def _recv_line(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data.decode()


def _cmd(sock, line, timeout=15):
    sock.sendall(line.encode() + b"\r\n")
    return _recv_line(sock, timeout)


def test_slow_lookup_stalls_only_its_session(postern_build, mariadb, tmp_path):
    name = "smtpd_slow_" + uuid.uuid4().hex[:8]
    mariadb.create_database(name)
    # smtpd started as root drops to mail_owner: the table file must be
    # readable by it, which pytest's 0700 tmp_path is not.
    os.chmod(tmp_path, 0o755)
    for parent in (tmp_path.parent, tmp_path.parent.parent):
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    cf = tmp_path / "slow.cf"
    cf.write_text(f"hosts = inet:{mariadb.host}:{mariadb.port}\nuser = {mariadb.user}\n"
                  f"password = {mariadb.password}\ndbname = {name}\n"
                  "query = SELECT 'OK' FROM (SELECT SLEEP(2)) AS t WHERE '%s' <> ''\n")
    main = {
        "mynetworks": "127.0.0.1/32",
        "smtpd_recipient_restrictions": f"permit_mynetworks, check_recipient_access mysql:{cf}",
    }
    with Smtpd(postern_build, main_cf=main) as sd:
        slow = socket.create_connection((sd.host, sd.port), timeout=15,
                                        source_address=("127.0.0.2", 0))
        assert _recv_line(slow, 15).startswith("220 ")
        assert _cmd(slow, "HELO slow.example").startswith("250 ")
        assert _cmd(slow, "MAIL FROM:<s@slow.example>") == "250 2.1.0 Ok\r\n"
        slow.sendall(b"RCPT TO:<u@mx.test.example>\r\n")

        # Meanwhile a trusted client needs no lookup and is served at once.
        fast = socket.create_connection((sd.host, sd.port), timeout=15)
        assert _recv_line(fast, 15).startswith("220 ")
        assert _cmd(fast, "HELO fast.example").startswith("250 ")
        assert _cmd(fast, "MAIL FROM:<f@fast.example>") == "250 2.1.0 Ok\r\n"
        assert _cmd(fast, "RCPT TO:<v@mx.test.example>") == "250 2.1.5 Ok\r\n"
        assert _cmd(fast, "DATA").startswith("354 ")
        fast.sendall(b"Subject: fast\r\n\r\nfast\r\n.\r\n")
        assert _recv_line(fast, 15).startswith("250 2.0.0 Ok: queued as ")
        assert _cmd(fast, "QUIT") == "221 2.0.0 Bye\r\n"

        # The slow session has not been answered yet ...
        slow.setblocking(False)
        try:
            early = slow.recv(4096)
        except BlockingIOError:
            early = b""
        assert early == b"", "the slow RCPT was answered before the fast session ended"
        # ... and is, once its lookup returns.
        assert _recv_line(slow, 30) == "250 2.1.5 Ok\r\n"
        assert _cmd(slow, "QUIT") == "221 2.0.0 Bye\r\n"
