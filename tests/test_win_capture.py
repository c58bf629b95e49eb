"""Windows capture, run here with stand-ins: the scanline change source on a scripted framebuffer,
the pause while a UAC prompt or the lock screen has the input desktop (a grabber that fails, then
recovers, under a real HostSession and ViewerSession), CAPTUREBLT off in the mss that is installed,
the secure-desktop check with a fake user32, and the cursor bitmaps as GetDIBits hands them over."""

import importlib.util
import itertools
import threading
import unittest
from types import SimpleNamespace

from tagio.session import capture_win32 as win
from tagio.session import cursor_win32 as cw
from tagio.session import tiles as t
from tests.platforms import windows_only

W, H = 256, 192


class FrameBuffer:
    """A screen of W x H BGRX pixels that mss-like grabs read from (monitor 1 = the whole buffer)."""

    monitors = [{"left": 0, "top": 0, "width": W, "height": H}] * 2

    def __init__(self):
        self.buf = bytearray(W * H * 4)
        self.grabs = []             # (width, height) of each grab
        self.tops = []              # and its top row
        self.fail = threading.Event()

    def fill(self, x, y, w, h, value):
        for row in range(y, y + h):
            self.buf[(row * W + x) * 4:(row * W + x + w) * 4] = bytes([value]) * (w * 4)

    def grab(self, box):
        if self.fail.is_set():
            raise RuntimeError("BitBlt: Access is denied")      # what mss raises on the secure desktop
        self.grabs.append((box["width"], box["height"]))
        self.tops.append(box["top"])
        rows = [self.buf[((box["top"] + r) * W + box["left"]) * 4:((box["top"] + r) * W + box["left"] + box["width"]) * 4]
                for r in range(box["height"])]
        return SimpleNamespace(raw=bytearray(b"".join(rows)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def watched_probe(fb, clock=None):
    """A probe on `fb`; its clock moves on by one quiet scan interval at each look, so that every
    collect() scans (unless `clock` is given)."""
    ticks = itertools.count(0.0, 1.0 / win.QUIET_SCAN_FPS)
    probe = win.ScanProbe(lambda box: fb.grab(box).raw, clock=clock or (lambda: next(ticks)))
    screen = t.ScreenCopy(W, H)
    mon = {"box": {"left": 0, "top": 0, "width": W, "height": H}, "screen": screen}
    probe.watch(mon)
    return probe, screen


class ScanProbeTest(unittest.TestCase):
    LAYER = "unit"

    def test_nothing_before_the_first_full_grab_then_nothing_while_still(self):
        fb = FrameBuffer()
        probe, screen = watched_probe(fb)
        self.assertIsNone(probe.collect())                      # the host grabs everything first
        screen.replace(bytes(fb.buf))
        for _ in range(win.STEP):
            self.assertEqual(probe.collect(), [])
        self.assertTrue(all(w == W for w, h in fb.grabs))            # full-width rows and bands
        lines = [top for top, size in zip(fb.tops, fb.grabs) if size == (W, 1)]
        self.assertEqual(len(set(lines)), len(lines))                   # no scanline read twice ...
        self.assertLessEqual(len(lines), win.STEP * H // win.STEP)     # ... at most one per row
        read = {top + r for top, (w, h) in zip(fb.tops, fb.grabs) for r in range(h)}
        self.assertEqual(read, set(range(H)))                           # each row once per cycle

    def test_a_change_is_found_within_step_over_its_height_polls(self):
        fb = FrameBuffer()
        probe, screen = watched_probe(fb)
        screen.replace(bytes(fb.buf))
        fb.fill(100, 130, 20, 6, 0xFF)                          # 6 rows tall: found within 32/6 polls
        found, polls = [], 0
        while not found and polls < win.STEP:
            found, polls = probe.collect(), polls + 1
        self.assertLessEqual(polls, win.STEP // 6 + 1)
        tiles = t.rects_tiles(found, W, H)
        self.assertIn((100 // t.TILE, 130 // t.TILE), tiles)

    def frames(self, probe, screen, fb, now, seconds, fps=60):
        """Collect at `fps` for `seconds` of the clock `now` ([t]), the host's part played by a
        fresh copy after each find: [(time, rects)] of the collects that scanned."""
        scans, end = [], now[0] + seconds
        while now[0] < end - 1e-9:
            grabs = len(fb.grabs)
            rects = probe.collect()
            if len(fb.grabs) > grabs:
                scans.append((now[0], rects))
            if rects:
                screen.replace(bytes(fb.buf))
            now[0] += 1.0 / fps
        return scans

    def test_scans_slow_down_without_news_and_speed_up_with_it(self):
        fb, now = FrameBuffer(), [0.0]
        probe, screen = watched_probe(fb, clock=lambda: now[0])
        screen.replace(bytes(fb.buf))
        quiet = self.frames(probe, screen, fb, now, 2.0)
        self.assertAlmostEqual(len(quiet), 2.0 * win.QUIET_SCAN_FPS, delta=1)
        fb.fill(10, 50, 30, win.STEP, 0x80)                     # STEP rows tall: the next scan sees it
        changed_at = now[0]
        busy = self.frames(probe, screen, fb, now, win.QUIET_AFTER)
        self.assertTrue(busy[0][1], "not seen by the first scan after it")
        self.assertLessEqual(busy[0][0] - changed_at, 1.0 / win.QUIET_SCAN_FPS)
        self.assertAlmostEqual(len(busy), win.QUIET_AFTER * win.SCAN_FPS, delta=1)
        quiet = self.frames(probe, screen, fb, now, 1.0)
        self.assertAlmostEqual(len(quiet), win.QUIET_SCAN_FPS, delta=1)
        self.assertFalse(any(rects for _when, rects in quiet))

    def test_changes_in_hot_tiles_are_not_news(self):
        fb, now = FrameBuffer(), [0.0]
        probe, screen = watched_probe(fb, clock=lambda: now[0])
        hot = t.RecentChanges(clock=lambda: now[0])
        probe._mon["hot"] = hot
        screen.replace(bytes(fb.buf))
        hot.changed({(1, 1)})
        fb.fill(70, 70, 40, 50, 0x80)                           # inside tile (1, 1) only
        scans = self.frames(probe, screen, fb, now, 1.0)
        self.assertFalse(any(rects for _when, rects in scans))
        self.assertAlmostEqual(len(scans), win.QUIET_SCAN_FPS, delta=1)   # and no faster
        fb.fill(150, 70, 40, 50, 0x90)                          # the tile next to it is news
        scans = self.frames(probe, screen, fb, now, 0.2)
        self.assertIn((2, 1), t.rects_tiles(scans[0][1], W, H))

    def test_the_sweep_finds_a_change_no_scanline_reaches_soon(self):
        """Row 159 is scanned once in STEP scans (3.2 s at the quiet rate); the sweep reads it within
        SWEEP_SECONDS and a scan interval, at 60 frames a second or at 3."""
        for fps in (60, 3):
            for delay in (0.0, 0.37, 0.81):
                fb, now = FrameBuffer(), [0.0]
                probe, screen = watched_probe(fb, clock=lambda: now[0])
                screen.replace(bytes(fb.buf))
                self.frames(probe, screen, fb, now, 1.0 + delay, fps)
                fb.fill(200, 159, 10, 1, 0xFF)
                changed_at = now[0]
                found = [when for when, rects in self.frames(probe, screen, fb, now, 2.0, fps)
                         if (200 // t.TILE, 159 // t.TILE) in t.rects_tiles(rects, W, H)]
                self.assertTrue(found, f"{fps} fps, {delay} s: never found")
                self.assertLessEqual(found[0] - changed_at, win.SWEEP_SECONDS + max(1 / fps, 1 / win.QUIET_SCAN_FPS),
                                     f"{fps} fps, {delay} s")

    def test_every_row_is_scanned_once_per_cycle(self):
        self.assertEqual(sorted(win.ORDER), list(range(win.STEP)))
        self.assertEqual(win.ORDER[:4], (0, 16, 8, 24))

    def test_band_rects_cover_neighbour_rows_and_clip(self):
        box = {"left": 1920, "top": 0}
        self.assertEqual(win.band_rects({0}, box, 100, 100), [(1920, 0, 100, 64), (1920, 64, 100, 36)])
        self.assertEqual(win.band_rects(set(), box, 100, 100), [])


class CaptureBltTest(unittest.TestCase):
    LAYER = "unit"

    def test_flag_cleared_on_the_module(self):
        gdi = SimpleNamespace(CAPTUREBLT=0x40000000)
        self.assertTrue(win.capture_blt_off(gdi))
        self.assertEqual(gdi.CAPTUREBLT, 0)
        self.assertFalse(win.capture_blt_off(SimpleNamespace()))

    def test_installed_mss_reads_the_module_constant_at_each_grab(self):
        """capture_blt_off works by changing mss.windows.gdi.CAPTUREBLT: this mss must still BitBlt
        with that module-level name (read from its source: the module imports only on Windows)."""
        spec = importlib.util.find_spec("mss.windows.gdi")
        if spec is None or spec.origin is None:
            self.skipTest("this mss has no mss.windows.gdi")
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
        self.assertRegex(source, r"(?m)^CAPTUREBLT = 0x40000000$")
        self.assertIn("SRCCOPY | CAPTUREBLT)", source)


class FakeUser32:
    def __init__(self, name="Default", opens=True):
        self.name, self.opens, self.closed = name, opens, 0

    def OpenInputDesktop(self, flags, inherit, access):
        return 0x1234 if self.opens else 0

    def GetUserObjectInformationW(self, desk, index, buffer, size, needed):
        buffer.value = self.name
        return 1

    def CloseDesktop(self, desk):
        self.closed += 1
        return 1


class SecureDesktopTest(unittest.TestCase):
    LAYER = "unit"

    def test_default_desktop_is_capturable_winlogon_and_refusal_are_not(self):
        self.assertFalse(win.SecureDesktop(FakeUser32("Default")).active())
        self.assertTrue(win.SecureDesktop(FakeUser32("Winlogon")).active())
        self.assertTrue(win.SecureDesktop(FakeUser32(opens=False)).active())     # access denied
        user32 = FakeUser32()
        win.SecureDesktop(user32).active()
        self.assertEqual(user32.closed, 1)


class NoticeBandTest(unittest.TestCase):
    LAYER = "unit"

    def test_band_is_one_tile_row_of_the_last_picture_with_the_notice(self):
        last = bytes(W * H * 4)
        band, height = win.notice_band(last, W, H)
        self.assertEqual((len(band), height), (W * t.TILE * 4, t.TILE))
        self.assertNotEqual(band, last[:len(band)])                         # something drawn over it
        self.assertEqual(len(win.notice_band(None, W, 20)[0]), W * 20 * 4)   # a tiny screen, no picture


def px(*values):
    return bytes(values)


class CursorBitsTest(unittest.TestCase):
    LAYER = "unit"
    WHITE, BLACK = px(255, 255, 255, 0), px(0, 0, 0, 0)

    def test_monochrome_masks(self):
        # AND/XOR per pixel: 0/0 black, 0/1 white, 1/0 transparent, 1/1 invert (drawn black)
        and_mask = self.BLACK + self.BLACK + self.WHITE + self.WHITE
        xor_mask = self.BLACK + self.WHITE + self.BLACK + self.WHITE
        self.assertEqual(cw.mono_to_rgba(and_mask, xor_mask, 2, 2),
                         px(0, 0, 0, 255) + px(255, 255, 255, 255) + px(0, 0, 0, 0) + px(0, 0, 0, 255))

    def test_colour_with_and_without_alpha(self):
        bgra = px(10, 20, 30, 128) + px(1, 2, 3, 0)
        self.assertEqual(cw.color_to_rgba(bgra, b"", 2, 1), px(30, 20, 10, 128) + px(3, 2, 1, 0))
        no_alpha = px(10, 20, 30, 0) + px(1, 2, 3, 0)
        self.assertEqual(cw.color_to_rgba(no_alpha, self.BLACK + self.WHITE, 2, 1),
                         px(30, 20, 10, 255) + px(3, 2, 1, 0))

    def test_large_cursor_is_cropped_with_its_hot_spot_inside(self):
        side = cw.MAX_SIDE + 8
        shape = cw.crop_shape(7, side - 1, 3, side, side, bytes(side * side * 4))
        self.assertEqual((shape.width, shape.height, len(shape.rgba)), (cw.MAX_SIDE, cw.MAX_SIDE, cw.MAX_SIDE ** 2 * 4))
        self.assertEqual((shape.hot_x, shape.hot_y, shape.serial), (cw.MAX_SIDE - 1, 3, 7))

    def test_no_probe_off_windows(self):
        if not cw.WINDOWS:
            self.assertIsNone(cw.Win32CursorProbe.open())
            self.assertIsNone(win.SecureDesktop.open())


class FakeGrabberSession:
    """A real HostSession and ViewerSession over a real secure channel, the host grabbing a FrameBuffer."""

    def run_session(self, pause, secure=None):
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair, wait_for
        fb = FrameBuffer()
        fb.fill(0, 0, W, H, 0x40)
        host_channel, viewer_channel = secure_pair()
        events = []
        host = HostSession(host_channel, view_only=True, grabber=lambda **kw: fb,
                           on_event=lambda name, **f: events.append(name))
        host.pause_on_grab_failure, host.scan_for_changes, host.pause_retry = pause, True, 0.02
        host._secure = secure or SimpleNamespace(active=lambda: False)   # the input desktop is the user's
        viewer = ViewerSession(viewer_channel)
        host.start()
        viewer.start()
        self.addCleanup(viewer.stop)
        self.addCleanup(host.stop)
        self.assertTrue(wait_for(lambda: viewer.stats["frames"] >= 1), "no first frame")
        return host, viewer, fb, events, wait_for


class PauseOnTheSecureDesktop(FakeGrabberSession, unittest.TestCase):
    """A HostSession whose grabber fails (UAC prompt) and recovers: the viewer gets the notice over
    the last picture, the session goes on, and a fresh full picture follows."""

    def test_grab_failure_pauses_then_resumes(self):
        host, viewer, fb, events, wait_for = self.run_session(pause=True)
        frames = viewer.stats["frames"]
        fb.fail.set()
        self.assertTrue(wait_for(lambda: "capture_paused" in events and viewer.stats["frames"] > frames),
                        f"no notice frame: {events}")
        self.assertTrue(host.paused and host.running and viewer.running)
        frames = viewer.stats["frames"]
        fb.fail.clear()
        self.assertTrue(wait_for(lambda: "capture_resumed" in events and viewer.stats["frames"] > frames),
                        f"no picture after the prompt: {events}")
        self.assertFalse(host.paused)
        self.assertTrue(viewer.running)

    def test_a_black_picture_on_the_secure_desktop_pauses_too(self):
        """Some systems hand out black pixels instead of failing: the input desktop check catches it."""
        locked = threading.Event()
        host, viewer, fb, events, wait_for = self.run_session(
            pause=True, secure=SimpleNamespace(active=locked.is_set))
        locked.set()
        self.assertTrue(wait_for(lambda: "capture_paused" in events), f"not paused: {events}")
        locked.clear()
        self.assertTrue(wait_for(lambda: "capture_resumed" in events), f"not resumed: {events}")
        self.assertTrue(viewer.running)

    def test_without_pause_a_grab_failure_still_ends_the_session(self):
        from tagio.errors import ConfigError
        host, viewer, fb, events, wait_for = self.run_session(pause=False)
        fb.fail.set()
        with self.assertRaises(ConfigError):
            host.join(10)
        self.assertNotIn("capture_paused", events)


# A still desktop with a square changing colour at 30 Hz in the middle (hot tiles, grabbed at every
# frame); "mark ROW" draws a red line one row tall in the bottom-right corner.
POLL_SCENE = r"""
import sys, threading, tkinter as tk
W, H = int(sys.argv[1]), int(sys.argv[2])
root = tk.Tk()
root.geometry(f"{W}x{H}+0+0")
root.overrideredirect(True)
canvas = tk.Canvas(root, width=W, height=H, highlightthickness=0, bg="#102040")
canvas.pack()
square = canvas.create_rectangle(W // 2 - 20, H // 2 - 20, W // 2 + 20, H // 2 + 20, fill="#000000", outline="")
state = {"n": 0}
def tick():
    state["n"] += 1
    canvas.itemconfigure(square, fill="#%02x%02x00" % (state["n"] * 7 % 256, state["n"] * 3 % 256))
    root.after(33, tick)
def command(line):
    row = int(line.split()[1])
    canvas.create_rectangle(W - 40, row, W, row + 1, fill="#ff0000", outline="")
    root.update_idletasks()
    sys.stdout.write(f"marked {row}\n"); sys.stdout.flush()
def commands():
    for line in sys.stdin:
        root.after(0, command, line)
threading.Thread(target=commands, daemon=True).start()
root.after(200, lambda: (sys.stdout.write("ready\n"), sys.stdout.flush(), tick()))
root.mainloop()
"""


class PolledCaptureOnXvfb(unittest.TestCase):
    """A real host (Xvfb, mss) with X damage reports switched off, so that it polls as on Windows,
    and a viewer: beside an animation followed at every frame, lines one row tall drawn in the far
    corner reach the viewer's picture within the sweep's bound (SWEEP_SECONDS and a quiet scan
    interval), plus SLACK for a frame, the encode, the link and a loaded machine. A scanline alone
    would take up to STEP quiet scans (3.2 s) for such a line."""

    WIDTH, HEIGHT = 640, 480
    SLACK = 0.6

    def test_one_row_lines_in_a_far_corner_reach_the_viewer_in_time(self):
        from unittest import mock
        from tagio.session.damage import DamageProbe
        from tests.wan_session import scene_on_xvfb, session_over_link
        from tests.waiting import wait_until
        xvfb, scene, first = scene_on_xvfb(self, self.WIDTH, self.HEIGHT, POLL_SCENE,
                                           (self.WIDTH, self.HEIGHT), stdin=True)
        self.assertEqual(first, "ready")
        self.enterContext(mock.patch.object(DamageProbe, "open", staticmethod(lambda display=None: None)))
        host, viewer = session_over_link(self, xvfb.display, 2, 100)
        wait_until(lambda: viewer.framebuffer is not None and viewer.stats["frames"] > 5, 20, "the first pictures")
        self.assertTrue(host.scan_for_changes)
        bound = win.SWEEP_SECONDS + 1 / win.QUIET_SCAN_FPS + self.SLACK
        for row in (self.HEIGHT - 1, self.HEIGHT - 1 - 3 * win.STEP // 2, self.HEIGHT - 1 - 5 * win.STEP // 4):
            scene.stdin.write(f"mark {row}\n")
            scene.stdin.flush()
            self.assertEqual(scene.stdout.readline().strip(), f"marked {row}")
            pixel = lambda: viewer.framebuffer.getpixel((self.WIDTH - 20, row))
            wait_until(lambda: pixel()[0] > 200 and pixel()[1] < 80, bound, f"the red line on row {row}")


if __name__ == "__main__":
    unittest.main()


class SecureAttentionTest(unittest.TestCase):
    LAYER = "unit"

    def test_only_the_delete_of_ctrl_alt_del(self):
        watch = win.SecureAttentionWatch()
        self.assertFalse(watch.feed("Delete", True))                        # Delete alone
        for key in ("Control_L", "Alt_L"):
            self.assertFalse(watch.feed(key, True))
        self.assertTrue(watch.feed("Delete", True))
        watch.feed("Alt_L", False)
        self.assertFalse(watch.feed("Delete", True))                        # Ctrl+Delete

    def test_host_says_why_and_injects_no_delete(self):
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        events = []
        host = HostSession(channel=None, on_event=lambda name, **f: events.append((name, f)))
        host.refuse_secure_attention = True
        for key, pressed in (("Control_L", True), ("Alt_L", True), ("Delete", True), ("Delete", False),
                             ("Alt_L", False), ("Control_L", False)):
            host._on_input(m.Key(key, pressed))
        sent = [host._input_q.get_nowait() for _ in range(host._input_q.qsize())]
        self.assertNotIn(m.Key("Delete", True), sent)
        self.assertIn(m.Key("Control_L", False), sent)                      # nothing stays held
        self.assertEqual(events, [("warning", {"message": win.SAS_NOTICE})])
        self.assertEqual(host._notice, win.SAS_NOTICE)                     # for the viewer's picture

    def test_elsewhere_it_is_sent(self):
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        host.refuse_secure_attention = False                                # an X11 host
        for key in ("Control_L", "Alt_L", "Delete"):
            host._on_input(m.Key(key, True))
        self.assertEqual(host._input_q.qsize(), 3)


class NoticeHoldTest(unittest.TestCase):
    LAYER = "unit"

    def test_held_then_restored_once(self):
        hold = win.NoticeHold(seconds=5)
        self.assertEqual(hold.filter({(0, 0)}, 0.0), {(0, 0)})
        hold.start({(0, 0), (1, 0)}, 10.0)
        self.assertEqual(hold.filter({(0, 0), (2, 3)}, 12.0), {(2, 3)})     # the notice stays up
        self.assertEqual(hold.filter(set(), 15.0), {(0, 0), (1, 0)})        # then the real pixels
        self.assertEqual(hold.filter(set(), 16.0), set())


class NoticeOnThePicture(FakeGrabberSession, unittest.TestCase):
    def test_ctrl_alt_del_notice_reaches_the_viewer(self):
        host, viewer, fb, events, wait_for = self.run_session(pause=True)
        frames = viewer.stats["frames"]
        host._notice = win.SAS_NOTICE                  # what _on_input sets on a Windows host
        self.assertTrue(wait_for(lambda: viewer.stats["frames"] > frames), "no notice frame")
        self.assertIsNone(host._notice)


class ElevatedDlls:
    """user32/kernel32/advapi32 stand-ins: the foreground window's process is elevated or not, and its
    token may be unreadable (a higher integrity level)."""

    def __init__(self, elevated=True, readable=True, hwnd=0x50):
        self.elevated, self.readable, self.hwnd, self.closed = elevated, readable, hwnd, 0

    def GetForegroundWindow(self):
        return self.hwnd

    def GetWindowThreadProcessId(self, hwnd, pid_ref):
        pid_ref._obj.value = 4242
        return 1

    def OpenProcess(self, access, inherit, pid):
        return 0x99 if pid == 4242 else 0

    def OpenProcessToken(self, process, access, token_ref):
        token_ref._obj.value = 0x77
        return 1 if self.readable else 0

    def GetTokenInformation(self, token, klass, buffer_ref, size, returned_ref):
        buffer_ref._obj.value = 1 if self.elevated else 0
        return 1

    def CloseHandle(self, handle):
        self.closed += 1
        return 1


class ElevatedWindowTest(unittest.TestCase):
    LAYER = "unit"

    def probe(self, dlls, now):
        return win.ElevatedForeground(dlls, dlls, dlls, clock=lambda: now[0])

    def test_elevated_or_unreadable_is_blocked_once_per_window_and_period(self):
        now = [100.0]
        for dlls in (ElevatedDlls(elevated=True), ElevatedDlls(readable=False)):
            probe = self.probe(dlls, now)
            self.assertEqual(probe.blocked_window(), 0x50)
            self.assertIsNone(probe.blocked_window())                      # said once ...
            now[0] += win.ELEVATED_REPEAT + 1
            self.assertEqual(probe.blocked_window(), 0x50)                 # ... then again later
        self.assertIsNone(self.probe(ElevatedDlls(elevated=False), now).blocked_window())
        self.assertIsNone(self.probe(ElevatedDlls(hwnd=0), now).blocked_window())   # no foreground

    def test_host_says_why_and_still_sends_the_input(self):
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        events = []
        host = HostSession(channel=None, on_event=lambda name, **f: events.append((name, f)))
        now = [0.0]
        host._elevated = self.probe(ElevatedDlls(), now)
        host._check_elevated(m.Mouse(m.MOUSE_MOVE, 0, 5, 5))                # a move asks nothing
        self.assertEqual(events, [])
        host._check_elevated(m.Mouse(m.MOUSE_PRESS, 1, 5, 5))
        self.assertEqual(events, [("warning", {"message": win.ELEVATED_NOTICE})])
        self.assertEqual(host._notice, win.ELEVATED_NOTICE)
        host._check_elevated(m.Key("a", True))                              # the same window: once
        self.assertEqual(len(events), 1)

    def test_no_probe_off_windows(self):
        if not win.WINDOWS:
            self.assertIsNone(win.ElevatedForeground.open(lambda: 0.0))


@windows_only("the real user32/gdi32/advapi32 calls and mss's GDI grabber")
class RealWin32Calls(unittest.TestCase):
    def test_cursor_desktop_elevation_and_captureblt(self):
        import time
        probe = cw.Win32CursorProbe.open()
        x, y = probe.position()
        self.assertIsInstance(x + y, int)
        shape = probe.shape()                                   # None when the pointer is hidden
        if shape is not None:
            self.assertEqual(len(shape.rgba), shape.width * shape.height * 4)
        self.assertIsInstance(win.SecureDesktop.open().active(), bool)
        elevated = win.ElevatedForeground.open(time.monotonic)
        if elevated is not None:                                # None when the tests run elevated
            elevated.blocked_window()
        self.assertTrue(win.capture_blt_off())
        from mss.windows import gdi
        self.assertEqual(gdi.CAPTUREBLT, 0)

    def test_one_row_grabs_have_the_full_grabs_row_size(self):
        import mss
        with mss.MSS() as sct:
            mon = sct.monitors[1]
            full = sct.grab(mon).raw
            row = sct.grab({"left": mon["left"], "top": mon["top"], "width": mon["width"], "height": 1}).raw
        self.assertEqual(len(row), mon["width"] * 4)
        self.assertEqual(len(full), mon["width"] * mon["height"] * 4)

    def test_the_scan_and_its_sweep_run_on_the_real_grabber(self):
        """ScanProbe's one-row grabs and sweep bands (and their sizes changing at every grab, which
        makes mss build a new DIB section each time) on the real GDI grabber."""
        import mss
        with mss.MSS() as sct:
            mon = sct.monitors[1]
            box = {k: mon[k] for k in ("left", "top", "width", "height")}
            screen = t.ScreenCopy(box["width"], box["height"])
            now = [0.0]
            probe = win.ScanProbe(lambda b: sct.grab(b).raw, clock=lambda: now[0])
            probe.watch({"box": box, "screen": screen})
            screen.replace(sct.grab(box).raw)
            for _ in range(3):
                now[0] += 1.0 / win.QUIET_SCAN_FPS
                self.assertIsInstance(probe.collect(), list)


class CommandLineHostSaysIt(unittest.TestCase):
    LAYER = "unit"

    def test_pause_and_resume_lines(self):
        from tagio.cli.host import HostPrinter
        lines = []
        out = SimpleNamespace(event=lambda event, text, **data: lines.append((event, text, data)))
        printer = HostPrinter(out)
        printer("host_capture_paused", peer_id="123456789", reason=win.PAUSE_NOTICE, error="BitBlt failed")
        printer("host_capture_resumed", peer_id="123456789")
        self.assertEqual([line[0] for line in lines], ["capture_paused", "capture_resumed"])
        self.assertIn("locked or showing a system prompt", lines[0][1])
        self.assertEqual(lines[1][2], {"peer": "123456789"})
