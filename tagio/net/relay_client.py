"""Client side of the relay protocol: register, heartbeat, rendezvous, relay streams, UDP discovery.

Theory of operation
-------------------
`connect()` opens one TCP (optionally TLS) control connection, sends Hello,
signs the relay's fresh Challenge with the client's Ed25519 key (and, for a
private relay, proves the shared secret with an HMAC over the same nonce, so
the secret never travels), and waits for Registered. Two threads then run
until close(): the reader dispatches every frame (PeerInfo for us as host ->
the bounded `incoming` queue; PeerInfo/Error answering our ConnectRequest ->
the waiting request_peer call, matched by session id), and the heartbeat
thread sends a Heartbeat every interval and declares the relay lost when no
echo arrived for three intervals. An exception that ends either thread is
kept and re-raised by close().

`open_relay(token)` opens a separate connection, binds the token and returns
the raw byte Stream once the relay says RelayReady; it reads exactly one
frame so no relayed byte is swallowed. `discover_udp(sock)` asks the relay's
UDP port (same number) what address `sock` appears from; it also records that
address at the relay so the partner sees it as peer_udp_addr.
"""

import logging
import os
import queue
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from tagio.protocol.ids import normalize_id
from tagio.errors import (ConnectionClosed, LocalProtocolError, ProtocolError, RelayError,
                          RemoteProtocolError, TagioError, TransportError, TransportTimeout)
from tagio.net.peer import PeerInfo
from tagio.net.stream import SocketStream, recv_exactly
from tagio.protocol.address import parse_address, parse_relay_url  # noqa: F401  (one parser for both)
from tagio.protocol import codes, framing
from tagio.protocol import relay as m
from tagio.protocol.websocket import (OP_CLOSE, OP_PONG, WS_PATH, WsDecoder, accept_key, data_of,
                                      new_client_key, ws_frame)

log = logging.getLogger("tagio.relay_client")
INCOMING_MAX = 16
HEARTBEAT_MISSES = 3


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: Exception = None


class RelayClient:
    def __init__(self, address, identity, *, auth_secret=None, ssl_context=None, local_candidates=(),
                 udp_addr=None, timeout=10.0, server_hostname=None, source_ip=None, websocket=False,
                 ws_path=WS_PATH, nat_hint=""):
        self.address = tuple(address)
        self.identity = identity
        self.auth_secret = auth_secret or None
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or self.address[0]
        self.local_candidates = [tuple(a) for a in local_candidates]
        self.udp_addr = tuple(udp_addr) if udp_addr else None
        self.timeout = timeout
        self.source_ip = source_ip  # optional local address to connect from (tests, multi-homed hosts)
        self.nat_hint = nat_hint  # free-form ("cone", "symmetric"), passed to partners in PeerInfo
        self.websocket = websocket  # tunnel through `GET ws_path` + Upgrade: websocket (HTTPS-only hosts)
        self.ws_path = ws_path
        self.registered = None
        self.incoming = queue.Queue(maxsize=INCOMING_MAX)
        self.online = False
        self.last_error = None
        self.last_error_code = None  # machine-readable code of the relay's last Error, e.g. "replaced"
        self._sock = None
        self._send_lock = threading.Lock()
        self._pending = {}
        self._pending_lock = threading.Lock()
        self._lost_lock = threading.Lock()
        self._stop = threading.Event()
        self._down = threading.Event()
        self._threads = []
        self._thread_error = None
        self._last_echo = 0.0

    # -- connection -----------------------------------------------------------------------
    def _open(self, timeout):
        """A connected (TLS-wrapped if configured) socket; raises TransportError/TransportTimeout."""
        host, port = self.address
        try:
            source = (self.source_ip, 0) if self.source_ip else None
            sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
        except socket.timeout as exc:
            raise TransportTimeout(f"relay {host}:{port} did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise TransportError(f"cannot reach relay {host}:{port}: {exc.strerror or exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname)
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                sock.close()
                raise TransportError(f"TLS handshake with relay {host}:{port} failed: {exc}") from exc
        if not self.websocket:
            return sock
        try:
            return _translate(lambda s: WsSocket.upgrade(s, self.server_hostname, port, self.ws_path), sock)
        except BaseException:
            sock.close()
            raise

    def connect(self) -> m.Registered:
        """Register at the relay; raises RelayError (code, text), TransportError, TransportTimeout."""
        if self.online:
            raise LocalProtocolError("already connected")
        self._join_threads()
        if self._sock is not None:  # left over from a lost connection
            self._sock.close()
        sock = self._open(self.timeout)
        try:
            registered = _translate(self._register, sock)
        except BaseException:
            sock.close()
            raise
        self._sock, self.registered, self.online, self.last_error = sock, registered, True, None
        self._stop.clear()
        self._down = threading.Event()  # set when this connection ends, however it ends
        self._last_echo = time.monotonic()
        sock.settimeout(None)
        self._threads = [threading.Thread(target=self._guard, args=(fn,), name=f"tagio-relay-{name}", daemon=True)
                         for name, fn in (("reader", self._reader), ("heartbeat", self._heartbeat))]
        for t in self._threads:
            t.start()
        return registered

    def _register(self, sock) -> m.Registered:
        sock.settimeout(self.timeout)
        sock.sendall(m.Hello().encode())
        challenge = _expect(read_frame(sock), m.Challenge)
        if challenge.auth_required and not self.auth_secret:
            raise RelayError(codes.AUTH_REQUIRED, "this relay is private: it needs a relay secret")
        ident = self.identity
        signature = ident.sign(m.registration_message(challenge.nonce, ident.id, ident.public_key))
        proof = m.auth_proof(self.auth_secret, challenge.nonce, ident.id) if self.auth_secret else b""
        sock.sendall(m.Register(ident.id, ident.public_key, signature, proof, self._candidates(),
                                self.nat_hint).encode())
        return _expect(read_frame(sock), m.Registered)

    def _candidates(self):
        cands = list(self.local_candidates)
        if self.udp_addr and self.udp_addr not in cands:
            cands.append(self.udp_addr)
        return cands[:16]

    def _send(self, message):
        sock = self._sock
        if sock is None or not self.online:
            raise ConnectionClosed(self.last_error or "not connected to the relay")
        try:
            with self._send_lock:
                sock.sendall(message.encode())
        except OSError as exc:
            self._lost(f"connection to the relay lost: {exc}")
            raise ConnectionClosed(self.last_error) from exc

    # -- threads ---------------------------------------------------------------------------------
    def _guard(self, fn):
        try:
            fn()
        except TagioError as exc:
            self._lost(str(exc))
        except BaseException as exc:  # a bug: keep it for close()
            self._thread_error = exc
            self._lost(f"internal error: {exc}")

    def _reader(self):
        while not self._stop.is_set():
            try:
                frame = read_frame(self._sock)
            except (ConnectionClosed, OSError) as exc:
                if not self._stop.is_set():
                    self._lost(f"the relay closed the connection ({exc})")
                return
            if frame.type_code not in m.MESSAGE_TYPES:
                log.debug("ignoring message type %d from a newer relay", frame.type_code)
                continue
            msg = m.decode_message(frame)
            HANDLERS.get(type(msg), RelayClient._on_other)(self, msg)

    def _heartbeat(self):
        interval = max(0.05, self.registered.heartbeat_interval)
        seq = 0
        while not self._down.wait(interval):
            if time.monotonic() - self._last_echo > interval * HEARTBEAT_MISSES:
                self._lost("the relay stopped answering heartbeats")
                return
            seq = (seq + 1) & 0xFFFFFFFF
            try:
                self._send(m.Heartbeat(seq))
            except ConnectionClosed:
                return

    def _lost(self, reason):
        with self._lost_lock:  # reader, heartbeat and callers may all notice at once: first one wins
            if not self.online:
                return
            self.online = False
            self.last_error = reason
        self._down.set()
        log.info("relay connection lost: %s", reason)
        _shutdown(self._sock)
        with self._pending_lock:
            waiting = list(self._pending.values())
        for p in waiting:
            p.error = ConnectionClosed(reason)
            p.done.set()

    # -- frame handlers (reader thread) -------------------------------------------------------------
    def _on_peer_info(self, msg):
        info = PeerInfo.from_message(msg)
        if info.role == "host":
            try:
                self.incoming.put_nowait(info)
            except queue.Full:
                log.warning("dropping a connection request from %s: too many pending", info.peer_id)
            return
        self._resolve(msg.session_id, result=info)

    def _on_lookup_result(self, msg):
        self._resolve(msg.ref, result=msg.state)

    def _on_error(self, msg):
        if msg.ref and self._resolve(msg.ref, error=RelayError(msg.code, msg.text)):
            return
        self.last_error_code = msg.code
        # An Error that answers no request is the relay's last word before it closes us.
        self._lost(f"{msg.text} ({msg.code})")

    def _on_heartbeat(self, msg):
        self._last_echo = time.monotonic()

    def _on_bye(self, msg):
        self._lost(f"the relay said goodbye: {msg.reason}")

    def _on_other(self, msg):
        log.debug("ignoring unexpected %s from the relay", type(msg).__name__)

    def _resolve(self, session_id, result=None, error=None) -> bool:
        with self._pending_lock:
            pending = self._pending.get(session_id)
        if pending is None:
            return False
        pending.result, pending.error = result, error
        pending.done.set()
        return True

    # -- requests -------------------------------------------------------------------------------------
    def request_peer(self, target_id: str, session_id: bytes, timeout=10.0) -> PeerInfo:
        """Ask the relay to introduce us to `target_id`; raises RelayError, ConnectionClosed, TransportTimeout."""
        return self._request(m.ConnectRequest(normalize_id(target_id), session_id), session_id,
                             timeout, "connect request")

    def lookup(self, target_id: str, timeout=10.0) -> str:
        """"online", "offline" or "unknown" for `target_id`; raises RelayError (rate_limited),
        ConnectionClosed, TransportTimeout."""
        ref = os.urandom(16)
        return self._request(m.Lookup(normalize_id(target_id), ref), ref, timeout, "lookup")

    def _request(self, message, ref, timeout, what):
        self._raise_thread_error()
        pending = _Pending()
        with self._pending_lock:
            if ref in self._pending:
                raise LocalProtocolError("session id already in use")
            self._pending[ref] = pending
        try:
            self._send(message)
            if not pending.done.wait(timeout):
                raise TransportTimeout(f"the relay did not answer the {what} within {timeout:g} s")
        finally:
            with self._pending_lock:
                self._pending.pop(ref, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def update_candidates(self, local_candidates, udp_addr=None, nat_hint=None) -> None:
        """Re-announce local candidates (and optionally the NAT hint); raises ConnectionClosed."""
        self.local_candidates = [tuple(a) for a in local_candidates]
        if udp_addr:
            self.udp_addr = tuple(udp_addr)
        if nat_hint is not None:
            self.nat_hint = nat_hint
        self._send(m.Update(self._candidates(), self.nat_hint))

    def open_relay(self, token: bytes, timeout=10.0) -> SocketStream:
        """A raw byte Stream paired with the partner that binds the same token.

        Raises RelayError (unknown_token, unpaired...), TransportError, TransportTimeout.
        """
        sock = self._open(timeout)
        try:
            sock.settimeout(timeout)
            _translate(lambda s: (s.sendall(m.RelayBind(token).encode()), _expect(read_frame(s), m.RelayReady)),
                       sock, waiting_for="the partner to join the relay")
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return SocketStream(sock, path="relay")

    def discover_udp(self, sock, timeout=2.0) -> tuple:
        """(ip, port) the relay sees for UDP socket `sock`; raises TransportTimeout."""
        relay = _udp_target(self.address, sock.family)
        txid = secrets.token_bytes(16)
        token = self.registered.udp_token if self.registered else b""
        query = m.UdpDiscover(token, txid).encode()
        old_timeout = sock.gettimeout()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                sock.sendto(query, relay)
                answer = _await_udp(sock, relay, txid, min(0.25, max(0.01, deadline - time.monotonic())))
                if answer is not None:
                    return tuple(answer.observed_addr)
        finally:
            sock.settimeout(old_timeout)
        raise TransportTimeout(f"no UDP answer from relay {relay[0]}:{relay[1]} within {timeout:g} s")

    # -- closing ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Say Bye, stop and join the threads; re-raise an unexpected error that ended one."""
        self._stop.set()
        if self.online:
            try:
                self._send(m.Bye("client closing"))
            except TagioError:
                pass
        self.online = False
        self._down.set()
        _shutdown(self._sock)
        self._join_threads()
        if self._sock is not None:
            self._sock.close()
        self._raise_thread_error()

    def _join_threads(self):
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = []

    def _raise_thread_error(self):
        exc, self._thread_error = self._thread_error, None
        if exc is not None:
            raise exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


HANDLERS = {m.LookupResult: RelayClient._on_lookup_result,
            m.PeerInfoMsg: RelayClient._on_peer_info, m.Error: RelayClient._on_error,
            m.Heartbeat: RelayClient._on_heartbeat, m.Bye: RelayClient._on_bye}


def read_frame(sock) -> framing.Frame:
    """Read exactly one frame (never more bytes); raises ConnectionClosed, RemoteProtocolError."""
    header = _recv_exact(sock, framing.HEADER_LEN, at_boundary=True)
    framing.check_prefix(header)
    length = int.from_bytes(header[7:11], "big")
    return framing.Frame(header[5], header[6], _recv_exact(sock, length, at_boundary=False))


def _recv_exact(sock, n, at_boundary) -> bytes:
    """net.stream.recv_exactly, with the words a relay connection needs."""
    try:
        return recv_exactly(sock, n)
    except socket.timeout as exc:
        raise TransportTimeout("the relay did not answer in time") from exc
    except ConnectionClosed as exc:
        if at_boundary and not exc.received:
            raise ConnectionClosed("the relay closed the connection") from None
        raise ConnectionClosed(f"the relay closed the connection mid-frame ({exc})") from None


def _translate(step, sock, waiting_for="the relay to answer"):
    """Run step(sock), turning socket and protocol failures into the TransportErrors callers expect."""
    try:
        return step(sock)
    except (socket.timeout, TransportTimeout) as exc:
        raise TransportTimeout(f"gave up waiting for {waiting_for}") from exc
    except ProtocolError as exc:
        raise TransportError(f"this server does not speak the TagIO relay protocol ({exc})") from exc
    except OSError as exc:
        raise ConnectionClosed(f"connection to the relay lost: {exc.strerror or exc}") from exc


def _expect(frame, cls):
    msg = m.decode_message(frame)
    if isinstance(msg, m.Error):
        raise RelayError(msg.code, msg.text)
    if not isinstance(msg, cls):
        raise RemoteProtocolError(f"expected {cls.__name__} from the relay, got {type(msg).__name__}")
    return msg


def _udp_target(address, family):
    try:
        infos = socket.getaddrinfo(address[0], address[1], family, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve relay {address[0]}: {exc}") from exc
    return infos[0][4][:2]


def _await_udp(sock, relay, txid, wait):
    sock.settimeout(wait)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            data, src = sock.recvfrom(2048)
        except (socket.timeout, BlockingIOError):
            return None
        except OSError:
            return None  # e.g. ICMP unreachable surfaced as ECONNREFUSED
        if src[:2] != relay:
            continue  # someone else's datagram (a punching peer); not ours to eat... but ignore safely
        try:
            msg = m.decode_message(framing.decode_datagram(data))
        except RemoteProtocolError:
            continue
        if isinstance(msg, m.UdpObserved) and msg.txid == txid:
            return msg
    return None


class WsSocket:
    """A socket-like object carrying a byte stream inside WebSocket frames (client side).

    Offers what this module and SocketStream use: sendall, recv (never more than asked; the rest is
    kept), settimeout, shutdown, close, and anything else passed through to the real socket.
    """

    MAX_HEAD = 8192

    def __init__(self, sock, leftover=b""):
        self._sock = sock
        self._decoder = WsDecoder(expect_masked=False)
        self._pending = bytearray()
        self._eof = False
        self._send_lock = threading.Lock()
        if leftover:
            self._absorb(leftover)

    @classmethod
    def upgrade(cls, sock, host, port, path):
        """HTTP/1.1 upgrade handshake; raises RemoteProtocolError if the server refuses."""
        key = new_client_key()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"User-Agent: {m.SOFTWARE}\r\n\r\n").encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionClosed("the relay closed the connection during the WebSocket upgrade")
            head += chunk
            if len(head) > cls.MAX_HEAD:
                raise RemoteProtocolError("WebSocket upgrade: response head too large")
        end = head.index(b"\r\n\r\n")
        text = bytes(head[:end]).decode("latin-1")
        if not text.startswith("HTTP/1.1 101") or accept_key(key) not in text:
            raise RemoteProtocolError(f"WebSocket upgrade refused: {text.splitlines()[0][:80]!r}")
        return cls(sock, bytes(head[end + 4:]))

    def _absorb(self, raw):
        data, pings, closed = data_of(self._decoder.feed(raw))
        self._pending += data
        for payload in pings:
            self._send_frame(ws_frame(payload, mask=True, opcode=OP_PONG))
        self._eof = self._eof or closed

    def _send_frame(self, frame):
        with self._send_lock:
            self._sock.sendall(frame)

    def sendall(self, data):
        for start in range(0, len(data), 1 << 18) if data else ():
            self._send_frame(ws_frame(bytes(data[start:start + (1 << 18)]), mask=True))

    def send(self, data):
        self.sendall(data)
        return len(data)

    def recv(self, n):
        while not self._pending and not self._eof:
            raw = self._sock.recv(65536)
            if not raw:
                self._eof = True
                break
            self._absorb(raw)
        chunk = bytes(self._pending[:n])
        del self._pending[:n]
        return chunk

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            try:
                self._send_frame(ws_frame(b"", mask=True, opcode=OP_CLOSE))
            except OSError:
                pass
        self._sock.shutdown(how)

    def close(self):
        self._sock.close()

    def __getattr__(self, name):  # settimeout, fileno, getsockname, setsockopt, ...
        return getattr(self._sock, name)


def _shutdown(sock):
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
