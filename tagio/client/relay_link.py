"""Keeps one registration at the relay alive: connect, pump incoming rendezvous, reconnect with backoff.

Theory of operation: one thread ("relay-link") owns the RelayClient. It registers (announcing the direct
listener's candidates), then waits on the client's bounded `incoming` queue and hands each PeerInfo to
`on_peer` (which must not block: it only starts a handler thread). When the relay goes away the client
is closed and a fresh one is made after an exponential backoff (1 s doubling to 30 s, with jitter so a
relay restart is not met by every client at the same instant). While it backs off, the link probes the
relay's port every PROBE_EVERY seconds (a bare TCP connect, jittered, no TLS, no registration): once the
port answers again it registers at once (after up to COMEBACK_JITTER), so a relay that comes back after
a long outage has its clients again within a few seconds instead of up to a whole backoff step.
`next_retry_in()` says how long until the next full attempt (the window's countdown) and `retry_now()`
cuts the wait short (its "Retry now" button). A relay that refuses our relay secret (`auth_failed`,
WAIT_FOR_USER) is not tried again on a timer: each try is one online guess at the secret for whoever
answers at the relay's address, an impostor included. The link then waits for the person
(`waiting_for_user`: Retry now, or a new secret, which makes a new link) and its status says so in
the words of tagio.client.words. The link's state is a small machine
(LinkState + TRANSITIONS); `status` renders it for people: "online", "connecting", "unreachable: why".
`close()` sets the stop event, closes the current RelayClient (which unblocks it) and joins the thread;
an unexpected exception that ended the thread is re-raised there.
"""

import enum
import logging
import random
import socket
import threading
import time
import queue

from tagio.client.words import explain
from tagio.crypto.relay_auth import RelaySecret
from tagio.errors import LocalProtocolError, RelayError, TagioError

log = logging.getLogger("tagio.client.relay")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
POLL = 0.25                 # how often the pump notices a stop or a lost relay
REGISTER_TIMEOUT = 8.0
UDP_DISCOVERY_TIMEOUT = 1.5  # one try after registering; punching then has a reflexive address
PROBE_EVERY = 1.0           # seconds between port probes while backing off (+-25 % jitter)
PROBE_TIMEOUT = 1.0
COMEBACK_JITTER = 0.5       # at most this long between a probe that answered and registering
REFUSED = "relay refused"   # how a status names a relay that answered and said no
# Refusals retried only when the person asks (Retry now, a new secret): a retry on a timer would
# hand whoever answers at the relay's address another guess at our relay secret.
WAIT_FOR_USER = {"auth_failed"}


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    UNREACHABLE = "unreachable"
    CLOSED = "closed"


# (state, event) -> next state; a pair missing here is a bug and raises.
TRANSITIONS = {
    (LinkState.CONNECTING, "registered"): LinkState.ONLINE,
    (LinkState.CONNECTING, "failed"): LinkState.UNREACHABLE,
    (LinkState.ONLINE, "lost"): LinkState.CONNECTING,
    # While retrying after a failure the status stays "unreachable: why" (no flicker to "connecting").
    (LinkState.UNREACHABLE, "retry"): LinkState.UNREACHABLE,
    (LinkState.UNREACHABLE, "registered"): LinkState.ONLINE,
    (LinkState.UNREACHABLE, "failed"): LinkState.UNREACHABLE,
    (LinkState.CONNECTING, "close"): LinkState.CLOSED,
    (LinkState.ONLINE, "close"): LinkState.CLOSED,
    (LinkState.UNREACHABLE, "close"): LinkState.CLOSED,
    (LinkState.CLOSED, "close"): LinkState.CLOSED,
}


def _default_factory(address, identity, **kwargs):
    from tagio.net.relay_client import RelayClient   # late: the relay client is another module's
    return RelayClient(address, identity, **kwargs)


def tcp_probe(address, timeout=PROBE_TIMEOUT) -> bool:
    """Does anything accept TCP connections at `address`? (A SYN and a FIN: no TLS, no relay work.)"""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def next_backoff(previous, rng=random.random):
    """1 s, 2 s, 4 s ... 30 s, each with up to 25 % jitter."""
    base = BACKOFF_FIRST if previous is None else min(previous * 2, BACKOFF_MAX)
    return base * (1.0 + 0.25 * rng())


class RelayLink:
    def __init__(self, address, identity, *, auth_secret=None, candidates=lambda: [], on_peer,
                 on_status=lambda status: None, factory=_default_factory, backoff=None,
                 udp_socket=lambda: None, client_options=None, on_identity_refused=lambda exc: None,
                 probe=tcp_probe, rng=random.random, clock=time.monotonic):
        self.address = address
        self._client_options = dict(client_options or {})   # TLS / WebSocket for the RelayClient
        self._identity, self._auth_secret = identity, RelaySecret(auth_secret) if auth_secret else None
        self._candidates, self._on_peer, self._on_status = candidates, on_peer, on_status
        self._factory = factory
        self._udp_socket = udp_socket       # -> socket-like for discover_udp, or None (no UDP punching)
        # The relay refused our key for our ID: the callback may return a replacement identity.
        self._on_identity_refused = on_identity_refused
        self._backoff = backoff or next_backoff
        self._probe, self._rng, self._clock = probe, rng, clock
        self._retry_now = threading.Event()     # "Retry now", or close(): end the wait at once
        self._next_retry = None                 # clock() of the next full attempt while waiting
        self._refusal = None                    # the last failure, if it needs the person
        self._waiting_for_user = False
        self._state, self._reason = LinkState.CONNECTING, ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._state_changed = threading.Condition(self._lock)
        self.relay = None                   # the registered RelayClient, or None
        self._error = None
        self._thread = threading.Thread(target=self._run, name="relay-link", daemon=True)

    # ------------------------------------------------------------------ public

    def start(self):
        self._thread.start()

    @property
    def status(self) -> str:
        with self._lock:
            if self._state is LinkState.UNREACHABLE:
                return f"unreachable: {self._reason}"
            return self._state.value

    @property
    def online(self) -> bool:
        return self._state is LinkState.ONLINE

    def wait_online(self, timeout):
        """The registered RelayClient; the relay's refusal when it refused us in a way only the
        person can mend (WAIT_FOR_USER: a wrong secret); RelayError('unreachable') otherwise."""
        with self._state_changed:
            self._state_changed.wait_for(lambda: self._state is not LinkState.CONNECTING
                                         or self._stop.is_set(), timeout)
            relay, state, reason, refusal = self.relay, self._state, self._reason, self._refusal
        if state is LinkState.ONLINE and relay is not None:
            return relay
        if refusal is not None:     # refused (a wrong relay secret...): that, not "unreachable"
            raise refusal
        host, port = self.address
        why = reason or ("still connecting" if state is LinkState.CONNECTING else state.value)
        raise RelayError("unreachable", f"relay {host}:{port} is unreachable: {why}")

    def retry_now(self):
        """Cut the current backoff short (the window's "Retry now")."""
        self._retry_now.set()

    @property
    def waiting_for_user(self) -> bool:
        """True while the relay refused our secret and only Retry now (or a new secret) tries again."""
        return self._waiting_for_user

    def next_retry_in(self):
        """Seconds until the next attempt to register while waiting after a failure, else None."""
        deadline = self._next_retry
        return None if deadline is None else max(0.0, deadline - self._clock())

    def close(self):
        self._stop.set()
        self._retry_now.set()
        relay = self.relay
        if relay is not None:
            _close_quietly(relay)
        if self._thread.is_alive():
            self._thread.join(REGISTER_TIMEOUT + 2)
        self._fire("close")
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # ------------------------------------------------------------------ the thread

    def _run(self):
        try:
            self._loop()
        except BaseException as exc:      # kept for close(): a dead link must not be silent
            self._error = exc
            self._fire_quietly("failed", f"internal error: {type(exc).__name__}")

    def _loop(self):
        delay = None
        while not self._stop.is_set():
            client = self._register()
            if client is None:
                if self._refusal is not None:
                    self._wait_for_user()
                else:
                    delay = self._backoff(delay)
                    self._wait_before_retry(delay)
                if self._stop.is_set():
                    return
                self._fire("retry")
                continue
            delay = None
            self._pump(client)
            self.relay = None
            _close_quietly(client)
            if not self._stop.is_set():
                self._fire("lost", client.last_error or "connection lost")

    def _wait_before_retry(self, delay):
        """Wait up to `delay` seconds; probe the relay's port meanwhile and stop waiting as soon as
        it answers (plus a little jitter, so a relay that comes back is not met by every client at
        once), or at retry_now() / close()."""
        deadline = self._clock() + delay
        self._next_retry = deadline
        try:
            while not self._retry_now.is_set():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return
                step = min(remaining, PROBE_EVERY * (0.75 + 0.5 * self._rng()))
                if self._retry_now.wait(step):
                    break
                if self._clock() < deadline and self._probe(self.address):
                    log.info("the relay answers again; registering")
                    self._retry_now.wait(COMEBACK_JITTER * self._rng())
                    return
        finally:
            self._next_retry = None
            if not self._stop.is_set():
                self._retry_now.clear()

    def _wait_for_user(self):
        """Wait, with no timer and no probe, for retry_now() (or close())."""
        self._waiting_for_user = True
        try:
            self._retry_now.wait()
        finally:
            self._waiting_for_user = False
            if not self._stop.is_set():
                self._retry_now.clear()

    def _register(self):
        client = self._factory(self.address, self._identity, auth_secret=self._auth_secret,
                               local_candidates=list(self._candidates()), timeout=REGISTER_TIMEOUT,
                               **self._client_options)
        try:
            client.connect()
        except (TagioError, OSError) as exc:
            _close_quietly(client)
            replacement = self._on_identity_refused(exc) if _identity_refused(exc) else None
            if replacement is not None:     # a new key (new ID): register it at once
                self._identity = replacement
                return self._register()
            self._refusal = exc if _needs_user(exc) else None
            self._fire("failed", _describe(exc))
            return None
        self._discover_udp(client)
        self.relay = client
        self._fire("registered")
        return client

    def _discover_udp(self, client):
        """Let the relay learn our reflexive UDP address, so partners can punch to it."""
        sock = self._udp_socket()
        if sock is None or not hasattr(client, "discover_udp"):
            return
        try:
            client.discover_udp(sock, timeout=UDP_DISCOVERY_TIMEOUT)
        except (TagioError, OSError) as exc:    # no UDP to the relay: TCP and the relay still work
            log.info("UDP discovery at the relay failed: %s", _describe(exc))

    def _pump(self, client):
        while not self._stop.is_set() and client.online:
            try:
                peer = client.incoming.get(timeout=POLL)
            except queue.Empty:
                continue
            self._on_peer(peer)

    # ------------------------------------------------------------------ state machine

    def _fire(self, event, reason=""):
        before = self.status
        with self._state_changed:
            key = (self._state, event)
            if key not in TRANSITIONS:
                raise LocalProtocolError(f"relay link: no transition for {key}")
            self._state = TRANSITIONS[key]
            if event in ("failed", "lost"):
                self._reason = reason
            if event in ("registered", "failed", "close"):
                self._first_attempt.set()
            self._state_changed.notify_all()
        if event != "close" and self.status != before:
            self._on_status(self.status)
        if event == "lost":
            log.info("relay connection lost: %s", reason)

    def _fire_quietly(self, event, reason):
        try:
            self._fire(event, reason)
        except TagioError:
            pass


def _identity_refused(exc) -> bool:
    """The relay's "identity" refusal: our ID is bound to another key (or our proof was bad)."""
    return isinstance(exc, RelayError) and exc.code == "identity"


def _needs_user(exc) -> bool:
    return isinstance(exc, RelayError) and exc.code in WAIT_FOR_USER


def _describe(exc) -> str:
    if _needs_user(exc):        # in the words people read ("The relay refused this desk: ...")
        return explain(exc).sentence
    if isinstance(exc, RelayError):
        return f"{REFUSED}: {exc.text}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _close_quietly(relay):
    try:
        relay.close()
    except (TagioError, OSError):
        pass
