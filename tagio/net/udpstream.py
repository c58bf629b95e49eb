"""RudpStream: the Stream interface over a RudpConnection.

Theory of operation. The work happens where the bytes already are, as in a
kernel TCP stack, because in Python every hand-off between threads (a queue
put, a wake-up, a GIL transfer) costs as much as the protocol work itself:

- Incoming datagrams: the UdpMux reader thread reads a batch of datagrams
  off the socket and puts this connection's ones into our `_Sink`; at the end
  of the batch it calls `flush()`, which feeds them to the sans-I/O core under
  the lock and sends what the core answers (one ack per batch, and new data
  once acks open the window) right there, in the reader thread.
- Outgoing data: send() writes into the core and sends the segments the
  window allows from the caller's thread; recv() sends a window update when
  reading reopened a window the peer was stalled on.
- Timers: a small driver thread sleeps until the core's next deadline
  (retransmission, tail probe, keepalive, dead peer); whoever moves that
  deadline earlier wakes it.
Datagrams are produced under the lock and sent after it is released, so no
thread holds the lock during socket I/O. An exception in the mux reader's
flush or the driver is kept and raised by send()/recv() (and close()).
close() sends FIN and waits (bounded) until it is acknowledged, so data
written before close() reaches the peer; then the driver stops and is joined.

The clock is CLOCK (time.perf_counter): the core's timers are milliseconds
(ACK_DELAY 2 ms, MIN_TLP 5 ms) and its RTT samples sub-millisecond on a LAN,
but CLOCK() on Windows with Python 3.11 ticks every 15.6 ms (it is
GetTickCount64). perf_counter is QueryPerformanceCounter there and the same
clock as monotonic() on Linux. (A timed Event.wait on Windows still wakes on
the system tick; a late timer is then late, never early, which the core allows.)
"""

import queue
import threading
import time
from collections import deque

from tagio.errors import ConnectionClosed, TransportError, TransportTimeout
from tagio.net.rudp import SEND_BUFFER, RudpConnection, State

INBOX = 4096  # datagrams one read batch may hold for us; beyond this the mux drops
CLOSE_TIMEOUT = 2.0
MAX_IDLE_WAIT = 0.5
SEND_WAKE = SEND_BUFFER // 4  # free send buffer (bytes) worth waking a blocked send() for
CLOCK = time.perf_counter  # not monotonic(): 15.6 ms ticks on Windows (see the module docstring)


class _Sink:
    """The mux's delivery target for one stream: collects a read batch, then flush()."""

    __slots__ = ("_stream", "_batch")

    def __init__(self, stream):
        self._stream = stream
        self._batch = []

    def put_nowait(self, item):
        if len(self._batch) >= INBOX:
            raise queue.Full
        self._batch.append(item)

    def flush(self):
        batch, self._batch = self._batch, []
        if batch:
            self._stream._feed(batch)


class RudpStream:
    def __init__(self, mux, peer_addr, keys, *, path="direct-udp", inbox=None, now=None):
        self.mux = mux
        self.peer_addr = tuple(peer_addr)
        self.path = path
        self._keys = keys
        self.conn = RudpConnection(keys, CLOCK() if now is None else now)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._timer_wake = threading.Event()  # the next deadline moved earlier, or stop
        self._planned = 0.0  # when the driver looks at the timers next (CLOCK)
        self._timeout = None
        self._thread_error = None
        self._error_reported = False
        self._sink = _Sink(self)
        self._outq = deque()  # datagrams produced under the lock, sent after it (see _send)
        self._sending = False  # a thread is sending _outq
        mux.register(keys.conn_id, self._sink)
        if inbox is not None:  # datagrams that arrived while the path was being punched
            self._feed(_drain(inbox))
        self._thread = threading.Thread(target=self._drive, name="rudp-driver", daemon=True)
        self._thread.start()

    # ---- Stream interface ----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        view = memoryview(data if isinstance(data, (bytes, bytearray)) else bytes(data))
        deadline = self._deadline()
        while view:
            with self._lock:
                self._raise_if_failed()
                taken = self.conn.write(view)
                if not taken:
                    self._wait(deadline, "send")
                    continue
                out = self._output(CLOCK())
            view = view[taken:]
            self._send(out)

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
            out = self._output(CLOCK())  # a window update, if reading reopened one
        self._send(out)
        return chunk

    def settimeout(self, seconds) -> None:
        self._timeout = seconds

    def close(self) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            self.conn.close()
            peer_gone = self.conn.peer_fin  # it closed first and will not ack our FIN
        self._flush_control()
        # Wait for our FIN's ack (so written data is delivered) unless the
        # peer already closed: then one best-effort FIN is all it can take.
        deadline = CLOCK() + (0.0 if peer_gone else CLOSE_TIMEOUT)
        with self._lock:
            while self.conn.state is State.CLOSING and self._alive():
                remaining = deadline - CLOCK()
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
        return None if self._timeout is None else CLOCK() + self._timeout

    def _wait(self, deadline, what):
        remaining = None if deadline is None else deadline - CLOCK()
        if remaining is not None and remaining <= 0:
            raise TransportTimeout(f"{what} timed out")
        self._changed.wait(MAX_IDLE_WAIT if remaining is None else min(remaining, MAX_IDLE_WAIT))

    def _alive(self):
        return self._thread.is_alive() and self._thread_error is None

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

    def _output(self, now):
        """Under the lock: queue what the core wants sent now; wakes the driver if a timer
        is now due before it planned to look. True if the caller must _send() the queue
        after releasing the lock (nobody else is sending it already)."""
        self._outq.extend(self.conn.datagrams_to_send(now))
        deadline = self.conn.next_deadline()
        if deadline is not None and deadline < self._planned:
            self._planned = deadline
            self._timer_wake.set()
        if self._sending or not self._outq:
            return False
        self._sending = True
        return True

    def _worth_waking(self):
        """Under the lock: could a waiting send()/recv()/close() make progress? A writer
        is woken once a quarter of the send buffer is free, not per ack: each wake-up
        is a thread switch."""
        conn = self.conn
        return conn.readable or conn.state is not State.OPEN or conn.at_eof or conn.send_room >= SEND_WAKE

    def _send(self, mine):
        """Send the out-queue, outside the lock, in the order the core produced it: one
        thread at a time, as two threads sending at once would reorder segments (and
        the peer's SACKs would make that look like loss)."""
        if not mine:
            return
        while True:
            with self._lock:
                if not self._outq:
                    self._sending = False
                    return
                batch = list(self._outq)
                self._outq.clear()
            self.mux.sendmany(batch, self.peer_addr)

    def _flush_control(self):
        with self._lock:
            out = self._output(CLOCK())
        self._send(out)

    def _died(self, exc):
        with self._lock:
            if self._thread_error is None:
                self._thread_error = exc
            self._changed.notify_all()
        self._timer_wake.set()

    def _shutdown(self):
        self._stop.set()
        self._timer_wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_TIMEOUT)
        self.mux.unregister(self._keys.conn_id, self._sink)
        with self._lock:
            self._changed.notify_all()
        if self._thread_error is not None and not self._error_reported:  # a bug nobody heard of yet
            error, self._error_reported = self._thread_error, True
            raise TransportError(f"UDP stream driver failed: {error}") from error

    # ---- the mux reader's thread ----------------------------------------------------------------

    def _feed(self, batch):
        """One read batch of (datagram, addr) into the core; send the answer."""
        if self._thread_error is not None:
            return
        try:
            with self._lock:
                now = CLOCK()
                for item in batch:
                    if item is not None:
                        self.conn.datagram_received(item[0], now)
                out = self._output(now)
                if self._worth_waking():
                    self._changed.notify_all()
            self._send(out)
        except Exception as exc:  # kept for send()/recv(); the mux must go on serving others
            self._died(exc)

    # ---- driver thread: timers ----------------------------------------------------------------

    def _drive(self):
        try:
            while not self._stop.is_set() and self._thread_error is None:
                wait, out = self._timers()
                self._send(out)
                self._timer_wake.wait(wait)
        except Exception as exc:  # kept for send()/recv(); a driver bug must not vanish
            self._died(exc)
        finally:
            with self._lock:
                self._changed.notify_all()

    def _timers(self):
        """Run what is due; returns (seconds to sleep, whether to _send())."""
        with self._lock:
            now = CLOCK()
            out = False
            deadline = self.conn.next_deadline()
            if deadline is not None and now >= deadline:
                self.conn.on_timer(now)
                out = self._output(now)
                self._changed.notify_all()
                deadline = self.conn.next_deadline()
            wait = MAX_IDLE_WAIT if deadline is None else min(MAX_IDLE_WAIT, max(0.0, deadline - now))
            self._planned = now + wait
            self._timer_wake.clear()  # under the lock: a later _output() sets it again
        return wait, out


def _drain(inbox):
    items = []
    while True:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            return items
