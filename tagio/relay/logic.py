"""The relay's behaviour, without I/O: what to do with each message from each connection.

Theory of operation
-------------------
The server owns sockets; for every decoded frame it calls
`RelayLogic.handle(conn, message)`. `conn` is any object with

    peer_addr (ip, port)   observed source address
    state                  a ConnState, kept by this module
    nonce                  the challenge sent to it (set here)
    send(message)          queue a message to it
    close(reason)          close it after flushing what was queued
    start_relay(partner)   switch both connections to raw forwarding

Legal (state, message type) pairs are one table, TRANSITIONS; anything else
is a RemoteProtocolError. Fatal problems raise a TagioError which the server
turns into an Error frame + close (`error_code()` picks the code); answers
to a single request (unknown target, rate limited) are sent as an Error frame
carrying the request's session id and the connection stays up.

Signature checks are the one expensive step (~0.25 ms, tagio.relay.verify).
They run through `offload(fn, done)`: inline by default (tests), worker
threads in the server, which calls `done(result)` back on its loop thread.
Cheap refusals come first (rate limit, relay secret, ID not derived from the
key, ID bound to another key), so a flood of doomed Registers costs little.
"""

import enum
import hmac
import logging
import time

from tagio.crypto.identity import id_from_public_key
from tagio.errors import (AuthError, ConfigError, IdentityError, ProtocolError,
                          RelayError, RemoteProtocolError, TagioError)
from tagio.protocol import relay as m
from tagio.relay.pairing import Pairing
from tagio.relay.randpool import RandomPool
from tagio.relay.ratelimit import RateLimiter
from tagio.relay.registry import Registration, Registry
from tagio.relay.verify import verify

log = logging.getLogger("tagio.relay")



class ConnState(enum.Enum):
    NEW = "new"                # waiting for Hello or RelayBind
    CHALLENGED = "challenged"  # Challenge sent, waiting for Register
    VERIFYING = "verifying"    # signature check in flight
    REGISTERED = "registered"
    BINDING = "binding"        # RelayBind received, partner not here yet
    RELAYING = "relaying"
    CLOSED = "closed"


TRANSITIONS = {
    (ConnState.NEW, m.Hello): "on_hello",
    (ConnState.NEW, m.RelayBind): "on_relay_bind",
    (ConnState.CHALLENGED, m.Register): "on_register",
    (ConnState.REGISTERED, m.Heartbeat): "on_heartbeat",
    (ConnState.REGISTERED, m.ConnectRequest): "on_connect_request",
    (ConnState.REGISTERED, m.Lookup): "on_lookup",
    (ConnState.REGISTERED, m.Update): "on_update",
    (ConnState.REGISTERED, m.Register): "on_reregister",
    (ConnState.CHALLENGED, m.Heartbeat): "on_ignore",
    (ConnState.VERIFYING, m.Heartbeat): "on_ignore",
    (ConnState.BINDING, m.Heartbeat): "on_ignore",
}

ERROR_CODES = (  # most specific first
    (RelayError, None), (IdentityError, "identity"), (AuthError, "auth_failed"),
    (ProtocolError, "protocol"), (TagioError, "error"))


def error_code(exc: TagioError) -> str:
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            return code or exc.code
    return "error"


class Limits:
    """Tunable limits; defaults suit a public relay."""
    heartbeat_interval = 20.0       # well under Linux conntrack's 30 s UDP timeout
    heartbeat_misses = 3            # offline after 3 missed heartbeats
    handshake_timeout = 10.0        # slow-loris guard: register/bind/HTTP within this
    unpaired_timeout = 30.0
    relay_idle_timeout = 3600.0      # a relayed pair with no traffic this long is closed
    token_ttl = 60.0
    register_rate, register_burst = 5.0, 20.0
    connect_rate, connect_burst = 2.0, 10.0
    max_conns_per_ip = 256             # an office behind one NAT address holds one connection per client
    max_frames_per_sec = 50          # per control connection (heartbeats are one per 20 s)
    max_conns = 20_000
    max_bindings = 1_000_000
    out_buffer = 256 * 1024          # per-connection queued control bytes
    relay_buffer = 1 << 20           # per direction
    state_save_interval = 5.0        # bindings file: new IDs are written at most this often (and at stop)

    def __init__(self, **overrides):
        for key, value in overrides.items():
            if not hasattr(Limits, key):
                raise ConfigError(f"unknown relay limit {key!r}")
            setattr(self, key, value)


def _inline(fn, done):
    done(fn())


class RelayLogic:
    def __init__(self, limits: Limits = None, *, auth_secret=None, bindings=None,
                 clock=time.monotonic, wall_clock=time.time, offload=_inline, public_ip=None):
        self.limits = limits or Limits()
        self.auth_secret = auth_secret or None
        self.clock = clock
        self.wall_clock = wall_clock
        self.offload = offload
        self.public_ip = public_ip
        lim = self.limits
        self.random_bytes = RandomPool().take
        self.registry = Registry(clock, lim.heartbeat_interval * lim.heartbeat_misses, bindings,
                                 self.random_bytes)
        self.pairing = Pairing(clock, lim.token_ttl, lim.unpaired_timeout)
        self.register_limiter = RateLimiter(clock, lim.register_rate, lim.register_burst)
        self.connect_limiter = RateLimiter(clock, lim.connect_rate, lim.connect_burst)
        self.counters = {"registrations_total": 0, "connect_requests_total": 0,
                         "relay_pairs_total": 0, "errors_total": 0, "auth_failures_total": 0,
                         "udp_queries_total": 0}

    # -- dispatch -----------------------------------------------------------------
    def handle(self, conn, message) -> None:
        """Act on one message; raises TagioError for anything that must end the connection."""
        name = TRANSITIONS.get((conn.state, type(message)))
        if name is None:
            if isinstance(message, m.Bye):
                return self.on_bye(conn, message)
            raise RemoteProtocolError(
                f"unexpected {type(message).__name__} in state {conn.state.value}")
        self.registry.touch(conn)
        getattr(self, name)(conn, message)

    def connection_lost(self, conn) -> None:
        self.registry.remove(conn)
        self.pairing.drop(conn)
        conn.state = ConnState.CLOSED

    # -- handlers -------------------------------------------------------------------
    def on_ignore(self, conn, message):
        pass

    def on_bye(self, conn, message):
        self.connection_lost(conn)
        conn.close("client said bye")

    def on_hello(self, conn, message):
        conn.nonce = self.random_bytes(32)
        conn.state = ConnState.CHALLENGED
        conn.send(m.Challenge(conn.nonce, 1 if self.auth_secret else 0))

    def on_register(self, conn, message):
        ip = conn.peer_addr[0]
        if not self.register_limiter.allow(ip):
            raise RelayError("rate_limited", "too many registrations from your address; slow down")
        self._check_auth(conn, message)
        self._precheck_key(message)
        nonce = conn.nonce
        conn.state = ConnState.VERIFYING
        self.offload(lambda: check_ownership(nonce, message),
                     lambda problem: self._finish_register(conn, message, problem))

    def on_reregister(self, conn, message):
        raise RemoteProtocolError("already registered on this connection; send Update instead")

    def _precheck_key(self, message):
        """Cheap refusals before the ~0.3 ms signature check, so a flood of doomed Registers costs little.

        Raises IdentityError for a key that cannot own the ID (derivation, or the ID bound to another
        key), RelayError when the binding table is full. Registry.add checks the binding again after
        the signature check: the table may change while it runs.
        """
        problem = ownership_precheck(message)
        if problem:
            raise IdentityError(problem)
        self.registry.bindings.check(message.client_id, message.public_key)

    def _check_auth(self, conn, message):
        if not self.auth_secret:
            return
        expected = m.auth_proof(self.auth_secret, conn.nonce, message.client_id)
        if not hmac.compare_digest(expected, message.auth_proof):
            self.counters["auth_failures_total"] += 1
            raise RelayError("auth_failed", "this relay requires a secret and yours is missing or wrong")

    def _finish_register(self, conn, message, problem):
        """Runs on the server's loop thread after the signature check."""
        if conn.state is not ConnState.VERIFYING:
            return  # closed while we were checking
        try:
            if problem:
                raise IdentityError(problem)
            reg = Registration(message.client_id, message.public_key, conn, conn.peer_addr,
                               list(message.local_candidates), message.nat_hint)
            old = self.registry.add(reg)
        except TagioError as exc:
            conn.fail(exc)
            return
        if old is not None:
            old.conn.state = ConnState.CLOSED
            old.conn.send(m.Error("replaced", "this ID registered again from another connection"))
            old.conn.close("replaced by a new registration of the same key")
        conn.state = ConnState.REGISTERED
        self.counters["registrations_total"] += 1
        log.debug("registered %s from %s:%d", reg.client_id, *conn.peer_addr)
        lim = self.limits
        conn.send(m.Registered(conn.peer_addr, int(self.wall_clock() * 1000),
                               int(lim.heartbeat_interval * 1000), reg.udp_token))

    def on_heartbeat(self, conn, message):
        conn.send(m.Heartbeat(message.seq))

    def on_update(self, conn, message):
        reg = self.registry.for_conn(conn)
        reg.local_candidates = list(message.local_candidates)
        reg.nat_hint = message.nat_hint

    def on_connect_request(self, conn, message):
        self.counters["connect_requests_total"] += 1
        try:
            viewer, host = self._rendezvous(conn, message)
            token = self.random_bytes(16)
            self.pairing.issue(token)  # "busy" answers this request; the registration stays up
        except RelayError as exc:
            self.counters["errors_total"] += 1
            conn.send(m.Error(exc.code, exc.text, message.session_id))
            return
        log.debug("rendezvous %s -> %s", viewer.client_id, host.client_id)
        conn.send(peer_info(message.session_id, "viewer", host, token))
        host.conn.send(peer_info(message.session_id, "host", viewer, token))

    def on_lookup(self, conn, message):
        """Online, offline or unknown: nothing more (no key, no address), and under the same
        per-address limit as connect requests, so it is no cheaper way to scan IDs."""
        if not self.connect_limiter.allow(conn.peer_addr[0]):
            self.counters["errors_total"] += 1
            conn.send(m.Error("rate_limited", "too many requests from your address; slow down",
                              message.ref))
            return
        conn.send(m.LookupResult(message.ref, lookup_state(self.registry, message.target_id)))

    def _rendezvous(self, conn, message):
        if not self.connect_limiter.allow(conn.peer_addr[0]):
            raise RelayError("rate_limited", "too many connect requests from your address; slow down")
        viewer = self.registry.for_conn(conn)
        target = "".join(ch for ch in message.target_id if ch.isdigit())
        host = self.registry.get(target)
        if host is None:
            known = self.registry.bindings.get(target) is not None
            raise RelayError("offline" if known else "unknown_id",
                             f"ID {target} is offline" if known else f"ID {target} is not known to this relay")
        if host is viewer:
            raise RelayError("self", "you cannot connect to your own ID")
        return viewer, host

    def on_relay_bind(self, conn, message):
        partner = self.pairing.bind(message.token, conn)
        if partner is None:
            conn.state = ConnState.BINDING
            return
        conn.state = partner.state = ConnState.RELAYING
        self.counters["relay_pairs_total"] += 1
        log.debug("relay paired %s:%d <-> %s:%d", *conn.peer_addr, *partner.peer_addr)
        conn.start_relay(partner)

    # -- UDP ----------------------------------------------------------------------------
    def on_udp(self, message, addr):
        """Answer a reflexive-address query; returns the reply message or None."""
        if not isinstance(message, m.UdpDiscover):
            raise RemoteProtocolError(f"unexpected {type(message).__name__} over UDP")
        if len(message.padding) < m.UDP_PADDING:  # else the answer could outweigh a spoofed query
            raise RemoteProtocolError(f"UDP query padded with {len(message.padding)} bytes, not {m.UDP_PADDING}")
        self.counters["udp_queries_total"] += 1
        recorded = self.registry.record_udp(message.udp_token, addr) if message.udp_token else False
        return m.UdpObserved(message.txid, addr, 1 if recorded else 0)

    # -- timers -----------------------------------------------------------------------------
    def tick(self) -> None:
        """Expire silent registrations and unpaired binds; the server calls this about once a second."""
        for reg in self.registry.expire():
            reg.conn.state = ConnState.CLOSED
            reg.conn.fail(RelayError("timeout", "no heartbeat received in time; registration expired"))
        for conn in self.pairing.expire():
            conn.state = ConnState.CLOSED
            conn.fail(RelayError("unpaired", "the other side never bound this relay token"))


def ownership_precheck(message) -> str:
    """'' when the Register's key can own its ID (derivation only, no signature), else the reason."""
    try:
        derived = id_from_public_key(message.public_key)
    except IdentityError as exc:
        return str(exc)
    if derived != message.client_id:
        return f"ID {message.client_id} does not belong to the presented key"
    return ""


def check_ownership(nonce: bytes, message) -> str:
    """'' when the Register message proves ownership of its ID, else the reason. Pure, thread-safe."""
    problem = ownership_precheck(message)
    if problem:
        return problem
    signed = m.registration_message(nonce, message.client_id, message.public_key)
    if not verify(message.public_key, signed, message.signature):
        return "bad signature over the registration challenge"
    return ""


def lookup_state(registry, target_id) -> str:
    """"online", "offline" (its key registered here before) or "unknown"."""
    target = "".join(ch for ch in target_id if ch.isdigit())
    if registry.get(target) is not None:
        return "online"
    return "offline" if registry.bindings.get(target) is not None else "unknown"


def peer_info(session_id, role, other: Registration, token) -> m.PeerInfoMsg:
    return m.PeerInfoMsg(session_id, role, other.client_id, other.public_key, other.observed_addr,
                         other.udp_addr, list(other.local_candidates), token, other.nat_hint)
