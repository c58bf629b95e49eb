"""Attempt limits for the host: per peer and in total, over a sliding window.

Theory of operation: every incoming rendezvous costs the host a thread and a path race, so
`AttemptLimiter.allow(peer_id)` bounds them before any work starts (the password guesses those
attempts carry are counted separately, from the moment a guess becomes checkable: guesses.py).
`allow` counts attempts in the last `window` seconds for that peer and for everyone, and refuses once
either count is at its limit. `failed(peer_id)` makes an attempt count double against the peer (the
host no longer calls it: the guess limits are the stricter ones, and a person who mistyped must not
be locked out by both). Memory is bounded: at most `max_peers` peers are tracked (the
oldest is forgotten first) and each peer keeps at most `per_peer` timestamps. Pure logic with an injected
clock, so it is tested without sockets or sleeps. One lock makes each call atomic: the relay link and
the LAN thread ask at the same time, and handler threads report failures.
"""

import threading
import time
from collections import OrderedDict, deque

DEFAULT_WINDOW = 60.0
DEFAULT_PER_PEER = 5
DEFAULT_TOTAL = 20
DEFAULT_MAX_PEERS = 256


class AttemptLimiter:
    def __init__(self, *, window=DEFAULT_WINDOW, per_peer=DEFAULT_PER_PEER, total=DEFAULT_TOTAL,
                 max_peers=DEFAULT_MAX_PEERS, clock=time.monotonic):
        self.window, self.per_peer, self.total = window, per_peer, total
        self.max_peers = max_peers
        self._clock = clock
        self._peers = OrderedDict()                 # peer_id -> deque of timestamps
        self._all = deque(maxlen=total)
        self._lock = threading.Lock()

    def allow(self, peer_id) -> bool:
        """Record an attempt by peer_id and say whether it may go ahead (any thread)."""
        with self._lock:
            return self._allow(peer_id, self._clock())

    def _allow(self, peer_id, now) -> bool:
        self._expire(self._all, now)
        marks = self._marks(peer_id, now)
        if len(marks) >= self.per_peer or len(self._all) >= self.total:
            return False
        marks.append(now)
        self._all.append(now)
        return True

    def failed(self, peer_id) -> None:
        """A wrong password from peer_id: it costs that peer one extra attempt (any thread)."""
        with self._lock:
            now = self._clock()
            marks = self._marks(peer_id, now)
            if len(marks) < self.per_peer:
                marks.append(now)

    def _marks(self, peer_id, now):
        marks = self._peers.pop(peer_id, None)
        if marks is None:
            marks = deque(maxlen=self.per_peer)
        self._expire(marks, now)
        self._peers[peer_id] = marks             # most recently used last
        while len(self._peers) > self.max_peers:
            self._peers.popitem(last=False)
        return marks

    def _expire(self, marks, now):
        while marks and now - marks[0] >= self.window:
            marks.popleft()
