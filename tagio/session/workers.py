"""A small group of worker threads that stop together and keep the first error.

Theory of operation (paramiko's `saved_exception`, socketserver's shutdown): every session thread
runs `fn()` in a loop body that checks `stopping`; the first exception that ends any thread is kept,
the group is told to stop (so the others wind down), and `join()` re-raises it to the caller. An
`on_error` hook lets the owner close its channel so threads blocked in recv() wake up.
"""

import queue
import threading
import time

POLL = 0.1      # seconds a blocked put waits before it re-checks `stopping`
IDLE_POLL = 1.0  # seconds a get() on an empty queue waits between looks at `stopping` (stop() and
                 # fail() wake it at once: an idle thread costs one wake-up a second, not ten)
_WAKE = object()    # what stop() puts into the queues get() waits on


def last_words(channel, data, timeout=1.0):
    """Send `data` (a Bye) if the peer takes it within `timeout`, then close the channel.

    A peer that stopped reading must not hold us: the send runs in a helper thread and the close
    (which unblocks it) follows after at most `timeout` seconds."""
    def send():
        try:
            channel.send(data)
        except Exception:   # the peer is gone or the channel is broken: a Bye is only a courtesy
            pass
    helper = threading.Thread(target=send, name="bye", daemon=True)
    helper.start()
    helper.join(timeout)
    try:
        channel.close()
    except Exception:       # closing an already-dead transport
        pass
    helper.join(timeout)


class Workers:
    def __init__(self, name, on_error=None):
        self.name = name
        self.stopping = threading.Event()
        self.error = None
        self._on_error = on_error
        self._lock = threading.Lock()
        self._threads = []
        self._waited = set()        # queues get() has waited on: stop() wakes their readers

    def spawn(self, label, fn):
        """Start `fn` in a thread of the group (any thread may call it, even while another joins)."""
        thread = threading.Thread(target=self._run, args=(fn,), name=f"{self.name}-{label}", daemon=True)
        with self._lock:        # join() never sees a thread that is not started yet
            thread.start()
            self._threads.append(thread)

    def _run(self, fn):
        try:
            fn()
        except BaseException as exc:    # kept and re-raised by join(); never lost
            self.fail(exc)

    def fail(self, exc):
        # An error after stop() was asked for is a consequence of stopping (a closed channel), not news.
        # on_error runs before `stopping` is set, so join() cannot close the channel under its Bye.
        with self._lock:
            if self.stopping.is_set() or self.error is not None:
                return
            self.error = exc
        try:
            if self._on_error is not None:
                self._on_error(exc)
        finally:
            self.stop()

    def stop(self):
        self.stopping.set()
        with self._lock:
            waited = list(self._waited)
        for q in waited:            # a reader blocked in get() wakes, sees `stopping` and returns
            try:
                q.put_nowait(_WAKE)
            except queue.Full:      # a full queue has no reader waiting on it
                pass

    def join(self, timeout=None, reraise=True):
        """Wait for every thread, `timeout` seconds in all (not per thread: five stuck threads
        made stop() hang five times as long); re-raise the error that ended the group, if any."""
        me = threading.current_thread()
        deadline = None if timeout is None else time.monotonic() + timeout
        done = {me}
        while pending := self._not_in(done):    # again: a thread may have been spawned meanwhile
            for thread in pending:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                done.add(thread)
        if reraise and self.error is not None:
            raise self.error

    def _not_in(self, done):
        with self._lock:
            return [t for t in self._threads if t not in done]

    def alive(self):
        return any(t.is_alive() for t in self._threads)

    def stuck(self):
        """Names of the threads still running (after a join that timed out)."""
        with self._lock:
            return [t.name for t in self._threads if t.is_alive() and t is not threading.current_thread()]

    def put(self, q, item):
        """Blocking put that gives up (returns False) once the group is stopping."""
        while not self.stopping.is_set():
            try:
                q.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q):
        """Blocking get that returns None once the group is stopping (one reader per queue: stop()
        wakes one reader of each queue at once, any other one within IDLE_POLL)."""
        if q not in self._waited:
            with self._lock:
                self._waited.add(q)
        while not self.stopping.is_set():
            try:
                item = q.get(timeout=IDLE_POLL)
            except queue.Empty:
                continue
            if item is not _WAKE:
                return item
        return None
