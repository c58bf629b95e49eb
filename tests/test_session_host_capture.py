"""The host's capture thread on a real Xvfb (tagio.session.host_capture): the safety grab that
stands behind X damage reports, with the reports suppressed, finds a change within FULL_POLL and
costs no copy when it finds nothing."""

import types
import unittest
from unittest import mock

from tagio.session import host_capture as hc
from tagio.session import tiles as t
from tests.test_session_xshm import host_grabber
from tests.xvfb import Xvfb, skip_unless_xvfb

WIDTH, HEIGHT = 640, 480


def fill(display, x, y, w, h, colour):
    from Xlib import display as xdisplay
    conn = xdisplay.Display(display)
    try:
        root = conn.screen().root
        gc = root.create_gc(foreground=colour)
        root.fill_rectangle(gc, x, y, w, h)
        gc.free()
        conn.sync()
    finally:
        conn.close()


@skip_unless_xvfb
class SafetyGrabOnXvfb(unittest.TestCase):
    """Damage reports that miss a drawing (DamageProbe.collect suppressed: nothing reported)."""

    def setUp(self):
        from tagio.session.damage import DamageProbe
        from tagio.session.host import HostSession
        self.xvfb = Xvfb(width=WIDTH, height=HEIGHT).start()
        self.addCleanup(self.xvfb.stop)
        fill(self.xvfb.display, 0, 0, WIDTH, HEIGHT, 0x204060)
        self.sct = host_grabber(self.xvfb.display)
        self.addCleanup(self.sct.close)
        self.probe = DamageProbe.open(self.xvfb.display)
        self.assertIsNotNone(self.probe, "Xvfb has no DAMAGE")
        self.addCleanup(self.probe.close)
        self.enterContext(mock.patch.object(self.probe, "collect", lambda: []))   # reports lost
        self.host = HostSession(channel=None)
        box = {"left": 0, "top": 0, "width": WIDTH, "height": HEIGHT}
        self.mon = {"index": 1, "box": box, "screen": t.ScreenCopy(WIDTH, HEIGHT), "full_at": 0.0,
                    "hot": t.RecentChanges()}
        self.assertEqual(len(self.capture(0.0)), 1)        # the first, whole grab

    def capture(self, now):
        return self.host._grab_changes(self.sct, self.mon, self.probe, now)

    def assert_copy_is_the_screen(self):
        whole = {"left": 0, "top": 0, "width": WIDTH, "height": HEIGHT}
        self.assertEqual(bytes(self.mon["screen"].buf), hc.grab(self.sct, whole))

    def test_an_unreported_change_is_found_within_full_poll(self):
        fill(self.xvfb.display, WIDTH - 7, HEIGHT - 2, 5, 1, 0xFF0000)     # a far corner, one row
        self.assertEqual(self.capture(hc.FULL_POLL / 2), [])   # reported nowhere, not yet due
        sources = self.capture(hc.FULL_POLL)
        self.assertEqual(len(sources), 1)
        raw, x, y, w, h, dirty, _prev = sources[0]
        self.assertEqual(dirty, {((WIDTH - 7) // t.TILE, (HEIGHT - 2) // t.TILE)})
        self.assertLess(w * h, t.TILE * t.TILE + 1)            # the changed tile, not the screen
        at = ((HEIGHT - 2 - y) * w + WIDTH - 7 - x) * 4
        self.assertEqual(bytes(raw[at:at + 4]), b"\x00\x00\xff\x00")       # B, G, R, X
        self.assert_copy_is_the_screen()
        self.assertEqual(self.mon["full_at"], 2 * hc.FULL_POLL)

    def test_a_safety_grab_that_finds_nothing_copies_nothing(self):
        before = self.mon["screen"].buf
        self.assertEqual(self.capture(hc.FULL_POLL), [])
        self.assertIs(self.mon["screen"].buf, before)          # no new buffer, no copy-on-write
        self.assertFalse(isinstance(before, memoryview))       # the copy never lends the segment

    def test_a_change_of_most_of_the_screen_is_taken_whole(self):
        fill(self.xvfb.display, 0, 0, WIDTH, HEIGHT * 3 // 4, 0x00FF00)
        before = self.mon["screen"].buf
        sources = self.capture(hc.FULL_POLL)
        self.assertEqual([s[1:5] for s in sources], [(0, 0, WIDTH, HEIGHT)])
        self.assertIs(sources[0][6], before)                   # the whole previous picture
        self.assertIs(self.mon["screen"].buf, sources[0][0])   # taken as the copy, not copied
        self.assertIsInstance(sources[0][0], bytes)            # a copy out of the segment
        self.assert_copy_is_the_screen()

    def test_a_box_is_compared_in_place_and_its_changed_rows_kept_as_a_copy(self):
        fill(self.xvfb.display, 100, 50, 30, 4, 0x00FF00)      # rows 50..53 of a 40-row box
        sources = hc.HostCapture._grab_boxes(self.sct, self.mon, [(90, 40, 60, 40)])
        self.assertEqual([s[1:5] for s in sources], [(90, 50, 60, 4)])
        raw = sources[0][0]
        self.assertIsInstance(raw, bytes)                      # not a view of the grab memory ...
        kept = bytes(raw)
        fill(self.xvfb.display, 90, 40, 60, 40, 0x0000FF)
        self.assertEqual(len(hc.HostCapture._grab_boxes(self.sct, self.mon, [(90, 40, 60, 40)])), 1)
        self.assertEqual(bytes(raw), kept)                     # ... so the next grab leaves it alone
        self.assertEqual(kept[40:44], b"\x00\xff\x00\x00")      # the green at (100, 50)
        self.assert_copy_is_the_screen()


class WholeGrabWithoutLending(unittest.TestCase):
    """A grabber that cannot lend its pixels (mss, a stand-in): the whole grab is compared the
    same way and a small change comes out as its tiles."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_a_small_change_comes_out_as_its_tiles(self):
        buf = bytearray(256 * 128 * 4)
        sct = types.SimpleNamespace(grab=lambda box: types.SimpleNamespace(raw=bytearray(buf)))
        box = {"left": 0, "top": 0, "width": 256, "height": 128}
        mon = {"box": box, "screen": t.ScreenCopy(256, 128)}
        self.assertEqual(len(hc.HostCapture._grab_whole(sct, mon)), 1)
        buf[(70 * 256 + 130) * 4] = 9
        sources = hc.HostCapture._grab_whole(sct, mon)
        self.assertEqual([s[1:6] for s in sources], [(128, 64, 64, 64, {(2, 1)})])
        self.assertEqual(bytes(mon["screen"].buf), bytes(buf))
        self.assertEqual(hc.HostCapture._grab_whole(sct, mon), [])


class CreditWait(unittest.TestCase):
    """_wait_credit reads damage reports while it waits only once the wait is long (DRAIN_AFTER):
    a pacing wait of a few milliseconds leaves them to the next look."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def wait(self, free_at):
        from tagio.session.host import HostSession
        host, now, drains = HostSession(channel=None), [0.0], []

        def can_send():
            now[0] += 0.01          # each look at flow control comes a wait of 10 ms later
            return now[0] >= free_at
        host._in_flight[1] = 0.0    # a frame unacknowledged: flow control has the word
        host._flow = types.SimpleNamespace(can_send=can_send, wait_time=lambda: 0.0001)
        self.enterContext(mock.patch.object(hc, "time", types.SimpleNamespace(monotonic=lambda: now[0])))
        self.assertTrue(host._wait_credit(types.SimpleNamespace(drain=lambda: drains.append(now[0]))))
        return drains

    def test_a_short_wait_reads_nothing(self):
        self.assertEqual(self.wait(hc.DRAIN_AFTER - 0.02), [])

    def test_a_long_wait_reads_the_reports_as_it_goes(self):
        drains = self.wait(hc.DRAIN_AFTER + 0.05)
        self.assertGreaterEqual(len(drains), 3)
        self.assertGreaterEqual(min(drains), hc.DRAIN_AFTER)


if __name__ == "__main__":
    unittest.main()
