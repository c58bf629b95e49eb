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

A rendezvous forwards each side's announced candidates to the other only when that side could
own them (tagio.protocol.candidates: an IP the relay observed for it, a private one when both
sides were observed at one IP; at most MAX_CANDIDATES; nothing unusable), so the relay is no tool
for steering a client into dialling or punching a third party; rendezvous are limited per source
address, per requesting ID and per target ID.

Signature checks are the one expensive step (~0.25 ms, tagio.relay.verify):
`on_register` returns a Verify action, the I/O layer runs it on a worker
thread and fires VERIFIED, handled by `on_verified` on the loop thread.
Cheap refusals come first (rate limit, ID not derived from the key, ID bound
to another key, relay-secret guesses), so a flood of doomed Registers costs little.

A private relay (one with a secret) answers Hello with an AuthChallenge and
checks the secret with SPAKE2 (tagio.relay.auth, tagio.crypto.relay_auth): its
worker job is the signature check plus the relay's SPAKE2 step (AUTH_CHECKED,
`on_auth_checked` sends AuthReply), and the client's AuthConfirm completes the
registration (`on_auth_confirm`).
"""

import collections
import logging
import time

from tagio.crypto.identity import id_from_public_key
from tagio.errors import (AuthError, ConfigError, IdentityError, ProtocolError,
                          RelayError, RemoteProtocolError, TagioError)
from tagio.protocol import relay as m
from tagio.protocol.candidates import plausible, same_site
from tagio.relay.events import Batch, Event, Fail, Fire, Linger, Relay, Send, Verify
from tagio.relay.auth import RelayAuth
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
    connect_id_rate, connect_id_burst = 0.5, 10.0    # per requesting ID: IDs are cheap, sources are shared
    connect_target_rate, connect_target_burst = 2.0, 10.0  # per target ID, from all sources together
    # Relay-secret guesses (tagio.relay.auth): a wrong secret, or a hang-up after the relay's SPAKE2
    # point, spends one; a right secret spends none. RustDesk allows 6 a minute per source.
    auth_fail_rate, auth_fail_burst = 0.1, 6.0              # per source address: 6 a minute
    auth_fail_id_rate, auth_fail_id_burst = 0.1, 6.0        # per ID
    auth_fail_total_rate, auth_fail_total_burst = 0.5, 30.0  # the whole relay: 30 a minute, any sources
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
                 clock=time.monotonic, wall_clock=time.time, public_ip=None, auth_realm=None):
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
        self.connect_id_limiter = RateLimiter(clock, lim.connect_id_rate, lim.connect_id_burst)
        self.warn = LogLimiter(clock)
        self.auth = None
        # One counter table for the whole relay (the I/O layer adds its own keys); these start at
        # zero so that /metrics lists them before the first event.
        self.counters = collections.Counter(
            {"registrations_total": 0, "connect_requests_total": 0, "relay_pairs_total": 0,
             "errors_total": 0, "auth_failures_total": 0, "udp_queries_total": 0})
        if self.auth_secret:  # the secret's slow KDF runs here, once, at start-up
            # A fresh realm (the KDF's salt) per start: nothing computed against one run of the relay
            # helps against the next; a client derives w again once after a restart (~0.1 s).
            realm = auth_realm or f"tagio-relay-{self.random_bytes(8).hex()}"
            self.auth = RelayAuth(self.auth_secret, realm, lim, clock, self.counters, self.warn)

    def connection_lost(self, conn) -> None:
        """Forget conn wherever it is known (registry, pairing); harmless when it was never there."""
        self.registry.remove(conn)
        self.pairing.drop(conn)
        if self.auth is not None:
            self.auth.lost(conn)

    # -- handlers (named in tagio.relay.connection.TRANSITIONS) --------------------------
    def on_hello(self, conn, message):
        conn.nonce = self.random_bytes(32)
        if self.auth is None:
            return [Send(conn, m.Challenge(conn.nonce, 0))]
        if message.software in m.LEGACY_SOFTWARE:  # it would answer with a proof a recording could crack
            raise RelayError("protocol", "this private relay checks its relay secret with a newer, safer "
                             "method: update TagIO on this machine")
        return [Send(conn, self.auth.challenge(conn.nonce))]

    def on_register(self, conn, message):
        ip = conn.peer_addr[0]
        if not self.register_limiter.allow(ip):
            raise RelayError("rate_limited", "too many registrations from your address; slow down")
        if not self.register_id_limiter.allow(message.client_id):
            raise RelayError("rate_limited", "too many registrations of this ID; slow down")
        self._precheck_key(message)
        nonce = conn.nonce
        if self.auth is not None:
            self.auth.admit(conn, message)  # one guess at the secret, or "rate_limited"
            return [Verify(conn, self.auth.job(nonce, message, check_ownership), message, Event.AUTH_CHECKED)]
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

    def on_verified(self, conn, outcome):
        """The signature check of `message` ended with `problem` ('' when it proved ownership)."""
        message, problem = outcome
        if problem:
            raise IdentityError(problem)
        return self._registered(conn, message)

    def on_auth_checked(self, conn, outcome):
        """A private relay's worker job ended: AuthReply (pB), or the problem that ends the attempt."""
        _message, result = outcome
        return [Send(conn, self.auth.replied(conn, result))]

    def on_auth_confirm(self, conn, message):
        """The client's conf_a: right -> the relay's conf_b and Registered; wrong -> "auth_failed"."""
        confirmation, register = self.auth.confirmed(conn, message.mac)
        *others, registered = self._registered(conn, register)  # its last action sends Registered
        return others + [Send(conn, Batch((confirmation, registered.message)))]

    def _registered(self, conn, message):
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
        one_site = same_site(viewer.observed_addr[0], host.observed_addr[0])
        return [Send(conn, peer_info(message.session_id, "viewer", host, token, one_site)),
                Send(host.conn, peer_info(message.session_id, "host", viewer, token, one_site))]

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
        if not self.connect_id_limiter.allow(viewer.client_id):
            raise RelayError("rate_limited", "too many connect requests from your ID; slow down")
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


def peer_info(session_id, role, other: Registration, token, one_site=False) -> m.PeerInfoMsg:
    """What one side learns of `other`: its announced candidates only where it could own them
    (`one_site`: both sides were observed at one IP, so private addresses are worth trying)."""
    observed = [other.observed_addr[0]] + ([other.udp_addr[0]] if other.udp_addr else [])
    local = plausible(other.local_candidates, observed, same_site=one_site)
    return m.PeerInfoMsg(session_id, role, other.client_id, other.public_key, other.observed_addr,
                         other.udp_addr, local, token, other.nat_hint)
