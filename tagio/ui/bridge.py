"""Hand-over from worker threads to the Tk main thread.

Theory of operation: Tk is not thread-safe, so nothing but the Tk main thread may touch a
widget.  The client core, connect workers and session threads call `EventBridge.post(name,
**fields)` from their own threads; that only puts a tuple into a bounded queue.Queue.  The
controller drains the queue from an `after()` poll on the Tk thread (the pattern of
idlelib's PyShell.poll_subprocess) and dispatches each event through a table.

The queue is bounded: a post waits at most PUT_TIMEOUT for room and then drops the event
and counts it, so a stuck or closed UI can never block or grow memory in a worker.  Status
events are idempotent snapshots, so a dropped one is healed by the next.

An incoming connection needs an answer *from* the Tk thread: `AcceptBridge.ask()` runs on a
core thread, posts an "accept_request" carrying an AcceptRequest and waits (bounded) on the
request's Event; the Tk thread shows the prompt and calls `request.resolve(answer)`.  A
timeout, or closing the bridge, resolves to "deny"; so does the core's `cancelled` Event (the
viewer gave up), and the controller then closes the prompt, which it finds resolved.
"""

import queue
import threading
import time

from tagio.ui import model

QUEUE_SIZE = 256
PUT_TIMEOUT = 0.5
DRAIN_LIMIT = 64          # events handled per poll, so one burst cannot freeze the window
CANCEL_POLL_S = 0.1        # how quickly a waiting request notices the viewer gave up
ASK_GRACE_S = 5.0         # the prompt denies by itself; this only guards a UI that never answered


class EventBridge:
    """Bounded queue of (name, fields) from any thread to the Tk thread."""

    def __init__(self, maxsize=QUEUE_SIZE):
        self._queue = queue.Queue(maxsize)
        self._closed = threading.Event()
        self.dropped = 0

    def post(self, name, **fields) -> bool:
        """Queue an event (any thread).  False when closed or still full after PUT_TIMEOUT."""
        if self._closed.is_set():
            return False
        try:
            self._queue.put((name, fields), timeout=PUT_TIMEOUT)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def drain(self, limit=DRAIN_LIMIT) -> list:
        """Take up to `limit` queued events without waiting (Tk thread)."""
        events = []
        while len(events) < limit:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return events

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        self._closed.set()


class AcceptRequest:
    """One pending "may this partner in?" question; resolved once, by the Tk thread or a timeout."""

    def __init__(self, peer_id, timeout, cancelled=None, name="", files=False):
        self.peer_id = peer_id
        self.name, self.files = name, files     # the viewer's desk name; may files be offered
        self.timeout = timeout
        self.answer = False
        self.cancelled = cancelled          # set by the core when the viewer gave up
        self._done = threading.Event()

    def resolve(self, accepted) -> None:
        """accepted: True/False, or the Rights the person granted (client/partners.py)."""
        if not self._done.is_set():
            self.answer = accepted if accepted else False
            self._done.set()

    def wait(self, timeout) -> bool:
        deadline = time.monotonic() + timeout
        while not self._done.wait(CANCEL_POLL_S) and time.monotonic() < deadline:
            if self.cancelled is not None and self.cancelled.is_set():
                break
        self.resolve(False)       # no answer in time (or nobody left to answer) counts as "deny"
        return self.answer

    @property
    def done(self) -> bool:
        return self._done.is_set()


class AcceptBridge:
    """The core's accept_callback: decides by policy, or asks the person through the Tk thread."""

    def __init__(self, events: EventBridge, settings, timeout=model.ACCEPT_TIMEOUT_S):
        self.events, self.settings, self.timeout = events, settings, timeout
        self._pending = set()
        self._lock = threading.Lock()

    def ask(self, peer_id, *_args, unattended=False, cancelled=None, name="", files=False, **_info):
        """Called on a core thread; blocks at most timeout + ASK_GRACE_S.  True (or the Rights
        granted) lets the peer in; False keeps it out."""
        ask_first = bool(self.settings.ask_before_accept)
        if model.decide_accept(ask_first, unattended) is model.AcceptDecision.ACCEPT:
            return True
        request = AcceptRequest(str(peer_id), self.timeout, cancelled, name, files)
        with self._lock:
            if self.events.closed:
                return False
            self._pending.add(request)
        try:
            if not self.events.post("accept_request", request=request):
                return False
            return request.wait(self.timeout + ASK_GRACE_S)
        finally:
            with self._lock:
                self._pending.discard(request)

    def close(self) -> None:
        """Deny everything still waiting (the app is quitting)."""
        with self._lock:
            pending = list(self._pending)
        for request in pending:
            request.resolve(False)
