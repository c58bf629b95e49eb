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
from tagio.relay.connection import EVICTABLE, State
from tagio.relay.events import Event
from tagio.relay.fdlimit import FULL, FULL_DEADLINE, OPEN, PAIR_FDS, REFUSE, FdBudget
from tagio.relay.forward import Pair
from tagio.relay.http import forwarded_client
from tagio.relay.readers import Readers

log = logging.getLogger("tagio.relay")
LINGER = 2.0
PROBATION = 1.0         # seconds an address's extra connection has to start speaking (see admit)
PROBATION_PER_IP = 16   # extra connections on probation per address at a time
WRITE_CHUNK = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class ConnTable:
    def __init__(self, sel, logic, *, clock, ssl_context=None, answer_http, relay_pair, offload,
                 budget=None, pairs_held=lambda: 0, trusted_proxies=frozenset()):
        """answer_http(request) -> bytes; relay_pair(Pair); offload(fn, done) runs fn on a worker;
        budget: an FdBudget; pairs_held() -> relayed pairs holding descriptors; trusted_proxies: the
        addresses whose X-Forwarded-For is believed (tagio.relay.http.forwarded_client)."""
        self.sel = sel
        self.logic = logic
        self.limits = logic.limits
        self.counters = logic.counters
        self.clock = clock
        self.ssl_context = ssl_context
        self.answer_http = answer_http
        self.relay_pair = relay_pair
        self.offload = offload
        self.budget = budget or FdBudget(None, 0)
        self.pairs_held = pairs_held
        self.trusted = frozenset(trusted_proxies)
        self.readers = Readers(self, self.limits, ssl_context)
        self.by_fd = {}
        self.tls_conns = set()
        self._per_ip = collections.Counter()     # address -> connections holding one of its slots
        self._probation = collections.Counter()  # address -> connections on probation (see admit)
        self._ip_lock = threading.Lock()

    def __len__(self):
        return len(self.by_fd)

    def values(self):
        return self.by_fd.values()

    def fds_in_use(self) -> int:
        """Client descriptors held: control connections, and every relayed pair's sockets and pipes."""
        return len(self.by_fd) + self.pairs_held() * PAIR_FDS

    # -- admitting --------------------------------------------------------------------------------
    def admit(self, sock, addr):
        """Serve, answer only, or refuse a new connection (descriptor budget, then per-address slots).

        An address at its limit gets a few connections on probation (PROBATION_PER_IP): one that
        starts speaking within PROBATION seconds takes the slot of the address's oldest idle,
        unauthenticated connection (`claim_slot`), so idle sockets cannot lock out a client that
        reconnects from the same address; one that stays silent is refused as before.
        """
        sock.setblocking(False)
        ip = normalize_addr(addr)[0]  # the same key release_ip will use
        verdict = self._verdict(ip)
        if verdict is REFUSE or len(self.by_fd) >= self.limits.max_conns:
            if verdict is OPEN:
                self.logic.warn("max_conns", "connection limit %d reached; refusing %s", self.limits.max_conns, ip)
            sock.close()
            return
        probation, too_many = self._take_slot(ip)
        self.counters["connections_total"] += 1
        lim = self.limits
        conn = Conn(sock, addr, self.clock() + lim.handshake_timeout, lim.max_frames_per_sec * 2)
        conn.slot_ip, conn.via_proxy = (None, True) if ip in self.trusted else (ip, False)
        self.by_fd[sock.fileno()] = conn
        self.set_mask(conn, selectors.EVENT_READ)
        if verdict is FULL:  # in the reserve: /health is answered, a TagIO client hears "relay full"
            conn.full, conn.deadline = True, self.clock() + FULL_DEADLINE
        if probation:
            conn.probation, conn.deadline = True, min(conn.deadline, self.clock() + PROBATION)
        elif too_many:
            self._refuse_extra(conn)

    def _verdict(self, ip):
        """The descriptor budget's verdict, after closing the oldest idle connection if that makes room."""
        verdict = self.budget.verdict(self.fds_in_use())
        if verdict is not OPEN and self._evict():
            verdict = self.budget.verdict(self.fds_in_use())
        if verdict is not OPEN:
            self.counters["relay_full_total"] += 1
            self.logic.warn("fds", "relay full (%d descriptors of %s in use); %s %s", self.fds_in_use(),
                            self.budget.limit, "answering" if verdict is FULL else "closing", ip)
        return verdict

    def _take_slot(self, ip) -> tuple:
        """(on probation, over the limit) for a new connection from ip, whose slot is now taken.

        A trusted proxy's connections take no slot here: its clients take theirs in `forwarded`.
        """
        if ip in self.trusted:
            return False, False
        limit = self.limits.max_conns_per_ip
        with self._ip_lock:
            probation = self._per_ip[ip] >= limit and self._probation[ip] < PROBATION_PER_IP
            (self._probation if probation else self._per_ip)[ip] += 1
            return probation, self._per_ip[ip] > limit

    def _refuse_extra(self, conn):
        ip, limit = conn.peer_addr[0], self.limits.max_conns_per_ip
        self.logic.warn(("per_ip", ip), "too many connections from %s (limit %d)", ip, limit)
        self.fail(conn, RelayError("too_many_connections", f"too many connections from your address (limit {limit})"))

    def claim_slot(self, conn):
        """A connection on probation spoke: it takes the slot of its address's oldest idle connection.

        Raises RelayError("too_many_connections") when every connection of the address is past the
        handshake (registered or relaying): those hold their slots.
        """
        ip = conn.peer_addr[0]
        if not self._evict(ip):
            raise RelayError("too_many_connections",
                             f"too many connections from your address (limit {self.limits.max_conns_per_ip})")
        with self._ip_lock:
            self._probation[ip] -= 1
            self._per_ip[ip] += 1
        conn.probation = False

    def forwarded(self, conn, headers):
        """A trusted proxy's HTTP request: from now on the connection is the client the proxy names.

        The client then takes one of its own address's slots (its oldest idle connection makes room
        if it has none left); RelayError("too_many_connections") when every one is past the handshake.
        """
        conn.via_proxy = False
        client = forwarded_client(headers)
        if client is None:
            return  # the proxy's own request (e.g. its health check)
        with self._ip_lock:
            full = self._per_ip[client] >= self.limits.max_conns_per_ip
        if full and not self._evict(client):
            raise RelayError("too_many_connections",
                             f"too many connections from your address (limit {self.limits.max_conns_per_ip})")
        with self._ip_lock:
            self._per_ip[client] += 1
        conn.peer_addr, conn.slot_ip = (client, 0), client  # the port the client used is not known here

    def _evict(self, ip=None) -> bool:
        """Close the oldest unauthenticated connection (from `ip`, if given); False if there is none.

        The table keeps admission order, and connections that go on to register leave EVICTABLE within
        a round trip, so the oldest are the idle ones. Connections on probation are not counted.
        """
        for conn in self.by_fd.values():
            if conn.state in EVICTABLE and not conn.probation and (ip is None or conn.slot_ip == ip):
                self.counters["evicted_total"] += 1
                self.fire(conn, Event.LOST)
                return True
        return False

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
        if conn.slot_ip is not None:
            self.release_ip(conn.slot_ip, conn.probation)
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

    def release_ip(self, ip, probation=False):
        with self._ip_lock:
            slots = self._probation if probation else self._per_ip
            slots[ip] -= 1
            if slots[ip] <= 0:
                del slots[ip]

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
        """Hand a completed pair to the forwarder; RelayReady goes first on each side.

        A pair that cannot be set up (no descriptors for its pipes) is logged, counted, and both
        sides hear "relay full" and close, which releases their per-address slots.
        """
        conn, partner = action.conn, action.partner
        if not self.budget.room_for(self.fds_in_use(), PAIR_FDS - 2):  # its two sockets are counted
            return self._pair_failed(conn, partner, "no file descriptors left for its pipes")
        ready = m.RelayReady().encode()
        conn.early += conn.decoder.take_rest()
        to_conn = bytes(conn.out) + conn.wrap(ready + bytes(partner.early))
        to_partner = bytes(partner.out) + partner.wrap(ready + bytes(conn.early))
        for c in (conn, partner):
            if c.ws is not None:
                c.ws.for_relaying()  # relayed data may come in large WebSocket frames
            bound_buffers(c.sock, self.limits.relay_socket_buffer)
        ips = [c.slot_ip for c in (conn, partner) if c.slot_ip is not None]
        try:
            pair = Pair(conn.sock, partner.sock, self.limits.relay_buffer, to_conn, to_partner,
                        on_done=lambda pair: [self.release_ip(ip) for ip in ips], a_ws=conn.ws, b_ws=partner.ws)
        except OSError as exc:  # os.pipe(): EMFILE, ENFILE
            return self._pair_failed(conn, partner, exc)
        for c in (conn, partner):
            c.closed = True
            self.detach(c)  # the forwarder owns the sockets now; the IPs are released when the pair ends
        self.relay_pair(pair)

    def _pair_failed(self, conn, partner, why):
        log.error("cannot relay %s <-> %s: %s", conn.peer_addr[0], partner.peer_addr[0], why)
        self.counters["relay_pair_setup_failures_total"] += 1
        for c in (conn, partner):
            self.fire(c, Event.RELAY_FAILED,
                      RelayError("relay_full", "the relay has no room for another relayed session; try again later"))

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
            if conn.probation and conn.state in EVICTABLE:
                self._refuse_extra(conn)  # silent on probation: refused as an extra connection
            else:
                self.fire(conn, Event.DEADLINE)


CARRIERS = {
    ev.Send: ConnTable._send, ev.Write: ConnTable._write, ev.Reply: ConnTable._reply,
    ev.Answer: ConnTable._answer, ev.Linger: ConnTable._linger, ev.Drop: ConnTable._drop_action,
    ev.StartTls: ConnTable._start_tls, ev.Verify: ConnTable._verify, ev.Relay: ConnTable._relay,
    ev.Fail: ConnTable._fail_action, ev.Fire: ConnTable._fire_action,
}


def bound_buffers(sock, size):
    """Fixed kernel buffers for a relayed socket: bounded memory per stalled pair (autotuning off)."""
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass  # a platform that refuses: the pair still works, with the kernel's buffers


def _half_close(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
