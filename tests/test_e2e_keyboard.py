"""Keyboard end to end, through the product: the real viewer GUI typing into a real CLI host.

Two Xvfb displays: the host's (A) shows a Tk Text that has the keyboard focus and prints what it
receives (tests.test_keyboard_x11.TARGET); the viewer's (B) shows `tagio-gui.py`, driven with
xdotool as a person would: partner ID, Enter, password, Enter, then typing into the session window.
A relay process on 127.0.0.1 brings them together; each client has its own config folder. A fixed
300-character text (ASCII punctuation with < > | \\ { } ~ @, é è ê ñ ß €, Cyrillic, CJK, tabs,
newlines) is typed on B with `xdotool type` and must arrive in the host's Text exactly; Ctrl+C,
Ctrl+Shift+T, Alt+Tab and Super+E must arrive as combinations (the target logs each KeyPress with
its modifier state). It runs once with no window manager on A (a headless host: XTest must reach
the focus by itself) and once with openbox on A, when openbox is installed.
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import tests.test_e2e as e2e
from tests.relay_fixture import run_relay_process
from tests.test_keyboard_x11 import MIXED, Target
from tests.xvfb import Xvfb, skip_unless_xvfb

ROOT = Path(__file__).resolve().parent.parent
GUI = str(ROOT / "tagio-gui.py")
# No key bindings of its own: the WM must not take Alt+Tab or Super from the target.
OPENBOX_RC = """<?xml version="1.0" encoding="UTF-8"?>
<openbox_config xmlns="http://openbox.org/3.4/rc"><keyboard></keyboard><mouse></mouse></openbox_config>
"""
SHIFT, CONTROL, ALT, SUPER = 0x1, 0x4, 0x8, 0x40


class KeyboardThroughTheProduct:
    """The test body; the subclasses say whether display A runs a window manager."""

    WINDOW_MANAGER = None

    @classmethod
    def setUpClass(cls):
        cls._cleanups = []
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        tmp = tempfile.TemporaryDirectory()
        cls._cleanups.append(tmp.cleanup)
        cls.tmp = Path(tmp.name)
        cls.host_x = cls._later(Xvfb(800, 500).start(), "stop")
        cls.viewer_x = cls._later(Xvfb(1280, 900).start(), "stop")
        if cls.WINDOW_MANAGER:
            cls._start_window_manager()
        relay, address = run_relay_process("--bind", "127.0.0.1:0")
        cls._cleanups.append(lambda: e2e._reap(relay))
        cls.relay = "%s:%d" % address
        cls.target = cls._later(Target(cls.env(cls.host_x)), "stop")
        cls.target.wait("ready")
        cls.host = cls._later(e2e.Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", cls.relay,
                                        "--config-dir", str(cls.tmp / "host"), "--direct-bind", "127.0.0.1"],
                                       cls.env(cls.host_x)), "stop")
        ready = cls.host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        cls._open_session(ready["id"], ready["password"])

    @classmethod
    def _later(cls, thing, method):
        cls._cleanups.append(getattr(thing, method))
        return thing

    @classmethod
    def tearDownClass(cls):
        for cleanup in reversed(cls._cleanups):
            try:
                cleanup()
            except Exception:       # tear down the rest whatever one part did
                pass

    @staticmethod
    def env(xvfb):
        env = xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR"):
            env.pop(name, None)
        return env

    @classmethod
    def _start_window_manager(cls):
        rc = cls.tmp / "openbox-rc.xml"
        rc.write_text(OPENBOX_RC)
        wm = subprocess.Popen(["openbox", "--config-file", str(rc)], env=cls.env(cls.host_x),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls._cleanups.append(lambda: e2e._reap(wm))
        # openbox owns the WM_S0 selection once it manages the screen: wait for that, not a time.
        from Xlib import display
        probe = display.Display(cls.host_x.display)
        cls._cleanups.append(probe.close)
        atom = probe.intern_atom("WM_S0")
        if not e2e.wait_until(lambda: probe.get_selection_owner(atom) != 0, 20):
            raise AssertionError("openbox did not start managing display A")

    # -- driving the viewer GUI on display B ---------------------------------------------------
    @classmethod
    def xdotool(cls, *args, timeout=60):
        done = subprocess.run(["xdotool", *args], env=cls.viewer_x.env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"xdotool {args[:2]} failed: {done.stderr}")
        return done.stdout.strip()

    @classmethod
    def focus_window(cls, name_regex):
        """Wait for a window of the viewer GUI and give it the keyboard (display B has no WM)."""
        window = cls.xdotool("search", "--sync", "--onlyvisible", "--name", name_regex).split()[0]
        cls.xdotool("windowfocus", "--sync", window)
        return window

    @classmethod
    def give_viewer_keyboard_the_characters(cls, text):
        """Put every character of `text` on display B's keyboard mapping, as a layout that has
        them would. `xdotool type` otherwise remaps a scratch keycode per character itself, with
        one keysym, which X reads as (lower, upper): it types `é` for `É` - on the viewer's own
        keyboard, before TagIO sees anything. Keycodes that carry only vendor keys (XF86*) or
        nothing are used; the viewer needs none of those."""
        from Xlib import display
        from tagio.session import keyboard_x11 as kx
        conn = display.Display(cls.viewer_x.display)
        try:
            first = conn.display.info.min_keycode
            rows = conn.get_keyboard_mapping(first, conn.display.info.max_keycode - first + 1)
            keymap = kx.Keymap(first, rows, conn.get_modifier_mapping())
            free = [first + i for i, row in enumerate(rows)
                    if all(k == 0 or 0x1008FF00 <= k <= 0x1008FFFF for k in row)]
            missing = sorted({c for c in text if c.isprintable()
                              and keymap.find(kx.char_keysyms(c), (0, 1)) is None})
            if len(missing) > len(free):
                raise AssertionError(f"display B has {len(free)} keycodes for {len(missing)} characters")
            for keycode, char in zip(free, missing):
                keysym = ord(char) if ord(char) < 0x100 else 0x01000000 | ord(char)
                conn.change_keyboard_mapping(keycode, [(keysym, keysym)])
            conn.sync()
        finally:
            conn.close()

    @classmethod
    def _open_session(cls, host_id, password):
        cls.give_viewer_keyboard_the_characters(MIXED)
        viewer = cls._later(e2e.Proc([sys.executable, GUI, "--config-dir", str(cls.tmp / "viewer"),
                                      "--relay", cls.relay], cls.env(cls.viewer_x)), "stop")
        cls.viewer = viewer
        cls.focus_window("^TagIO$")                     # the partner ID field has the focus
        cls.xdotool("type", "--delay", "20", host_id)
        cls.xdotool("key", "Return")
        cls.focus_window("^Password$")
        cls.xdotool("type", "--delay", "20", password)
        cls.xdotool("key", "Return")
        cls.focus_window(".+TagIO$")                    # the session window: "<ID> — TagIO"
        cls.clear_host_text()

    @classmethod
    def clear_host_text(cls):
        """F11 through the viewer clears the host's Text: the whole path is up when it arrives."""
        cls.xdotool("key", "F11")
        cls.target.wait("cleared", timeout=60)

    def host_text(self):
        self.xdotool("key", "F12")
        return self.target.wait("content", timeout=120)

    # -- the tests -------------------------------------------------------------------------------
    def test_300_mixed_characters_arrive_exactly(self):
        self.clear_host_text()
        self.xdotool("type", "--delay", "15", "--", MIXED, timeout=300)
        got, _ = self.host_text()
        self.assertEqual(len(MIXED), 300)
        self.assertEqual(got["text"], MIXED)

    def test_shortcuts_arrive_as_combinations(self):
        self.clear_host_text()
        self.xdotool("key", "ctrl+c", "ctrl+shift+t", "alt+Tab", "super+e", "super")
        _, seen = self.host_text()
        got = [(e["keysym"], e["state"] & (SHIFT | CONTROL | ALT | SUPER)) for e in seen if e["kind"] == "key"]
        for combo in (("c", CONTROL), ("T", CONTROL | SHIFT), ("Tab", ALT), ("e", SUPER), ("Super_L", 0)):
            self.assertIn(combo, got)


@skip_unless_xvfb
class KeyboardWithoutWindowManager(KeyboardThroughTheProduct, unittest.TestCase):
    WINDOW_MANAGER = None


@skip_unless_xvfb
@unittest.skipUnless(shutil.which("openbox"), "needs openbox (apt-get install openbox)")
class KeyboardWithWindowManager(KeyboardThroughTheProduct, unittest.TestCase):
    WINDOW_MANAGER = "openbox"


if __name__ == "__main__":
    unittest.main()
