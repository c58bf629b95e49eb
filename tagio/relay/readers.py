"""What the relay reads from a control connection in each state, turned into events.

Theory of operation
-------------------
`Readers.read(conn)` dispatches on `conn.state` through READERS. Each reader
takes at most READ_BUDGET bytes per readiness event (so one busy client
cannot starve the rest) and turns them into events for the connection's
state machine (tagio.relay.connection), fired through the ConnTable it was
given: the first bytes become APP_BYTES / TLS_HELLO / FRAMES / HTTP, a
finished HTTP head HTTP_REQUEST or WS_UPGRADE, each decoded frame its
message, EOF LOST. A reader decides nothing else: where the connection goes
is the machine's table. A TagioError raised here (garbage, a bad frame, too
many messages) is reported by the ConnTable as FAIL.

Readers own no sockets and no tables; they hold the ConnTable by composition.
"""

import logging
import selectors
import socket
import ssl

from tagio.errors import RelayError, RemoteProtocolError, TagioError
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.protocol.websocket import OP_PONG, WS_PATH, data_of, ws_frame
from tagio.relay.conn import classify, is_tls_client_hello
from tagio.relay.connection import FRAME_STATES, State
from tagio.relay.events import Event

log = logging.getLogger("tagio.relay")
READ_CHUNK = 65536
READ_BUDGET = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Readers:
    def __init__(self, table, limits, ssl_context=None):
        self.table = table
        self.limits = limits
        self.ssl_context = ssl_context

    def read(self, conn):
        READERS[conn.state](self, conn)

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
        return raw if conn.ws is None or not raw else self.unwrap(conn, raw)

    def unwrap(self, conn, raw):
        """Payload bytes out of WebSocket frames: None if only control frames came, b'' on close."""
        data, pings, closed = data_of(conn.ws.feed(raw))
        self._charge(conn, conn.ws.take_cost())
        for payload in pings:  # bounded like every other queued byte: a ping flood is dropped
            self.table.queue_wire(conn, ws_frame(payload, mask=False, opcode=OP_PONG))
        if conn.closed:
            return None
        if data:
            return data
        return b"" if closed else None

    def _charge(self, conn, cost):
        """Take `cost` from the connection's budget (refilled every tick): floods are cut, not served."""
        conn.frame_budget -= cost
        if conn.frame_budget < 0:
            raise RelayError("rate_limited", "too many messages; slow down")

    def _read_into(self, conn, feed):
        """One readiness event: feed(conn, bytes) what arrived, or LOST at EOF."""
        data = self._recv(conn)
        if data is None:
            return
        if data == b"":
            return self.table.fire(conn, Event.LOST)
        feed(conn, data)

    # -- first bytes ----------------------------------------------------------------------------
    def _read_sniff(self, conn):
        if self.ssl_context is not None:
            return self._sniff_tls_port(conn)
        self._read_into(conn, self._sniff_plain)

    def _sniff_plain(self, conn, data):
        if is_tls_client_hello(data):
            return self.table.fire(conn, Event.TLS_ON_PLAIN)
        self.table.fire(conn, Event.APP_BYTES)
        self._app_sniff(conn, data)

    def _sniff_tls_port(self, conn):
        try:
            peek = conn.sock.recv(8, socket.MSG_PEEK)
        except _WOULD_BLOCK:
            return  # a spurious wake-up: not a reason to drop the client
        if not peek:
            return self.table.fire(conn, Event.LOST)
        if peek[0] == 0x16:
            return self.table.fire(conn, Event.TLS_HELLO)
        # Not TLS. Decide on the first byte: waiting for more peeked bytes would spin the loop
        # (they stay readable). A TagIO client gets an Error frame it can show, anything else plain text.
        if peek[:1] == framing.MAGIC[:1]:
            refusal = (RelayError("tls_required", "this relay only accepts TLS connections; enable TLS in "
                                  "the client"), False)
        else:
            refusal = (RemoteProtocolError("this relay only accepts TLS connections (use https://)"), True)
        self.table.fire(conn, Event.TLS_REQUIRED, refusal)

    def read_tls(self, conn):
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            return self.table.set_mask(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            return self.table.set_mask(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
        except (ssl.SSLError, OSError) as exc:
            self.table.logic.warn(("tls", conn.peer_addr[0]), "TLS handshake from %s failed: %s",
                                  conn.peer_addr[0], getattr(exc, "reason", None) or exc)
            return self.table.fire(conn, Event.LOST)
        self.table.fire(conn, Event.TLS_DONE)
        self.table.set_mask(conn, selectors.EVENT_READ)
        self._read_app_sniff(conn)

    def _read_app_sniff(self, conn):
        self._read_into(conn, self._app_sniff)

    def _app_sniff(self, conn, data):
        conn.head += data
        try:
            event = classify(conn.head)
        except TagioError:
            self.table.logic.counters["garbage_total"] += 1
            raise  # answered with an Error frame
        if event is None:
            return
        if conn.probation:
            self.table.claim_slot(conn)
        if event is Event.FRAMES and conn.full:
            raise RelayError("relay_full", "this relay is full right now; try again in a minute")
        data, conn.head = conn.head, b""
        self.table.fire(conn, event)
        FEEDERS[conn.state](self, conn, data)

    # -- TagIO frames -----------------------------------------------------------------------------
    def _feed_frames(self, conn, data):
        frames = conn.decoder.feed(data, max_frames=1)
        while frames and not conn.closed:
            self._charge(conn, 1)
            self.table.deliver(conn, m.decode_message(frames[0]))
            if conn.state not in FRAME_STATES or conn.closed:
                break
            frames = conn.decoder.feed(b"", max_frames=1)
        if conn.state is State.BINDING and not conn.closed:
            conn.early += conn.decoder.take_rest()
            if conn.ws is not None:
                conn.ws.for_relaying()

    def _frames_ended(self, conn):
        try:
            conn.decoder.eof()
        except TagioError as exc:
            log.info("connection from %s: %s", conn.peer_addr[0], exc)

    def _read_frames(self, conn):
        data = self._recv(conn)
        if data is None:
            return
        if data == b"":
            self._frames_ended(conn)
            return self.table.fire(conn, Event.LOST)
        self._feed_frames(conn, data)

    # -- waiting for the relay partner ----------------------------------------------------------------
    def _read_binding(self, conn):
        self._read_into(conn, self._feed_early)

    def _feed_early(self, conn, data):
        conn.early += data
        if len(conn.early) > self.limits.relay_buffer:
            raise RelayError("too_early", "sent too much data before RelayReady")

    # -- HTTP ----------------------------------------------------------------------------------------------
    def _read_http(self, conn):
        self._read_into(conn, self._feed_http)

    def _feed_http(self, conn, data):
        request = conn.http.feed(data)
        if request is None:
            return
        if conn.via_proxy:
            self.table.forwarded(conn, request.headers)
        log.debug("HTTP %s %s from %s", request.method, request.path, conn.peer_addr[0])
        if not request.wants_websocket():
            return self.table.fire(conn, Event.HTTP_REQUEST, request)
        if request.path.split("?", 1)[0] != WS_PATH:
            raise RemoteProtocolError(f"WebSocket upgrades are served only on {WS_PATH}")
        self.table.fire(conn, Event.WS_UPGRADE, request)
        if request.rest:
            data = self.unwrap(conn, request.rest)
            if data:
                self._app_sniff(conn, data)

    def _read_linger(self, conn):
        data = self._recv(conn)
        if data == b"":
            self.table.fire(conn, Event.LOST)


READERS = {
    State.SNIFF: Readers._read_sniff,
    State.TLS: Readers.read_tls,
    State.APP_SNIFF: Readers._read_app_sniff,
    State.HTTP: Readers._read_http,
    State.BINDING: Readers._read_binding,
    State.LINGER: Readers._read_linger,
    **{s: Readers._read_frames for s in FRAME_STATES},
}
FEEDERS = {State.NEW: Readers._feed_frames, State.HTTP: Readers._feed_http}
