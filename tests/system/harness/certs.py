"""Throw-away certificates for TLS system tests, made with the openssl
command line in a temp dir (never committed):

    pki = make_pki(dir)     # CA, server (CN mx.test.example), a client
                            # signed by the CA, and a self-signed client
    pki.server_cert, pki.server_key, pki.ca_cert, pki.client_cert, ...

Keys are mode 0600, as certbot writes them.
"""

import os
import ssl
import subprocess


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path, ecdsa=False):
    if ecdsa:
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    else:
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    os.chmod(path, 0o600)


def selfsigned(dir, name, cn, ecdsa=False, days=30):
    """A self-signed certificate and its key: (cert, key)."""
    key = os.path.join(dir, f"{name}-key.pem")
    cert = os.path.join(dir, f"{name}-cert.pem")
    _key(key, ecdsa)
    _run("req", "-new", "-x509", "-key", key, "-out", cert, "-days", str(days),
         "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}")
    return cert, key


def signed(dir, name, cn, ca_cert, ca_key, ecdsa=False):
    """A certificate for cn signed by the CA: (cert, key)."""
    key = os.path.join(dir, f"{name}-key.pem")
    csr = os.path.join(dir, f"{name}.csr")
    cert = os.path.join(dir, f"{name}-cert.pem")
    _key(key, ecdsa)
    _run("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
    ext = os.path.join(dir, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{cn}\n")
    _run("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "30", "-extfile", ext)
    return cert, key


def fingerprint(cert, digest="sha256"):
    """The certificate's fingerprint as Postfix prints it (AA:BB:...)."""
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", f"-{digest}"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1].upper()


class Pki:
    pass


def make_pki(dir):
    os.makedirs(dir, exist_ok=True)
    os.chmod(dir, 0o755)
    p = Pki()
    p.dir = dir
    p.ca_cert, p.ca_key = selfsigned(dir, "ca", "Test CA")
    p.server_cert, p.server_key = signed(dir, "server", "mx.test.example", p.ca_cert, p.ca_key)
    p.ec_cert, p.ec_key = signed(dir, "server-ec", "mx.test.example", p.ca_cert, p.ca_key,
                                 ecdsa=True)
    p.client_cert, p.client_key = signed(dir, "client", "client.test.example", p.ca_cert,
                                         p.ca_key)
    p.rogue_cert, p.rogue_key = selfsigned(dir, "rogue", "rogue.test.example")
    return p


def client_ctx(minv=None, maxv=None, cert=None, key=None):
    """A TLS client context that does not verify the server (test
    certificates), optionally limited to protocol versions and with a
    client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx
