"""The relay server: one selectors loop for control traffic, a worker pool, a forwarder thread.

Theory of operation
-------------------
The loop thread owns every control connection through a ConnTable
(tagio.relay.conns), which turns readiness into events for each
connection's state machine (tagio.relay.connection) and carries out the
actions the machine returns. The loop itself only accepts, answers UDP
queries, runs work posted back from other threads, and ticks the timers
once a second. Its selector keys are dispatched through a table (DISPATCH).
Paired relay connections leave the loop for the Forwarder thread.

Expensive work (Ed25519 verification, writing the state file) runs on
worker threads (tagio.relay.workers); results come back to the loop thread through a deque
(one entry at most per connection being verified) and a wake-up socket, so RelayLogic is only ever touched by one thread.
Every buffer is bounded (see tagio.relay.conns). Every connection has a
deadline until it has registered or bound a token (slow-loris); registered
clients expire after missed heartbeats; connections per source address and
in total are capped.
"""

import collections
import errno
import logging
import re
import selectors
import socket
import ssl
import threading
import time

from tagio import __version__
from tagio.errors import ConfigError, TagioError
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.relay.conn import normalize_addr
from tagio.relay.conns import ConnTable
from tagio.relay.fdlimit import FdBudget, open_fds, raise_fd_limit
from tagio.relay.forward import Forwarder
from tagio.relay.http import http_response
from tagio.relay.logic import Limits, RelayLogic
from tagio.relay.registry import BindingStore
from tagio.relay.shards import SELECT_CAP, make_selector, select_is_capped
from tagio.relay.workers import Workers

log = logging.getLogger("tagio.relay")
VERSION = __version__          # one version for both programs
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class RelayServer:
    def __init__(self, bind=("0.0.0.0", 443), *, auth_secret=None, ssl_context=None, state_file=None,
                 public_ip=None, limits=None, clock=time.monotonic, wall_clock=time.time, workers=2,
                 trusted_proxies=frozenset(), selector_factory=make_selector, metrics_token=None):
        self.bind_addr = bind
        self._selector_factory = selector_factory  # sharded where select() is capped (tagio.relay.shards)
        self.ssl_context = ssl_context
        self.public_ip = public_ip
        self.limits = limits or Limits()
        self.clock = clock
        bindings = BindingStore(state_file, self.limits.max_bindings, wall_clock)
        self.state_at_start = load_bindings(bindings)  # "fresh", "loaded" or "lost", shown by /health
        bindings.expire(self.limits.binding_ttl)
        self.logic = RelayLogic(self.limits, auth_secret=auth_secret, bindings=bindings, clock=clock,
                                wall_clock=wall_clock, public_ip=public_ip)
        self.counters = self.logic.counters  # one counter table for the whole relay
        self._workers = workers
        self.trusted_proxies = frozenset(trusted_proxies)
        self.metrics_token = metrics_token  # /metrics needs it; never the relay secret (tagio.relay.http)
        self.conns = None  # a ConnTable once open()
        self._posted = collections.deque()  # at most one entry per connection being verified
        self._posted_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._serving = False
        self.error = None
        self._started = time.time()
        self._saving = False
        self._next_save = 0.0
        self._accept_paused_until = 0.0
        self._next_expiry = 0.0
        self.ticks = 0  # timer rounds run so far (tests with a fake clock wait on it)
        self.tcp = self.udp = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self):
        """Bind TCP and UDP; raises ConfigError with a one-line reason (port in use, no permission)."""
        host, port = self.bind_addr
        fd_limit = raise_fd_limit()
        for attempt in range(5 if port == 0 else 1):
            try:
                self._bind(host, port)
                break
            except OSError as exc:
                self._close_listeners()
                if port == 0 and attempt < 4:
                    continue  # the kernel's free TCP port was taken for UDP: pick another
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc
        self._sel = self._selector_factory()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self.tcp, selectors.EVENT_READ, "accept")
        self._sel.register(self.udp, selectors.EVENT_READ, "udp")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pool = Workers(self._workers, self._post)
        budget = FdBudget(fd_limit, open_fds() + 2)  # + the forwarder's wake-up pair, made below
        self.forwarder = Forwarder(max_pairs=budget.max_pairs(self.limits.max_conns),
                                   idle_timeout=self.limits.relay_idle_timeout,
                                   selector_factory=self._selector_factory)
        self.conns = ConnTable(self._sel, self.logic, clock=self.clock, ssl_context=self.ssl_context,
                               answer_http=self._answer_http, relay_pair=self.forwarder.add, offload=self._offload,
                               budget=budget, pairs_held=lambda: self.forwarder.held,
                               trusted_proxies=self.trusted_proxies)
        log.debug("descriptors: limit %s, %s for clients", fd_limit, budget.usable)
        return self

    def _bind(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tcp = socket.socket(family, socket.SOCK_STREAM)
        if hasattr(socket, "SO_REUSEADDR") and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # POSIX: restart over TIME_WAIT
        dual_stack_if_any(self.tcp, host)
        self.tcp.bind((host, port))
        self.tcp.listen(1024)
        self.tcp.setblocking(False)
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
        dual_stack_if_any(self.udp, host)
        self.udp.bind((host, self.tcp.getsockname()[1]))  # UDP on the same port number
        self.udp.setblocking(False)
        self._address = self.tcp.getsockname()[:2]

    @property
    def address(self):
        """(host, port) bound for TCP; UDP uses the same port number. Still known after stop()."""
        return self._address

    def start(self):
        """open() if needed and run the loop in a daemon thread."""
        if self.tcp is None:
            self.open()
        self._thread = threading.Thread(target=self.serve_forever, name="tagio-relay-loop", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        if self.tcp is None:
            self.open()
        self._serving = True
        tls = "on" if self.ssl_context else "off"
        auth = "on" if self.logic.auth_secret else "off"
        host, port = self.address
        log.info("TagIO relay %s listening on %s:%d (tcp+udp, tls %s, auth %s)", VERSION, host, port, tls, auth)
        if select_is_capped():
            log.info("select() takes %d sockets per call here: connections are spread over selector threads "
                     "(up to %d connections, then \"relay full\")", SELECT_CAP, self.limits.max_conns)
        if self.trusted_proxies:
            log.info("client addresses from X-Forwarded-For of %s", ", ".join(sorted(self.trusted_proxies)))
        bindings = self.logic.registry.bindings
        log.debug("ID bindings: %s (%d known)", bindings.path or "memory only", len(bindings))
        try:
            self._loop()
        except BaseException as exc:
            self.error = exc
            log.error("relay loop stopped: %s", exc)
            raise
        finally:
            self._shutdown()

    def request_stop(self):
        """Ask the loop to stop; safe from a signal handler or any thread."""
        self._stop.set()
        self._wake()

    def stop(self):
        """Stop the loop, join it and the helpers; re-raise an error that ended the loop."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        elif self.tcp is not None and not self._serving:
            self._shutdown()  # opened but never served: still release sockets and threads
        if self.error and not isinstance(self.error, KeyboardInterrupt):
            raise self.error

    def _shutdown(self):
        self.conns.close_all()
        self._close_listeners()
        try:
            self._pool.close()
        except Exception as exc:  # a worker died: still save and release everything, then report it
            self.error = self.error or exc
        self._save_state(sync=True)
        try:
            self.forwarder.close()
        finally:
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()
            log.info("relay stopped")

    def _close_listeners(self):
        for s in (self.tcp, self.udp):
            if s is not None:
                s.close()
        self.tcp = self.udp = None

    # -- the loop -------------------------------------------------------------------------
    def _loop(self):
        next_tick = self.clock() + 1.0
        while not self._stop.is_set():
            # TLS may hold decrypted bytes the selector cannot see; only TLS connections are checked.
            pending_tls = self.conns.tls_pending() if self.conns.tls_conns else ()
            for key, mask in self._sel.select(0 if pending_tls else 0.5):
                DISPATCH.get(key.data, RelayServer._on_conn)(self, key.data, mask)
            for conn in pending_tls:
                if not conn.closed:
                    self.conns.on_readable(conn)
            self._run_posted()
            if self.clock() >= next_tick:
                next_tick = self.clock() + 1.0
                self._tick()

    def _on_conn(self, conn, mask):
        if conn.closed:
            return
        if mask & selectors.EVENT_WRITE:
            self.conns.on_writable(conn)
        if mask & selectors.EVENT_READ and not conn.closed:
            self.conns.on_readable(conn)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _drain_wake(self, _data=None, _mask=0):
        # One read: workers send one byte per batch, and anything left makes the selector report
        # the socket again next round. Reading until EAGAIN cost a second system call per wake-up.
        try:
            self._wake_r.recv(4096)
        except OSError:
            pass

    def _post(self, fn):
        """Run fn on the loop thread (called from worker threads); one wake-up per batch."""
        with self._posted_lock:
            was_empty = not self._posted
            self._posted.append(fn)
        if was_empty:
            self._wake()

    def _run_posted(self):
        with self._posted_lock:
            batch = list(self._posted)
            self._posted.clear()
        for fn in batch:
            try:
                fn()
            except Exception as exc:
                self.conns.internal_error(None, exc)

    def _offload(self, fn, done):
        self._pool.submit(fn, done, _check_failed)

    # -- accepting --------------------------------------------------------------------------
    def _accept(self, _data=None, _mask=0):
        for _ in range(64):
            try:
                sock, addr = self.tcp.accept()
            except _WOULD_BLOCK:
                return
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                self.logic.warn("accept", "cannot accept connections: %s", exc)
                self._sel.unregister(self.tcp)
                self._accept_paused_until = self.clock() + 0.5
                return
            self.conns.admit(sock, addr)

    def _answer_http(self, request) -> bytes:
        return http_response(request.method, request.path, self.status(), request.headers,
                             private=bool(self.logic.auth_secret), metrics_token=self.metrics_token)

    # -- UDP -----------------------------------------------------------------------------------------
    def _udp(self, _data=None, _mask=0):
        for _ in range(64):
            try:
                data, addr = self.udp.recvfrom(2048)
            except _WOULD_BLOCK:
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported on Windows
            try:
                reply = self.logic.on_udp(m.decode_message(framing.decode_datagram(data)), normalize_addr(addr))
            except TagioError as exc:
                self.logic.warn(("udp", addr[0]), "ignoring bad UDP datagram from %s: %s", addr[0], exc)
                continue
            try:
                self.udp.sendto(reply.encode(), addr)
            except OSError:
                pass

    # -- timers --------------------------------------------------------------------------------------
    def _tick(self):
        now = self.clock()
        self.conns.carry(self.logic.tick())
        self.conns.tick(now)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._sel.register(self.tcp, selectors.EVENT_READ, "accept")
        if now >= self._next_expiry:  # walking a million bindings is ~0.1 s: once an hour
            self._next_expiry = now + 3600.0
            self.logic.registry.bindings.expire(self.limits.binding_ttl)
        self._save_state()
        self.ticks += 1

    def _save_state(self, sync=False):
        """Write the bindings file if it changed: at most once per state_save_interval, on a worker.

        New bindings are coalesced: a registration flood costs one write per interval, not one per
        registration. The loop thread only copies the dict; encoding and writing happen on a worker.
        """
        bindings = self.logic.registry.bindings
        if sync and self._saving:  # stopping with a write whose outcome never reached the loop: write again
            bindings.dirty = True
        if not bindings.dirty or (self._saving and not sync):
            return
        now = self.clock()
        if not sync and now < self._next_save:
            return
        self._next_save = now + self.limits.state_save_interval
        snapshot = bindings.snapshot()
        if not sync:
            self._saving = True
            return self._pool.submit(lambda: bindings.save(snapshot), self._saved)
        try:
            bindings.save(snapshot)
        except OSError as exc:
            bindings.dirty = True
            log.error("cannot write relay state file: %s", exc)

    def _saved(self, result):
        self._saving = False
        if isinstance(result, Exception):
            self.logic.registry.bindings.dirty = True  # try again next interval
            log.error("cannot write relay state file: %s", result)

    def status(self) -> dict:
        host, port = self.address
        return {"version": VERSION, "uptime_s": round(time.time() - self._started, 1),
                "online_clients": len(self.logic.registry), "active_relays": self.forwarder.active,
                "waiting_relays": self.logic.pairing.waiting, "connections": len(self.conns),
                "public_address": public_address(self.public_ip, host, port), "state": self.state_at_start,
                "tls": self.ssl_context is not None, "relayed_bytes_total": self.forwarder.bytes_total,
                "fd_limit": self.conns.budget.limit or 0, "fds_in_use": self.conns.fds_in_use(),
                **self.counters, "relay_pairs_failed_total": self.forwarder.pairs_failed
                + self.counters["relay_pair_setup_failures_total"]}  # set up or ended by a failure


_WITH_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]+):\d+")


def public_address(public, host, port) -> str:
    """What clients enter: the operator's public address ("name", "1.2.3.4", "[::1]", or any of them
    with ":PORT" when a proxy or port forward makes the public port differ from the listen port, as
    on Render: 443 outside, $PORT inside), else the listen address; the listen port unless the
    public address names its own."""
    shown = public or host
    if _WITH_PORT.fullmatch(shown):
        return shown
    return f"[{shown}]:{port}" if ":" in shown and not shown.startswith("[") else f"{shown}:{port}"


def load_bindings(bindings) -> str:
    """Read the bindings file: "loaded", "fresh" (none: a first start, or a disk that was wiped) or "lost".

    An unreadable file does not stop the relay (a health check would restart it for ever); it is
    kept aside as <name>.unreadable for the operator, and /health says "lost".
    """
    try:
        loaded = bindings.load()
    except ConfigError as exc:
        aside = bindings.path.with_name(bindings.path.name + ".unreadable")
        try:
            bindings.path.replace(aside)
        except OSError:
            aside = bindings.path
        log.error("%s; starting with no ID bindings (health shows \"state\": \"lost\"); the file is kept as %s",
                  exc, aside)
        return "lost"
    if not loaded and bindings.path:
        log.info("no relay state file at %s: starting with no ID bindings (a first start, or the disk "
                    "was wiped)", bindings.path)
    return "loaded" if loaded else "fresh"


def dual_stack_if_any(sock, host):
    """`--bind [::]` means every address, IPv4 too: Windows (and BSD) default to IPV6_V6ONLY=1, which
    would leave IPv4 clients outside; Linux defaults to 0 (net.ipv6.bindv6only)."""
    if host == "::" and sock.family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


def _check_failed(exc):
    log.error("signature check failed unexpectedly: %r", exc)
    return "internal error while checking the signature"


DISPATCH = {"accept": RelayServer._accept, "udp": RelayServer._udp, "wake": RelayServer._drain_wake}
