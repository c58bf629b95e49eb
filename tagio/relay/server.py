"""The relay server: one selectors loop for control traffic, a worker pool, a forwarder thread.

Theory of operation
-------------------
The loop thread owns every control connection. A connection moves through
byte-level phases (Phase; tagio.relay.readers): SNIFF looks at the first bytes
(TLS ClientHello, `TGIO`, an HTTP method, or garbage), TLS does a
non-blocking handshake on a TLS port, FRAMES feeds a FrameDecoder and hands
each message to the pure RelayLogic, HTTP answers one request, BINDING holds
a relay connection until its partner arrives, LINGER flushes an error, half-
closes and drains so the peer reads the error instead of a reset. Paired
relay connections leave the loop for the Forwarder thread.

Expensive work (Ed25519 verification, writing the state file) runs on
worker threads (tagio.relay.workers); results come back to the loop thread through a deque
(one entry at most per connection being verified) and a wake-up socket, so RelayLogic is only ever touched by one thread.
Every buffer is bounded: the frame decoder (one frame), the HTTP head (8 KiB),
queued output (Limits.out_buffer; a client that will not read is dropped),
early relay bytes, the relay pipes. Every connection has a deadline until it
has registered or bound a token (slow-loris); registered clients expire after
missed heartbeats; connections per source address and in total are capped.
"""

import collections
import errno
import logging
import selectors
import socket
import ssl
import threading
import time

from tagio import __version__
from tagio.errors import ConfigError, RelayError, TagioError
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.relay.conn import Conn, Phase, normalize_addr
from tagio.relay.forward import Forwarder, Pair
from tagio.relay.http import http_error
from tagio.relay.logic import ConnState, Limits, RelayLogic, error_code
from tagio.relay.readers import PhaseReaders
from tagio.relay.registry import BindingStore
from tagio.relay.workers import Workers

log = logging.getLogger("tagio.relay")
VERSION = __version__          # one version for both programs
LINGER = 2.0
WRITE_CHUNK = 256 * 1024
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class RelayServer(PhaseReaders):
    def __init__(self, bind=("0.0.0.0", 443), *, auth_secret=None, ssl_context=None, state_file=None,
                 public_ip=None, limits=None, clock=time.monotonic, wall_clock=time.time, workers=2):
        self.bind_addr = bind
        self.ssl_context = ssl_context
        self.public_ip = public_ip
        self.limits = limits or Limits()
        self.clock = clock
        bindings = BindingStore(state_file, self.limits.max_bindings)
        bindings.load()
        self.logic = RelayLogic(self.limits, auth_secret=auth_secret, bindings=bindings, clock=clock,
                                wall_clock=wall_clock, offload=self._offload, public_ip=public_ip)
        self._workers = workers
        self._conns = {}
        self._tls_conns = set()
        self._per_ip = collections.Counter()
        self._ip_lock = threading.Lock()
        self._posted = collections.deque()  # at most one entry per connection being verified
        self._posted_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._serving = False
        self.error = None
        self._started = time.time()
        self._saving = False
        self._next_save = 0.0
        self._log_times = {}
        self._accept_paused_until = 0.0
        self.counters = collections.Counter()
        self.tcp = self.udp = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self):
        """Bind TCP and UDP; raises ConfigError with a one-line reason (port in use, no permission)."""
        host, port = self.bind_addr
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
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self.tcp, selectors.EVENT_READ, "accept")
        self._sel.register(self.udp, selectors.EVENT_READ, "udp")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pool = Workers(self._workers, self._post)
        self.forwarder = Forwarder(max_pairs=self.limits.max_conns, idle_timeout=self.limits.relay_idle_timeout)
        return self

    def _bind(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tcp = socket.socket(family, socket.SOCK_STREAM)
        if hasattr(socket, "SO_REUSEADDR") and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # POSIX: restart over TIME_WAIT
        self.tcp.bind((host, port))
        self.tcp.listen(1024)
        self.tcp.setblocking(False)
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
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
        bye = m.Bye("relay shutting down").encode()
        for conn in list(self._conns.values()):
            if conn.state is ConnState.REGISTERED and not conn.out:  # never inside a half-sent frame
                try:  # best effort, never blocks: lets clients tell a restart from a network failure
                    conn.sock.send(conn.wrap(bye))
                except (OSError, ssl.SSLError):
                    pass
            self._drop(conn)
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
            pending_tls = [c for c in self._tls_conns if _tls_pending(c)] if self._tls_conns else ()
            events = self._sel.select(0 if pending_tls else 0.5)
            for key, mask in events:
                self._dispatch(key.data, mask)
            for conn in pending_tls:
                if not conn.closed:
                    self._on_readable(conn)
            self._run_posted()
            if self.clock() >= next_tick:
                next_tick = self.clock() + 1.0
                self._tick()

    def _dispatch(self, data, mask):
        if data == "accept":
            self._accept()
        elif data == "udp":
            self._udp()
        elif data == "wake":
            self._drain_wake()
        elif not data.closed:
            if mask & selectors.EVENT_WRITE:
                self._on_writable(data)
            if mask & selectors.EVENT_READ and not data.closed:
                self._on_readable(data)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _drain_wake(self):
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
                self._internal_error(None, exc)

    def _offload(self, fn, done):
        self._pool.submit(fn, done, _check_failed)

    # -- accepting --------------------------------------------------------------------------
    def _accept(self):
        for _ in range(64):
            try:
                sock, addr = self.tcp.accept()
            except _WOULD_BLOCK:
                return
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                self._log_limited("accept", "cannot accept connections: %s", exc)
                self._sel.unregister(self.tcp)
                self._accept_paused_until = self.clock() + 0.5
                return
            self._admit(sock, addr)

    def _admit(self, sock, addr):
        sock.setblocking(False)
        ip = normalize_addr(addr)[0]  # the same key _release_ip will use
        if len(self._conns) >= self.limits.max_conns:
            self._log_limited("max_conns", "connection limit %d reached; refusing %s", self.limits.max_conns, ip)
            sock.close()
            return
        with self._ip_lock:
            self._per_ip[ip] += 1
            too_many = self._per_ip[ip] > self.limits.max_conns_per_ip
        self.counters["connections_total"] += 1
        conn = Conn(self, sock, addr, self.clock() + self.limits.handshake_timeout)
        self._conns[sock.fileno()] = conn
        self._set_mask(conn, selectors.EVENT_READ)
        if too_many:
            self._log_limited(("per_ip", ip), "too many connections from %s (limit %d)", ip,
                              self.limits.max_conns_per_ip)
            conn.phase = Phase.FRAMES  # the refusal is a TagIO frame
            limit = self.limits.max_conns_per_ip
            self._fail(conn, RelayError("too_many_connections",
                                        f"too many connections from your address (limit {limit})"))

    # -- reading ------------------------------------------------------------------------------
    def _on_readable(self, conn):
        try:
            self.read_phase(conn)
        except TagioError as exc:
            self._fail(conn, exc)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s failed: %s", conn.peer_addr[0], exc)
            self._lost(conn)
        except Exception as exc:  # a bug: lose this connection, keep serving everyone else
            self._internal_error(conn, exc)

    def _internal_error(self, conn, exc):
        log.error("internal error on connection from %s: %r", conn.peer_addr[0] if conn else "?", exc,
                  exc_info=log.isEnabledFor(logging.DEBUG))
        self.counters["internal_errors_total"] += 1
        if conn is not None:
            self.logic.connection_lost(conn)
            self._drop(conn)

    # -- writing and closing ------------------------------------------------------------------------
    def _queue(self, conn, data):
        self._queue_wire(conn, conn.wrap(data))

    def _queue_wire(self, conn, wire):
        """Queue bytes exactly as they go on the wire; a client that will not read is dropped."""
        if conn.closed:
            return
        if len(conn.out) + len(wire) > self.limits.out_buffer:
            self._log_limited(("slow", conn.peer_addr[0]), "dropping %s: not reading its messages",
                              conn.peer_addr[0])
            self.logic.connection_lost(conn)
            return self._drop(conn)
        conn.out += wire
        self._on_writable(conn)

    def _on_writable(self, conn):
        if conn.phase is Phase.TLS:
            return self._read_tls(conn)
        try:
            while conn.out:
                with memoryview(conn.out) as view:
                    sent = conn.sock.send(view[:WRITE_CHUNK])
                del conn.out[:sent]
        except _WOULD_BLOCK:
            pass
        except (OSError, ssl.SSLError):
            self.logic.connection_lost(conn)
            return self._drop(conn)
        if conn.phase is Phase.LINGER and not conn.out:
            _half_close(conn.sock)
        self._set_mask(conn, selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0))

    def _fail(self, conn, exc):
        """Tell the client what went wrong (one Error frame or HTTP 400), then close."""
        if conn.closed or conn.phase is Phase.LINGER:
            return
        code = error_code(exc)
        self.logic.counters["errors_total"] += 1
        self._log_limited(("fail", conn.peer_addr[0], code), "closing %s: %s (%s)", conn.peer_addr[0], exc, code)
        self.logic.connection_lost(conn)
        if conn.phase is Phase.HTTP:
            conn.out += http_error(str(exc))
        elif conn.phase in (Phase.FRAMES, Phase.APP_SNIFF, Phase.BINDING, Phase.SNIFF):
            conn.out += conn.wrap(m.Error(code, str(exc)[:500]).encode())
        self._linger(conn, str(exc))

    def _linger(self, conn, reason=""):
        if conn.closed:
            return
        conn.phase = Phase.LINGER
        conn.deadline = self.clock() + LINGER
        self._on_writable(conn)

    def _lost(self, conn):
        self.logic.connection_lost(conn)
        self._drop(conn)

    def _drop(self, conn):
        if conn.closed:
            return
        conn.closed = True
        self._forget(conn)
        try:
            conn.sock.close()
        except OSError:
            pass

    def _forget(self, conn):
        self._detach(conn)
        self._release_ip(conn.peer_addr[0])

    def _detach(self, conn):
        """Take a connection out of the loop's tables and selector (its socket stays open)."""
        self._tls_conns.discard(conn)
        if self._conns.get(conn.sock.fileno()) is conn:
            del self._conns[conn.sock.fileno()]
        if conn.mask:
            self._sel.unregister(conn.sock)
            conn.mask = 0

    def _release_ip(self, ip):
        with self._ip_lock:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    def _set_mask(self, conn, mask):
        if conn.closed or mask == conn.mask:
            return
        if conn.mask == 0:
            self._sel.register(conn.sock, mask, conn)
        else:
            self._sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    # -- relaying --------------------------------------------------------------------------------
    def _start_relay(self, conn, partner):
        """Hand a completed pair to the forwarder; RelayReady goes first on each side."""
        ready = m.RelayReady().encode()
        conn.early += conn.decoder.take_rest()
        to_conn = bytes(conn.out) + conn.wrap(ready + bytes(partner.early))
        to_partner = bytes(partner.out) + partner.wrap(ready + bytes(conn.early))
        for c in (conn, partner):
            c.closed = True
            self._detach(c)  # the forwarder owns the sockets now; the IPs are released when the pair ends
        ips = (conn.peer_addr[0], partner.peer_addr[0])
        self.forwarder.add(Pair(conn.sock, partner.sock, self.limits.relay_buffer, to_conn, to_partner,
                                on_done=lambda pair: [self._release_ip(ip) for ip in ips],
                                a_ws=conn.ws, b_ws=partner.ws))

    # -- UDP -----------------------------------------------------------------------------------------
    def _udp(self):
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
                self._log_limited(("udp", addr[0]), "ignoring bad UDP datagram from %s: %s", addr[0], exc)
                continue
            try:
                self.udp.sendto(reply.encode(), addr)
            except OSError:
                pass

    # -- timers --------------------------------------------------------------------------------------
    def _tick(self):
        now = self.clock()
        self.logic.tick()
        budget = self.limits.max_frames_per_sec
        for conn in self._conns.values():
            conn.frame_budget = min(conn.frame_budget + budget, 2 * budget)
        for conn in [c for c in self._conns.values() if c.deadline is not None and c.deadline < now]:
            if conn.phase is Phase.LINGER:
                self._drop(conn)
            elif conn.state in _HANDSHAKING:
                self._fail(conn, RelayError("timeout", "handshake not completed in time"))
            else:
                conn.deadline = None  # registered or bound: heartbeats and pairing time it from now on
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._sel.register(self.tcp, selectors.EVENT_READ, "accept")
        self._save_state()

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

    def _log_limited(self, key, fmt, *args):
        """Log at most one line per key per 10 s: floods must not flood the log too."""
        now = self.clock()
        if now - self._log_times.get(key, -1e9) >= 10.0:
            if len(self._log_times) > 10_000:
                self._log_times.clear()
            self._log_times[key] = now
            log.warning(fmt, *args)

    def status(self) -> dict:
        host, port = self.address
        return {"version": VERSION, "uptime_s": round(time.time() - self._started, 1),
                "online_clients": len(self.logic.registry), "active_relays": self.forwarder.active,
                "waiting_relays": self.logic.pairing.waiting, "connections": len(self._conns),
                "public_address": f"{self.public_ip or host}:{port}",
                "tls": self.ssl_context is not None, "relayed_bytes_total": self.forwarder.bytes_total,
                "relay_pairs_failed_total": self.forwarder.pairs_failed,
                **self.logic.counters, **self.counters}


def _check_failed(exc):
    log.error("signature check failed unexpectedly: %r", exc)
    return "internal error while checking the signature"


def _tls_pending(conn):
    return isinstance(conn.sock, ssl.SSLSocket) and not conn.closed and conn.phase is not Phase.TLS \
        and conn.sock.pending()


def _half_close(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


_HANDSHAKING = (ConnState.NEW, ConnState.CHALLENGED, ConnState.VERIFYING)
