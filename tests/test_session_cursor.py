"""Cursor tracking: position and shape messages from probe readings (pure), and the XFixes probe
on a real Xvfb display."""

import unittest

from tagio.protocol import session as m
from tagio.session.cursor import CursorProbe, CursorShape, CursorTracker, shape_from_argb
from tests.xvfb import Xvfb, skip_unless_xvfb


def wait_for_value(read, good, timeout=5.0):
    """read() until good(value) or the timeout; the last value."""
    import time
    deadline = time.monotonic() + timeout
    value = read()
    while not good(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


class Tracker(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def setUp(self):
        self.now = [0.0]
        self.pos = [(100, 50)]
        self.shape = [CursorShape(1, 2, 3, 1, 1, b"\xff\x00\x00\xff")]
        self.tracker = CursorTracker(lambda: self.pos[0], lambda: self.shape[0], clock=lambda: self.now[0])

    def test_first_poll_sends_position_and_shape(self):
        msg = self.tracker.poll()
        self.assertEqual(msg, m.Cursor(100, 50, 1, 2, 3, 1, 1, b"\xff\x00\x00\xff"))
        self.assertIsNone(self.tracker.poll())      # nothing new

    def test_moves_are_sent_relative_to_the_monitor(self):
        self.tracker.poll()
        self.tracker.origin = (40, 10)
        self.pos[0] = (150, 70)
        self.assertEqual(self.tracker.poll(), m.Cursor(110, 60))

    def test_shape_is_checked_at_most_every_interval_and_only_sent_when_new(self):
        self.tracker.poll()
        self.shape[0] = CursorShape(2, 0, 0, 1, 1, b"\x00\x00\xff\xff")
        self.now[0] = 0.05
        self.assertIsNone(self.tracker.poll())      # too soon to look again
        self.now[0] = 0.2
        self.assertEqual(self.tracker.poll().rgba, b"\x00\x00\xff\xff")
        self.now[0] = 0.4
        self.assertIsNone(self.tracker.poll())      # same serial

    def test_a_resting_pointer_is_asked_for_less_often(self):
        from tagio.session import cursor
        asked = []
        tracker = CursorTracker(lambda: asked.append(self.now[0]) or self.pos[0], clock=lambda: self.now[0])
        step = 1 / 60
        for i in range(120):                        # two seconds of 60 Hz polls, the pointer resting
            self.now[0] = i * step
            tracker.poll()
        resting = [t for t in asked if t >= cursor.MOVING_FOR]
        self.assertLessEqual(len(resting), (2 - cursor.MOVING_FOR) / cursor.POSITION_EVERY + 1)
        self.assertGreater(len(resting), 0)
        self.now[0] = 2.0
        tracker.poll()
        self.pos[0] = (101, 50)                     # it moves: seen within POSITION_EVERY ...
        self.now[0] = 2.0 + cursor.POSITION_EVERY
        self.assertEqual(tracker.poll(), m.Cursor(101, 50))
        for i in range(1, 10):                      # ... and then followed at every poll
            self.pos[0] = (101 + i, 50)
            self.now[0] += step
            self.assertEqual(tracker.poll(), m.Cursor(101 + i, 50))

    def test_shape_goes_out_with_the_last_position_between_position_queries(self):
        from tagio.session import cursor
        self.tracker.poll()
        self.now[0] = cursor.MOVING_FOR + 1.0       # resting: the next position query is not due yet
        self.tracker.poll()
        self.shape[0] = CursorShape(5, 0, 0, 1, 1, b"\x01\x02\x03\xff")
        self.now[0] += cursor.SHAPE_EVERY
        self.assertEqual(self.tracker.poll(), m.Cursor(100, 50, 1, 0, 0, 1, 1, b"\x01\x02\x03\xff"))

    def test_between_due_looks_a_poll_asks_nothing(self):
        from tagio.session import cursor
        asked = []
        tracker = CursorTracker(lambda: asked.append("position") or self.pos[0],
                                lambda: asked.append("shape") or self.shape[0], clock=lambda: self.now[0])
        tracker.poll()
        self.now[0] = cursor.MOVING_FOR + 0.01          # resting: both asked once more ...
        tracker.poll()
        asked.clear()
        for i in range(1, 6):                           # ... then neither until one is due
            self.now[0] = cursor.MOVING_FOR + 0.01 + i * min(cursor.SHAPE_EVERY, cursor.POSITION_EVERY) / 6
            self.assertIsNone(tracker.poll())
        self.assertEqual(asked, [])
        self.now[0] = cursor.MOVING_FOR + 0.011 + cursor.SHAPE_EVERY
        self.shape[0] = CursorShape(7, 0, 0, 1, 1, b"\x09\x09\x09\xff")
        self.assertEqual(tracker.poll().rgba, b"\x09\x09\x09\xff")
        self.assertIn("shape", asked)
        tracker.reset()                                 # a new monitor: everything again at once
        asked.clear()
        self.assertIsNotNone(tracker.poll())
        self.assertEqual(sorted(asked), ["position", "shape"])

    def test_failing_probe_skips_updates(self):
        def broken():
            raise OSError("display gone")
        tracker = CursorTracker(broken, broken)
        self.assertIsNone(tracker.poll())


class ArgbConversion(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_argb_ints_become_rgba_bytes(self):
        shape = shape_from_argb(9, 1, 0, 2, 1, [0xFF102030, 0x80405060])
        self.assertEqual((shape.width, shape.height, shape.hot_x), (2, 1, 1))
        self.assertEqual(shape.rgba, bytes([0x10, 0x20, 0x30, 0xFF, 0x40, 0x50, 0x60, 0x80]))

    def test_big_cursor_is_cropped_and_bad_sizes_are_empty(self):
        shape = shape_from_argb(1, 200, 200, 300, 2, [0xFFFFFFFF] * 600)
        self.assertEqual((shape.width, shape.height, shape.hot_x, shape.hot_y), (128, 2, 127, 1))
        self.assertEqual(len(shape.rgba), 128 * 2 * 4)
        self.assertEqual(shape_from_argb(1, 0, 0, 3, 3, [0] * 4).width, 0)
        m.encode(m.Cursor(0, 0, 1, shape.hot_x, shape.hot_y, shape.width, shape.height, shape.rgba))


@skip_unless_xvfb
class ProbeOnXvfb(unittest.TestCase):
    def test_reads_the_real_pointer_and_shape(self):
        import subprocess
        with Xvfb(width=320, height=240) as xvfb:
            probe = CursorProbe.open(xvfb.display)
            self.assertIsNotNone(probe, "XFixes not available on Xvfb")
            try:
                subprocess.run(["xdotool", "mousemove", "33", "44"], env=xvfb.env(), timeout=10, check=True)
                self.assertEqual(probe.position(), (33, 44))
                shape = probe.shape()
                self.assertGreater(shape.width * shape.height, 0)
                self.assertEqual(len(shape.rgba), shape.width * shape.height * 4)
                self.assertTrue(any(shape.rgba[3::4]), "cursor picture is fully transparent")
            finally:
                probe.close()

    def test_the_picture_is_fetched_again_only_after_the_server_says_it_changed(self):
        from Xlib import Xcursorfont, display as xdisplay
        with Xvfb(width=320, height=240) as xvfb:
            probe = CursorProbe.open(xvfb.display)
            self.assertIsNotNone(probe, "XFixes not available on Xvfb")
            fetches = []
            real = probe._display.xfixes_get_cursor_image
            probe._display.xfixes_get_cursor_image = lambda root: fetches.append(1) or real(root)
            other = xdisplay.Display(xvfb.display)
            try:
                first = probe.shape()
                for _ in range(5):
                    self.assertIs(probe.shape(), first)
                self.assertEqual(len(fetches), 1)
                font = other.open_font("cursor")
                pointer = font.create_glyph_cursor(font, Xcursorfont.watch, Xcursorfont.watch + 1,
                                                   (0, 0, 0), (65535, 65535, 65535))
                other.screen().root.change_attributes(cursor=pointer)
                other.sync()
                changed = wait_for_value(probe.shape, lambda shape: shape.serial != first.serial)
                self.assertNotEqual(changed.serial, first.serial)
                self.assertEqual(len(fetches), 2)
            finally:
                other.close()
                probe.close()

    def test_the_position_is_asked_on_a_connection_of_its_own_without_python_xlib(self):
        import subprocess
        from tagio.session.cursor import RawPointer
        with Xvfb(width=320, height=240) as xvfb:
            probe = CursorProbe.open(xvfb.display)
            self.assertIsNotNone(probe, "XFixes not available on Xvfb")
            try:
                self.assertIsInstance(probe._pointer, RawPointer)
                probe._root.query_pointer = lambda: self.fail("asked through python-xlib")
                for x, y in ((33, 44), (319, 0), (0, 239)):
                    subprocess.run(["xdotool", "mousemove", str(x), str(y)], env=xvfb.env(), timeout=10, check=True)
                    self.assertEqual(probe.position(), (x, y))
            finally:
                probe.close()
            with self.assertRaises(OSError):         # the server went away: the tracker skips updates
                probe._pointer.position()

    def test_the_position_stays_current_after_typing_changes_the_keymap(self):
        """Typing a character the keyboard lacks borrows a spare keycode (tagio.session.keyboard_x11):
        the server then sends MappingNotify to every client, the pointer's own connection too. The
        position must still be the pointer's, not the previous query's answer."""
        import subprocess
        from tagio.session.keyboard_x11 import X11Keyboard
        with Xvfb(width=320, height=240) as xvfb:
            probe = CursorProbe.open(xvfb.display)
            self.assertIsNotNone(probe, "XFixes not available on Xvfb")
            keyboard = X11Keyboard.open(xvfb.display)
            try:
                keyboard.type("\u20ac\u00e6\u0416")      # not on the US keymap: three borrowed keycodes
                for x, y in ((33, 44), (300, 200), (5, 6)):
                    subprocess.run(["xdotool", "mousemove", str(x), str(y)], env=xvfb.env(), timeout=10, check=True)
                    self.assertEqual(probe.position(), (x, y))
            finally:
                keyboard.close()
                probe.close()

    def test_without_a_socket_to_take_over_python_xlib_asks(self):
        import subprocess
        import types
        from unittest import mock
        from tagio.session.cursor import RawPointer
        closed = []
        for inner in (types.SimpleNamespace(socket=object(), data_recv=b""),      # no socket there
                      types.SimpleNamespace(data_recv=b""),
                      types.SimpleNamespace(socket=__import__("socket").socket(), data_recv=b"\1")):
            conn = types.SimpleNamespace(display=inner, close=lambda: closed.append(1))
            with mock.patch("Xlib.display.Display", return_value=conn):
                self.assertIsNone(RawPointer.open(":0"))
            if hasattr(inner, "socket") and hasattr(inner.socket, "close"):
                inner.socket.close()
        self.assertEqual(len(closed), 3)
        with Xvfb(width=320, height=240) as xvfb:
            with mock.patch.object(RawPointer, "open", return_value=None):
                probe = CursorProbe.open(xvfb.display)
            try:
                self.assertIsNone(probe._pointer)
                subprocess.run(["xdotool", "mousemove", "12", "34"], env=xvfb.env(), timeout=10, check=True)
                self.assertEqual(probe.position(), (12, 34))
            finally:
                probe.close()

    def test_no_display_means_no_probe(self):
        self.assertIsNone(CursorProbe.open(":999999"))


if __name__ == "__main__":
    unittest.main()
