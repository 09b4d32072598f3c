"""TLS in smtpd, with real clients (Python's ssl, openssl s_client, swaks):

  - STARTTLS on a "may" port with TLS 1.2 and 1.3: EHLO announces it
    before and not after, the Postfix log line "Anonymous TLS connection
    established from unknown[127.0.0.1]: TLSv1.3 with cipher ...", the
    Received header's "(using TLSv1.3 with cipher ...)" and "with ESMTPS";
  - smtpd_tls_protocols = >=TLSv1.2 refuses a TLS 1.1 client, >=TLSv1.3 a
    TLS 1.2 client (the handshake fails, the failure is logged);
  - implicit TLS (smtpd_tls_wrappermode, the smtps service): the banner
    comes inside TLS, STARTTLS there is "554 5.5.1 Error: TLS already
    active";
  - plaintext pipelined behind STARTTLS is never executed (CVE-2011-0411),
    a second STARTTLS is refused, the session starts over after the
    handshake (RFC 3207: MAIL before it is forgotten);
  - a client that stalls in the handshake is cut at smtpd_starttls_timeout
    while other clients are served meanwhile;
  - security level encrypt: 530 before STARTTLS for MAIL, RCPT, RSET,
    VRFY, ETRN, AUTH, DATA (Postfix 3.7's list), mail accepted after;
  - a missing certificate: STARTTLS 454, the smtps port drops the client
    with Postfix's warning;
  - client certificates: smtpd_tls_ask_ccert with a CA, "Trusted TLS
    connection" for a CA-signed one, "Untrusted" for a self-signed one;
    permit_tls_clientcerts (relay_clientcerts by fingerprint) and
    check_ccert_access let a trusted certificate relay, nothing else;
  - session tickets: a second connection resumes the first one's session;
  - an ECDSA and an RSA certificate side by side (smtpd_tls_chain_files).
"""

import os
import re
import socket
import ssl
import subprocess

import pytest

from harness.certs import client_ctx, fingerprint
from harness.smtpclient import Raw
from harness.smtpd import Smtpd


def tls_main(pki, **extra):
    m = {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki.server_cert,
        "smtpd_tls_key_file": pki.server_key,
        "smtpd_tls_loglevel": "1",
        "smtpd_tls_received_header": "yes",
    }
    m.update(extra)
    return m


def starttls(c, ctx, **kw):
    assert c.cmd("EHLO client.example").count("STARTTLS") == 1
    assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    return c.starttls(ctx, **kw)


def send_mail(c):
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<u@mx.test.example>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: tls\r\n\r\nhello\r\n.\r\n")
    assert c.reply().startswith("250")


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_starttls_may(postern_build, pki, version, name):
    with Smtpd(postern_build, main_cf=tls_main(pki)) as sd:
        c = Raw(sd.host, sd.port)
        ehlo = c.cmd("EHLO client.example")
        assert "250-STARTTLS" in ehlo
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        s = c.starttls(client_ctx(version, version))
        assert s.version() == name
        ehlo = c.cmd("EHLO client.example")
        assert "STARTTLS" not in ehlo and ehlo.startswith("250-mx.test.example")
        send_mail(c)
        assert c.cmd("QUIT").startswith("221")
        c.close()
        sd.wait_log(r"^Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: "
                    + re.escape(name) + r" with cipher \S+ \(\d+/\d+ bits\)")
        sd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 mail=1 rcpt=1 "
                    r"data=1 quit=1 commands=7")
        q = sd.queued_bytes()
        assert re.search(rb"\(using " + name.encode() + rb" with cipher \S+ \(\d+/\d+ bits\)", q)
        assert b"(No client certificate requested)" in q
        assert b"with ESMTPS id" in q


def test_protocols_refused(postern_build, pki):
    """>=TLSv1.3: a TLS 1.2-only client fails; >=TLSv1.2 (the seed guide's
    "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"): a TLS 1.1 client fails."""
    for protocols, client_max in ((">=TLSv1.3", ssl.TLSVersion.TLSv1_2),
                                  ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", ssl.TLSVersion.TLSv1_1)):
        with Smtpd(postern_build, main_cf=tls_main(pki, smtpd_tls_protocols=protocols)) as sd:
            c = Raw(sd.host, sd.port)
            c.cmd("EHLO client.example")
            assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
            ctx = client_ctx(maxv=client_max)
            if client_max == ssl.TLSVersion.TLSv1_1:
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.set_ciphers("DEFAULT@SECLEVEL=0")
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(ctx)
                c.cmd("EHLO client.example")
            c.close()
            sd.wait_log(r"SSL_accept error from unknown\[127\.0\.0\.1\]")
            sd.wait_log(r"lost connection after STARTTLS from unknown\[127\.0\.0\.1\]")
            # A handshake that failed is a STARTTLS that failed (Postfix).
            sd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 starttls=0/1 ")
            # Allowed versions still work.
            c = Raw(sd.host, sd.port)
            starttls(c, client_ctx())
            assert c.cmd("NOOP").startswith("250")
            c.close()


def test_openssl_s_client(postern_build, pki):
    """The seed guide's check: openssl s_client -starttls smtp."""
    with Smtpd(postern_build, main_cf=tls_main(pki)) as sd:
        res = subprocess.run(
            ["openssl", "s_client", "-connect", f"{sd.host}:{sd.port}", "-starttls", "smtp",
             "-CAfile", pki.ca_cert, "-verify_return_error", "-ign_eof"],
            input=b"QUIT\r\n", capture_output=True, timeout=30)
        out = res.stdout.decode(errors="replace")
        assert "Verify return code: 0 (ok)" in out, out
        assert re.search(r"New, TLSv1\.3, Cipher is TLS_", out), out
        assert "221 2.0.0 Bye" in out


def test_wrappermode(postern_build, pki):
    with Smtpd(postern_build, main_cf=tls_main(pki),
               services=[("smtps", {"smtpd_tls_wrappermode": "yes"})]) as sd:
        port = sd.extra_ports[0]
        c = Raw(sd.host, port, tls=client_ctx())
        assert c.banner.startswith("220 mx.test.example")
        ehlo = c.cmd("EHLO client.example")
        assert "STARTTLS" not in ehlo
        assert c.cmd("STARTTLS") == "554 5.5.1 Error: TLS already active"
        send_mail(c)
        c.cmd("QUIT")
        c.close()
        sd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 starttls=0/1 mail=1 "
                    r"rcpt=1 data=1 quit=1 commands=5/6")
        # swaks --tlsc speaks implicit TLS too.
        res = subprocess.run(["swaks", "--server", f"{sd.host}:{port}", "--tlsc",
                              "--from", "a@example.org", "--to", "u@mx.test.example",
                              "--timeout", "20"], capture_output=True, timeout=60)
        assert res.returncode == 0, res.stdout.decode(errors="replace")


def test_plaintext_after_starttls_not_executed(postern_build, pki):
    """CVE-2011-0411: "STARTTLS\\r\\nRSET\\r\\nMAIL ..." in one packet: the
    RSET and MAIL must not run inside the TLS session."""
    with Smtpd(postern_build, main_cf=tls_main(pki)) as sd:
        c = Raw(sd.host, sd.port)
        c.cmd("EHLO client.example")
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\n")
        assert c.reply() == "220 2.0.0 Ready to start TLS"
        c.buf = b""  # what follows in plaintext would be a server bug
        c.starttls(client_ctx())
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # Had MAIL run, this would be "503 nested MAIL".
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("STARTTLS") == "554 5.5.1 Error: TLS already active"
        c.cmd("QUIT")
        c.close()
        line = sd.wait_log(r"disconnect from .* ehlo=.*").group(0)
        assert "rset" not in line and "mail=1 " in line, line
        assert "injected" not in sd.log_text()


def test_state_reset_after_starttls(postern_build, pki):
    """RFC 3207 4.2: MAIL given before STARTTLS is forgotten."""
    with Smtpd(postern_build, main_cf=tls_main(pki)) as sd:
        c = Raw(sd.host, sd.port)
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("STARTTLS").startswith("220")
        c.starttls(client_ctx())
        assert c.cmd("RCPT TO:<u@mx.test.example>") == "503 5.5.1 Error: need MAIL command"
        c.close()


def test_stalled_handshake_times_out(postern_build, pki):
    with Smtpd(postern_build, main_cf=tls_main(pki, smtpd_starttls_timeout="2s")) as sd:
        stalled = Raw(sd.host, sd.port)
        stalled.cmd("EHLO client.example")
        assert stalled.cmd("STARTTLS").startswith("220")
        # The event loop is not blocked: another client gets served
        # while the first one hangs in its handshake (checked by order
        # of events in the log, not by time).
        other = Raw(sd.host, sd.port)
        assert other.cmd("EHLO other.example").startswith("250")
        starttls(other, client_ctx())
        assert other.cmd("NOOP").startswith("250")
        assert stalled.closed(timeout=15)
        sd.wait_log(r"SSL_accept error from unknown\[127\.0\.0\.1\]: timed out")
        log = sd.log_text()
        assert log.index("Anonymous TLS connection established") < log.index("timed out")
        sd.wait_log(r"lost connection after STARTTLS from unknown\[127\.0\.0\.1\]")
        other.close()


def test_encrypt_level(postern_build, pki):
    with Smtpd(postern_build, main_cf=tls_main(pki, smtpd_tls_security_level="encrypt")) as sd:
        c = Raw(sd.host, sd.port)
        c.cmd("EHLO client.example")
        for cmd in ("MAIL FROM:<a@example.org>", "RCPT TO:<u@mx.test.example>", "RSET",
                    "VRFY u", "ETRN example.org", "AUTH PLAIN AGEAYg==", "DATA",
                    "BDAT 1 LAST"):
            assert c.cmd(cmd) == "530 5.7.0 Must issue a STARTTLS command first", cmd
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("STARTTLS").startswith("220")
        c.starttls(client_ctx())
        c.cmd("EHLO client.example")
        send_mail(c)
        c.close()


def test_missing_certificate(postern_build, pki, owner_tmp_path):
    missing = str(owner_tmp_path / "missing.pem")
    main = tls_main(pki, smtpd_tls_cert_file=missing, smtpd_tls_key_file=missing)
    with Smtpd(postern_build, main_cf=main,
               services=[("smtps", {"smtpd_tls_wrappermode": "yes"})]) as sd:
        c = Raw(sd.host, sd.port)
        assert "250-STARTTLS" in c.cmd("EHLO client.example")
        assert c.cmd("STARTTLS") == "454 4.7.0 TLS not available due to local problem"
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        c.close()
        sd.wait_log(r"TLS not available: .*missing\.pem")
        s = socket.create_connection((sd.host, sd.extra_ports[0]), timeout=10)
        s.settimeout(10)
        assert s.recv(100) == b""
        s.close()
        sd.wait_log(r"warning: Wrapper-mode request dropped from unknown\[127\.0\.0\.1\] for "
                    r"service \S+\. TLS context initialization failed\.")


def test_client_certificates(postern_build, pki):
    fp = fingerprint(pki.client_cert)
    relay = os.path.join(os.path.dirname(pki.ca_cert), "relay_clientcerts")
    with open(relay, "w") as f:
        f.write(f"{fp} client.test.example\n")
    main = tls_main(pki, smtpd_tls_ask_ccert="yes", smtpd_tls_CAfile=pki.ca_cert,
                    mynetworks="192.0.2.0/24", relay_clientcerts=f"texthash:{relay}",
                    smtpd_relay_restrictions="permit_tls_clientcerts, reject_unauth_destination")
    with Smtpd(postern_build, main_cf=main) as sd:
        # Trusted (CA-signed, fingerprint listed): may relay.
        c = Raw(sd.host, sd.port)
        starttls(c, client_ctx(cert=pki.client_cert, key=pki.client_key))
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
        c.close()
        sd.wait_log(r"Trusted TLS connection established from unknown\[127\.0\.0\.1\]")
        # Untrusted (self-signed): no relay.
        c = Raw(sd.host, sd.port)
        starttls(c, client_ctx(cert=pki.rogue_cert, key=pki.rogue_key))
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<x@remote.example>").startswith("554 5.7.1")
        c.close()
        sd.wait_log(r"Untrusted TLS connection established from unknown\[127\.0\.0\.1\]")
        # No certificate: no relay.
        c = Raw(sd.host, sd.port)
        starttls(c, client_ctx())
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<x@remote.example>").startswith("554 5.7.1")
        c.close()


def test_check_ccert_access(postern_build, pki, owner_tmp_path):
    fp = fingerprint(pki.client_cert)
    table = str(owner_tmp_path / "ccert")
    with open(table, "w") as f:
        f.write(f"{fp} OK\n")
    main = tls_main(pki, smtpd_tls_ask_ccert="yes", smtpd_tls_CAfile=pki.ca_cert,
                    mynetworks="192.0.2.0/24",
                    smtpd_relay_restrictions=f"check_ccert_access texthash:{table}, "
                                             "reject_unauth_destination")
    with Smtpd(postern_build, main_cf=main) as sd:
        for cert, key, want in ((pki.client_cert, pki.client_key, "250"),
                                (None, None, "554")):
            c = Raw(sd.host, sd.port)
            starttls(c, client_ctx(cert=cert, key=key))
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<a@example.org>")
            assert c.cmd("RCPT TO:<x@remote.example>").startswith(want)
            c.close()


def test_session_resumption(postern_build, pki, owner_tmp_path):
    main = tls_main(pki, data_directory=str(owner_tmp_path))
    with Smtpd(postern_build, main_cf=main) as sd:
        ctx = client_ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        c = Raw(sd.host, sd.port)
        s = starttls(c, ctx)
        assert c.cmd("EHLO client.example").startswith("250")
        session = s.session
        assert not s.session_reused
        c.close()
        c = Raw(sd.host, sd.port)
        s = starttls(c, ctx, session=session)
        assert s.session_reused
        assert c.cmd("NOOP").startswith("250")
        c.close()


def test_chain_files_rsa_and_ecdsa(postern_build, pki, owner_tmp_path):
    rsa = str(owner_tmp_path / "rsa.pem")
    ec = str(owner_tmp_path / "ec.pem")
    for out, key, cert in ((rsa, pki.server_key, pki.server_cert), (ec, pki.ec_key, pki.ec_cert)):
        with open(out, "w") as f:
            f.write(open(key).read() + open(cert).read())
        os.chmod(out, 0o600)
    main = tls_main(pki, smtpd_tls_cert_file="", smtpd_tls_key_file="",
                    smtpd_tls_chain_files=f"{rsa}, {ec}")
    with Smtpd(postern_build, main_cf=main) as sd:
        for sigalg in ("ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256"):
            res = subprocess.run(
                ["openssl", "s_client", "-connect", f"{sd.host}:{sd.port}", "-starttls", "smtp",
                 "-tls1_3", "-sigalgs", sigalg, "-ign_eof"],
                input=b"QUIT\r\n", capture_output=True, timeout=30)
            out = res.stdout.decode(errors="replace")
            assert "221 2.0.0 Bye" in out, out
        # Postfix (OpenSSL 3) names the group of an ECDSA key, the size of
        # an RSA key.
        sd.wait_log(r"server-signature ECDSA \(prime256v1\) server-digest SHA256")
        sd.wait_log(r"server-signature RSA-PSS \(2048 bits\)")


def test_wrappermode_uses_the_mandatory_protocols(postern_build, pki):
    """Postfix 3.7: the wrapper mode is mandatory TLS, so
    smtpd_tls_mandatory_protocols applies on the smtps port even with
    "may" in main.cf (and only there)."""
    main = tls_main(pki, smtpd_tls_mandatory_protocols=">=TLSv1.3")
    with Smtpd(postern_build, main_cf=main,
               services=[("smtps", {"smtpd_tls_wrappermode": "yes"})]) as sd:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            Raw(sd.host, sd.extra_ports[0], tls=client_ctx(maxv=ssl.TLSVersion.TLSv1_2))
        c = Raw(sd.host, sd.extra_ports[0], tls=client_ctx())
        assert c.banner.startswith("220 ")
        c.close()
        # Port 25 ("may"): smtpd_tls_protocols, TLS 1.2 is fine.
        c = Raw(sd.host, sd.port)
        starttls(c, client_ctx(maxv=ssl.TLSVersion.TLSv1_2))
        assert c.cmd("NOOP").startswith("250")
        c.close()


def test_req_ccert(postern_build, pki):
    """smtpd_tls_req_ccert = yes (with encrypt): a client without a
    certificate that verifies is refused right after the handshake."""
    main = tls_main(pki, smtpd_tls_security_level="encrypt", smtpd_tls_req_ccert="yes",
                    smtpd_tls_CAfile=pki.ca_cert)
    with Smtpd(postern_build, main_cf=main) as sd:
        for cert, key in ((None, None), (pki.rogue_cert, pki.rogue_key)):
            c = Raw(sd.host, sd.port)
            starttls(c, client_ctx(cert=cert, key=key))
            assert c.reply() == "421 4.7.1 mx.test.example Error: client certificate not trusted"
            assert c.closed()
        sd.wait_log(r"NOQUEUE: abort: TLS from unknown\[127\.0\.0\.1\]: No client certificate "
                    r"presented")
        sd.wait_log(r"NOQUEUE: abort: TLS from unknown\[127\.0\.0\.1\]: Client certificate not "
                    r"trusted")
        c = Raw(sd.host, sd.port)
        starttls(c, client_ctx(cert=pki.client_cert, key=pki.client_key))
        assert c.cmd("EHLO client.example").startswith("250")
        send_mail(c)
        c.close()
