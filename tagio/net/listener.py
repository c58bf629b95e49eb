"""DirectListener: where peers dial us directly, and the preamble that says what for.

Theory of operation. A direct TCP connection starts with a preamble,
encoded and decoded by tagio.protocol.direct:

    TGDT | version | session_id (16) | tag (16)                    (relay-brokered session)
    TGDL | version | session_id (16) | viewer_id (9) | tag (16)    (LAN session, no relay)

The tag (candidates.tcp_preamble_tag) binds the connection to the session
and the dialer's role; establish() checks it when it takes the socket. The
listener only reads the preamble (bounded: its exact size, PREAMBLE_TIMEOUT
seconds, MAX_PREAMBLE_READERS at once) and parks the socket under its
session id (MAX_PENDING, PENDING_TTL) until establish() for that session
takes it. A LAN preamble also queues a LanRequest in `lan_requests` (bounded)
so the host learns about a session no relay announced; when the host has set
`lan_check(preamble) -> bool` (connect.lan_tag_ok), a LAN preamble whose tag
fails it is dropped here, before it can become an attempt that counts. The same port is
bound for UDP and handed to a UdpMux (`udp`) for punching and rudp.
"""

import queue
import socket
import threading
import time
from dataclasses import dataclass

from tagio.errors import ConnectionClosed, RemoteProtocolError, TransportError, TransportTimeout
from tagio.net.candidates import candidates_for
from tagio.net.stream import recv_exactly
from tagio.net.udpmux import UdpMux
from tagio.protocol.direct import (  # noqa: F401  (the preamble layout lives in protocol/direct.py)
    BODIES, HEADER, VERSION, Preamble, body_size, decode_preamble, encode_preamble,
)

PREAMBLE_TIMEOUT = 3.0
MAX_PENDING = 32
MAX_PREAMBLE_READERS = 16
PENDING_TTL = 15.0
MAX_LAN_REQUESTS = 8
JOIN_TIMEOUT = 1.0


@dataclass(frozen=True)
class LanRequest:
    session_id: bytes
    viewer_id: str
    address: tuple  # where the dial came from


def read_preamble(sock) -> Preamble:
    """The preamble, read within PREAMBLE_TIMEOUT in total; raises RemoteProtocolError
    (malformed, closed, too slow) or OSError (socket.timeout included)."""
    # One deadline for the whole preamble: a per-recv timeout alone would let a peer that
    # trickles one byte at a time hold a reader slot for minutes.
    deadline = time.monotonic() + PREAMBLE_TIMEOUT
    try:
        header = recv_exactly(sock, HEADER.size, deadline)
        preamble = decode_preamble(header + recv_exactly(sock, body_size(header), deadline))
    except TransportTimeout:
        raise RemoteProtocolError("direct connection preamble took too long") from None
    except ConnectionClosed:
        raise RemoteProtocolError("direct connection closed during the preamble") from None
    sock.settimeout(None)
    return preamble


def _bind_pair(bind):
    """A TCP listener and a UDP socket on the same port (so one candidate serves both)."""
    host, port = bind
    for _attempt in range(20):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # POSIX: allow quick restarts
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, port))
        except OSError:
            tcp.close()  # e.g. the port is taken: do not leak the socket
            raise
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((host, tcp.getsockname()[1]))
            return tcp, udp
        except OSError:
            tcp.close()
            udp.close()
            if port:
                raise
    raise TransportError("could not bind a TCP and a UDP socket on one port")


class DirectListener:
    """A TCP listener plus the shared UDP socket (`udp`, a UdpMux) for direct paths."""

    def __init__(self, bind=("0.0.0.0", 0)):
        self._tcp, udp_sock = _bind_pair(bind)
        self._tcp.listen(16)
        self._tcp.settimeout(0.2)
        self.udp = UdpMux(udp_sock)
        self.lan_requests = queue.Queue(MAX_LAN_REQUESTS)
        self._pending = []  # [(expiry, Preamble, sock)]
        self._cond = threading.Condition()
        self._readers = threading.BoundedSemaphore(MAX_PREAMBLE_READERS)
        self._reading = {}  # thread -> socket whose preamble it is reading (for close())
        self._stop = threading.Event()
        self.error = None
        self.lan_check = None  # set by the host: preamble -> bool, the LAN tag check
        self._thread = threading.Thread(target=self._accept_loop, name="direct-accept", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._tcp.getsockname()[1]

    def candidates(self) -> list:
        """[(ip, port)] where peers may reach us (TCP and UDP share the port)."""
        host, port = self._tcp.getsockname()
        return candidates_for(host, port)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, addr = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    self.error = exc
                return
            if not self._readers.acquire(blocking=False):
                sock.close()  # too many half-open connections: shed load
                continue
            reader = threading.Thread(target=self._read_preamble, args=(sock, addr), daemon=True)
            with self._cond:
                self._reading[reader] = sock
            reader.start()

    def _read_preamble(self, sock, addr):
        try:
            preamble = read_preamble(sock)
        except (OSError, RemoteProtocolError):
            sock.close()
            return
        finally:
            with self._cond:
                self._reading.pop(threading.current_thread(), None)
            self._readers.release()
        lan = preamble.viewer_id is not None
        if lan and self.lan_check is not None and not self.lan_check(preamble):
            sock.close()  # a wrong LAN tag: junk, dropped before it costs the host an attempt
            return
        if self._park(preamble, sock) and lan:
            try:
                self.lan_requests.put_nowait(LanRequest(preamble.session_id, preamble.viewer_id, addr[:2]))
            except queue.Full:
                pass  # the parked socket expires on its own

    def _park(self, preamble, sock) -> bool:
        with self._cond:
            self._expire(time.monotonic())
            if len(self._pending) >= MAX_PENDING or self._stop.is_set():
                sock.close()
                return False
            self._pending.append((time.monotonic() + PENDING_TTL, preamble, sock))
            self._cond.notify_all()
            return True

    def _expire(self, now):
        keep = []
        for entry in self._pending:
            if entry[0] > now:
                keep.append(entry)
            else:
                entry[2].close()
        self._pending = keep

    def take(self, session_id: bytes, timeout: float, cancelled=lambda: False):
        """(sock, tag) of a parked connection for `session_id`, or None after `timeout`
        (or as soon as `cancelled()` is true after a wake())."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._expire(time.monotonic())
            while True:
                for index, (_expiry, preamble, sock) in enumerate(self._pending):
                    if preamble.session_id == session_id:
                        del self._pending[index]
                        return sock, preamble.tag
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set() or cancelled():
                    return None
                self._cond.wait(remaining)

    def wake(self):
        """Make every take() re-check its `cancelled` condition now."""
        with self._cond:
            self._cond.notify_all()

    def close(self):
        """Stop accepting, close parked connections, join every thread; re-raise a
        failure that ended the accept thread (as TransportError)."""
        self._stop.set()
        self._thread.join(timeout=JOIN_TIMEOUT)
        self._tcp.close()
        with self._cond:
            for entry in self._pending:
                entry[2].close()
            self._pending = []
            readers = dict(self._reading)
            self._cond.notify_all()
        for reader, sock in readers.items():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # ends its blocked recv() at once
            except OSError:
                pass
            reader.join(timeout=JOIN_TIMEOUT)
        self.udp.close()
        if self.error is not None:
            error, self.error = self.error, None
            raise TransportError(f"the direct listener failed: {error}") from error
