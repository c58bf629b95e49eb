"""Forward raw bytes between paired relay connections: one thread, one selector, all pairs.

Theory of operation
-------------------
A pair is two non-blocking sockets and two Directions (a->b, b->a). A
Direction owns a bounded buffer: a kernel pipe filled and drained with
`os.splice` when both sockets are plain TCP on Linux (no copies through
Python), else a bytearray filled with recv() and drained with send()
(portable, and the only choice for TLS sockets). Backpressure is the buffer
bound: a full buffer drops read interest on its source until its
destination drains it, so a slow receiver slows the sender instead of
growing memory. Any event on either socket pumps both directions, then the
selector interest of each socket is recomputed from its two Directions.

EOF on one side is passed on as shutdown(SHUT_WR) once the buffer is empty
(towards a TLS socket the pair ends instead: Python cannot half-close TLS);
the pair is closed when both directions have finished, either socket fails,
or no byte has moved for `idle_timeout` seconds (abandoned sessions must not
hold sockets forever).
Bytes cross in order and unmodified; a Direction may start with a `prefix`
(the RelayReady frame and bytes the client sent early) written before anything else.
"""

import errno
import logging
import os
import queue
import selectors
import socket
import ssl
import sys
import threading
import time

from tagio.errors import TagioError
from tagio.protocol.websocket import data_of, ws_frame

log = logging.getLogger("tagio.relay")

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
CHUNK = 256 * 1024
_F_SETPIPE_SZ, _F_GETPIPE_SZ = 1031, 1032  # linux/fcntl.h; not exported by every Python's fcntl
CAN_SPLICE = sys.platform.startswith("linux") and hasattr(os, "splice")


class CopyDirection:
    """Portable buffer: recv() into a bounded bytearray, send() out of it."""

    def __init__(self, src, dst, capacity, prefix=b""):
        self.src, self.dst, self.capacity = src, dst, capacity
        self.buf = bytearray(prefix)
        self.eof = False
        self.shut = False
        self.total = 0

    def pending(self):
        return len(self.buf)

    def wants_read(self):
        return not self.eof and self.pending() < self.capacity

    def fill(self):
        while not self.eof and len(self.buf) < self.capacity:
            try:
                data = self.src.recv(min(CHUNK, self.capacity - len(self.buf)))
            except _WOULD_BLOCK:
                return
            if not data:
                self.eof = True
                return
            self._take(data)

    def _take(self, data):
        """Bytes just received from src, into the buffer for dst."""
        self.buf += data
        self.total += len(data)

    def flush(self):
        while self.buf:
            try:
                with memoryview(self.buf) as view:
                    sent = self.dst.send(view[:CHUNK])
            except _WOULD_BLOCK:
                return
            del self.buf[:sent]

    def close(self):
        pass


class SpliceDirection(CopyDirection):
    """Linux: bytes move socket -> pipe -> socket inside the kernel."""

    FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if CAN_SPLICE else 0

    def __init__(self, src, dst, capacity, prefix=b""):
        super().__init__(src, dst, capacity, prefix)
        self.rfd, self.wfd = os.pipe()  # OSError (EMFILE) reaches the caller, nothing is left open
        try:
            import fcntl
            fcntl.fcntl(self.wfd, _F_SETPIPE_SZ, capacity)
            # The real size decides backpressure: a full pipe must drop read interest, or we spin.
            self.capacity = fcntl.fcntl(self.wfd, _F_GETPIPE_SZ)
        except OSError:
            self.capacity = 65536  # above /proc/sys/fs/pipe-max-size: the default pipe size
        self.in_pipe = 0
        self.stalled = False

    def pending(self):
        return len(self.buf) + self.in_pipe

    def wants_read(self):
        # A pipe counts slots, not bytes: many small segments fill it long before `capacity`.
        # EAGAIN with bytes in the pipe may mean "pipe full", so wait for a flush before reading again
        # instead of spinning on a socket that stays readable.
        return super().wants_read() and not self.stalled

    def fill(self):
        while not self.eof and self.in_pipe < self.capacity:
            try:
                n = os.splice(self.src.fileno(), self.wfd, self.capacity - self.in_pipe, flags=self.FLAGS)
            except _WOULD_BLOCK:
                self.stalled = self.in_pipe > 0
                return
            if n == 0:
                self.eof = True
                return
            self.in_pipe += n
            self.total += n

    def flush(self):
        super().flush()  # the prefix, once
        while self.in_pipe and not self.buf:
            try:
                n = os.splice(self.rfd, self.dst.fileno(), self.in_pipe, flags=self.FLAGS)
            except _WOULD_BLOCK:
                return
            self.in_pipe -= n
            self.stalled = False

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class WsDirection(CopyDirection):
    """Copy with WebSocket framing undone on the way in and/or done on the way out.

    Pings from a WebSocket client are not answered while relaying (our clients send none); a close
    frame ends the direction like EOF.
    """

    def __init__(self, src, dst, capacity, prefix=b"", unwrap=None, wrap=False):
        super().__init__(src, dst, capacity, prefix)
        self.unwrap, self.wrap = unwrap, wrap

    def _take(self, raw):
        data, closed = raw, False
        if self.unwrap is not None:
            data, _pings, closed = data_of(self.unwrap.feed(raw))
        if data:
            self.buf += ws_frame(data, mask=False) if self.wrap else data
            self.total += len(data)
        if closed:
            self.eof = True


class Pair:
    def __init__(self, a, b, capacity, prefix_to_a=b"", prefix_to_b=b"", on_done=None, a_ws=None, b_ws=None):
        """a_ws / b_ws: the WsDecoder of a side that speaks WebSocket (None for raw TCP/TLS)."""
        self.a, self.b = a, b
        if a_ws is not None or b_ws is not None:
            self.a2b = WsDirection(a, b, capacity, prefix_to_b, unwrap=a_ws, wrap=b_ws is not None)
            self.b2a = WsDirection(b, a, capacity, prefix_to_a, unwrap=b_ws, wrap=a_ws is not None)
        else:
            plain = CAN_SPLICE and not isinstance(a, ssl.SSLSocket) and not isinstance(b, ssl.SSLSocket)
            kind = SpliceDirection if plain else CopyDirection
            self.a2b = kind(a, b, capacity, prefix_to_b)
            try:
                self.b2a = kind(b, a, capacity, prefix_to_a)
            except BaseException:  # e.g. os.pipe() at the descriptor limit: no half-made pair leaks a pipe
                self.a2b.close()
                raise
        self.on_done = on_done
        self.closed = False
        self.last_active = 0.0
        self._moved = 0

    def directions(self):
        return (self.a2b, self.b2a)

    def moved(self) -> bool:
        """True if bytes crossed since the last call."""
        total = self.a2b.total + self.b2a.total
        moved, self._moved = total != self._moved, total
        return moved

    def pump(self) -> bool:
        """Move what can move; return True when the pair is finished."""
        for d in self.directions():
            for _ in range(4):  # a few rounds per wake-up while bytes keep moving: fewer epoll trips
                before = (d.total, d.pending())
                d.flush()
                d.fill()
                d.flush()
                if (d.total, d.pending()) == before:
                    break
            if d.eof and not d.pending() and not d.shut:
                d.shut = True
                if isinstance(d.dst, ssl.SSLSocket):
                    # SSLSocket.shutdown() drops the TLS layer, and the other direction would then
                    # read raw records: TLS gets no half-close here, the pair ends.
                    return True
                _shutdown_write(d.dst)
        return all(d.shut for d in self.directions())

    def interest(self, sock) -> int:
        reading = self.a2b if sock is self.a else self.b2a
        writing = self.b2a if sock is self.a else self.a2b
        mask = 0
        if reading.wants_read():
            mask |= selectors.EVENT_READ
        if writing.pending():
            mask |= selectors.EVENT_WRITE
        return mask

    def has_buffered_tls(self) -> bool:
        return any(isinstance(s, ssl.SSLSocket) and s.pending() for s in (self.a, self.b))

    def close(self):
        if self.closed:
            return
        self.closed = True
        for d in self.directions():
            d.close()
        for s in (self.a, self.b):
            try:
                s.close()
            except OSError:
                pass
        if self.on_done:
            self.on_done(self)


def _drain(q) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


def _shutdown_write(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Forwarder:
    """The forwarding thread. add() from any thread; close() stops and joins it."""

    def __init__(self, max_pairs=10_000, idle_timeout=3600.0, clock=time.monotonic, name="tagio-relay-forward"):
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._next_idle_check = 0.0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._incoming = queue.Queue(maxsize=max_pairs)
        # Counts pairs added and not yet dropped (queued or active): the queue bound alone would
        # not limit active pairs, which the loop moves out of the queue at once.
        self._slots = threading.BoundedSemaphore(max_pairs)
        self._stop = threading.Event()
        self._pairs = set()
        self._masks = {}
        self._held_lock = threading.Lock()
        self.held = 0  # pairs added and not yet dropped (queued or active): their descriptors are in use
        self.pairs_failed = 0  # ended by bad data or a bug, not by a close
        self.bytes_total = 0   # relayed by pairs that have ended
        self.error = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        return len(self._pairs)

    def add(self, pair: Pair) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("relay: too many active relays; refusing a pair")
            pair.close()
            return
        with self._held_lock:
            self.held += 1
        self._incoming.put_nowait(pair)  # never Full: the queue is as large as the slot count
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending

    def close(self):
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5)
        for pair in list(self._pairs) + _drain(self._incoming):  # queued pairs own sockets too
            pair.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.error:
            raise self.error

    def _run(self):
        try:
            while not self._stop.is_set():
                timeout = 0 if any(p.has_buffered_tls() for p in self._pairs) else 1.0
                for key, _mask in self._sel.select(timeout):
                    if key.data is None:
                        self._drain_wake()
                    elif not key.data.closed:
                        self._service(key.data)
                if timeout == 0:
                    for p in [p for p in self._pairs if p.has_buffered_tls()]:
                        self._service(p)
                self._close_idle()
        except Exception as exc:  # kept and re-raised by close()
            self.error = exc
            log.error("relay forwarder stopped: %s", exc)

    def _close_idle(self):
        now = self.clock()
        if now < self._next_idle_check:
            return
        self._next_idle_check = now + min(1.0, self.idle_timeout / 4)
        for pair in list(self._pairs):
            if pair.moved():
                pair.last_active = now
            elif now - pair.last_active > self.idle_timeout:
                log.info("closing a relay idle for more than %g s", self.idle_timeout)
                self._drop(pair)

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                pair = self._incoming.get_nowait()
            except queue.Empty:
                return
            pair.last_active = self.clock()
            self._pairs.add(pair)
            self._service(pair)

    def _service(self, pair):
        try:
            finished = pair.pump()
        except (OSError, ssl.SSLError) as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE, None):
                log.info("relay pair ended: %s", exc)
            finished = True
        except TagioError as exc:  # e.g. a broken WebSocket frame from one side
            log.info("relay pair ended: %s", exc)
            self.pairs_failed += 1
            finished = True
        except Exception as exc:  # a bug: end this pair, keep forwarding the others
            log.error("internal error in a relay pair: %r", exc)
            self.pairs_failed += 1
            finished = True
        if finished:
            self._drop(pair)
            return
        for sock in (pair.a, pair.b):
            self._set_interest(pair, sock, pair.interest(sock))

    def _set_interest(self, pair, sock, mask):
        old = self._masks.get(sock, 0)
        if mask == old:
            return
        if old == 0:
            self._sel.register(sock, mask, pair)
        elif mask == 0:
            self._sel.unregister(sock)
        else:
            self._sel.modify(sock, mask, pair)
        self._masks[sock] = mask

    def _drop(self, pair):
        for sock in (pair.a, pair.b):
            if self._masks.pop(sock, 0):
                self._sel.unregister(sock)
        if pair in self._pairs:
            self._pairs.discard(pair)
            self._slots.release()
            with self._held_lock:
                self.held -= 1
        self.bytes_total += pair.a2b.total + pair.b2a.total
        pair.close()
