"""The session window's toolbar, status, pointer, view-only sign and remembered view, on real Tk.

A scripted host (the other end of a real SecureChannel) sends Hello, frames, monitors and the
pointer; the window is driven with xdotool (real X clicks on the toolbar and its menus, real key
presses) and checked with mss screenshots and the messages that reach the host. Pure helpers
(status figures, monitor labels, the remembered view in the settings file) are tested first.
"""

import os
import queue
import subprocess
import tempfile
import threading
import time
import unittest

from PIL import Image

from tagio.protocol import session as m
from tests.desk import Desk, keep_shot
from tests.test_viewer_window import frame_messages, scene
from tests.waiting import wait_until
from tests.xvfb import shared_xvfb, skip_unless_xvfb


class StatusFigures(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_path_kinds_and_lan(self):
        from tagio.ui import status
        self.assertEqual(status.path_kind("relay", "192.168.1.5"), "relay")
        self.assertEqual(status.path_kind("direct-tcp", "192.168.1.5"), "lan")
        self.assertEqual(status.path_kind("direct-tcp", "8.8.8.8"), "direct-tcp")
        self.assertEqual(status.path_kind("direct-tcp", None), "direct-tcp")
        self.assertEqual(status.path_kind("direct-udp", "10.0.0.1"), "direct-udp")
        self.assertEqual(status.path_kind("pigeon"), "unknown")
        self.assertEqual(status.path_label("lan")[0], "LAN")
        self.assertNotEqual(status.path_label("relay")[1], status.path_label("direct-tcp")[1])

    def test_rate_meter_is_megabits_per_second_over_the_window(self):
        from tagio.ui.status import RateMeter
        now = [100.0]
        meter = RateMeter(clock=lambda: now[0], window=2.0)
        self.assertEqual(meter.mbit_per_s(), 0.0)
        for step in range(5):           # 250 kB every 0.5 s = 4 Mbit/s
            meter.add(step * 250_000)
            now[0] += 0.5
        self.assertAlmostEqual(meter.mbit_per_s(), 4.0)
        now[0] += 10
        meter.add(1_000_000)            # nothing came for 10 s: the old samples are gone
        self.assertEqual(meter.mbit_per_s(), 0.0)

    def test_every_figure_has_its_unit(self):
        from tagio.ui import status
        line = status.summary("relay", 26, 21.4, 4.23)
        self.assertEqual(line, "Relayed \u00b7 26 ms latency \u00b7 21 frames/s \u00b7 4.2 Mbit/s")
        tip = status.details("P", "lan", "direct-tcp", (1280, 720), 26, 21, 4.2, 15_000_000, view_only=True)
        for part in ("LAN (direct-tcp)", "1280x720", "26 ms", "21 frames per second", "Mbit/s", "15.0 MB",
                     "not control"):
            self.assertIn(part, tip)

    def test_monitor_labels(self):
        from tagio.ui.toolbar import monitor_label
        monitors = [(0, 0, 1280, 720), (1280, 0, 1024, 768)]
        self.assertEqual(monitor_label(2, monitors), "Monitor 2 \u2014 1024x768")
        self.assertEqual(monitor_label(0, monitors), "All monitors \u2014 2304x768")
        from tagio.ui.toolbar import monitor_button_text
        self.assertEqual([monitor_button_text(i, monitors) for i in (0, 2, 5)],
                         ["All monitors", "Monitor 2", "Monitor"])
        self.assertEqual(monitor_button_text(1, []), "Monitor")


class ScreenshotFolder(unittest.TestCase):
    LAYER = "unit"  # folders only: no sockets, no X, no subprocesses

    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="tagio-home-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.home, True))
        self.env = {"XDG_CONFIG_HOME": os.path.join(self.home, ".config")}

    def folder(self, last=None):
        from tagio.ui.viewer_actions import screenshot_folder
        return screenshot_folder(last, self.home, self.env)

    def test_last_then_pictures_then_home_never_the_working_directory(self):
        self.assertEqual(self.folder(), self.home)                  # no Pictures: home
        pictures = os.path.join(self.home, "Pictures")
        os.makedirs(pictures)
        self.assertEqual(self.folder(), pictures)
        self.assertEqual(self.folder(os.path.join(self.home, "gone")), pictures)   # last one removed
        self.assertEqual(self.folder(self.home), self.home)         # the last one used wins
        # a translated pictures folder named in user-dirs.dirs
        bilder = os.path.join(self.home, "Bilder")
        os.makedirs(bilder)
        os.makedirs(self.env["XDG_CONFIG_HOME"])
        with open(os.path.join(self.env["XDG_CONFIG_HOME"], "user-dirs.dirs"), "w") as f:
            f.write('# written by xdg-user-dirs-update\nXDG_PICTURES_DIR="$HOME/Bilder"\n')
        self.assertEqual(self.folder(), bilder)


class RememberedViews(unittest.TestCase):
    """Settings.partner_views: validated field by field, bounded, newest kept, written atomically."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tagio-views-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, True))

    def test_round_trip_bounded_and_invalid_fields_dropped(self):
        from tagio.client.settings import MAX_PARTNER_VIEWS, Settings
        settings = Settings(self.dir)
        view = {"geometry": "900x600+40+30", "zoom": "1.0", "monitor": 0, "quality": "fastest",
                "fullscreen": True, "toolbar_collapsed": False, "show_both": False}
        settings.remember_view("111111111", view)
        settings.remember_view("222222222", dict(view, zoom="nonsense", monitor=99, geometry="x; rm"))
        for n in range(MAX_PARTNER_VIEWS):
            settings.remember_view(f"{300000000 + n}", view)
        settings.remember_view("111111111", view)       # used again: stays among the newest
        settings.save()
        self.assertEqual(os.stat(settings.path).st_mode & 0o777, 0o600)
        loaded = Settings.load(self.dir)
        self.assertIsNone(loaded.warning)
        self.assertEqual(len(loaded.partner_views), MAX_PARTNER_VIEWS)
        got = dict(loaded.partner_views["111111111"])
        got.pop("used")
        self.assertEqual(got, view)
        self.assertNotIn("222222222", loaded.partner_views)        # the oldest fell out
        self.assertNotIn("300000000", loaded.partner_views)

    def test_a_damaged_view_is_cleaned_not_fatal(self):
        import json
        from tagio.client.settings import Settings
        with open(os.path.join(self.dir, "settings.json"), "w") as f:
            json.dump({"partner_views": {"123456789": {"zoom": "fit", "geometry": 5, "monitor": True},
                                         "not-an-id": {"zoom": "fit"}}}, f)
        loaded = Settings.load(self.dir)
        self.assertEqual(loaded.partner_views, {"123456789": {"zoom": "fit"}})


MANAGED_SIZE = (1152, 864)
_WINDOW_MANAGER = []


def managed_xvfb():
    """A shared Xvfb (MANAGED_SIZE) with openbox managing it, for what needs a window manager: full
    screen (_NET_WM_STATE_FULLSCREEN) and keyboard focus for a dialog, as on any desktop. Started
    once per process; openbox is stopped at exit, before its display."""
    import atexit
    xvfb = shared_xvfb(*MANAGED_SIZE)
    if not _WINDOW_MANAGER:
        wm = subprocess.Popen(["openbox"], env=xvfb.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _WINDOW_MANAGER.append(wm)
        atexit.register(lambda: (wm.terminate(), wm.wait(5)))
        from Xlib import display
        probe = display.Display(xvfb.display)
        try:
            atom = probe.intern_atom("WM_S0")      # openbox owns it once it manages the screen
            wait_until(lambda: probe.get_selection_owner(atom) != 0, timeout=20, what="openbox to start")
        finally:
            probe.close()
    return xvfb


def needs_openbox(obj):
    import shutil
    return unittest.skipUnless(shutil.which("openbox"), "needs openbox (apt-get install openbox)")(obj)


@skip_unless_xvfb
class SessionWindowCase(unittest.TestCase):
    """A ViewerWindow fed by a real ViewerSession over a SecureChannel, on the shared Xvfb."""

    MANAGED = False         # True: on the display with a window manager (managed_xvfb)

    def setUp(self):
        import tkinter as tk
        from tagio.session.viewer import ViewerSession
        from tagio.ui import theme
        from tests.test_session_host import secure_pair
        self.xvfb = managed_xvfb() if self.MANAGED else shared_xvfb(1280, 800)
        self.host, channel = secure_pair()
        self.session = ViewerSession(channel)
        self.session.start()
        self.root = tk.Tk(screenName=self.xvfb.display)
        theme.apply(self.root)
        self.root.withdraw()
        self.desk = Desk(self.xvfb.display, update=self.root.update)
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

    def pump(self, predicate, what="the condition", timeout=10.0):
        return wait_until(predicate, timeout=timeout, what=what, poll=self.root.update)

    def open_window(self, remote=(320, 200), flags=m.HELLO_INPUT, geometry="960x540+0+0", send_frame=True,
                    **kwargs):
        from tagio.ui.viewer_window import ViewerWindow
        self.closed = []
        kwargs.setdefault("fit", False)
        window = ViewerWindow(self.root, self.session, "Partner 123 456 789",
                              on_close=lambda: self.closed.append(True), **kwargs)
        if geometry:
            window.geometry(geometry)
        self.pump(window.winfo_viewable, "the window to map")
        self.host.send(m.encode(m.Hello(m.PROTOCOL_VERSION, flags, *remote, 1)))
        picture = scene(*remote)
        if send_frame:
            for msg in frame_messages(picture):
                self.host.send(m.encode(msg))
            self.pump(lambda: window.shown_frame == 1, "the first frame drawn")
        return window, picture

    def canvas_shot(self, window):
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

    def drain_inbox(self):
        self.root.update()
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


class ToolbarActions(SessionWindowCase):
    def test_waiting_message_is_on_the_picture_until_the_first_frame(self):
        from tagio.client import words
        window, picture = self.open_window(send_frame=False)
        self.assertEqual(window.canvas.itemcget("message", "text"), words.WAITING_FOR_PICTURE)
        self.assertNotIn("Waiting", window.status.cget("text"))

        def light_pixels():     # the message is light grey text on the dark picture area
            shot = self.canvas_shot(window)
            box = shot.crop((shot.width // 2 - 120, shot.height // 2 - 12, shot.width // 2 + 120,
                             shot.height // 2 + 12))
            return sum(1 for p in box.getdata() if min(p) > 150)
        self.pump(lambda: light_pixels() > 50, "the waiting message on screen")
        for msg in frame_messages(picture):
            self.host.send(m.encode(msg))
        self.pump(lambda: window.shown_frame == 1, "the first frame")
        self.assertEqual(window.canvas.find_withtag("message"), ())
        self.pump(lambda: self.canvas_shot(window).crop((0, 0, 320, 200)).tobytes() == picture.tobytes(),
                  "the picture instead of the message")

    def test_status_tooltip_explains_the_figures(self):
        window, _ = self.open_window()
        status = window.status
        self.pump(status.winfo_viewable, "the status line")
        self.desk.move_to(status, 40, 5)
        self.pump(lambda: window.status_tip.tip is not None and window.status_tip.tip.winfo_viewable(),
                  "the tooltip to open")
        text = window.status_tip.text
        for part in ("Path: Direct (direct-tcp)", "320x200 pixels", "Latency:", "frames per second", "Mbit/s"):
            self.assertIn(part, text)
        tip = window.status_tip.tip
        self.pump(lambda: self.desk.grab((tip.winfo_rootx() + 3, tip.winfo_rooty() + 3, tip.winfo_rootx() + 5,
                                          tip.winfo_rooty() + 5)).getpixel((0, 0)) == (0xff, 0xff, 0xe0),
                  "the tooltip on screen")
        self.desk.move_to(window.canvas, 50, 50)
        self.pump(lambda: window.status_tip.tip is None, "the tooltip to close")

    def test_the_full_screen_switch_looks_like_a_button(self):
        window, _ = self.open_window()
        toolbar = window.toolbar

        def left_edge(widget):          # the middle of its left border, on the screen
            return self.desk.grab_widget(widget).getpixel((0, widget.winfo_height() // 2))
        background = self.desk.grab_widget(toolbar).getpixel((1, 1))
        self.pump(lambda: left_edge(toolbar.screenshot_button) != background, "a button's border on screen")
        self.assertEqual(left_edge(toolbar.fullscreen_button), left_edge(toolbar.screenshot_button))

    def test_disconnect_button_closes_the_window(self):
        window, _ = self.open_window()
        self.desk.click(window.toolbar.disconnect_button)
        self.pump(lambda: self.closed == [True], "on_close from Disconnect")
        self.assertFalse(window.winfo_exists())

    def test_zoom_menu_fit_and_one_to_one(self):
        window, picture = self.open_window(remote=(1600, 1000), geometry="820x560+0+0")
        self.assertEqual(window.scale, 1.0)
        self.desk.choose(window.toolbar.view_button, window.toolbar.view_menu, "Fit to window")
        self.pump(lambda: window.fit and 0.4 < window.scale < 0.6, "fit scale")
        s = window.scale
        self.pump(lambda: max(abs(a - b) for a, b in zip(self.canvas_shot(window).getpixel((int(1400 * s),
                                                                                              int(850 * s))),
                                                        picture.getpixel((1400, 850)))) < 10,
                  "the whole picture scaled into the window")
        self.desk.choose(window.toolbar.view_button, window.toolbar.view_menu, "50%")
        self.pump(lambda: window.scale == 0.5 and window.hbar.winfo_ismapped(), "50% with scrollbars")
        self.desk.choose(window.toolbar.view_button, window.toolbar.view_menu, "1:1")
        self.pump(lambda: window.scale == 1.0, "1:1")
        self.pump(lambda: self.canvas_shot(window).crop((0, 0, 200, 200)).tobytes()
                  == picture.crop((0, 0, 200, 200)).tobytes(), "the picture unscaled")

    def test_monitor_picker_lists_sizes_and_all_monitors(self):
        window, _ = self.open_window()
        monitors = [(0, 0, 1280, 720), (1280, 0, 1024, 768)]
        self.host.send(m.encode(m.MonitorList(1, monitors)))
        menu = window.toolbar.monitor_menu
        self.pump(lambda: menu.index("end") == 2, "three monitor choices")
        labels = [menu.entrycget(i, "label") for i in range(3)]
        self.assertEqual(labels, ["Monitor 1 \u2014 1280x720", "Monitor 2 \u2014 1024x768",
                                  "All monitors \u2014 2304x768"])
        self.drain_inbox()
        self.desk.choose(window.toolbar.monitor_button, menu, "All monitors")
        self.assertEqual(self.messages(m.SelectMonitor, 1), [m.SelectMonitor(0)])
        self.desk.choose(window.toolbar.monitor_button, menu, "Monitor 2")
        self.assertEqual(self.messages(m.SelectMonitor, 1), [m.SelectMonitor(2)])

    def test_quality_menu_sends_set_quality(self):
        window, _ = self.open_window()
        self.drain_inbox()
        self.desk.choose(window.toolbar.quality_button, window.toolbar.quality_menu, "Fastest")
        self.assertEqual(self.messages(m.SetQuality, 1), [m.SetQuality(40, 0)])
        self.desk.choose(window.toolbar.quality_button, window.toolbar.quality_menu, "Sharpest")
        self.assertEqual(self.messages(m.SetQuality, 1), [m.SetQuality(92, 0)])

    def test_special_keys_menu(self):
        from tagio.ui.toolbar import SPECIAL_KEYS
        window, _ = self.open_window()
        self.drain_inbox()
        for label, names in SPECIAL_KEYS:
            self.desk.choose(window.toolbar.keys_button, window.toolbar.keys_menu, label)
            got = [(k.key, k.pressed) for k in self.messages(m.Key, 2 * len(names))]
            self.assertEqual(got, [(n, True) for n in names] + [(n, False) for n in reversed(names)], label)

    def _use_clipboard_session(self):
        """Swap in a session that shares this display's clipboard (tagio.session.clipboard_sync)."""
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        self.session.stop()
        self.host.close()
        self.reader.join(5)
        self.host, channel = secure_pair()
        self.session = ViewerSession(channel, clipboard=True, display=self.xvfb.display)
        self.session.start()
        self.reader = threading.Thread(target=self._read_host, daemon=True)
        self.reader.start()

    def test_clipboard_toggle_switches_the_sessions_link_and_files_chat_follow_the_hello(self):
        self.root.clipboard_clear()
        self._use_clipboard_session()
        calls = []
        window, _ = self.open_window(set_clipboard_sync=calls.append)
        link = self.session.clipboard
        self.assertTrue(link.enabled)
        self.assertIn("selected", window.toolbar.clipboard_button.state())
        # Files and Chat were placeholders; now the Hello's capabilities (all, here) enable them
        # (disabled before the Hello and without the bits: tests/test_ui_session_chat.py)
        self.assertNotIn("disabled", window.toolbar.files_button.state())
        self.assertNotIn("disabled", window.toolbar.chat_button.state())
        self.desk.click(window.toolbar.clipboard_button)
        self.pump(lambda: calls == [False], "set_clipboard_sync(False) on the owner")
        self.assertFalse(link.enabled)
        self.host.send(m.encode(m.Clipboard.of_text("not wanted")))
        self.host.send(m.encode(m.Cursor(5, 5)))        # after the clipboard: once drawn, it was seen
        self.pump(lambda: window._cursor_at == (5, 5), "the host's messages handled")
        self.assertNotEqual(self._clipboard(), "not wanted")
        self.desk.click(window.toolbar.clipboard_button)
        self.pump(lambda: calls == [False, True], "set_clipboard_sync(True)")
        self.assertTrue(link.enabled)
        self.host.send(m.encode(m.Clipboard.of_text("wanted now")))
        self.pump(lambda: self._clipboard() == "wanted now", "the host's clipboard applied once on")

    def _clipboard(self):
        try:
            return self.root.clipboard_get()
        except Exception:       # empty clipboard
            return None

    def test_collapse_and_keyboard_reach(self):
        window, _ = self.open_window()
        canvas_top = window.canvas.winfo_rooty()
        self.desk.click(window.toolbar.collapse_button)
        self.pump(lambda: window.canvas.winfo_rooty() < canvas_top, "the picture to move up")
        self.assertTrue(window.toolbar.collapsed)
        window.canvas.focus_force()
        self.pump(lambda: self.root.focus_get() == window.canvas, "focus on the picture")
        self.drain_inbox()
        self.desk.press("ctrl+alt+Home")    # local: opens the bar and focuses its first control
        self.pump(lambda: self.root.focus_get() == window.toolbar.disconnect_button, "focus on Disconnect")
        self.assertFalse(window.toolbar.collapsed)
        self.desk.press("Tab")
        self.pump(lambda: self.root.focus_get() == window.toolbar.fullscreen_button, "Tab to Full screen")
        self.desk.press("Tab")
        self.pump(lambda: self.root.focus_get() == window.toolbar.view_button, "Tab to View")
        window.set_zoom("fit")
        self.desk.press("space")            # opens the menu; arrows and Enter choose
        self.pump(window.toolbar.view_menu.winfo_ismapped, "the View menu opened from the keyboard")
        self.desk.press("Down", "Down", "Return")
        self.pump(lambda: window.toolbar.zoom_var.get() == "1.0" and window.scale == 1.0, "1:1 chosen from the keyboard")
        window.toolbar.view_button.focus_force()
        self.pump(lambda: self.root.focus_get() == window.toolbar.view_button, "focus back on View")
        self.desk.press("Escape")
        self.pump(lambda: self.root.focus_get() == window.canvas, "Escape back to the picture")
        keys = [k.key for k in self.messages(m.Key, 6, timeout=1.0)]
        for local in ("Home", "Tab", "Escape"):
            self.assertNotIn(local, keys)


class ClosedWindowGarbage(SessionWindowCase):
    """A closed session window's Tk variables die on the Tk thread. One left in a reference cycle
    is freed by whichever thread the cyclic garbage collector runs in, and a tkinter Variable freed
    off the Tk thread prints "Exception ignored ... main thread is not in main loop"."""

    def test_nothing_tk_is_left_for_a_collection_in_another_thread(self):
        import gc
        import sys
        gc.collect()                    # earlier tests' garbage, here on the Tk thread
        gc.disable()                    # no collection on this thread meanwhile: it would hide a leak
        self.addCleanup(gc.enable)
        window, _ = self.open_window()
        self.pump(lambda: True, "idle")
        window.close()
        self.root.update()
        del window
        ignored = []
        hook = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: ignored.append(f"{unraisable.object}: {unraisable.exc_value}")
        try:
            worker = threading.Thread(target=gc.collect, name="gc-elsewhere")
            worker.start()
            worker.join(10)
        finally:
            sys.unraisablehook = hook
        self.assertEqual(ignored, [])


class NarrowWindow(SessionWindowCase):
    """Below ~900 px the toolbar's right end no longer fits: what does not fit is in the "\u00bb"
    menu, and every action is reached from there with real clicks."""

    def assert_nothing_cut_off(self, window):
        toolbar, right = window.toolbar, window.winfo_rootx() + window.winfo_width()
        on_bar = [c for c in toolbar.controls if c not in toolbar.hidden]
        for widget in on_bar + [toolbar.collapse_button] + ([toolbar.overflow_button] if toolbar.hidden else []):
            self.pump(widget.winfo_viewable, f"{widget.cget('text')!r} on the bar")
            self.assertLessEqual(widget.winfo_rootx() + widget.winfo_width(), right, widget.cget("text"))
            self.assertGreaterEqual(widget.winfo_width(), widget.winfo_reqwidth(), widget.cget("text"))
        for widget in toolbar.hidden:
            self.assertFalse(widget.winfo_ismapped(), widget.cget("text"))
        self.assertEqual(toolbar.overflow_button.winfo_ismapped(), bool(toolbar.hidden))

    def choose_in_overflow(self, toolbar, label, entry=None):
        """The entry `label` of the overflow ("\u00bb") menu; for a menu moved there (a cascade),
        its entry `entry`."""
        if entry is None:
            return self.desk.choose(toolbar.overflow_button, toolbar.overflow_menu, label)
        self.desk.choose_in_cascade(toolbar.overflow_button, toolbar.overflow_menu, label, entry)

    def labels(self, menu):
        end = menu.index("end")
        return [] if end is None else [menu.entrycget(i, "label") for i in range(end + 1)]

    def test_every_action_is_reachable_at_640_px(self):
        from unittest import mock
        calls = []
        window, picture = self.open_window(geometry="640x480+0+0", set_clipboard_sync=calls.append)
        toolbar = window.toolbar
        self.pump(lambda: toolbar.hidden and toolbar.overflow_button.winfo_viewable(), "the overflow button")
        self.assert_nothing_cut_off(window)
        hidden = [c.cget("text") for c in toolbar.hidden]
        self.assertEqual(self.labels(toolbar.overflow_menu), hidden)
        for text in ("Clipboard", "Screenshot\u2026", "Files\u2026", "Chat"):   # the right end is here
            self.assertIn(text, hidden)
        was = toolbar.clipboard_var.get()
        self.choose_in_overflow(toolbar, "Clipboard")
        self.pump(lambda: calls == [not was], "the clipboard switched from the overflow")
        self.assertEqual("selected" in toolbar.clipboard_button.state(), not was)
        folder = tempfile.mkdtemp(prefix="tagio-shot-")
        self.addCleanup(lambda: __import__("shutil").rmtree(folder, True))
        path = os.path.join(folder, "narrow.png")
        # (the save dialog itself needs a window manager: WithWindowManager types into it)
        with mock.patch("tkinter.filedialog.asksaveasfilename", return_value=path):
            self.choose_in_overflow(toolbar, "Screenshot")
            self.pump(lambda: os.path.exists(path), "the screenshot saved from the overflow")
        self.assertEqual(Image.open(path).convert("RGB").tobytes(), picture.tobytes())
        self.choose_in_overflow(toolbar, "Chat")
        self.pump(lambda: window.chat.winfo_viewable(), "the chat panel opened from the overflow")
        self.choose_in_overflow(toolbar, "Files")
        self.pump(lambda: window.files_panel is not None and window.files_panel.winfo_viewable(),
                  "the files panel opened from the overflow")
        window.files_panel.destroy()
        self.desk.click(toolbar.overflow_button)              # a picture of the open overflow
        self.pump(toolbar.overflow_menu.winfo_ismapped, "the overflow menu open")
        menu = toolbar.overflow_menu
        keep_shot(self.desk.grab((0, 0, max(640, menu.winfo_rootx() + menu.winfo_width()),
                                  max(480, menu.winfo_rooty() + menu.winfo_height()))), "toolbar-640")
        self.desk.press("Escape")
        self.pump(lambda: not menu.winfo_ismapped(), "the overflow menu closed")
        # wider again: everything is back on the bar, in order, and the overflow button goes
        window.geometry("1180x480+0+0")
        self.pump(lambda: not toolbar.hidden, "all controls back on the bar")
        self.assert_nothing_cut_off(window)

    def test_a_long_hint_wraps_inside_the_picture(self):
        window, _ = self.open_window(geometry="640x480+0+0")
        folder = tempfile.mkdtemp(prefix="tagio-shot-")
        self.addCleanup(lambda: __import__("shutil").rmtree(folder, True))
        deep = os.path.join(folder, "a folder with a rather long name, " * 3)
        os.makedirs(deep)
        path = os.path.join(deep, "the partner's screen.png")
        self.assertTrue(window.save_screenshot(path))
        hint, canvas = window.hint, window.canvas

        def inside():
            left, right = canvas.winfo_rootx(), canvas.winfo_rootx() + canvas.winfo_width()
            return (hint.winfo_ismapped() and hint.winfo_rootx() >= left
                    and hint.winfo_rootx() + hint.winfo_width() <= right)
        self.pump(inside, "the whole hint inside the picture")
        self.assertEqual(hint.cget("text"), f"Saved {path}")
        window.toggle_chat(True, focus=False)           # the picture narrows while the hint shows
        self.pump(lambda: canvas.winfo_width() < 400 and inside(), "the hint inside the narrower picture")
        keep_shot(self.desk.grab_widget(window), "hint-640")

    def test_menus_in_the_overflow_are_cascades_with_the_same_choices(self):
        window, _ = self.open_window(geometry="360x300+0+0")
        toolbar = window.toolbar
        self.pump(lambda: toolbar.overflow_button.winfo_viewable(), "the overflow button")
        self.assert_nothing_cut_off(window)
        hidden = [c.cget("text") for c in toolbar.hidden]
        for text in ("View", "Quality", "Keys"):
            self.assertIn(text, hidden)
        self.drain_inbox()
        self.choose_in_overflow(toolbar, "Quality", "Fastest")
        self.assertEqual(self.messages(m.SetQuality, 1), [m.SetQuality(40, 0)])
        self.assertEqual(toolbar.quality_var.get(), "fastest")      # the bar's own menu shows it too
        self.choose_in_overflow(toolbar, "Keys", "Alt+Tab")
        got = [(k.key, k.pressed) for k in self.messages(m.Key, 4)]
        self.assertEqual(got, [("Alt_L", True), ("Tab", True), ("Tab", False), ("Alt_L", False)])
        self.host.send(m.encode(m.MonitorList(1, [(0, 0, 320, 200), (320, 0, 320, 200)])))

        def monitor_entry_state():
            menu = toolbar.overflow_menu
            return next((menu.entrycget(i, "state") for i, label in enumerate(self.labels(menu))
                         if label.startswith("Monitor")), None)
        self.pump(lambda: monitor_entry_state() == "normal", "the monitors listed")
        self.choose_in_overflow(toolbar, "Monitor", "All monitors")
        self.assertEqual(self.messages(m.SelectMonitor, 1), [m.SelectMonitor(0)])
        self.choose_in_overflow(toolbar, "View", "1:1")
        self.pump(lambda: toolbar.zoom_var.get() == "1.0" and window.scale == 1.0, "1:1 from the overflow")

    def test_keyboard_reaches_the_overflow(self):
        window, _ = self.open_window(geometry="640x480+0+0")
        toolbar = window.toolbar
        self.pump(lambda: toolbar.overflow_button.winfo_viewable(), "the overflow button")
        window.canvas.focus_force()
        self.pump(lambda: self.root.focus_get() == window.canvas, "focus on the picture")
        self.desk.press("ctrl+alt+Home")
        self.pump(lambda: self.root.focus_get() == toolbar.disconnect_button, "focus on Disconnect")
        for _ in toolbar.controls[:toolbar.shown - 1]:
            self.desk.press("Tab")
        self.pump(lambda: self.root.focus_get() == toolbar.controls[toolbar.shown - 1], "the last control shown")
        self.desk.press("Tab")      # the hidden controls are skipped: the overflow button is next
        self.pump(lambda: self.root.focus_get() == toolbar.overflow_button, "Tab to the overflow button")


class ToolbarFits(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_the_longest_run_from_the_left_that_fits(self):
        from tagio.ui.toolbar import fits
        self.assertEqual(fits([100, 50, 80], 300), 3)
        self.assertEqual(fits([100, 50, 80], 230), 3)
        self.assertEqual(fits([100, 50, 80], 229), 2)
        self.assertEqual(fits([100, 50, 80], 99), 0)
        self.assertEqual(fits([], 10), 0)


@needs_openbox
class WithWindowManager(SessionWindowCase):
    """Full screen and the save dialog need what a desktop has: a window manager."""
    MANAGED = True

    def test_full_screen_in_with_the_toolbar_and_out_with_the_local_shortcut(self):
        window, _ = self.open_window()
        self.drain_inbox()
        self.desk.click(window.toolbar.fullscreen_button)
        self.pump(lambda: window.fullscreen and (window.winfo_width(), window.winfo_height()) == MANAGED_SIZE,
                  "the window to fill the screen")
        # the dark picture area reaches the screen's bottom right corner (no desktop, no frame)
        w, h = MANAGED_SIZE
        self.pump(lambda: self.desk.grab((w - 44, h - 84, w - 40, h - 80)).getpixel((1, 1)) == (0x20, 0x20, 0x20),
                  "full screen on the display")
        from tagio.client import words
        self.pump(lambda: window.hint.winfo_ismapped() and window.hint.cget("text") == words.FULL_SCREEN_HINT,
                  "the hint how to leave full screen")
        window.canvas.focus_force()
        self.pump(lambda: self.root.focus_get() == window.canvas, "focus on the picture")
        self.desk.press("ctrl+alt+Return")
        self.pump(lambda: not window.fullscreen and window.winfo_width() < MANAGED_SIZE[0], "full screen left")
        self.assertFalse(window.toolbar.fullscreen_var.get())
        keys = [k.key for k in self.messages(m.Key, 4, timeout=1.5)]
        self.assertNotIn("Return", keys, "the local shortcut reached the host")
        self.assertEqual(set(keys) - {"Control_L", "Alt_L"}, set())

    def test_the_drawn_pointer_stays_under_the_pointer_when_full_screen_is_left(self):
        """Leaving full screen moves the picture under a pointer that does not move (by the
        title bar and the frame): the host's pointer is drawn, and sent, where the pointer is."""
        import re
        window, _ = self.open_window()
        shape = PointerAndViewOnly.SHAPE
        self.host.send(m.encode(m.Cursor(10, 10, 1, 0, 0, 12, 12, shape.tobytes())))
        self.pump(lambda: window._cursor_photo is not None, "the host's pointer shape")
        window.set_fullscreen(True)
        self.pump(lambda: window.fullscreen and (window.winfo_width(), window.winfo_height()) == MANAGED_SIZE,
                  "full screen")
        c = window.canvas
        self.desk.move_to(c, 200, 120)
        self.pump(lambda: window._last_motion == (200, 120), "the motion in full screen")
        window.set_fullscreen(False)
        self.pump(lambda: not window.fullscreen and window.winfo_width() < MANAGED_SIZE[0], "full screen left")
        at = re.match(r"x:(\d+) y:(\d+)", self.desk.xdotool("getmouselocation")).groups()
        x, y = int(at[0]) - c.winfo_rootx(), int(at[1]) - c.winfo_rooty()
        self.assertNotEqual((x, y), (200, 120), "the picture did not move: nothing is tested")
        self.pump(lambda: window._last_motion == (x, y), "the pointer's new place over the picture")
        self.pump(lambda: self.canvas_shot(window).getpixel((x + 5, y + 5)) == (255, 0, 255),
                  "the host's pointer drawn under the pointer")
        self.drain_inbox()
        window.set_fullscreen(True)         # and back once more: the host hears of the move too
        self.pump(lambda: window.fullscreen and window.winfo_width() == MANAGED_SIZE[0], "full screen")
        want, moves = (int(at[0]) - c.winfo_rootx(), int(at[1]) - c.winfo_rooty()), []

        def heard():
            moves.extend((msg.x, msg.y) for msg in self.drain_inbox()
                         if isinstance(msg, m.Mouse) and msg.action == m.MOUSE_MOVE)
            return want in moves
        self.pump(heard, "the host hearing where the pointer is")

    def test_a_remembered_full_screen_comes_back(self):
        window, _ = self.open_window(geometry=None, prefs={"fullscreen": True, "geometry": "640x400+10+10"})
        self.pump(lambda: window.fullscreen and (window.winfo_width(), window.winfo_height()) == MANAGED_SIZE,
                  "full screen again")
        window.set_fullscreen(False)
        self.pump(lambda: (window.winfo_width(), window.winfo_height()) == (640, 400), "the remembered size")
        self.assertFalse(window.view_prefs()["fullscreen"])

    def test_screenshot_through_the_save_dialog(self):
        """The dialog opens in the Pictures folder (not the working directory), and then in the
        folder used last: a bare file name typed into it lands there."""
        from unittest import mock
        from tagio.ui import viewer_actions
        window, picture = self.open_window()
        home = tempfile.mkdtemp(prefix="tagio-home-")
        self.addCleanup(lambda: __import__("shutil").rmtree(home, True))
        pictures, elsewhere = os.path.join(home, "Pictures"), os.path.join(home, "elsewhere")
        os.makedirs(pictures)
        os.makedirs(elsewhere)
        env = {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config")}
        with mock.patch.dict(os.environ, env), mock.patch.object(viewer_actions, "_last_screenshot_folder", None):
            self.save_through_dialog(window, "first.png", os.path.join(pictures, "first.png"))
            self.save_through_dialog(window, os.path.join(elsewhere, "remote.png"),
                                     os.path.join(elsewhere, "remote.png"))
            self.save_through_dialog(window, "again.png", os.path.join(elsewhere, "again.png"))
        path = os.path.join(elsewhere, "again.png")
        saved = Image.open(path).convert("RGB")
        self.assertEqual(saved.tobytes(), picture.tobytes())
        self.pump(lambda: window.hint.winfo_ismapped() and path in window.hint.cget("text"), "Saved ... shown")

    def save_through_dialog(self, window, typed, where):
        """Open the save dialog, type `typed` (a name or a path) and Enter; wait for `where`."""
        typist = threading.Thread(target=self._type_into_save_dialog, args=(typed,))
        typist.start()
        self.addCleanup(typist.join, 20)
        self.root.after(0, window.ask_screenshot)       # the dialog runs its own event loop
        self.pump(lambda: os.path.exists(where) and not typist.is_alive(), f"the screenshot {where}", 30)

    def _type_into_save_dialog(self, path):
        # (a thread: the Desk's xdotool calls never touch Tk)
        found = self.desk.xdotool("search", "--sync", "--onlyvisible", "--name", "Save the partner", timeout=20)
        self.desk.xdotool("windowactivate", "--sync", found.split()[0])
        # the file name field has the proposed name selected: typing replaces it
        self.desk.xdotool("type", "--delay", "5", path, timeout=20)
        self.desk.press("Return")



class PointerAndViewOnly(SessionWindowCase):
    SHAPE = Image.new("RGBA", (12, 12), (255, 0, 255, 255))     # a magenta square pointer

    def send_shape(self, x, y):
        self.host.send(m.encode(m.Cursor(x, y, 1, 0, 0, 12, 12, self.SHAPE.tobytes())))

    def magenta_at(self, window, x, y):
        shot = self.canvas_shot(window)
        return shot.getpixel((x + 5, y + 5)) == (255, 0, 255)

    def test_host_pointer_drawn_at_the_local_pointer_at_once(self):
        window, _ = self.open_window()
        self.send_shape(10, 10)
        self.pump(lambda: window._cursor_photo is not None, "the host's pointer shape")
        self.assertEqual(window.canvas.cget("cursor"), "none")     # the local pointer is hidden
        c = window.canvas
        self.desk.move_to(c, 200, 120)
        self.pump(lambda: window._last_motion == (200, 120), "the motion")
        # drawn at the local position before the host has even heard of the move
        self.assertEqual(tuple(int(v) for v in c.coords(window._cursor_item)), (200, 120))
        self.pump(lambda: self.magenta_at(window, 200, 120), "the host's pointer shape on screen")
        self.send_shape(10, 10)         # a late report of the old position does not pull it back
        self.root.update()
        self.assertEqual(tuple(int(v) for v in c.coords(window._cursor_item)), (200, 120))
        # toolbar toggle: both pointers, the host's at its own position
        self.desk.choose(window.toolbar.view_button, window.toolbar.view_menu, "Show both pointers")
        self.assertEqual(window.canvas.cget("cursor"), "")
        self.desk.move_to(c, 250, 150)
        self.send_shape(30, 40)
        self.pump(lambda: tuple(int(v) for v in c.coords(window._cursor_item)) == (30, 40),
                  "the host's pointer at the host's position")
        self.pump(lambda: self.magenta_at(window, 30, 40), "drawn there")

    def test_view_only_shows_the_eye_and_sends_no_input(self):
        window, _ = self.open_window(flags=m.HELLO_VIEW_ONLY)
        self.pump(lambda: window.view_only and window.badge.frame.winfo_ismapped(), "the eye badge")
        badge = window.badge.frame
        self.pump(lambda: self.desk.grab((badge.winfo_rootx(), badge.winfo_rooty(), badge.winfo_rootx() + 4,
                                          badge.winfo_rooty() + 4)).getpixel((1, 1)) == (0x1f, 0x29, 0x33),
                  "the badge on screen")
        self.assertIn("View only", window.status.cget("text"))
        self.assertEqual(window.canvas.cget("cursor"), "")     # nothing to steer: the own pointer stays
        self.drain_inbox()
        c = window.canvas
        window.canvas.focus_force()
        self.pump(lambda: self.root.focus_get() == window.canvas, "focus")
        self.desk.click(c, 50, 60)
        self.desk.press("a", "Return")
        window.send_ctrl_alt_del()
        # a real FrameAck still goes out (the picture is acknowledged): then nothing else came
        self.host.send(m.encode(frame_messages(scene(320, 200), frame_id=2)[0]))
        acks = self.messages(m.FrameAck, 1)
        if acks == [m.FrameAck(1)]:         # the first picture's ack, late on a loaded machine
            acks = self.messages(m.FrameAck, 1)
        self.assertEqual(acks, [m.FrameAck(2)])
        sent = [msg for msg in self.drain_inbox() if not isinstance(msg, m.FrameAck)]
        self.assertEqual(sent, [])

    def test_view_only_unticks_and_disables_the_clipboard_switch(self):
        """A view-only host shares no clipboard: the switch said it did (ticked, enabled)."""
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        self.session.stop()
        self.host, channel = secure_pair()      # a session that shares the clipboard, as the app's
        self.session = ViewerSession(channel, clipboard=True, display=self.xvfb.display)
        self.session.start()
        self.reader = threading.Thread(target=self._read_host, daemon=True)
        self.reader.start()
        window, _ = self.open_window(flags=m.HELLO_VIEW_ONLY, geometry="1100x540+0+0")   # the whole bar
        self.pump(lambda: window.view_only, "view-only")
        switch = window.toolbar.clipboard_button
        self.assertTrue(switch.winfo_ismapped())
        self.assertEqual((window.clipboard_sync, switch.instate(["disabled"])), (False, True))
        self.desk.click(switch)                 # a click changes nothing
        self.pump(lambda: True, "the click")
        self.assertEqual((window.clipboard_sync, switch.instate(["selected"])), (False, False))


class HostBar(SessionWindowCase):
    def test_the_host_bar_says_viewing_in_view_only(self):
        from tagio.ui.prompts import ControlledIndicator
        bars = {flag: ControlledIndicator(self.root, "123456789", lambda _p: None, view_only=flag)
                for flag in (False, True)}
        self.assertEqual(bars[False].text, "Being controlled by 123 456 789")
        self.assertEqual(bars[True].text, "Viewing your screen (no control) \u2014 123 456 789")
        self.pump(bars[True].winfo_viewable, "the bar on screen")
        bars[False].set_view_only(True)
        self.assertTrue(bars[False].text.startswith("Viewing your screen (no control)"))
        for bar in bars.values():
            bar.destroy()


class RememberedView(SessionWindowCase):
    def test_a_window_opens_as_it_was_left(self):
        prefs = {"geometry": "640x420+30+40", "zoom": "0.5", "monitor": 2, "quality": "sharpest",
                 "fullscreen": False, "toolbar_collapsed": True, "show_both": True}
        window, _ = self.open_window(geometry=None, prefs=prefs)
        self.assertEqual(self.messages(m.SetQuality, 1), [m.SetQuality(92, 0)])
        self.host.send(m.encode(m.MonitorList(1, [(0, 0, 320, 200), (320, 0, 320, 200)])))
        self.assertEqual(self.messages(m.SelectMonitor, 1), [m.SelectMonitor(2)])
        self.pump(lambda: (window.winfo_width(), window.winfo_height()) == (640, 420), "the old size")
        self.assertEqual(window.scale, 0.5)
        self.assertTrue(window.toolbar.collapsed)
        self.assertTrue(window.show_both)
        window.set_zoom("fit")
        window.geometry("600x400+50+60")
        self.pump(lambda: window.winfo_width() == 600, "the new size")
        window.close()
        self.assertEqual(window.final_prefs["zoom"], "fit")
        self.assertTrue(window.final_prefs["geometry"].startswith("600x400"))
        self.assertEqual(window.final_prefs["quality"], "sharpest")


if __name__ == "__main__":
    unittest.main()
