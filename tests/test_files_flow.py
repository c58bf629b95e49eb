"""The files' window (tagio.session.files_flow) against a simulated path: an injected clock, a
bottleneck of a given rate and delay, a receiver that acknowledges every ACK_BYTES. Checked: the
files fill the link yet add about TARGET of queue; the chunks follow the rate; the window never
falls below its floor (no deadlock) and does not grow unused; while the screen is held back the
files take no more than it gets; a lying Got is the partner's protocol error. The simulated
receiver acknowledges by AckRule, as the engine's does."""

import heapq
import unittest

from tagio.errors import RemoteProtocolError
from tagio.session import files_flow as ff
from tagio.session.files_flow import FileWindow

LAYER = "unit"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Path:
    """A FIFO bottleneck of `rate` bytes/s and `rtt` seconds, driving one FileWindow; the receiver
    acknowledges by AckRule, `sizes` (if given) cuts the chunks as small files would."""

    def __init__(self, rate, rtt, extra_delay=lambda t: 0.0, sizes=None):
        self.clock = Clock()
        self.window = FileWindow(self.clock)
        self.rate, self.rtt, self.extra_delay = rate, rtt, extra_delay
        self.events = []            # (time, seq, kind, value)
        self.seq = 0
        self.busy_until = 0.0       # the bottleneck's last departure
        self.received = 0
        self.rule, self.sizes, self.acks = ff.AckRule(), sizes, 0
        self.queue_delays = []      # seconds each chunk waited at the bottleneck
        self.chunks = []

    def at(self, when, kind, value=0):
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, value))

    def send_what_may_go(self):
        w = self.window
        while w.may_send():
            size = w.chunk_size() if self.sizes is None else min(w.chunk_size(), self.sizes)
            w.posted(size)
            self.chunks.append(size)
            now = self.clock.now
            start = max(now, self.busy_until)
            self.queue_delays.append(start - now)
            self.busy_until = start + size / self.rate
            self.at(self.busy_until + self.rtt / 2 + self.extra_delay(now), "arrive", size)

    def run(self, seconds):
        self.send_what_may_go()
        while self.events and self.events[0][0] <= seconds:
            self.clock.now, _seq, kind, value = heapq.heappop(self.events)
            if kind == "arrive":
                self.received += value
                if self.rule.chunk(value):
                    self.acks += 1
                    self.at(self.clock.now + self.rtt / 2, "ack", self.received)
            elif kind == "ack":
                self.window.got(value)
            self.send_what_may_go()
        return self


class FileWindowTest(unittest.TestCase):
    def test_fills_a_slow_link_with_little_queue(self):
        rate = 20e6 / 8                                   # 20 Mbit/s, 60 ms
        path = Path(rate, 0.060).run(20.0)
        self.assertGreater(path.received / 20.0, 0.9 * rate)
        steady = path.queue_delays[len(path.queue_delays) // 2:]
        self.assertLess(sum(steady) / len(steady), 2 * ff.TARGET)
        self.assertLess(max(steady), 4 * ff.TARGET)
        self.assertAlmostEqual(path.window.chunk_size(), rate * ff.CHUNK_TIME, delta=4096)

    def test_fills_a_fast_short_link(self):
        rate = 200e6                                      # loopback-like: 200 MB/s, 1 ms
        path = Path(rate, 0.001).run(2.0)
        self.assertGreater(path.received / 2.0, 0.9 * rate)
        self.assertEqual(path.window.chunk_size(), ff.MAX_CHUNK)

    def test_a_fat_long_link_fills_within_seconds(self):
        rate = 100e6 / 8                                  # 100 Mbit/s, 150 ms: a BDP of 1.9 MB
        path = Path(rate, 0.150).run(10.0)
        self.assertGreater((path.received - Path(rate, 0.150).run(3.0).received) / 7.0, 0.9 * rate)

    def test_jitter_is_not_a_queue(self):
        """A busy machine delays one acknowledgement in a few: the files keep the link full."""
        rate = 20e6 / 8
        path = Path(rate, 0.060, extra_delay=lambda t: 0.050 if int(t * 100) % 7 == 0 else 0.0).run(20.0)
        self.assertGreater(path.received / 20.0, 0.85 * rate)

    def test_the_window_never_falls_below_its_floor(self):
        path = Path(1e6, 0.5).run(20.0)                   # a long round trip: still moving
        self.assertGreaterEqual(path.window.window, path.window.floor())
        self.assertGreater(path.received, 0.5 * 20 * 1e6)
        lone = FileWindow(Clock())
        lone.window = 0                                    # whatever the window says ...
        self.assertTrue(lone.may_send())                   # ... an acknowledgement is always due

    def test_small_files_are_acknowledged_now_and_then_and_never_stall(self):
        for rate, rtt in ((200e6, 0.001), (20e6 / 8, 0.060), (125e3, 0.060)):
            path = Path(rate, rtt, sizes=4096).run(5.0)
            chunks = len(path.chunks)
            self.assertGreater(path.received / 5.0, 0.8 * rate, (rate, rtt))
            self.assertLessEqual(path.acks, chunks * 4096 // ff.ACK_BYTES + 1)

    def test_the_rule_is_the_same_on_both_sides(self):
        rule = ff.AckRule()
        said = [rule.chunk(n) for n in (4096,) * 15 + (4096, 20000, 100, 70000)]
        self.assertEqual(said, [False] * 15 + [True, True, False, True])

    def test_an_unused_window_does_not_grow(self):
        clock = Clock()
        w = FileWindow(clock)
        for step in range(100):                            # one chunk at a time, acknowledged at once
            w.posted(16 * 1024)
            clock.now += 0.010
            w.got(w.sent)
        self.assertLessEqual(w.window, ff.INITIAL_WINDOW)

    def test_a_lying_acknowledgement_is_the_partners_error(self):
        w = FileWindow(Clock())
        w.posted(1000)
        with self.assertRaises(RemoteProtocolError):
            w.got(1001)                                    # more than was sent
        w.got(800)
        with self.assertRaises(RemoteProtocolError):
            w.got(700)                                     # less than before

    def test_bookkeeping_is_bounded(self):
        w = FileWindow(Clock())
        for _ in range(ff.MAX_MARKS + 100):
            w.posted(1)
        self.assertEqual(len(w._marks), ff.MAX_MARKS)
        w.got(w.sent)
        self.assertEqual(len(w._marks), 0)


if __name__ == "__main__":
    unittest.main()
