"""The Tk session window on a real Xvfb display, fed by a real ViewerSession over a SecureChannel.

A scripted host (the other end of the channel) sends frames; we check the window's pixels with an
mss screenshot, and drive the real X pointer/keyboard with xdotool to check what goes back."""

import io
import queue
import subprocess
import threading
import time
import unittest

from PIL import Image

from tagio.protocol import session as m
from tagio.session import events as ev
from tagio.ui.viewer_picture import coalesce, scale_to_fit
from tests.desk import Desk
from tests.waiting import wait_until
from tests.xvfb import shared_xvfb, skip_unless_xvfb


class PureHelpers(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses
    # Key translation tests live in tests/test_keyboard_viewer.py.

    def test_backlog_of_a_screenful_becomes_one_redraw(self):
        tile = Image.new("RGB", (50, 50))
        small = [ev.Rects(1, [(0, 0, tile)], 1.0), ev.Cursor(3, 4), ev.Rects(2, [(50, 0, tile)], 2.0)]
        self.assertEqual(coalesce(small, (100, 100)), small)       # half a screen: draw as is
        big = small + [ev.Rects(3, [(0, 50, tile), (50, 50, tile)], 3.0)]
        self.assertEqual(coalesce(big, (100, 100)), [ev.Cursor(3, 4), ev.Refresh(), ev.Rects(3, [], 3.0)])
        resized = [ev.Size(100, 100, 1)] + big
        self.assertEqual(coalesce(resized, (100, 100)), resized)   # a new geometry is never skipped

    def test_scale_to_fit(self):
        self.assertEqual(scale_to_fit((1600, 1000), (800, 600)), 0.5)
        self.assertEqual(scale_to_fit((320, 200), (800, 600)), 1.0)
        self.assertEqual(scale_to_fit((1000, 1000), (300, 600)), 0.3)


def png(img):
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def scene(width, height):
    """A test picture: four coloured quadrants and a gradient stripe."""
    img = Image.new("RGB", (width, height))
    colours = [(220, 30, 30), (30, 200, 60), (40, 60, 230), (240, 220, 40)]
    for i, colour in enumerate(colours):
        x0, y0 = (i % 2) * width // 2, (i // 2) * height // 2
        img.paste(colour, (x0, y0, x0 + width // 2, y0 + height // 2))
    stripe = Image.linear_gradient("L").resize((width, 20)).convert("RGB")
    img.paste(stripe, (0, height // 2 - 10))
    return img


def frame_messages(img, frame_id=1):
    """The picture as 64-pixel-high PNG bands, like a host would send a first frame."""
    rects = [m.Rect(0, y, img.width, min(64, img.height - y), m.ENC_PNG,
                    png(img.crop((0, y, img.width, min(y + 64, img.height)))))
             for y in range(0, img.height, 64)]
    return [m.Frame(frame_id, m.FINAL, time.monotonic(), 3, rects)]


@skip_unless_xvfb
class WindowOnXvfb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = shared_xvfb(1280, 800)     # Tk runs in this process: the display must outlive it

    def setUp(self):
        import tkinter as tk
        from tagio.session.viewer import ViewerSession
        from tagio.ui.viewer_window import ViewerWindow
        from tests.test_session_host import secure_pair
        self.host, channel = secure_pair()
        self.session = ViewerSession(channel)
        self.session.start()
        self.root = tk.Tk(screenName=self.xvfb.display)
        self.root.withdraw()
        self.desk = Desk(self.xvfb.display, update=self.root.update)
        self.window_class = ViewerWindow
        self.inbox = queue.Queue()
        self.reader = threading.Thread(target=self._read_host, daemon=True)
        self.reader.start()
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        self.session.stop()
        self.host.close()
        self.reader.join(5)
        self.root.destroy()

    def _read_host(self):
        try:
            while True:
                self.inbox.put(m.decode(self.host.recv()))
        except Exception:       # the channel closed at the end of the test
            pass

    def pump(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.root.update()
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def open_window(self, remote, fit, geometry, picture=None):
        window = self.window_class(self.root, self.session, "Partner 123 456 789", fit=fit)
        window.geometry(geometry + "+0+0")
        self.host.send(m.encode(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, *remote, 1)))
        picture = picture or scene(*remote)
        for msg in frame_messages(picture):
            self.host.send(m.encode(msg))
        self.assertTrue(self.pump(lambda: window.shown_frame == 1), "frame never drawn")
        self.assertTrue(self.pump(window.winfo_viewable), "window never mapped")
        return window, picture

    def screenshot(self, window):
        return self.desk.grab_widget(window.canvas)

    def messages(self, kind, count, timeout=5.0):
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            self.root.update()
            try:
                msg = self.inbox.get(timeout=0.02)
            except queue.Empty:
                continue
            if isinstance(msg, kind):
                got.append(msg)
        return got

    def test_one_to_one_shows_the_remote_picture_and_maps_clicks(self):
        window, picture = self.open_window((320, 200), fit=False, geometry="600x400")
        self.assertEqual(window.scale, 1.0)
        wait_until(lambda: self.screenshot(window).crop((0, 0, 320, 200)).tobytes() == picture.tobytes(),
                   poll=self.root.update, what="the window to show the remote picture")    # X paints late
        self.assertIn(m.FrameAck(1), self.messages(m.FrameAck, 1))
        c = window.canvas
        self.desk.move_to(c, 50, 60)
        moves = self.messages(m.Mouse, 1)
        self.assertEqual((moves[0].action, moves[0].x, moves[0].y), (m.MOUSE_MOVE, 50, 60))
        self.desk.xdotool("click", "3")
        presses = self.messages(m.Mouse, 2)
        self.assertEqual([(p.action, p.button, p.x, p.y) for p in presses],
                         [(m.MOUSE_PRESS, 3, 50, 60), (m.MOUSE_RELEASE, 3, 50, 60)])
        self.desk.xdotool("click", "4")
        self.assertEqual(self.messages(m.Scroll, 1), [m.Scroll(0, 1)])

    def test_frames_are_acknowledged_once_drawn(self):
        from unittest import mock
        from tests.test_session_host import wait_for
        # An undrawn frame is acknowledged anyway after MAX_UNSHOWN_AGE; on a loaded box the
        # pauses below must not reach it.
        patcher = mock.patch("tagio.session.viewer.MAX_UNSHOWN_AGE", 60.0)
        patcher.start()
        self.addCleanup(patcher.stop)
        window, _ = self.open_window((320, 200), fit=False, geometry="600x400")
        self.assertIn(m.FrameAck(1), self.messages(m.FrameAck, 1))
        rect = [m.Rect(0, 0, 8, 8, m.ENC_FILL, b"\x10\x20\x30")]
        self.host.send(m.encode(m.Frame(2, m.FINAL, time.monotonic(), 0, rect)))
        self.assertTrue(wait_for(lambda: self.session.stats["frames"] == 2))   # decoded, Tk not pumped
        time.sleep(0.2)             # the subject: a wrong early ack would arrive within this window
        early = []
        while not self.inbox.empty():
            early.append(self.inbox.get_nowait())
        self.assertNotIn(m.FrameAck(2), early, "acknowledged before the window drew it")
        self.assertTrue(self.pump(lambda: window.shown_frame == 2))
        self.assertEqual(self.messages(m.FrameAck, 1), [m.FrameAck(2)])
        window.close()              # a closed window holds nothing back
        self.host.send(m.encode(m.Frame(3, m.FINAL, time.monotonic(), 0, rect)))
        self.assertEqual(self.messages(m.FrameAck, 1), [m.FrameAck(3)])

    def test_keys_go_to_the_host(self):
        window, _ = self.open_window((320, 200), fit=False, geometry="600x400")
        window.canvas.focus_force()
        self.assertTrue(self.pump(lambda: self.root.focus_get() == window.canvas), "no focus")
        self.desk.xdotool("key", "--window", str(window.winfo_id()), "a")
        self.desk.press("Return", "F5")
        keys = self.messages((m.Key, m.Text), 5)
        self.assertEqual(keys, [m.Text("a"), m.Key("Return", True), m.Key("Return", False),
                                m.Key("F5", True), m.Key("F5", False)])
        self.desk.press("shift+comma", "ctrl+shift+t")     # `<` is text; Ctrl+Shift+T is keys
        keys = self.messages((m.Key, m.Text), 9)
        self.assertEqual(keys[:6], [m.Key("Shift_L", True), m.Text("<"), m.Key("Shift_L", False),
                                    m.Key("Control_L", True), m.Key("Shift_L", True), m.Key("T", True)])
        # xdotool lets go of the modifiers before the key: T's release is still the key T
        self.assertCountEqual(keys[6:], [m.Key("T", False), m.Key("Shift_L", False), m.Key("Control_L", False)])

    def test_keys_held_when_focus_leaves_are_released_and_ctrl_alt_del(self):
        import tkinter as tk
        window, _ = self.open_window((320, 200), fit=False, geometry="600x400")
        window.canvas.focus_force()
        self.assertTrue(self.pump(lambda: self.root.focus_get() == window.canvas), "no focus")
        self.desk.xdotool("keydown", "--window", str(window.winfo_id()), "Shift_L")
        self.assertEqual(self.messages(m.Key, 1), [m.Key("Shift_L", True)])
        other = tk.Toplevel(self.root)
        other.geometry("100x100+700+0")
        self.assertTrue(self.pump(other.winfo_viewable), "second window never mapped")
        other.focus_force()
        self.assertEqual(self.messages(m.Key, 1), [m.Key("Shift_L", False)])
        self.desk.xdotool("keyup", "Shift_L")
        other.destroy()
        window.send_ctrl_alt_del()
        self.assertEqual([(k.key, k.pressed) for k in self.messages(m.Key, 6)],
                         [("Control_L", True), ("Alt_L", True), ("Delete", True),
                          ("Delete", False), ("Alt_L", False), ("Control_L", False)])

    def test_clipboard_both_ways(self):
        # The session shares the display's clipboard itself (tagio.session.clipboard_sync); Tk's
        # clipboard in this process is just another program on that display. The display is shared
        # with other in-process Tk tests, which may have left text on it: start from an empty one.
        self.root.clipboard_clear()
        self.session.stop()
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        self.host, channel = secure_pair()
        self.session = ViewerSession(channel, clipboard=True, display=self.xvfb.display)
        self.session.start()
        self.reader = threading.Thread(target=self._read_host, daemon=True)
        self.reader.start()
        # wide enough for the whole toolbar (narrower, the toggle is in its "\u00bb" menu:
        # tests/test_ui_session_window.py NarrowWindow)
        window, _ = self.open_window((320, 200), fit=False, geometry="1100x400")
        self.assertTrue(window.toolbar.clipboard_button.winfo_manager())   # the toggle is there
        self.host.send(m.encode(m.Clipboard.of_text("from the host ✓")))
        self.assertTrue(self.pump(lambda: self._clipboard() == "from the host ✓"), "host clipboard not applied")
        self.root.clipboard_clear()
        self.root.clipboard_append("from the viewer")
        # unchanged afterwards: sent once, and the host's value applied here was not sent back
        self.assertEqual(self.messages(m.Clipboard, 2, timeout=1.5), [m.Clipboard.of_text("from the viewer")])

    def _clipboard(self):
        try:
            return self.root.clipboard_get()
        except Exception:       # empty clipboard
            return None

    def test_fit_scales_the_picture_and_maps_back_exactly(self):
        window, picture = self.open_window((1600, 1000), fit=True, geometry="820x560")
        self.assertLess(window.scale, 0.6)
        self.assertGreater(window.scale, 0.4)
        s = window.scale
        corners = ((200, 150), (1400, 150), (200, 850), (1400, 850))

        def worst_corner():         # X paints after Tk hands it the picture: poll the screen
            shown = self.screenshot(window)
            return max(max(abs(a - b) for a, b in zip(shown.getpixel((int(rx * s), int(ry * s))),
                                                       picture.getpixel((rx, ry)))) for rx, ry in corners)
        wait_until(lambda: worst_corner() < 10, poll=self.root.update, what="the scaled picture on screen")
        c = window.canvas
        self.desk.move_to(c, 300, 200)
        move = self.messages(m.Mouse, 1)[0]
        self.assertEqual((move.x, move.y), (int(300 / s), int(200 / s)))

    def test_fit_after_one_to_one_fills_the_window_again(self):
        """View -> 1:1 and back to Fit: the picture fills the window (a tester saw a 12-px dark
        band where the scrollbars had been)."""
        from tagio.ui.viewer_picture import scale_to_fit
        from tests.desk import keep_shot
        window, picture = self.open_window((1600, 1000), fit=True, geometry="820x560")
        bar, c = window.toolbar, window.canvas
        self.desk.choose(bar.view_button, bar.view_menu, "1:1")
        self.assertTrue(self.pump(lambda: window.scale == 1.0 and window.vbar.winfo_ismapped()), "no 1:1")
        self.desk.choose(bar.view_button, bar.view_menu, "Fit")
        self.assertTrue(self.pump(lambda: not window.vbar.winfo_ismapped() and not window.hbar.winfo_ismapped()))
        self.root.update_idletasks()
        size = (c.winfo_width(), c.winfo_height())
        self.assertEqual(window.scale, scale_to_fit((1600, 1000), size))
        shown = (window._photo.width(), window._photo.height())
        self.assertTrue(shown[0] == size[0] or shown[1] == size[1], (shown, size))
        edge = (shown[0] - 2, shown[1] - 2)       # the picture's far corner is drawn, not the background
        wanted = picture.getpixel((1599, 999))
        wait_until(lambda: max(abs(a - b) for a, b in zip(self.screenshot(window).getpixel(edge), wanted)) < 30,
                   poll=self.root.update, what="the picture up to the window's edge")
        keep_shot(self.screenshot(window), "viewer_fit_after_one_to_one")

    def test_reconnecting_is_readable_over_a_light_picture(self):
        """The message over the picture has a dark backdrop (white text alone vanished over white)."""
        from tagio.client import words
        from tests.desk import keep_shot
        white = Image.new("RGB", (900, 600), (245, 245, 245))     # larger than the window: all picture
        window, _ = self.open_window((900, 600), fit=False, geometry="600x400", picture=white)
        window.show_reconnecting()
        self.assertIn(words.RECONNECTING, window.canvas.itemcget("message", "text"))
        x0, y0, x1, y1 = window.canvas.bbox("message")

        def dark_share():           # of the pixels behind the message's text
            shot = self.screenshot(window).crop((x0, y0, x1, y1)).convert("L")
            return sum(1 for v in shot.getdata() if v < 90) / (shot.width * shot.height)
        wait_until(lambda: dark_share() > 0.5, poll=self.root.update, what="a dark backdrop behind the text")
        keep_shot(self.screenshot(window), "viewer_reconnecting_over_white")

    def test_status_line_and_session_end(self):
        window, _ = self.open_window((320, 200), fit=False, geometry="600x400")
        # every figure says what it is: path, latency in ms, a rate in frames/s, bandwidth in Mbit/s
        self.assertTrue(self.pump(lambda: "Direct" in window.status.cget("text"), timeout=3))
        text = window.status.cget("text")
        self.assertIn("Partner 123 456 789", text)
        for label in ("ms latency", "frames/s", "Mbit/s"):
            self.assertIn(label, text)
        details = window.status_details()       # the tooltip: size and the path's own name
        self.assertIn("320x200", details)
        self.assertIn("direct-tcp", details)
        self.host.send(m.encode(m.Bye("partner quit")))
        self.assertTrue(self.pump(lambda: "partner quit" in window.status.cget("text").lower(), timeout=5))
        window.close()
        self.assertFalse(self.root.winfo_children())


@skip_unless_xvfb
class StalledPathOnXvfb(unittest.TestCase):
    """A path that takes nothing (the partner never reads, the kernel buffers are full) cannot
    freeze the window: Tk keeps running its after() callbacks while xdotool moves the mouse over
    it, clicks and types, and every key and click waits for the path instead of vanishing."""

    TICK_MS = 20
    MAX_GAP = 0.5           # seconds between two ticks (the old code: until the watchdog cut the path)
    WATCHDOG = 10.0
    KEYS = "abcdefghij"

    def setUp(self):
        import tkinter as tk
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        self.xvfb = shared_xvfb(1280, 800)
        self.host, self.channel = secure_pair()
        self.session = ViewerSession(self.channel)
        self.session.start()
        self.root = tk.Tk(screenName=self.xvfb.display)
        self.root.withdraw()
        self.addCleanup(self.root.destroy)
        self.addCleanup(self.host.close)
        self.addCleanup(self.session.stop)

    def pump(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            self.root.update()
            time.sleep(0.005)
        return predicate()

    def open_window(self):
        from tagio.ui.viewer_window import ViewerWindow
        window = ViewerWindow(self.root, self.session, "Stalled partner", fit=False)
        window.geometry("600x400+0+0")
        self.host.send(m.encode(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 320, 200, 1)))
        for msg in frame_messages(scene(320, 200)):
            self.host.send(m.encode(msg))
        self.assertTrue(self.pump(lambda: window.shown_frame == 1), "frame never drawn")
        return window

    def xdotool_script(self, window):
        c = window.canvas
        x0, y0 = c.winfo_rootx(), c.winfo_rooty()
        args = []
        for i in range(150):        # about a second of moves, as a hand would make them
            args += ["mousemove", str(x0 + 10 + i), str(y0 + 10 + i % 100), "sleep", "0.005"]
        return args + ["click", "1", "key", "--delay", "20", *self.KEYS]

    def record_input(self):
        """Record the keys, text and buttons the window posts to the session (they go on to it)."""
        posted, session = [], self.session
        key, text, button = session.send_key, session.send_text, session.send_mouse_button
        session.send_key = lambda name, down: (posted.append(("key", name, down)), key(name, down))
        session.send_text = lambda chars: (posted.append(("text", chars)), text(chars))
        session.send_mouse_button = lambda num, down, *xy: (posted.append(("button", num, down)),
                                                            button(num, down, *xy))
        return posted

    def test_the_window_keeps_running_while_the_path_takes_nothing(self):
        from tests.test_session_viewer import stall
        window = self.open_window()
        stall(self.channel)
        watchdog = threading.Timer(self.WATCHDOG, self.channel.stream.close)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        ticks, pending = [], []

        def tick():
            ticks.append(time.monotonic())
            pending[:] = [self.root.after(self.TICK_MS, tick)]
        tick()
        self.addCleanup(lambda: self.root.after_cancel(pending[0]))
        posted = self.record_input()
        driver = subprocess.Popen(["xdotool", *self.xdotool_script(window)], env=self.xvfb.env())
        self.addCleanup(driver.wait, 10)
        self.assertTrue(self.pump(lambda: driver.poll() is not None, timeout=30), "xdotool never ended")
        self.pump(lambda: len(posted) >= len(self.KEYS) + 2, timeout=2)    # the last X events
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        print(f"\n  {len(ticks)} ticks, longest gap {max(gaps) * 1000:.0f} ms", end=" ")
        self.assertLess(max(gaps), self.MAX_GAP, "the Tk thread was blocked")
        self.assertEqual(window._last_motion, (10 + 149, 10 + 149 % 100), "the moves did not reach the window")
        self.assertEqual([p for p in posted if p[0] == "button"], [("button", 1, True), ("button", 1, False)])
        # printable keys go as text (tagio.ui.keys), one Text per key press, none lost
        self.assertEqual("".join(p[1] for p in posted if p[0] == "text"), self.KEYS)
        self.assertEqual([p for p in posted if p[0] == "key"], [])
        self.assertTrue(self.session.running)           # moves coalesce; a few keys are no stall
        self.assertEqual(driver.returncode, 0)


@skip_unless_xvfb
class WindowWithRealHost(unittest.TestCase):
    """A real HostSession capturing one Xvfb, shown by a ViewerWindow on another, clicked with xdotool."""

    def test_window_shows_the_host_screen_and_clicks_land_there(self):
        import tkinter as tk
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        from tagio.ui.viewer_window import ViewerWindow
        from tests.test_session_host import Target, grab_screen_of, mean_diff, secure_pair
        from tests.xvfb import Xvfb
        viewer_x = shared_xvfb(1280, 800)
        with Xvfb(width=640, height=400) as host_x:
            target = Target(host_x.env())
            self.addCleanup(target.close)
            host_channel, viewer_channel = secure_pair()
            host = HostSession(host_channel, display=host_x.display)
            session = ViewerSession(viewer_channel)
            host.start()
            session.start()
            root = tk.Tk(screenName=viewer_x.display)
            root.withdraw()
            try:
                window = ViewerWindow(root, session, "Real host", fit=False)
                window.geometry("700x480+0+0")
                c = window.canvas

                def difference():
                    with_mss = grab_screen_of(viewer_x.display, (c.winfo_rootx(), c.winfo_rooty(),
                                                                 c.winfo_rootx() + 640, c.winfo_rooty() + 400))
                    return mean_diff(with_mss, grab_screen_of(host_x.display))
                wait_until(lambda: session.stats["frames"] >= 1 and difference() < 3.0, poll=root.update,
                           what="the window to show the host's screen")
                Desk(viewer_x.display, update=root.update).click(c, 130, 170)
                deadline = time.monotonic() + 10
                click = None
                while click is None and time.monotonic() < deadline:
                    root.update()
                    events = [e for e in target.collect(0.05) if e["kind"] == "button"]
                    click = events[0] if events else None
                self.assertIsNotNone(click, "the click never reached the host display")
                self.assertEqual((click["num"], click["x"], click["y"]), (1, 130, 170))
                window.close()
            finally:
                session.stop()
                host.stop()
                root.destroy()


if __name__ == "__main__":
    unittest.main()
