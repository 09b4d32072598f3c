"""Free TCP ports on loopback.

Used by the server classes in this package (and by system tests that need a
port for a postern listener) to pick a port nobody is listening on.
"""

import socket


def free_port(host="127.0.0.1"):
    """Return a TCP port on host that was free a moment ago.

    The kernel picks it when we bind port 0.  There is a small window between
    closing our socket and the server binding the port; Server.start() retries
    with a new port if the server then reports "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host, port, timeout=0.5):
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
