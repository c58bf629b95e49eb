"""The relay's behaviour, without I/O: what to do with each message from each connection.

Theory of operation
-------------------
Every handler here is named in the one transition table of a relay
connection (tagio.relay.connection.TRANSITIONS), which also says which state
the connection moves to; these handlers never set a state. A handler takes
(conn, message), changes only plain objects (the registry, the pairing table,
the rate limiters, the Conn's own fields) and returns a list of actions
(tagio.relay.events) for the I/O layer to carry out. `conn` is any object with

    peer_addr (ip, port)   observed source address
    state                  its State (read only here)
    nonce                  the challenge sent to it (set here)

Fatal problems raise a TagioError, which the I/O layer turns into an Error
frame + close (`error_code()` picks the code); answers to a single request
(unknown target, rate limited) are sent as an Error frame carrying the
request's session id and the connection stays up.

Signature checks are the one expensive step (~0.25 ms, tagio.relay.verify):
`on_register` returns a Verify action, the I/O layer runs it on a worker
thread and fires VERIFIED, handled by `on_verified` on the loop thread.
Cheap refusals come first (rate limit, relay secret, ID not derived from the
key, ID bound to another key), so a flood of doomed Registers costs little.
"""

import collections
import hmac
import logging
import time

from tagio.crypto.identity import id_from_public_key
from tagio.errors import (AuthError, ConfigError, IdentityError, ProtocolError,
                          RelayError, RemoteProtocolError, TagioError)
from tagio.protocol import relay as m
from tagio.relay.events import Event, Fail, Fire, Linger, Relay, Send, Verify
from tagio.relay.pairing import Pairing
from tagio.relay.randpool import RandomPool
from tagio.relay.ratelimit import RateLimiter
from tagio.relay.registry import Registration, Registry
from tagio.relay.verify import is_small_order, verify

log = logging.getLogger("tagio.relay")



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
    register_rate, register_burst = 5.0, 20.0        # per source address
    register_id_rate, register_id_burst = 1.0, 10.0  # per ID: behind one proxy or NAT, sources are shared
    connect_rate, connect_burst = 2.0, 10.0          # per source address
    connect_target_rate, connect_target_burst = 2.0, 10.0  # per target ID, from all sources together
    max_conns_per_ip = 256             # an office behind one NAT address holds one connection per client
    max_frames_per_sec = 50          # per control connection (heartbeats are one per 20 s)
    max_conns = 20_000
    max_bindings = 1_000_000
    out_buffer = 256 * 1024          # per-connection queued control bytes
    relay_buffer = 1 << 20           # per direction
    relay_socket_buffer = 256 * 1024  # SO_SNDBUF/SO_RCVBUF of relayed sockets (the kernel doubles it): without
                                      # it autotuning lets one stalled pair hold ~7 MiB of kernel memory
    state_save_interval = 5.0        # bindings file: new IDs are written at most this often (and at stop)
    binding_ttl = 180 * 86400.0      # an ID that has not registered for this long loses its binding

    def __init__(self, **overrides):
        for key, value in overrides.items():
            if not hasattr(Limits, key):
                raise ConfigError(f"unknown relay limit {key!r}")
            setattr(self, key, value)


class LogLimiter:
    """log.warning at most once per key per `every` seconds: floods must not flood the log too."""

    def __init__(self, clock, every=10.0, max_keys=10_000):
        self.clock, self.every, self.max_keys = clock, every, max_keys
        self._last = {}

    def __call__(self, key, fmt, *args) -> None:
        now = self.clock()
        if now - self._last.get(key, -1e9) >= self.every:
            if len(self._last) > self.max_keys:
                self._last.clear()
            self._last[key] = now
            log.warning(fmt, *args)


class RelayLogic:
    def __init__(self, limits: Limits = None, *, auth_secret=None, bindings=None,
                 clock=time.monotonic, wall_clock=time.time, public_ip=None):
        self.limits = limits or Limits()
        self.auth_secret = auth_secret or None
        self.clock = clock
        self.wall_clock = wall_clock
        self.public_ip = public_ip
        lim = self.limits
        self.random_bytes = RandomPool().take
        self.registry = Registry(clock, lim.heartbeat_interval * lim.heartbeat_misses, bindings,
                                 self.random_bytes)
        self.pairing = Pairing(clock, lim.token_ttl, lim.unpaired_timeout)
        self.register_limiter = RateLimiter(clock, lim.register_rate, lim.register_burst)
        self.connect_limiter = RateLimiter(clock, lim.connect_rate, lim.connect_burst)
        self.register_id_limiter = RateLimiter(clock, lim.register_id_rate, lim.register_id_burst)
        self.target_limiter = RateLimiter(clock, lim.connect_target_rate, lim.connect_target_burst)
        self.warn = LogLimiter(clock)
        # One counter table for the whole relay (the I/O layer adds its own keys); these start at
        # zero so that /metrics lists them before the first event.
        self.counters = collections.Counter(
            {"registrations_total": 0, "connect_requests_total": 0, "relay_pairs_total": 0,
             "errors_total": 0, "auth_failures_total": 0, "udp_queries_total": 0})

    def connection_lost(self, conn) -> None:
        """Forget conn wherever it is known (registry, pairing); harmless when it was never there."""
        self.registry.remove(conn)
        self.pairing.drop(conn)

    # -- handlers (named in tagio.relay.connection.TRANSITIONS) --------------------------
    def on_hello(self, conn, message):
        conn.nonce = self.random_bytes(32)
        return [Send(conn, m.Challenge(conn.nonce, 1 if self.auth_secret else 0))]

    def on_register(self, conn, message):
        ip = conn.peer_addr[0]
        if not self.register_limiter.allow(ip):
            raise RelayError("rate_limited", "too many registrations from your address; slow down")
        if not self.register_id_limiter.allow(message.client_id):
            raise RelayError("rate_limited", "too many registrations of this ID; slow down")
        self._check_auth(conn, message)
        self._precheck_key(message)
        nonce = conn.nonce
        return [Verify(conn, lambda: check_ownership(nonce, message), message)]

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

    def on_verified(self, conn, outcome):
        """The signature check of `message` ended with `problem` ('' when it proved ownership)."""
        message, problem = outcome
        if problem:
            raise IdentityError(problem)
        reg = Registration(message.client_id, message.public_key, conn, conn.peer_addr,
                           list(message.local_candidates), message.nat_hint)
        old = self.registry.add(reg)
        actions = [] if old is None else [Fire(old.conn, Event.REPLACED)]
        self.counters["registrations_total"] += 1
        log.debug("registered %s from %s:%d", reg.client_id, *conn.peer_addr)
        lim = self.limits
        return actions + [Send(conn, m.Registered(conn.peer_addr, int(self.wall_clock() * 1000),
                                                  int(lim.heartbeat_interval * 1000), reg.udp_token))]

    def on_replaced(self, conn, _event):
        self.connection_lost(conn)
        return [Send(conn, m.Error("replaced", "this ID registered again from another connection")), Linger(conn)]

    def on_heartbeat(self, conn, message):
        return [Send(conn, m.Heartbeat(message.seq))]

    def on_ignore(self, conn, message):
        return []

    def on_bye(self, conn, message):
        self.connection_lost(conn)
        return [Linger(conn)]

    def on_update(self, conn, message):
        reg = self.registry.for_conn(conn)
        reg.local_candidates = list(message.local_candidates)
        reg.nat_hint = message.nat_hint
        return []

    def on_connect_request(self, conn, message):
        self.counters["connect_requests_total"] += 1
        try:
            viewer, host = self._rendezvous(conn, message)
            token = self.random_bytes(16)
            self.pairing.issue(token)  # "busy" answers this request; the registration stays up
        except RelayError as exc:
            self.counters["errors_total"] += 1
            return [Send(conn, m.Error(exc.code, exc.text, message.session_id))]
        log.debug("rendezvous %s -> %s", viewer.client_id, host.client_id)
        return [Send(conn, peer_info(message.session_id, "viewer", host, token)),
                Send(host.conn, peer_info(message.session_id, "host", viewer, token))]

    def on_lookup(self, conn, message):
        """Online, offline or unknown: nothing more (no key, no address), and under the same
        per-address limit as connect requests, so it is no cheaper way to scan IDs."""
        if not self.connect_limiter.allow(conn.peer_addr[0]):
            self.counters["errors_total"] += 1
            return [Send(conn, m.Error("rate_limited", "too many requests from your address; slow down",
                                       message.ref))]
        return [Send(conn, m.LookupResult(message.ref, lookup_state(self.registry, message.target_id)))]

    def _rendezvous(self, conn, message):
        if not self.connect_limiter.allow(conn.peer_addr[0]):
            raise RelayError("rate_limited", "too many connect requests from your address; slow down")
        viewer = self.registry.for_conn(conn)
        target = "".join(ch for ch in message.target_id if ch.isdigit())
        host = self.registry.get(target)
        if host is not None and not self.target_limiter.allow(target):
            raise RelayError("rate_limited", f"too many connect requests to ID {target}; try again shortly")
        if host is None:
            known = self.registry.bindings.get(target) is not None
            raise RelayError("offline" if known else "unknown_id",
                             f"ID {target} is offline" if known else f"ID {target} is not known to this relay")
        if host is viewer:
            raise RelayError("self", "you cannot connect to your own ID")
        return viewer, host

    def on_relay_bind(self, conn, message):
        """The first side waits (BINDING); the second completes the pair and both move to RELAYING."""
        partner = self.pairing.bind(message.token, conn)
        if partner is None:
            return []
        self.counters["relay_pairs_total"] += 1
        log.debug("relay paired %s:%d <-> %s:%d", *conn.peer_addr, *partner.peer_addr)
        return [Fire(partner, Event.PAIRED), Fire(conn, Event.PAIRED), Relay(conn, partner)]

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
    def tick(self) -> list:
        """Expire silent registrations and unpaired binds (about once a second); returns Fail actions."""
        expired = [Fail(reg.conn, RelayError("timeout", "no heartbeat received in time; registration expired"))
                   for reg in self.registry.expire()]
        return expired + [Fail(conn, RelayError("unpaired", "the other side never bound this relay token"))
                          for conn in self.pairing.expire()]


def ownership_precheck(message) -> str:
    """'' when the Register's key can own its ID (derivation only, no signature), else the reason."""
    if is_small_order(message.public_key):
        return "small-order public key refused (any signature would verify with it)"
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
