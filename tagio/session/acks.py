"""Which frame acknowledgements the viewer sends, and when: fewer acks while small frames stream fast.

Theory of operation (pure logic, injected clock; the viewer calls in under its ack lock).

Every FrameAck costs the host a wake-up of its receive thread, one AEAD record opened and the
flow-control bookkeeping, all with cold caches: about 200 us, an eighth of what a small frame at
60 fps costs it in all. When both sides have CAP_ACK_UPTO (protocol/version.py) an ack of frame N
stands for N and every earlier frame, so not every frame needs its own: as TCP's delayed ACK and
QUIC's ACK frequency do, the viewer may hold one back and let the next one cover it.

`due(seq, frame_id, size)` is told each time a frame's ack is due (decoded, or drawn when a display
reports what it drew); `seq` numbers the frames in the order they arrived (frame ids wrap, so they
are not compared). It returns the frame ids to acknowledge now. An ack is held when all of:

  - the frame was small (at most SMALL_FRAME bytes of rectangles): large frames fill the link, and
    the host needs their acks at once to measure it;
  - frames come fast (the previous ack fell due less than ACK_HOLD ago): a lone change is
    acknowledged at once, so an idle session sees no delay at all;
  - no ack is held already: the next one goes out and covers the held one.

So at 60 fps of small frames one ack in two goes out, none later than ACK_HOLD. A held ack also goes
out when ACK_HOLD passes (`expire`, which the viewer's decoder calls when `wait` says it is time),
and at once (`release`) when anything else would make the host wait longer for it: the display
leaving, the session ending, a monitor switch (the host switches only once every frame is acked).

Without the capability every frame is acknowledged on its own, as an older host needs (and the host
reads an ack as cumulative only once the viewer's ViewerCapabilities named the bit: an older viewer
may acknowledge out of order). With it, an ack that a newer one already covered is never sent: the
host would not know that frame any more (and would end the session for an ack of an unknown frame);
and a newer ack replaces one still waiting in the outbox (outbox.ACK_UPTO).
"""

import time

SMALL_FRAME = 16 * 1024     # bytes of rectangles: a frame this small may have its ack held
ACK_HOLD = 0.020            # seconds: frames closer than this are "fast"; a held ack waits at most this


class AckThinner:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.upto = False               # CAP_ACK_UPTO agreed with the host
        self.held = None                # (seq, frame_id) whose ack waits for a newer one
        self.deadline = None            # when the held ack goes out anyway
        self.acked_seq = 0              # with upto: every frame that arrived up to this one is acked
        self._last_due = float("-inf")

    def due(self, seq, frame_id, size):
        """Frame `frame_id` (arrival number `seq`, `size` bytes) is decoded or drawn: the frame ids
        to acknowledge now, oldest first (none while its ack is held or already covered)."""
        now = self.clock()
        fast, self._last_due = now - self._last_due < ACK_HOLD, now
        if not self.upto:
            return [frame_id]
        if seq <= self.acked_seq:
            return []                   # a newer ack stood for it
        if self.held is None and fast and size <= SMALL_FRAME:
            self.held, self.deadline = (seq, frame_id), now + ACK_HOLD
            return []
        return self._sent(seq, frame_id)

    def wait(self, longest):
        """Seconds until the held ack must go (at most `longest`; `longest` when none is held).
        Safe to call without the caller's lock: the deadline is read once."""
        deadline = self.deadline
        if deadline is None:
            return longest
        return min(longest, max(0.0, deadline - self.clock()))

    def expire(self):
        """The held ack's frame id in a list once ACK_HOLD has passed, else []."""
        if self.deadline is None or self.clock() < self.deadline:
            return []
        return self.release()

    def release(self):
        """The held ack's frame id in a list (now, whatever the time), or []."""
        if self.held is None:
            return []
        return self._sent(*self.held)

    def _sent(self, seq, frame_id):
        if self.held is not None and self.held[0] <= seq:      # covered by this one
            self.held = self.deadline = None
        self.acked_seq = max(self.acked_seq, seq)
        return [frame_id]
