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

Junk must cost the dialer, not the host. A real dialer sends its preamble
with its first bytes, and establish() takes a real parked socket within
moments; junk is what stays silent or stays parked. So one source address
reads at most MAX_READERS_PER_SOURCE preambles at once; when every reader
is busy a newcomer replaces the oldest reader that has been silent for
READER_GRACE; when the parking is full a newcomer from a source with fewer
parked sockets than the busiest source replaces that source's oldest one
(a flood from one address never pushes out a viewer from another). Parked
sockets expire on the accept thread's clock too, so their descriptors come
back even when nothing else arrives. The accept loop survives running out of
descriptors (EMFILE, ENFILE: log once per burst, free the oldest silent
reader, back off briefly, keep serving) and a dial that died in the backlog
(ECONNABORTED); any other error ends it and close() re-raises it.
"""

import errno
import logging
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
MAX_READERS_PER_SOURCE = 4
READER_GRACE = 0.5          # a reader silent this long may be replaced by a newcomer
READER_WAIT = 0.2           # how long a newcomer waits for the reader it replaced to end
ACCEPT_BACKOFF_FIRST = 0.05  # out of descriptors: wait, doubling up to ACCEPT_BACKOFF_MAX
ACCEPT_BACKOFF_MAX = 1.0
QUIET_BEFORE_LOGGING_AGAIN = 30.0  # a burst of EMFILE ends after this long without one
# accept() errors that end one dial, not the listener (the dial died in the backlog)
DIAL_GONE = {errno.ECONNABORTED, errno.EPROTO, errno.EINTR, getattr(errno, "EPERM", -1)}
# accept() errors that mean the process (or the system) is out of descriptors or memory for now
EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

log = logging.getLogger("tagio.net")


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
        self._last_exhausted = None     # monotonic time accept() last ran out of descriptors
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
        backoff = None              # None: not in a burst of accept() failures
        while not self._stop.is_set():
            try:
                sock, addr = self._tcp.accept()
            except socket.timeout:
                self._expire_parked()
                continue
            except OSError as exc:
                backoff = self._accept_failed(exc, backoff)
                if backoff is None:
                    return
                continue
            backoff = None
            self._start_reader(sock, addr)

    def _accept_failed(self, exc, backoff):
        """After an accept() error: the next backoff (0 for a dial that died in the backlog), or
        None when the listener must stop (closed, or an error we cannot wait out)."""
        if self._stop.is_set():
            return None
        if exc.errno in DIAL_GONE:
            return backoff or 0.0
        if exc.errno not in EXHAUSTED:
            self.error = exc
            return None
        self._say_exhausted(exc)
        self._evict_silent_reader()
        backoff = min(ACCEPT_BACKOFF_MAX, (backoff or ACCEPT_BACKOFF_FIRST / 2) * 2)
        self._stop.wait(backoff)
        return backoff

    def _say_exhausted(self, exc):
        """Log running out of descriptors once per burst: a flood must not flood the log too."""
        now, last = time.monotonic(), self._last_exhausted
        self._last_exhausted = now
        if last is None or now - last > QUIET_BEFORE_LOGGING_AGAIN:
            log.warning("the direct listener cannot accept connections for now (%s); "
                        "freeing silent ones and trying again", exc.strerror or exc)

    def _start_reader(self, sock, addr):
        """A thread that reads the preamble of `sock`, if the source and the host have room."""
        if not self._reader_slot(addr[0]):
            sock.close()            # over the source's share, or every reader is busy: shed it
            return
        reader = threading.Thread(target=self._read_preamble, args=(sock, addr), daemon=True)
        reader.source, reader.started = addr[0], time.monotonic()   # for the bounds above
        with self._cond:
            self._reading[reader] = sock
        reader.start()

    def _reader_slot(self, source) -> bool:
        """Take a reader slot for a dial from `source`; replaces the oldest silent reader when
        every slot is busy."""
        with self._cond:
            same = sum(1 for reader in self._reading if getattr(reader, "source", None) == source)
        if same >= MAX_READERS_PER_SOURCE:
            return False
        if self._readers.acquire(blocking=False):
            return True
        return self._evict_silent_reader() and self._readers.acquire(timeout=READER_WAIT)

    def _evict_silent_reader(self) -> bool:
        """End the reader that has waited longest for a preamble, if it has waited READER_GRACE
        (a real dialer's preamble comes with its first bytes). True when one was ended."""
        now = time.monotonic()
        with self._cond:
            silent = [(getattr(reader, "started", now), sock) for reader, sock in self._reading.items()]
        silent = [entry for entry in silent if entry[0] <= now - READER_GRACE]
        if not silent:
            return False
        _shutdown(min(silent, key=lambda entry: entry[0])[1])    # its recv() ends; it closes
        return True

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
            if not self._room_to_park(sock) or self._stop.is_set():
                sock.close()
                return False
            self._pending.append((time.monotonic() + PENDING_TTL, preamble, sock))
            self._cond.notify_all()
            return True

    def _room_to_park(self, sock) -> bool:
        """(Holding _cond.) Room for one more parked socket: expired ones go first; when the
        parking is still full, a socket from a source with fewer parked ones than the busiest
        source replaces that source's oldest one."""
        self._expire(time.monotonic())
        if len(self._pending) < MAX_PENDING:
            return True
        counts = {}
        for entry in self._pending:
            counts[_source(entry[2])] = counts.get(_source(entry[2]), 0) + 1
        busiest = max(counts, key=counts.get)
        if counts.get(_source(sock), 0) + 1 >= counts[busiest]:
            return False            # the newcomer's source already has its share
        oldest = next(entry for entry in self._pending if _source(entry[2]) == busiest)
        self._pending.remove(oldest)
        oldest[2].close()
        return True

    def _expire_parked(self):
        with self._cond:
            self._expire(time.monotonic())

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
            _shutdown(sock)         # ends its blocked recv() at once
            reader.join(timeout=JOIN_TIMEOUT)
        self.udp.close()
        if self.error is not None:
            error, self.error = self.error, None
            raise TransportError(f"the direct listener failed: {error}") from error


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _source(sock):
    """The address a connected socket came from, or None once it is gone."""
    try:
        return sock.getpeername()[0]
    except OSError:
        return None
