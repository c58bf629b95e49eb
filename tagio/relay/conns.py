"""The relay loop's control connections: sockets, selector interest, output, and actions carried out.

Theory of operation
-------------------
ConnTable is the I/O layer between the selectors loop (tagio.relay.server)
and each connection's state machine (tagio.relay.connection). The loop hands
it readiness (`on_readable`, `on_writable`); its Readers turn bytes into
events; `fire` runs the machine and carries out the actions it returns, in
order, through CARRIERS (action type -> method): queue a message, write last
words and linger, close, start TLS, run a signature check on a worker, hand a
pair to the forwarder, fire an event at another connection.

Everything here runs on the loop thread, except `release_ip`, which the
forwarder calls when a relayed pair ends (hence the lock). Every buffer is
bounded: queued output (Limits.out_buffer; a client that will not read is
LOST), the frame decoder, the HTTP head, early relay bytes.
"""

import collections
import logging
import selectors
import socket
import ssl
import threading

from tagio.errors import RelayError, TagioError
from tagio.protocol import relay as m
from tagio.relay import events as ev
from tagio.relay import connection
from tagio.relay.conn import Conn, normalize_addr
from tagio.relay.connection import State
from tagio.relay.events import Event
from tagio.relay.forward import Pair
from tagio.relay.readers import Readers

log = logging.getLogger("tagio.relay")
LINGER = 2.0
WRITE_CHUNK = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class ConnTable:
    def __init__(self, sel, logic, *, clock, ssl_context=None, answer_http, relay_pair, offload):
        """answer_http(request) -> bytes; relay_pair(Pair); offload(fn, done) runs fn on a worker."""
        self.sel = sel
        self.logic = logic
        self.limits = logic.limits
        self.counters = logic.counters
        self.clock = clock
        self.ssl_context = ssl_context
        self.answer_http = answer_http
        self.relay_pair = relay_pair
        self.offload = offload
        self.readers = Readers(self, self.limits, ssl_context)
        self.by_fd = {}
        self.tls_conns = set()
        self._per_ip = collections.Counter()
        self._ip_lock = threading.Lock()

    def __len__(self):
        return len(self.by_fd)

    def values(self):
        return self.by_fd.values()

    # -- admitting --------------------------------------------------------------------------------
    def admit(self, sock, addr):
        sock.setblocking(False)
        ip = normalize_addr(addr)[0]  # the same key release_ip will use
        lim = self.limits
        if len(self.by_fd) >= lim.max_conns:
            self.logic.warn("max_conns", "connection limit %d reached; refusing %s", lim.max_conns, ip)
            sock.close()
            return
        with self._ip_lock:
            self._per_ip[ip] += 1
            too_many = self._per_ip[ip] > lim.max_conns_per_ip
        self.counters["connections_total"] += 1
        conn = Conn(sock, addr, self.clock() + lim.handshake_timeout, lim.max_frames_per_sec * 2)
        self.by_fd[sock.fileno()] = conn
        self.set_mask(conn, selectors.EVENT_READ)
        if too_many:
            self.logic.warn(("per_ip", ip), "too many connections from %s (limit %d)", ip, lim.max_conns_per_ip)
            self.fail(conn, RelayError("too_many_connections",
                                       f"too many connections from your address (limit {lim.max_conns_per_ip})"))

    # -- the machine ------------------------------------------------------------------------------
    def fire(self, conn, event, payload=None):
        """Run conn's machine for one event and carry out its actions; a TagioError becomes FAIL."""
        try:
            actions = connection.fire(self.logic, conn, event, payload)
        except TagioError as exc:
            if event is Event.FAIL:
                raise  # no transition reports a failure: our bug, not the peer's
            return self.fail(conn, exc)
        self.carry(actions)

    def deliver(self, conn, message):
        """One decoded control message; a TagioError propagates to on_readable (then FAIL)."""
        self.carry(connection.deliver(self.logic, conn, message))

    def carry(self, actions):
        for action in actions:
            CARRIERS[type(action)](self, action)

    def fail(self, conn, exc):
        self.fire(conn, Event.FAIL, exc)

    # -- readiness ------------------------------------------------------------------------------------
    def on_readable(self, conn):
        try:
            self.readers.read(conn)
        except TagioError as exc:
            self.fail(conn, exc)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s failed: %s", conn.peer_addr[0], exc)
            self.fire(conn, Event.LOST)
        except Exception as exc:  # a bug: lose this connection, keep serving everyone else
            self.internal_error(conn, exc)

    def on_writable(self, conn):
        if conn.state is State.TLS:
            return self.readers.read_tls(conn)
        try:
            while conn.out:
                with memoryview(conn.out) as view:
                    sent = conn.sock.send(view[:WRITE_CHUNK])
                del conn.out[:sent]
        except _WOULD_BLOCK:
            pass
        except (OSError, ssl.SSLError):
            return self.fire(conn, Event.LOST)
        if conn.state is State.LINGER and not conn.out:
            _half_close(conn.sock)
        self.set_mask(conn, selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0))

    def internal_error(self, conn, exc):
        log.error("internal error on connection from %s: %r", conn.peer_addr[0] if conn else "?", exc,
                  exc_info=log.isEnabledFor(logging.DEBUG))
        self.counters["internal_errors_total"] += 1
        if conn is not None:
            self.logic.connection_lost(conn)
            conn.state = State.CLOSED  # whatever state the bug left it in
            self.drop(conn)

    def tls_pending(self) -> list:
        """TLS connections holding decrypted bytes the selector cannot see."""
        return [c for c in self.tls_conns if not c.closed and c.state is not State.TLS and c.sock.pending()]

    # -- output ------------------------------------------------------------------------------------
    def queue_wire(self, conn, wire):
        """Queue bytes exactly as they go on the wire; a client that will not read is dropped."""
        if conn.closed:
            return
        if len(conn.out) + len(wire) > self.limits.out_buffer:
            self.logic.warn(("slow", conn.peer_addr[0]), "dropping %s: not reading its messages", conn.peer_addr[0])
            return self.fire(conn, Event.LOST)
        conn.out += wire
        self.on_writable(conn)

    def _send(self, action):
        self.queue_wire(action.conn, action.conn.wrap(action.message.encode()))

    def _write(self, action):
        self.queue_wire(action.conn, action.wire)

    def _reply(self, action):
        action.conn.out += action.wire  # a few hundred bytes of last words, then the connection ends

    def _answer(self, action):
        action.conn.out += self.answer_http(action.request)

    def _linger(self, action):
        conn = action.conn
        if conn.closed:
            return
        conn.deadline = self.clock() + LINGER
        self.on_writable(conn)

    # -- closing -----------------------------------------------------------------------------------
    def _drop_action(self, action):
        self.drop(action.conn)

    def drop(self, conn):
        if conn.closed:
            return
        conn.closed = True
        self.detach(conn)
        self.release_ip(conn.peer_addr[0])
        try:
            conn.sock.close()
        except OSError:
            pass

    def detach(self, conn):
        """Take a connection out of the table and the selector (its socket stays open)."""
        self.tls_conns.discard(conn)
        if self.by_fd.get(conn.sock.fileno()) is conn:
            del self.by_fd[conn.sock.fileno()]
        if conn.mask:
            self.sel.unregister(conn.sock)
            conn.mask = 0

    def release_ip(self, ip):
        with self._ip_lock:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    def set_mask(self, conn, mask):
        if conn.closed or mask == conn.mask:
            return
        if conn.mask == 0:
            self.sel.register(conn.sock, mask, conn)
        else:
            self.sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def close_all(self):
        """At stop: a Bye to each registered client (best effort, never blocks), then close everything."""
        bye = m.Bye("relay shutting down").encode()
        for conn in list(self.by_fd.values()):
            if conn.state is State.REGISTERED and not conn.out:  # never inside a half-sent frame
                try:  # lets clients tell a restart from a network failure
                    conn.sock.send(conn.wrap(bye))
                except (OSError, ssl.SSLError):
                    pass
            self.drop(conn)

    # -- the other actions ---------------------------------------------------------------------------
    def _start_tls(self, action):
        conn = action.conn
        self.detach(conn)
        conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        self.tls_conns.add(conn)
        self.by_fd[conn.sock.fileno()] = conn
        self.readers.read_tls(conn)

    def _verify(self, action):
        conn, message = action.conn, action.message
        self.offload(action.check, lambda problem: self.fire(conn, Event.VERIFIED, (message, problem)))

    def _relay(self, action):
        """Hand a completed pair to the forwarder; RelayReady goes first on each side."""
        conn, partner = action.conn, action.partner
        ready = m.RelayReady().encode()
        conn.early += conn.decoder.take_rest()
        to_conn = bytes(conn.out) + conn.wrap(ready + bytes(partner.early))
        to_partner = bytes(partner.out) + partner.wrap(ready + bytes(conn.early))
        for c in (conn, partner):
            if c.ws is not None:
                c.ws.for_relaying()  # relayed data may come in large WebSocket frames
            c.closed = True
            self.detach(c)  # the forwarder owns the sockets now; the IPs are released when the pair ends
        ips = (conn.peer_addr[0], partner.peer_addr[0])
        self.relay_pair(Pair(conn.sock, partner.sock, self.limits.relay_buffer, to_conn, to_partner,
                             on_done=lambda pair: [self.release_ip(ip) for ip in ips],
                             a_ws=conn.ws, b_ws=partner.ws))

    def _fail_action(self, action):
        self.fail(action.conn, action.exc)

    def _fire_action(self, action):
        self.fire(action.conn, action.event, action.payload)

    # -- timers ----------------------------------------------------------------------------------------
    def tick(self, now):
        budget = self.limits.max_frames_per_sec
        for conn in self.by_fd.values():
            conn.frame_budget = min(conn.frame_budget + budget, 2 * budget)
        for conn in [c for c in self.by_fd.values() if c.deadline is not None and c.deadline < now]:
            self.fire(conn, Event.DEADLINE)


CARRIERS = {
    ev.Send: ConnTable._send, ev.Write: ConnTable._write, ev.Reply: ConnTable._reply,
    ev.Answer: ConnTable._answer, ev.Linger: ConnTable._linger, ev.Drop: ConnTable._drop_action,
    ev.StartTls: ConnTable._start_tls, ev.Verify: ConnTable._verify, ev.Relay: ConnTable._relay,
    ev.Fail: ConnTable._fail_action, ev.Fire: ConnTable._fire_action,
}


def _half_close(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
