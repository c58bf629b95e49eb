"""What each connection phase does with incoming bytes (a mixin of RelayServer).

Theory of operation
-------------------
`read_phase(conn)` dispatches on `conn.phase` through READERS. Each reader
takes at most READ_BUDGET bytes per readiness event (so one busy client
cannot starve the rest), and either keeps the phase, moves the connection to
the next one (SNIFF -> TLS -> APP_SNIFF -> FRAMES | HTTP, FRAMES -> BINDING),
or raises a TagioError that the server turns into an Error frame and a close.
Readers only call RelayServer helpers (_queue_wire, _linger, _lost, _drop,
_set_mask, _log_limited) and RelayLogic.handle; they own no sockets.
"""

import logging
import selectors
import socket
import ssl

from tagio.errors import RelayError, RemoteProtocolError, TagioError
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.relay.conn import TLS_ALERT_HANDSHAKE_FAILURE, Phase, classify, is_tls_client_hello
from tagio.protocol.websocket import OP_PONG, WsDecoder, data_of, ws_frame
from tagio.relay.http import HttpRequestReader, http_response, upgrade_response
from tagio.relay.logic import ConnState

log = logging.getLogger("tagio.relay")
READ_CHUNK = 65536
READ_BUDGET = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class PhaseReaders:
    def read_phase(self, conn):
        READERS[conn.phase](self, conn)

    def _recv(self, conn):
        """Up to READ_BUDGET bytes; None when nothing is ready, b'' at EOF."""
        parts, got = [], 0
        while got < READ_BUDGET:
            try:
                data = conn.sock.recv(READ_CHUNK)
            except _WOULD_BLOCK:
                break
            if not data:
                if parts:
                    break
                return b""
            parts.append(data)
            got += len(data)
            if not isinstance(conn.sock, ssl.SSLSocket) and len(data) < READ_CHUNK:
                break
        raw = b"".join(parts) if parts else None
        return raw if conn.ws is None or not raw else self._unwrap(conn, raw)

    def _unwrap(self, conn, raw):
        """Payload bytes out of WebSocket frames: None if only control frames came, b'' on close."""
        data, pings, closed = data_of(conn.ws.feed(raw))
        for payload in pings:  # bounded like every other queued byte: a ping flood is dropped
            self._queue_wire(conn, ws_frame(payload, mask=False, opcode=OP_PONG))
        if conn.closed:
            return None
        if data:
            return data
        return b"" if closed else None

    def _read_sniff(self, conn):
        if self.ssl_context is not None:
            return self._sniff_tls_port(conn)
        data = self._recv(conn)
        if data is None:
            return
        if data == b"":
            return self._drop(conn)
        if is_tls_client_hello(data):
            self._log_limited(("tls-plain", conn.peer_addr[0]),
                              "TLS ClientHello from %s on a plain (non-TLS) port; closing. Start the relay "
                              "with --cert/--key or configure the client without TLS.", conn.peer_addr[0])
            self.counters["tls_on_plain_total"] += 1
            conn.out += TLS_ALERT_HANDSHAKE_FAILURE
            return self._linger(conn, "TLS on plain port")
        conn.phase = Phase.APP_SNIFF
        self._app_sniff(conn, data)

    def _sniff_tls_port(self, conn):
        try:
            peek = conn.sock.recv(8, socket.MSG_PEEK)
        except _WOULD_BLOCK:
            return  # a spurious wake-up: not a reason to drop the client
        if not peek:
            return self._drop(conn)
        if peek[0] == 0x16:
            self._sel.unregister(conn.sock)
            del self._conns[conn.sock.fileno()]
            conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
            self._tls_conns.add(conn)
            self._conns[conn.sock.fileno()] = conn
            conn.mask = 0
            conn.phase = Phase.TLS
            return self._read_tls(conn)
        # Not TLS. Decide on the first byte: waiting for more peeked bytes would spin the loop
        # (they stay readable). A TagIO client gets an Error frame it can show, anything else plain text.
        if peek[:1] == framing.MAGIC[:1]:
            conn.phase = Phase.FRAMES
            raise RelayError("tls_required", "this relay only accepts TLS connections; enable TLS in the client")
        conn.phase = Phase.HTTP
        raise RemoteProtocolError("this relay only accepts TLS connections (use https://)")

    def _read_tls(self, conn):
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            return self._set_mask(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            return self._set_mask(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
        except (ssl.SSLError, OSError) as exc:
            self._log_limited(("tls", conn.peer_addr[0]), "TLS handshake from %s failed: %s",
                              conn.peer_addr[0], getattr(exc, "reason", None) or exc)
            return self._drop(conn)
        conn.phase = Phase.APP_SNIFF
        self._set_mask(conn, selectors.EVENT_READ)
        self._read_app_sniff(conn)

    def _read_into(self, conn, feed, at_eof):
        """One readiness event: feed(conn, bytes) what arrived, or at_eof(conn) at EOF."""
        data = self._recv(conn)
        if data is None:
            return
        if data == b"":
            return at_eof(conn)
        feed(conn, data)

    def _read_app_sniff(self, conn):
        self._read_into(conn, self._app_sniff, self._drop)

    def _app_sniff(self, conn, data):
        conn.head += data
        try:
            phase = classify(conn.head)
        except TagioError:
            conn.phase = Phase.FRAMES  # answer garbage with an Error frame
            self.counters["garbage_total"] += 1
            raise
        if phase is None:
            return
        conn.phase = phase
        if phase is Phase.HTTP:
            conn.http = HttpRequestReader()
            self.counters["http_requests_total"] += 1
        data, conn.head = conn.head, b""
        FEEDERS[conn.phase](self, conn, data)

    def _read_frames(self, conn):
        self._read_into(conn, self._feed_frames, self._frames_ended)

    def _frames_ended(self, conn):
        try:
            conn.decoder.eof()
        except TagioError as exc:
            log.info("connection from %s: %s", conn.peer_addr[0], exc)
        self._lost(conn)

    def _feed_frames(self, conn, data):
        frames = conn.decoder.feed(data, max_frames=1)
        while frames and not conn.closed:
            conn.frame_budget -= 1
            if conn.frame_budget < 0:
                raise RelayError("rate_limited", "too many messages; slow down")
            self.logic.handle(conn, m.decode_message(frames[0]))
            if conn.state in (ConnState.BINDING, ConnState.RELAYING) or conn.closed:
                break
            frames = conn.decoder.feed(b"", max_frames=1)
        if conn.state is ConnState.REGISTERED:
            conn.deadline = None
        if conn.state is ConnState.BINDING and not conn.closed:
            conn.deadline = None
            conn.phase = Phase.BINDING
            conn.early += conn.decoder.take_rest()

    def _read_binding(self, conn):
        self._read_into(conn, self._feed_early, self._lost)

    def _feed_early(self, conn, data):
        conn.early += data
        if len(conn.early) > self.limits.relay_buffer:
            raise RelayError("too_early", "sent too much data before RelayReady")

    def _read_http(self, conn):
        self._read_into(conn, self._feed_http, self._drop)

    def _feed_http(self, conn, data):
        request = conn.http.feed(data)
        if request is None:
            return
        log.debug("HTTP %s %s from %s", request.method, request.path, conn.peer_addr[0])
        if request.wants_websocket():
            return self._upgrade(conn, request)
        conn.out += http_response(request.method, request.path, self.status())
        self._linger(conn, "HTTP answered")

    def _upgrade(self, conn, request):
        """101 Switching Protocols; from now on the TagIO stream travels in WebSocket frames."""
        conn.out += upgrade_response(request.headers["sec-websocket-key"])
        conn.http, conn.ws, conn.phase = None, WsDecoder(expect_masked=True), Phase.APP_SNIFF
        self.counters["websocket_upgrades_total"] += 1
        self._on_writable(conn)
        if request.rest:
            data = self._unwrap(conn, request.rest)
            if data:
                self._app_sniff(conn, data)

    def _read_linger(self, conn):
        data = self._recv(conn)
        if data == b"":
            self._drop(conn)


READERS = {
    Phase.SNIFF: PhaseReaders._read_sniff,
    Phase.TLS: PhaseReaders._read_tls,
    Phase.APP_SNIFF: PhaseReaders._read_app_sniff,
    Phase.FRAMES: PhaseReaders._read_frames,
    Phase.HTTP: PhaseReaders._read_http,
    Phase.BINDING: PhaseReaders._read_binding,
    Phase.LINGER: PhaseReaders._read_linger,
}
FEEDERS = {Phase.FRAMES: PhaseReaders._feed_frames, Phase.HTTP: PhaseReaders._feed_http}
