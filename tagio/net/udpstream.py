"""RudpStream: the Stream interface over a RudpConnection, driven by one thread.

Theory of operation. The UdpMux thread drops this connection's datagrams
into a bounded inbox; the driver thread waits on that inbox (or until the
connection's next timer), feeds everything queued into the sans-I/O core
under a lock, runs its timers, and sends what it produced to the peer's
address. Application threads only touch the core under the same lock:
send() waits while the send buffer is full, recv() while nothing is
readable, and both wake the driver by putting a `None` token in the inbox.
close() sends FIN and waits (bounded) until it is acknowledged, so data
written before close() reaches the peer; then the driver stops and is joined.
An exception that kills the driver is kept and raised by send()/recv().
"""

import queue
import threading
import time

from tagio.errors import ConnectionClosed, TransportError, TransportTimeout
from tagio.net.rudp import RudpConnection, State
from tagio.net.udpmux import Inbox

INBOX = 4096  # datagrams; beyond this the mux drops (the sender retransmits)
CLOSE_TIMEOUT = 2.0
DRAIN_BATCH = 256
MAX_IDLE_WAIT = 0.5


class RudpStream:
    def __init__(self, mux, peer_addr, keys, *, path="direct-udp", inbox=None, now=None):
        self.mux = mux
        self.peer_addr = tuple(peer_addr)
        self.path = path
        self._keys = keys
        self._inbox = inbox if inbox is not None else Inbox(INBOX)
        mux.register(keys.conn_id, self._inbox)
        self.conn = RudpConnection(keys, time.monotonic() if now is None else now)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._timeout = None
        self._thread_error = None
        self._error_reported = False
        self._thread = threading.Thread(target=self._drive, name="rudp-driver", daemon=True)
        self._thread.start()

    # ---- Stream interface ----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        deadline = self._deadline()
        while view:
            with self._lock:
                self._raise_if_failed()
                taken = self.conn.write(view)
                if not taken:
                    self._wait(deadline, "send")
                    continue
            view = view[taken:]
            self._wake()

    def recv(self, max_bytes: int = 65536) -> bytes:
        deadline = self._deadline()
        with self._lock:
            while True:
                if self.conn.readable:
                    chunk = self.conn.read(max_bytes)
                    break
                if self.conn.at_eof or self._stop.is_set():
                    return b""
                self._raise_if_failed()
                self._wait(deadline, "receive")
        self._wake()  # the window opened: let the driver tell the peer
        return chunk

    def settimeout(self, seconds) -> None:
        self._timeout = seconds

    def close(self) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            self.conn.close()
            peer_gone = self.conn.peer_fin  # it closed first and will not ack our FIN
        self._wake()
        # Wait for our FIN's ack (so written data is delivered) unless the
        # peer already closed: then one best-effort FIN is all it can take.
        deadline = time.monotonic() + (0.0 if peer_gone else CLOSE_TIMEOUT)
        with self._lock:
            while self.conn.state is State.CLOSING and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not peer_gone:
                        self.conn.abort(2)
                    break
                self._changed.wait(remaining)
        self._flush_control()
        self._shutdown()

    def abort(self) -> None:
        """Close at once, telling the peer with a RESET (no FIN handshake)."""
        with self._lock:
            self.conn.abort(0)
        self._flush_control()
        self._shutdown()

    # ---- helpers ----------------------------------------------------------------------------

    def _deadline(self):
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, deadline, what):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TransportTimeout(f"{what} timed out")
        self._changed.wait(MAX_IDLE_WAIT if remaining is None else min(remaining, MAX_IDLE_WAIT))

    def _raise_if_failed(self):
        if self.mux.error is not None:
            raise TransportError(f"the UDP socket failed: {self.mux.error}") from self.mux.error
        if self._thread_error is not None:
            self._error_reported = True
            raise TransportError(f"UDP stream driver failed: {self._thread_error}") from self._thread_error
        if self.conn.state is State.FAILED:
            raise self.conn.error or ConnectionClosed("stream failed")
        if self._stop.is_set() or self.conn.state is not State.OPEN:
            raise ConnectionClosed("stream is closed")

    def _wake(self):
        try:
            self._inbox.put_nowait(None)
        except queue.Full:
            pass  # the driver has plenty to do already and will look again

    def _flush_control(self):
        with self._lock:
            out = self.conn.datagrams_to_send(time.monotonic())
        for datagram in out:
            self.mux.sendto(datagram, self.peer_addr)

    def _shutdown(self):
        self._stop.set()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_TIMEOUT)
        self.mux.unregister(self._keys.conn_id, self._inbox)
        with self._lock:
            self._changed.notify_all()
        if self._thread_error is not None and not self._error_reported:  # a driver bug nobody heard of yet
            error, self._error_reported = self._thread_error, True
            raise TransportError(f"UDP stream driver failed: {error}") from error

    # ---- driver thread ------------------------------------------------------------------------

    def _drive(self):
        try:
            while not self._stop.is_set():
                batch = self._collect()
                self._step(batch)
        except Exception as exc:  # kept for send()/recv(); a driver bug must not vanish
            self._thread_error = exc
        finally:
            with self._lock:
                self._changed.notify_all()

    def _collect(self):
        with self._lock:
            deadline = self.conn.next_deadline()
        wait = MAX_IDLE_WAIT if deadline is None else min(MAX_IDLE_WAIT, deadline - time.monotonic())
        batch = []
        try:
            batch.append(self._inbox.get(timeout=max(0.0, wait)))
            while len(batch) < DRAIN_BATCH:
                batch.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _step(self, batch):
        with self._lock:
            now = time.monotonic()
            for item in batch:
                if item is not None:
                    self.conn.datagram_received(item[0], now)
            deadline = self.conn.next_deadline()
            if deadline is not None and now >= deadline:
                self.conn.on_timer(now)
            out = self.conn.datagrams_to_send(now)
            self._changed.notify_all()
        for datagram in out:
            self.mux.sendto(datagram, self.peer_addr)
