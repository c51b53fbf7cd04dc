"""A recording TCP relay for the attacker tests of every link.

Forwards a link from one daemon to the other through a port of its own,
and keeps the bytes the connecting side sent in its first session (up to
cap), so that a test can check that nothing travels in the clear and
replay a real session's bytes as an attacker."""
import socket
import ssl
import threading
import time


class Relay:
    def __init__(self, to_port, listen_port=0, cap=1 << 20):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", listen_port))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.to = to_port
        self.cap = cap
        self.rec = bytearray()
        self.first = True
        threading.Thread(target=self.accept, daemon=True).start()

    def connect(self):
        """The far side, which may not listen yet: retried for 30 s."""
        for _ in range(300):
            try:
                return socket.create_connection(("127.0.0.1", self.to))
            except OSError:
                time.sleep(0.1)
        return None

    def accept(self):
        while True:
            try:
                a, _ = self.ls.accept()
            except OSError:
                return
            b = self.connect()
            if b is None:
                a.close()
                continue
            record, self.first = self.first, False
            for s, d, r in ((a, b, record), (b, a, False)):
                threading.Thread(target=self.pump, args=(s, d, r),
                                 daemon=True).start()

    def pump(self, s, d, record):
        try:
            while True:
                x = s.recv(65536)
                if not x:
                    break
                if record and len(self.rec) < self.cap:
                    self.rec += x
                d.sendall(x)
        except OSError:
            pass
        for z in (s, d):
            try:
                z.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def fake_server(port, creds, plain):
    """What an impostor answering on port needs: a listening socket (0.2 s
    accept timeout, so that a stop flag is seen) and, unless plain, a TLS
    server context presenting creds' server certificate."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    ls.settimeout(0.2)
    c = None
    if not plain:
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(creds + "/server-cert.pem",
                          creds + "/server-key.pem")
        c.verify_mode = ssl.CERT_NONE
    return ls, c
