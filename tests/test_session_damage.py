"""X DAMAGE reports on a real Xvfb: drawing is reported as rectangles, and waiting wakes on it."""

import time
import unittest

from tests.waiting import wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb


def fill(display, rects, pixel):
    """Draw filled rectangles on the root window through a second X connection."""
    from Xlib import display as xdisplay
    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        gc = root.create_gc(foreground=pixel)
        for x, y, w, h in rects:
            root.fill_rectangle(gc, x, y, w, h)
        conn.sync()
    finally:
        conn.close()


@skip_unless_xvfb
class DamageProbeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = Xvfb(width=640, height=480).start()     # no Tk here: a private server is safe
        cls.addClassCleanup(cls.xvfb.stop)

    def setUp(self):
        from tagio.session.damage import DamageProbe
        self.display = self.xvfb.display
        self.probe = DamageProbe.open(self.display)
        if self.probe is None:
            self.skipTest("this X server has no DAMAGE extension")
        self.addCleanup(self.probe.close)

    def covered(self, rects, x, y):
        return any(rx <= x < rx + rw and ry <= y < ry + rh for rx, ry, rw, rh in rects)

    def test_drawing_is_reported_where_it_happened(self):
        self.probe.collect()
        self.assertFalse(self.probe.wait(0.05))         # nothing drawn yet
        fill(self.display, [(100, 50, 30, 20), (400, 300, 10, 10)], 0x123456)
        self.assertTrue(self.probe.wait(2.0))
        deadline, rects = time.monotonic() + 2.0, []
        while time.monotonic() < deadline and not (self.covered(rects, 405, 305)):
            rects += self.probe.collect()
            self.probe.wait(0.05)
        self.assertTrue(self.covered(rects, 100, 50) and self.covered(rects, 129, 69), rects)
        self.assertTrue(self.covered(rects, 405, 305), rects)
        self.assertFalse(self.covered(rects, 300, 200), rects)
        self.assertEqual(self.probe.collect(), [])

    def test_reports_read_early_are_kept_for_collect(self):
        self.probe.collect()
        fill(self.display, [(300, 300, 8, 8)], 0x00ff00)
        deadline = time.monotonic() + 2.0
        while not self.probe._rects and time.monotonic() < deadline:
            self.probe.drain()                          # what capture does while it waits for credit
            time.sleep(0.02)
        self.assertTrue(self.probe.wait(0))             # something drawn, nothing collected yet
        self.assertTrue(self.covered(self.probe.collect(), 303, 303))
        self.assertFalse(self.probe.wait(0.05))

    def test_drawing_the_same_place_again_is_reported_again(self):
        # No DamageSubtract is ever sent: in RawRectangles mode a second drawing over a place
        # the server's damage region still holds must be reported all the same.
        self.probe.collect()
        for colour in (0x0000ff, 0x00ffff, 0xffff00):
            fill(self.display, [(200, 100, 16, 16)], colour)
            rects = []
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not self.covered(rects, 207, 107):
                self.probe.wait(0.05)
                rects += self.probe.collect()
            self.assertTrue(self.covered(rects, 207, 107), f"drawing in {colour:06x} not reported")

    def test_a_burst_of_many_reports_is_all_seen(self):
        # Thousands of drawings between two looks: every one is seen, over several reads of
        # READ_CHUNK, and the next drawing is reported on its own.
        self.probe.collect()
        spots = [(x, y, 2, 2) for x in range(0, 640, 8) for y in range(0, 200, 8)]     # 2000
        fill(self.display, spots, 0xabcdef)
        self.assertTrue(self.probe.wait(2.0))
        rects, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline and not self.covered(rects, 633, 193):
            rects += self.probe.collect() or []
            self.probe.wait(0.05)
        self.assertTrue(all(self.covered(rects, x + 1, y + 1) for x, y, _, _ in spots))
        fill(self.display, [(300, 400, 4, 4)], 0x111111)
        self.assertTrue(self.probe.wait(2.0))
        wait_until(lambda: self.covered(self.probe.collect(), 301, 401), timeout=5,
                   what="the drawing after the burst")

    def test_reports_queued_while_nobody_looked_are_kept(self):
        # A viewer that lagged: capture neither waited nor collected while the server drew.
        self.probe.collect()
        for i in range(50):
            fill(self.display, [(i * 10, 420, 5, 5)], 0x222222 + i)
        self.assertTrue(self.probe.wait(0))             # already there: no wait at all
        rects = self.probe.collect()
        while not self.covered(rects, 492, 422) and self.probe.wait(0.5):
            rects += self.probe.collect()
        self.assertTrue(all(self.covered(rects, i * 10 + 2, 422) for i in range(50)), rects)

    def test_look_reads_what_came_and_collect_hands_it_over(self):
        self.probe.collect()
        self.assertFalse(self.probe.look(0.05))         # nothing drawn: waited like wait()
        fill(self.display, [(50, 60, 8, 8)], 0x445566)
        wait_until(lambda: self.probe.look(0.05), timeout=5, what="the drawing seen by look()")
        fill(self.display, [(70, 60, 8, 8)], 0x778899)     # drawn after the look ...
        self.assertTrue(self.covered(self.probe.collect(), 53, 63))
        rects, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline and not self.covered(rects, 73, 63):
            self.probe.look(0.05)
            rects += self.probe.collect()               # ... comes with the next look, not lost
        self.assertTrue(self.covered(rects, 73, 63), rects)
        self.assertEqual(self.probe.collect(), [])

    def test_look_keeps_what_drain_read_before(self):
        self.probe.collect()
        fill(self.display, [(10, 300, 4, 4)], 0x010203)
        wait_until(lambda: self.probe.drain() or self.probe._rects, timeout=5, what="the drain")
        fill(self.display, [(30, 300, 4, 4)], 0x040506)
        rects, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline and not self.covered(rects, 31, 301):
            self.probe.look(0.05)
            rects += self.probe.collect()
        self.assertTrue(self.covered(rects, 11, 301) and self.covered(rects, 31, 301), rects)

    def test_drawing_wakes_the_waiting_capture(self):
        # The capture thread sits in wait(); it must wake when the server reports drawing, not
        # when its 5 s timeout runs out. Only the wake-up is timed (from the sync of the drawing to
        # wait() returning); the bound is a tenth of the timeout, so a loaded machine cannot fail
        # it. How fast the wake-up is (well under a millisecond here) is a figure of the
        # benchmarks: python3 -m tests.bench.damage_wake.
        import threading
        self.probe.collect()
        woke = []
        waiting = threading.Event()

        def waiter():
            waiting.set()
            drawn = self.probe.wait(5.0)
            woke.append((drawn, time.monotonic()))

        late = []
        for attempt in range(3):
            woke.clear()
            waiting.clear()
            thread = threading.Thread(target=waiter)
            thread.start()
            waiting.wait(5)
            wait_until(lambda: thread.is_alive(), timeout=5, what="the waiter")
            fill(self.display, [(600, 10 + attempt, 4, 1)], 0x333333 + attempt)
            drawn_at = time.monotonic()
            thread.join(5)
            self.assertTrue(woke and woke[0][0], "drawing not reported")
            late.append(woke[0][1] - drawn_at)
            self.assertTrue(self.covered(self.probe.collect(), 601, 10 + attempt))
        self.assertLess(min(late), 0.5, late)

    def test_too_many_rectangles_mean_the_whole_screen(self):
        from tagio.session import damage
        self.probe.collect()
        saved = damage.MAX_EVENTS
        damage.MAX_EVENTS = 3
        try:
            fill(self.display, [(10 * i, 10, 5, 5) for i in range(10)], 0xff0000)
            self.assertTrue(self.probe.wait(2.0))
            wait_until(lambda: self.probe.drain() or self.probe._overflow, timeout=5,
                       what="more reports than MAX_EVENTS")
            self.assertIsNone(self.probe.collect())
        finally:
            damage.MAX_EVENTS = saved
        self.assertEqual(self.probe.collect(), [])      # the backlog was drained, not left queued

    def test_an_x_server_that_goes_away_is_one_clear_error(self):
        from tagio.errors import ConfigError
        from tagio.session.damage import DamageProbe
        server = Xvfb(width=320, height=240).start()
        self.addCleanup(server.stop)
        probe = DamageProbe.open(server.display)
        self.assertIsNotNone(probe)
        self.addCleanup(probe.close)
        probe.collect()                             # works while the server is there
        server.stop()
        with self.assertRaises(ConfigError) as ctx:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:      # the closed socket reads as ready, then fails
                probe.wait(0.1)
                probe.collect()
        self.assertIn("X display went away", str(ctx.exception))
        probe.close()                               # closing a dead probe is quiet

    def test_one_drain_reads_a_bounded_number_of_reports(self):
        from unittest import mock
        self.probe.collect()
        with mock.patch("tagio.session.damage.MAX_READ", 3):
            fill(self.display, [(10 * i, 100, 5, 5) for i in range(10)], 0x0000ff)
            self.assertTrue(self.probe.wait(2.0))
            self.probe.drain()
            self.assertLessEqual(len(self.probe._rects), 3)     # the rest stays queued, not lost
            rects, deadline = [], time.monotonic() + 5
            while time.monotonic() < deadline and not self.covered(rects, 92, 102):
                rects += self.probe.collect()
                self.probe.wait(0.05)
        self.assertTrue(all(self.covered(rects, 10 * i + 2, 102) for i in range(10)), rects)

    def test_no_display_means_no_probe(self):
        from tagio.session.damage import DamageProbe
        self.assertIsNone(DamageProbe.open(":9999"))

    def test_events_are_read_off_the_socket_here(self):
        from tagio.session.damage import RawEvents
        self.assertIsInstance(self.probe._events, RawEvents)


class XlibDamageProbeTest(DamageProbeTest):
    """The same, through python-xlib's own parser: what a python-xlib without the internals the
    raw reader needs gets."""

    def setUp(self):
        from unittest import mock
        from tagio.session.damage import DamageProbe, XlibEvents
        patch = mock.patch.object(DamageProbe, "_take_over",
                                  staticmethod(lambda conn, damage, event_type, extname:
                                               XlibEvents(conn, damage, event_type)))
        patch.start()
        self.addCleanup(patch.stop)
        super().setUp()

    def test_events_are_read_off_the_socket_here(self):
        from tagio.session.damage import XlibEvents
        self.assertIsInstance(self.probe._events, XlibEvents)


class RawEventsReadTest(unittest.TestCase):
    """RawEvents reads READ_CHUNK at a time and stops at a short read (no allocation of the whole
    bound per look, no recv() that can only end in EAGAIN)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    class Sock:
        def __init__(self, data):
            self.data, self.asked = bytearray(data), []

        def recv(self, size, _flags):
            self.asked.append(size)
            if not self.data:
                raise BlockingIOError
            out = bytes(self.data[:size])
            del self.data[:size]
            return out

    @staticmethod
    def notify(x, y, w, h, event_type=91):
        import struct
        event = bytearray(32)
        event[0] = event_type
        struct.pack_into("=hhHH", event, 16, x, y, w, h)
        return bytes(event)

    def test_a_few_events_take_one_read(self):
        from tagio.session.damage import READ_CHUNK, RawEvents
        sock = self.Sock(b"".join(self.notify(i, 2, 3, 4) for i in range(3)))
        rects, count = RawEvents(sock, 91, b"").read(1000)
        self.assertEqual((rects, count), ([(i, 2, 3, 4) for i in range(3)], 3))
        self.assertEqual(sock.asked, [READ_CHUNK])

    def test_many_events_are_read_in_chunks_up_to_the_limit(self):
        from tagio.session.damage import READ_CHUNK, RawEvents
        events = READ_CHUNK // 32 * 3 + 5
        sock = self.Sock(b"".join(self.notify(i, 0, 1, 1) for i in range(events)))
        reader = RawEvents(sock, 91, b"")
        rects, count = reader.read(events - 10)
        self.assertEqual(count, events - 10)
        self.assertTrue(all(size <= READ_CHUNK for size in sock.asked))
        rects, count = reader.read(1000)                   # the rest was kept, not lost
        self.assertEqual([r[0] for r in rects], list(range(events - 10, events)))

    def test_other_events_and_replies_among_the_reports_are_skipped(self):
        import struct
        from tagio.session.damage import RawEvents
        reply = bytearray(32 + 8)               # a reply with 2 more 4-byte units
        reply[0] = 1
        struct.pack_into("=I", reply, 4, 2)
        other = bytearray(32)
        other[0] = 28                           # another event type
        data = self.notify(1, 2, 3, 4) + bytes(reply) + bytes(other) + self.notify(5, 6, 7, 8)
        rects, count = RawEvents(self.Sock(data), 91, b"").read(1000)
        self.assertEqual((rects, count), ([(1, 2, 3, 4), (5, 6, 7, 8)], 4))

    def test_an_event_split_across_reads_is_kept_until_whole(self):
        from tagio.session.damage import RawEvents
        data = self.notify(1, 2, 3, 4) + self.notify(-5, 6, 7, 8)
        sock = self.Sock(data[:45])
        reader = RawEvents(sock, 91, b"")
        self.assertEqual(reader.read(1000), ([(1, 2, 3, 4)], 1))
        sock.data += data[45:]
        self.assertEqual(reader.read(1000), ([(-5, 6, 7, 8)], 1))
        self.assertEqual(reader.read(1000), ([], 0))

    def test_bytes_left_by_python_xlib_come_first(self):
        from tagio.session.damage import RawEvents
        first = self.notify(9, 9, 1, 1)
        sock = self.Sock(first[20:] + self.notify(1, 1, 1, 1))
        self.assertEqual(RawEvents(sock, 91, first[:20]).read(1000), ([(9, 9, 1, 1), (1, 1, 1, 1)], 2))

if __name__ == "__main__":
    unittest.main()
