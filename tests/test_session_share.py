"""One path, two senders (tagio/session/flow.py LinkShare): the link rate measured from everything
acknowledged (frames by FrameAck, files by Got) and the rule that shares it, on an injected clock.

The simulation joins the real FlowControl and the real files' FileWindow on one FIFO bottleneck
(no sockets): frames sized to the screen's rate as QualityPolicy sizes them (a screen that wants
the whole link), or small frames (a screen that wants little), and a file transfer that always has
data. Checked: a screen that wants the link keeps at least half of what the two get while the link
stays full; a screen that wants little leaves the files >= 90% of the link; files that stop give
the screen the whole link back."""

import heapq
import unittest

from tagio.session import files_flow as ff
from tagio.session import flow
from tagio.session.files_flow import FileWindow
from tests.test_session_flow import Clock

LAYER = "unit"


class SharedPath:
    """A FIFO bottleneck of `rate` bytes/s and `rtt` seconds carrying frames (FlowControl) and file
    chunks (FileWindow, acknowledged by AckRule as the engine's receiver does). `frame_size(rate)`
    sizes each frame from the screen's rate (None: not measured yet); frames are captured at `fps`.
    The transfer starts at `files_from` seconds (the screen was there first), or never."""

    STEP = 0.001

    def __init__(self, rate, rtt, frame_size, fps=30, files_from=3.0):
        self.clock = Clock(0.0)
        self.share = flow.LinkShare(self.clock)
        self.control = flow.FlowControl(self.clock, share=self.share)
        self.window = FileWindow(self.clock, self.share)
        self.rate, self.rtt, self.frame_size, self.fps = rate, rtt, frame_size, fps
        self.files_from = files_from
        self.events, self.seq = [], 0
        self.departed = 0.0
        self.rule, self.received = ff.AckRule(), 0
        self.delivered = {"frame": [], "file": []}     # (time, bytes) at the receiver
        self.latencies = []
        self.frame_id, self.next_capture = 0, 0.0

    def at(self, when, kind, value):
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, value))

    def enter(self, kind, size, value):
        """`size` bytes join the bottleneck now; they arrive rtt/2 after they leave it."""
        self.departed = max(self.clock.now, self.departed) + size / self.rate
        self.at(self.departed + self.rtt / 2, kind, value)

    def step(self):
        now = self.clock.now
        while self.events and self.events[0][0] <= now:
            _t, _s, kind, value = heapq.heappop(self.events)
            self.handle(kind, value)
        if now >= self.next_capture and self.control.can_send():
            self.frame_id += 1
            size = max(1000, int(self.frame_size(self.control.estimator.rate)))
            self.control.sent(self.frame_id, size)
            self.enter("frame", size, (self.frame_id, size, now))
            self.next_capture += 1.0 / self.fps
        elif now >= self.next_capture + 1.0 / self.fps:
            self.next_capture = now
        w = self.window
        while self.files_from is not None and now >= self.files_from and w.may_send():
            size = w.chunk_size()
            w.posted(size)
            self.enter("chunk", size, size)
        self.clock.now = round(now + self.STEP, 6)

    def handle(self, kind, value):
        now = self.clock.now
        if kind == "frame":             # at the viewer: its ack goes back
            frame_id, size, sent_at = value
            self.delivered["frame"].append((now, size))
            self.at(now + self.rtt / 2, "ack", (frame_id, sent_at))
        elif kind == "ack":
            self.control.acked(value[0])
            self.latencies.append(now - value[1])
        elif kind == "chunk":
            self.received += value
            self.delivered["file"].append((now, value))
            if self.rule.chunk(value):
                self.at(now + self.rtt / 2, "got", self.received)
        elif kind == "got":
            self.window.got(value)

    def run(self, seconds):
        while self.clock.now < seconds:
            self.step()
        return self

    def rates(self, since):
        """Bytes/s each kind delivered from `since` to now."""
        span = self.clock.now - since
        return {kind: sum(n for t, n in rows if t >= since) / span for kind, rows in self.delivered.items()}


def sized_to(rate):
    """Frames sized as QualityPolicy sizes a full-screen change: the rate / TARGET_FPS."""
    return (rate or 2.5e6) / flow.TARGET_FPS


LINK, RTT = 20e6 / 8, 0.060


class ShareRuleTest(unittest.TestCase):
    def test_without_files_the_screen_has_the_whole_link(self):
        share = flow.LinkShare(Clock(0.0))
        self.assertEqual(share.screen_rate(2e6), 2e6)
        self.assertIsNone(share.screen_rate(None))

    def test_moving_files_leave_the_screen_the_rest_and_at_least_its_share(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        for _ in range(200):                # files at 0.5 MB/s for 2 s
            clock.now += 0.01
            share.files_acked(5000, 10_000)
        self.assertAlmostEqual(share.files_rate(), 0.5e6, delta=0.05e6)
        self.assertAlmostEqual(share.screen_rate(2e6), 2e6 - share.files_rate())
        for _ in range(200):                # then at 2 MB/s: the screen keeps its share
            clock.now += 0.01
            share.files_acked(20_000, 10_000)
        self.assertEqual(share.screen_rate(2e6), flow.SCREEN_SHARE * 2e6)

    def test_files_that_want_more_leave_the_screen_exactly_its_share(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        share.files_acked(10_000, 10_000)       # a little file data, but the window held more back
        share.files_held()
        self.assertEqual(share.screen_rate(2e6), flow.SCREEN_SHARE * 2e6)
        clock.now += flow.FILES_HELD            # no longer held back: the screen gets the rest
        self.assertGreater(share.screen_rate(2e6), 0.99 * 2e6)

    def test_files_that_stop_give_the_link_back(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        for _ in range(100):
            clock.now += 0.01
            share.files_acked(20_000, 10_000)
        self.assertLess(share.screen_rate(2e6), 2e6)
        clock.now += 10 * flow.FILES_TAU
        self.assertAlmostEqual(share.screen_rate(2e6), 2e6, delta=0.01e6)

    def test_a_frame_sample_counts_the_file_bytes_acknowledged_meanwhile(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        est = flow.DeliveryEstimator(clock, share)
        share.files_posted(200_000)
        est.sent(1, 50_000)
        clock.now = 0.05
        share.files_acked(75_000, 125_000)      # files got through while the frame crossed
        clock.now = 0.1
        sample = est.acked(1)
        self.assertAlmostEqual(sample.rate, (50_000 + 75_000) / 0.1)
        self.assertAlmostEqual(est.link_rate, 1.25e6)
        self.assertLess(est.rate, est.link_rate)        # the screen's rate leaves the files theirs

    def test_file_data_in_flight_keeps_the_ack_interval_open(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        est = flow.DeliveryEstimator(clock, share)
        share.files_posted(100_000)
        share.files_acked(50_000, 50_000)       # at 0: the last delivery before the frame
        clock.now = 0.05
        est.sent(1, 10_000)                     # no frame in flight, but the path is not idle
        clock.now = 0.1
        share.files_acked(50_000, 0)
        self.assertAlmostEqual(est.acked(1).rate, 60_000 / 0.1)


class FilesOnAMeasuredLinkTest(unittest.TestCase):
    def test_the_first_file_data_is_sized_to_the_link_the_frames_measured(self):
        share = flow.LinkShare(Clock(0.0))
        window = FileWindow(share.clock, share)
        self.assertEqual(window.chunk_size(), ff.f.CHUNK)           # nothing measured yet
        share.publish(1e6)                                   # 8 Mbit/s
        self.assertEqual(window.chunk_size(), ff.MIN_CHUNK)         # 10 ms of it is below the least
        share.publish(20e6)
        self.assertEqual(window.chunk_size(), int(20e6 * ff.CHUNK_TIME))
        window.posted(window.chunk_size())
        self.assertEqual(window.window, window.floor())             # not INITIAL_WINDOW in one go

    def test_a_window_that_holds_data_back_tells_the_share(self):
        clock = Clock(0.0)
        share = flow.LinkShare(clock)
        window = FileWindow(clock, share)
        share.files_acked(1, 0)
        self.assertGreater(share.screen_rate(1e6), 0.99e6)
        while window.may_send():
            window.posted(window.chunk_size())
        self.assertEqual(share.files_in_flight, window.in_flight)
        self.assertEqual(share.screen_rate(1e6), flow.SCREEN_SHARE * 1e6)
        window.got(window.sent)
        self.assertEqual(share.files_in_flight, 0)
        self.assertEqual(share.delivered, 1 + window.sent)


class SharedLinkTest(unittest.TestCase):
    """FlowControl and FileWindow on one simulated 60 ms / 20 Mbit/s FIFO."""

    def test_a_screen_that_wants_the_link_keeps_its_share(self):
        path = SharedPath(LINK, RTT, sized_to).run(20.0)
        got = path.rates(since=5.0)
        screen, files = got["frame"], got["file"]
        self.assertAlmostEqual(screen / (screen + files), flow.SCREEN_SHARE, delta=0.05, msg=got)
        self.assertGreater(files, 0.25 * LINK, got)             # the files keep moving
        self.assertGreater(screen + files, 0.85 * LINK, got)    # and together they fill the link

    def test_a_screen_that_wants_little_leaves_the_files_the_link(self):
        path = SharedPath(LINK, RTT, lambda rate: 3000).run(20.0)
        got = path.rates(since=5.0)
        self.assertGreater(got["file"], 0.9 * LINK, got)
        self.assertGreater(path.frame_id / 20.0, 29, "the small screen keeps its frame rate")

    def test_the_screen_alone_still_has_the_whole_link(self):
        path = SharedPath(LINK, RTT, sized_to, files_from=None).run(10.0)
        got = path.rates(since=4.0)
        self.assertGreater(got["frame"], 0.85 * LINK, got)


if __name__ == "__main__":
    unittest.main()
