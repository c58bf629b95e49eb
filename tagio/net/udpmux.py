"""One UDP socket shared by every direct-UDP session of a client.

Theory of operation: the socket whose reflexive address the relay learned
(and told our peers) must also be the one we punch and stream from, so it is
long-lived and shared. A single receive thread reads it and routes each
datagram by the 4-byte connection id in its header (protocol.rudp) to the bounded
queue registered for that id; a datagram for nobody is dropped. The reader
takes datagrams in batches (one blocking read, then what is already queued)
and afterwards calls `flush()` on every target of the batch that has one:
RudpStream registers such a target and does its protocol work right there,
in this thread, which saves a thread hand-off per datagram. Datagrams that
are not ours at all (e.g. the relay's reflexive-address answers) go to a small
bounded `other` queue, which `discovery_socket()` exposes with the few socket
methods RelayClient.discover_udp needs. A full queue drops, as a congested
network would: the reliable stream retransmits.

On Windows recvfrom also fails for one datagram's sake: one larger than the
buffer (WSAEMSGSIZE) or an ICMP error for an earlier send (WSAECONNRESET). Those
cost that datagram only (counted in `datagram_errors`); the reader reads on, as
every punched path and direct-UDP session depends on it. ICMP reports are also
switched off on the socket (tagio.platform.disable_udp_connreset).
"""

import queue
import socket
import threading

from tagio.errors import TransportError
from tagio.platform import datagram_error, disable_udp_connreset
from tagio.protocol import rudp as rudp_codec

OTHER_QUEUE = 64
RECV_BUFFER = 4 * 1024 * 1024  # socket buffer; the kernel may cap it
READ_BATCH = 64  # datagrams read per wake-up before the targets are flushed
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", None)  # POSIX only
_MIN_OURS = rudp_codec.HEADER.size + rudp_codec.MAC_LEN
_OUR_TYPES = frozenset(int(code) for code in rudp_codec.PacketType)


class Inbox(queue.SimpleQueue):
    """A bounded datagram queue: the C SimpleQueue (about 25x cheaper per datagram than
    queue.Queue) with a size check on put; when full, put_nowait raises queue.Full and the
    datagram is dropped, as a congested network would."""

    def __new__(cls, maxsize):
        return super().__new__(cls)

    def __init__(self, maxsize):
        super().__init__()
        self.maxsize = maxsize

    def put_nowait(self, item):
        if self.qsize() >= self.maxsize:
            raise queue.Full
        super().put_nowait(item)


class UdpMux:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECV_BUFFER)
            except OSError:
                pass
        sock.settimeout(None)  # blocking reads are cheapest; close() wakes the reader with a datagram
        disable_udp_connreset(sock)  # Windows; a no-op elsewhere
        self.datagram_errors = 0  # datagrams lost to a recvfrom error of their own (Windows)
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

    def sendmany(self, datagrams, addr) -> None:
        """sendto() for each datagram, in order (one Python call for a burst)."""
        send = self.sock.sendto
        for data in datagrams:
            try:
                send(data, addr)
            except OSError:
                pass  # as in sendto()

    def _read_loop(self):
        while not self._stop.is_set():
            touched = {}  # targets of this batch, in order; each flushed once at the end
            try:
                self._read_batch(touched)
            except OSError as exc:
                if self._stop.is_set():
                    return
                if datagram_error(exc) is not None:
                    self.datagram_errors += 1  # that datagram is lost; the socket serves on
                else:
                    self.error = exc
            finally:
                self._flush(touched)
            if self.error is not None:
                return

    def _read_batch(self, touched):
        """Block for one datagram, then take what else is queued (up to READ_BATCH) without
        waiting, so a stream handles a burst in one go and answers it with one ack."""
        self._route(*self.sock.recvfrom(rudp_codec.MAX_DATAGRAM + 1), touched)
        if _DONTWAIT is None:
            return  # no per-call non-blocking flag (Windows): batches of one
        for _ in range(READ_BATCH - 1):
            try:
                data, addr = self.sock.recvfrom(rudp_codec.MAX_DATAGRAM + 1, _DONTWAIT)
            except BlockingIOError:
                return
            self._route(data, addr, touched)

    def _route(self, data, addr, touched):
        if not data:
            return  # close()'s wake-up call, or an empty probe: nothing to deliver
        if len(data) >= _MIN_OURS and data[1] == rudp_codec.VERSION and data[0] in _OUR_TYPES:
            # is_tagio_datagram() inlined (hot path). A dict read is atomic in CPython;
            # register/unregister still take the lock.
            target = self._routes.get(data[2:6])
        else:
            target = self.other
        if target is None:
            return
        try:
            target.put_nowait((data, addr))
        except queue.Full:
            return
        touched[target] = None

    @staticmethod
    def _flush(touched):
        for target in touched:
            flush = getattr(target, "flush", None)  # plain queues have none: their reader polls
            if flush is not None:
                flush()

    def discovery_socket(self):
        return _DiscoverySocket(self)

    def close(self):
        """Stop and join the reader, close the socket; re-raise (as TransportError) a
        failure that ended the reader."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._wake_reader()
            self._thread.join(timeout=2.0)
        self.sock.close()
        if self.error is not None:
            error, self.error = self.error, None
            raise TransportError(f"the UDP socket failed: {error}") from error

    def _wake_reader(self):
        host, port = self.sock.getsockname()[:2]
        try:
            self.sock.sendto(b"", ("127.0.0.1" if host in ("0.0.0.0", "") else host, port))
        except OSError:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # Linux wakes a blocked recvfrom on this
            except OSError:
                pass


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
