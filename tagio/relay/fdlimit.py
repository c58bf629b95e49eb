"""File descriptors, the relay's scarcest resource: raise the limit, and budget what is left.

Theory of operation
-------------------
Every control connection holds one descriptor; a relayed pair holds its two
sockets and, with splice on Linux, two pipes (PAIR_FDS = 6). When the process
runs out, accept() fails, /health stops answering (a cloud health check then
restarts the relay and drops every client) and os.pipe() fails in the middle
of setting up a pair. So:

- `raise_fd_limit()` lifts the soft RLIMIT_NOFILE to the hard limit at start;
- `FdBudget` splits the limit into what was open at start (`baseline`: listeners,
  selectors, wake-up sockets, logs), a RESERVE that only short-lived answers
  may use, and the rest for clients. `verdict(in_use)` says whether a newly
  accepted connection is served (OPEN), may only get an answer (FULL: /health
  is answered, a TagIO client gets a "relay full" Error frame, with a short
  deadline), or is closed at once (REFUSE: even the reserve is in use).
  `max_pairs()` is how many relayed pairs the budget can ever hold.

No limit (a platform without `resource`) means no budget: everything is OPEN.
"""

import os

try:
    import resource
except ImportError:  # Windows
    resource = None

from tagio.relay.forward import CAN_SPLICE

PAIR_FDS = 6 if CAN_SPLICE else 2
RESERVE = 48           # descriptors kept for /health, "relay full" answers and state-file writes
FULL_DEADLINE = 2.0    # seconds a connection admitted into the reserve may take to be answered
OPEN, FULL, REFUSE = "open", "full", "refuse"


def raise_fd_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now (None: unknown)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # e.g. a container that forbids it: keep the soft limit we have
    return soft if soft != resource.RLIM_INFINITY else None


def open_fds(default=32) -> int:
    """Descriptors this process holds now (Linux /proc; elsewhere a guess)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir itself holds
    except OSError:
        return default


class FdBudget:
    def __init__(self, limit, baseline: int, reserve: int = RESERVE):
        self.limit = limit
        self.usable = None if limit is None else max(0, limit - baseline - reserve)
        self.reserve = reserve

    def verdict(self, in_use: int) -> str:
        """OPEN, FULL or REFUSE for one more connection while `in_use` client descriptors are held."""
        if self.usable is None or in_use < self.usable:
            return OPEN
        return FULL if in_use < self.usable + self.reserve // 2 else REFUSE

    def room_for(self, in_use: int, extra: int) -> bool:
        """True when `extra` more descriptors (a pair's pipes) fit in the clients' share."""
        return self.usable is None or in_use + extra <= self.usable

    def max_pairs(self, configured: int) -> int:
        return configured if self.usable is None else max(1, min(configured, self.usable // PAIR_FDS))
