"""How much file data may be on its way: a window that yields to the screen and to input.

Theory of operation (pure logic, injected clock; the engine's pump and receive threads call in).

Files share one ordered path with the screen and the input. Whatever file data waits in the path's
queues (our socket, a relay, a slow link's router) is waited for by every frame and every key
behind it: a sender that simply writes as fast as the path takes it fills those queues, and on a
20 Mbit/s link the picture fell from 28 to 4 frames a second. So the sender keeps only a window of
file data in flight, and sizes it like LEDBAT (RFC 6817, the "scavenger" congestion control of
BitTorrent's uTP): it measures how much longer the data takes than the quickest it ever took
(queuing delay = RTT sample - base RTT, the least of the last few samples: a scheduling hiccup on a
busy machine is not a queue) and lets the window grow while that delay stays below
TARGET and shrink in proportion when it goes above. Files then fill the link, yet add at most about
TARGET of queue in front of a frame; when the screen needs more of the link its frames lengthen the
queue, the files see the delay grow and give way.

    receiver   answers Got(received), the bytes of data it received in the session so far (all
               transfers alike; a Got stands for the ones before it), after every chunk of at
               least ACK_CHUNK bytes and otherwise once ACK_BYTES arrived since the last Got
               (`AckRule`: 10,000 small files are not 10,000 acknowledgements)
    sender     `posted(n)` for each Chunk it hands to the session, `got(received)` for each Got;
               `may_send()` while sent - acknowledged < window; `chunk_size()` says how big the
               next Chunk should be: about CHUNK_TIME of the measured rate (16 KiB - 512 KiB; 128
               KiB until the rate is known), so on a slow link a frame never waits behind a big
               chunk and the window stays fine-grained, and on a fast one each record's cipher
               set-up is spread over many bytes.

That alone lets a screen that wants the whole link (a video) lose most of it: its own flow
control (session/flow.py) backs off as well. So on a side that also sends frames (the host) the
window is given the session's flow.LinkShare: every Got counts in the link's delivered bytes (the
frames' rate samples then measure the link, not only what the frames got through), a window that
holds data back tells it the files want more, and the screen is paced at its share of the link
rate (flow.SCREEN_SHARE while the files want more): the queue its frames build makes the window
back off to the rest. A screen that wants little takes little: the files fill what it leaves.

No deadlock, whatever the chunk sizes: the sender runs the receiver's AckRule over what it posts,
so it knows whether anything in flight will be acknowledged; when nothing will, it may send
whatever the window says. The window never falls below two chunks (every chunk the window cuts is
at least ACK_CHUNK, so each brings its Got): on a slow link the least the files keep queued is two
small chunks. The window only grows while it is used (a sender with little to send does not build
a window it has not tested). Until the delay first reaches TARGET it doubles every round trip
(slow start), as a fat long link would otherwise take seconds to fill; then, and every
PROBE_INTERVAL, it drains the queue it made for a moment to measure the base again.
"""

import collections
import time

from tagio.errors import RemoteProtocolError
from tagio.protocol import files as f
from tagio.session.flow import WindowedFilter

TARGET = 0.025               # seconds of queue the files may add in front of a frame
CURRENT_FILTER = 4           # the delay is the least of this many samples (LEDBAT's current-delay filter)
GAIN = 1.0                   # LEDBAT's gain: window change per round trip, in segments
STEP = 8                     # a segment is at least 1/STEP of the window
PROBE_INTERVAL = 10.0        # seconds between drains of our own queue (the base is measured then)
BASE_WINDOW = 3 * PROBE_INTERVAL    # seconds the quickest round trip is remembered
ACK_BYTES = 64 * 1024        # the receiver acknowledges at least every this many bytes ...
ACK_CHUNK = 16 * 1024        # ... and every chunk at least this big (a slow link's chunks)
INITIAL_WINDOW = 2 * f.CHUNK      # the floor before the rate is known (chunks are CHUNK then)
MAX_WINDOW = 32 << 20
MIN_CHUNK, MAX_CHUNK = ACK_CHUNK, f.MAX_CHUNK  # (each record costs ~0.1 ms of cipher set-up: big
                                                # chunks on a fast path halve the CPU per byte)
CHUNK_TIME = 0.010           # a chunk is about this long at the measured rate
RATE_WEIGHT = 0.25           # weight of a new delivery-rate sample
RATE_INTERVAL = 0.010        # seconds a delivery-rate sample spans at least
MAX_MARKS = 4096             # chunks in flight remembered (bounded bookkeeping)


class AckRule:
    """When the receiver acknowledges: the same rule runs on both sides (the sender's copy tells it
    which chunk in flight will bring a Got)."""

    def __init__(self):
        self.since = 0              # bytes since the last acknowledged chunk

    def chunk(self, nbytes) -> bool:
        """A chunk of `nbytes` arrived (or was posted): is it acknowledged?"""
        self.since += nbytes
        if nbytes >= ACK_CHUNK or self.since >= ACK_BYTES:
            self.since = 0
            return True
        return False


class FileWindow:
    """The sender's window of file data in flight (bytes), sized by queuing delay."""

    def __init__(self, clock=time.monotonic, share=None):
        self.clock = clock
        self.share = share              # flow.LinkShare: our deliveries count in the link's rate
        self.window = INITIAL_WINDOW
        self.sent = 0                   # bytes of file data posted, ever (this session)
        self.acked = 0                  # bytes the receiver said it has
        self.rate = None                # bytes/s delivered (smoothed), None before a sample
        self.delay = 0.0                # the last queuing delay measured (s)
        self.slow_start = True
        self._base = WindowedFilter(BASE_WINDOW, lambda kept, new: kept < new)
        self._recent = collections.deque(maxlen=CURRENT_FILTER)     # the last queuing delays
        self._marks = collections.deque()       # (sent total after a chunk, time posted)
        self._last_ack = None                   # (time, acked) of the previous Got
        self._rule = AckRule()                  # the receiver's, run over what we post
        self._acked_up_to = 0                   # sent total that the last Got on its way covers
        self._probing = False                   # draining our queue to measure the base again
        self._probe_from = None                 # sent total after the first chunk of a drained path
        self._probe_due = float("inf")          # next drain (the first one ends slow start)

    @property
    def base(self):
        """The quickest round trip (s) of the last BASE_WINDOW, None before the first sample."""
        return self._base.best()

    @property
    def in_flight(self):
        return self.sent - self.acked

    def may_send(self) -> bool:
        """True when another chunk may go. A False tells the share (if any) that the files want
        more than they get."""
        if self._acked_up_to <= self.acked:        # nothing in flight brings a Got: send on
            return True
        limit = self.floor() if self._probing else max(self.window, self.floor())
        if self.in_flight < limit:
            return True
        self._held()
        return False

    def _held(self):
        if self.share is not None:
            self.share.files_held()

    def chunk_size(self) -> int:
        """About CHUNK_TIME of the rate: ours once measured, before that the link's (the share's,
        where frames measured it), else CHUNK."""
        rate = self.rate if self.rate is not None else self._link_rate()
        if rate is None:
            return f.CHUNK
        return int(min(MAX_CHUNK, max(MIN_CHUNK, rate * CHUNK_TIME)))

    def _link_rate(self):
        return self.share.link_rate if self.share is not None else None

    def floor(self) -> int:
        """Two chunks: with one in flight its acknowledgement is on its way (no deadlock)."""
        return 2 * self.chunk_size()

    def posted(self, nbytes):
        now = self.clock()
        if not self.sent and self._link_rate():
            # The first data of the session on a link the frames measured: start from two chunks
            # of that rate, not INITIAL_WINDOW (256 KB stood a quarter of a second in front of
            # the frames on an 8 Mbit/s link); slow start finds the rest within a few round trips.
            self.window = self.floor()
        drained = self._probing and self._probe_from is None and self.in_flight < self.floor()
        self.sent += nbytes
        if self._rule.chunk(nbytes):
            self._acked_up_to = self.sent
        if drained:                     # this chunk meets an empty queue: its round trip is the base
            self._probe_from = self.sent
        if len(self._marks) >= MAX_MARKS:
            self._marks.popleft()
        self._marks.append((self.sent, now))
        if self.share is not None:
            self.share.files_posted(self.in_flight)

    def got(self, received):
        """The receiver has `received` bytes in all. Raises RemoteProtocolError when that is more
        than was sent, or less than it said before."""
        if received > self.sent or received < self.acked:
            raise RemoteProtocolError(f"file data acknowledged up to {received}: sent {self.sent}, "
                                      f"acknowledged {self.acked} before")
        now = self.clock()
        newly, was_full = received - self.acked, self.in_flight >= self.window / 2    # in use
        last = None
        while self._marks and self._marks[0][0] <= received:
            last = self._marks.popleft()
        self.acked = received
        if self.share is not None:
            self.share.files_acked(newly, self.in_flight)
        self._measure_rate(now, received)
        if last is not None and newly:
            self._adjust(now - last[1], newly, was_full)
        self._probe(now, received)

    def _probe(self, now, received):
        """Every PROBE_INTERVAL (and once slow start ends, its burst having inflated the first
        samples) the window shrinks to the floor until a chunk sent into the drained path is
        acknowledged: a queue of our own making can never pass for the path's delay (BBR's
        PROBE_RTT). About one round trip in PROBE_INTERVAL at a fraction of the rate."""
        if self._probing:
            if self._probe_from is not None and received >= self._probe_from:
                self._probing, self._probe_from = False, None
                self._probe_due = now + PROBE_INTERVAL
        elif now >= self._probe_due:
            self._probing = True

    def _measure_rate(self, now, received):
        """Acknowledgements come in bursts: a sample spans at least one round trip (and
        RATE_INTERVAL), never one burst."""
        if self._last_ack is None:
            self._last_ack = (now, received)
            return
        then, before = self._last_ack
        if now - then < max(RATE_INTERVAL, self.base or 0.0):
            return
        sample = (received - before) / (now - then)
        self.rate = sample if self.rate is None else self.rate + RATE_WEIGHT * (sample - self.rate)
        self._last_ack = (now, received)

    def _adjust(self, rtt, newly, was_full):
        self._base.update(self.clock(), rtt)
        self._recent.append(rtt - self.base)
        self.delay = min(self._recent)      # a real queue shows in every sample, a hiccup in one
        if self.delay >= TARGET and self.slow_start:
            self.slow_start, self._probe_due = False, self.clock()
        if self.slow_start:
            grow = newly if was_full else 0
        else:
            off_target = max(-4.0, (TARGET - self.delay) / TARGET)
            # LEDBAT moves the window by GAIN x off_target segments a round trip; a segment here
            # is the bigger of a chunk and 1/STEP of the window, so a fat long link fills in a
            # few seconds and a slow one still moves by whole chunks
            unit = max(self.chunk_size(), self.window / STEP)
            grow = GAIN * off_target * newly * unit / self.window
            if grow > 0 and not was_full:
                grow = 0                # not using the window: do not grow it untested
        self.window = int(min(MAX_WINDOW, max(self.floor(), self.window + grow)))
