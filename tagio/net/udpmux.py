"""One UDP socket shared by every direct-UDP session of a client.

Theory of operation: the socket whose reflexive address the relay learned
(and told our peers) must also be the one we punch and stream from, so it is
long-lived and shared. A single receive thread reads it and routes each
datagram by the 4-byte connection id in its header (rudp_codec) to the bounded
queue registered for that id; a datagram for nobody is dropped. Datagrams that
are not ours at all (e.g. the relay's reflexive-address answers) go to a small
bounded `other` queue, which `discovery_socket()` exposes with the few socket
methods RelayClient.discover_udp needs. A full queue drops, as a congested
network would: the reliable stream retransmits.
"""

import queue
import socket
import threading

from tagio.errors import TransportError, TransportTimeout
from tagio.net import rudp_codec

OTHER_QUEUE = 64
RECV_BUFFER = 4 * 1024 * 1024  # socket buffer; the kernel may cap it


class UdpMux:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECV_BUFFER)
            except OSError:
                pass
        sock.settimeout(0.2)  # lets the reader notice `_stop`
        self.other = queue.Queue(OTHER_QUEUE)
        self._routes = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error = None
        self._thread = threading.Thread(target=self._read_loop, name="udp-mux", daemon=True)
        self._thread.start()

    @classmethod
    def bind(cls, address=("127.0.0.1", 0)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(address)
        return cls(sock)

    def address(self):
        return self.sock.getsockname()

    def register(self, conn_id: bytes, inbox: "queue.Queue"):
        """Deliver (datagram, addr) for `conn_id` into `inbox` from now on."""
        with self._lock:
            self._routes[conn_id] = inbox

    def unregister(self, conn_id: bytes, inbox=None):
        with self._lock:
            if inbox is None or self._routes.get(conn_id) is inbox:
                self._routes.pop(conn_id, None)

    def sendto(self, data: bytes, addr) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass  # unreachable candidates and full buffers are ordinary on UDP

    def _read_loop(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(rudp_codec.MAX_DATAGRAM + 1)
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                if getattr(exc, "winerror", None) == 10054:  # Windows: ICMP port unreachable
                    continue
                self.error = exc
                return
            self._route(data, addr)

    def _route(self, data, addr):
        if rudp_codec.is_tagio_datagram(data):
            with self._lock:
                inbox = self._routes.get(rudp_codec.conn_id_of(data))
            target = inbox
        else:
            target = self.other
        if target is None:
            return
        try:
            target.put_nowait((data, addr))
        except queue.Full:
            pass

    def discovery_socket(self):
        return _DiscoverySocket(self)

    def close(self):
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self.sock.close()


class _DiscoverySocket:
    """The socket subset RelayClient.discover_udp uses, reading the mux's `other` queue."""

    def __init__(self, mux: UdpMux):
        self._mux = mux
        self._timeout = None

    def sendto(self, data, addr):
        self._mux.sock.sendto(data, addr)
        return len(data)

    @property
    def family(self):
        return self._mux.sock.family

    def settimeout(self, seconds):
        self._timeout = seconds

    def gettimeout(self):
        return self._timeout

    def getsockname(self):
        return self._mux.address()

    def fileno(self):
        return self._mux.sock.fileno()

    def recvfrom(self, bufsize=65536):
        try:
            data, addr = self._mux.other.get(timeout=self._timeout)
        except queue.Empty:
            raise socket.timeout("timed out") from None
        return data[:bufsize], addr

    def recv(self, bufsize=65536):
        return self.recvfrom(bufsize)[0]


def wait_error(mux: UdpMux):
    """Raise the reader's exception, if it died of one."""
    if mux.error is not None:
        raise TransportError(f"UDP socket failed: {mux.error}") from mux.error
    if mux._stop.is_set():
        raise TransportTimeout("UDP socket closed")
