"""testlib.py - helpers shared by the Python tests (imported with the
tests/ folder put on sys.path by each test)."""
import socket


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
