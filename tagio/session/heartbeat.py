"""Liveness inside a session: each side notices within GONE_AFTER seconds that its partner is gone.

Theory of operation. TCP alone does not tell us: a partner that vanishes without a FIN (a laptop
lid closed, a process stopped, a cable pulled, a NAT that forgot the mapping) leaves our recv()
waiting for ever and, with data in flight, our send() retrying for many minutes; on the host such a
ghost session holds one of the few incoming slots. So every path gets the same in-channel check:

    every message heard from the partner counts as a sign of life (`heard()`);
    after PING_AFTER seconds of silence we send Ping (again every PING_AFTER while silent), and a
      partner that is there answers Pong at once, so a quiet session (a still screen, no input)
      stays audible on both sides;
    after GONE_AFTER seconds of silence the partner is gone: `check()` raises TransportTimeout
      and the session ends the way any lost connection ends.

`Heartbeat` is pure (an injected clock); `run()` is the body of one session worker thread that
ticks every TICK seconds until the session's stop Event is set. Sending a Ping must not block the
check: the session passes a `send` that gives up rather than wait (a full send queue means the
path is stuck, and the silence will end the session anyway).
"""

import threading
import time

from tagio.errors import TransportTimeout
from tagio.protocol import session as m

PING_AFTER = 2.0        # seconds of silence before we ask "are you there?"
GONE_AFTER = 10.0       # seconds of silence after which the partner is gone
TICK = 0.25             # how often the heartbeat thread looks


class Heartbeat:
    """What we heard from the partner and when; says when to ping and when to give up."""

    def __init__(self, clock=time.monotonic, ping_after=PING_AFTER, gone_after=GONE_AFTER):
        self._clock = clock
        self.ping_after, self.gone_after = ping_after, gone_after
        self._lock = threading.Lock()
        self._heard = clock()
        self._pinged = None
        self._nonce = 0

    def heard(self):
        """The partner said something (any message): it is alive now."""
        with self._lock:
            self._heard = self._clock()
            self._pinged = None

    @property
    def silent_for(self) -> float:
        with self._lock:
            return self._clock() - self._heard

    def check(self):
        """A Ping to send now, or None. Raises TransportTimeout once the partner has been silent
        for gone_after seconds."""
        with self._lock:
            now = self._clock()
            silent = now - self._heard
            if silent >= self.gone_after:
                raise TransportTimeout(f"connection lost: the partner did not answer for "
                                       f"{self.gone_after:g} s")
            if silent < self.ping_after:
                return None
            if self._pinged is not None and now - self._pinged < self.ping_after:
                return None
            self._pinged = now
            self._nonce = (self._nonce + 1) & 0xFFFFFFFF
            return m.Ping(self._nonce)

    def run(self, stopping, send, tick=TICK):
        """Thread body: ping while silent, raise TransportTimeout when the partner is gone.
        `send(msg)` must not block for long (it may drop the Ping)."""
        while not stopping.wait(tick):
            ping = self.check()
            if ping is not None:
                send(ping)


def answer(ping) -> "m.Pong":
    """The Pong for a Ping."""
    return m.Pong(ping.nonce)
