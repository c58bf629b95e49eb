"""Shared test set-up: a desk driven as a person drives it, and the Xvfb + relay of the process tests.

Theory of operation. `Desk` is one X display seen from outside: the real pointer and keyboard through
xdotool (the X server delivers the events, as it would a person's) and pictures of the screen through
mss. A Tk test in this process gives it `update` (its root's update) so that every wait pumps the
Tk loop while it waits on a condition (tests/waiting.py), never for a fixed time. Clicking a widget
first brings its Settings page forward (as a person clicks the tab), waits until the widget is on
screen, and then moves the pointer onto it and clicks; a menu entry is chosen by moving onto it,
waiting until Tk highlights it, and clicking. The first pointer move remembers where the pointer
was; `restore_pointer()` puts it back (with no window manager the keyboard focus follows the pointer,
and later tests on a shared display rely on where it is).

`AppClicks` is the mixin of the home-window tests (tests/test_ui_app.py UiCase): `self.desk` on the
shared display, and a cleanup that gives the pointer and the focus back before the app closes.

`ProcessDeskCase` is the class set-up of the end-to-end tests that run the real programs: one
private Xvfb (XVFB_SIZE) for the class, a scratch folder, and when WITH_RELAY a relay on 127.0.0.1
port 0; `env(display)` is the environment for a child `tagio-gui.py` (the test decides relay and
config folder, never the caller's environment). Everything is released by class cleanups, also
when the set-up fails half-way.

`keep_shot(image, name)` keeps a screenshot for a person to look at when TAGIO_UI_SHOTS names a
folder (as tests/test_ui_app.py does).
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
XDOTOOL_TIMEOUT = 10
WAIT = 10.0


class Desk:
    """One X display, driven with xdotool and looked at with mss. `update`: called while waiting
    (a Tk root's update), None when nothing must be pumped."""

    def __init__(self, display, update=None, timeout=WAIT):
        self.display, self.update, self.timeout = display, update, timeout
        self.pointer_was = None         # "X=.. Y=.." before the first move

    def env(self) -> dict:
        return dict(os.environ, DISPLAY=self.display)

    def wait(self, predicate, what, timeout=None):
        return wait_until(predicate, timeout=timeout or self.timeout, what=what, poll=self.update)

    def xdotool(self, *args, timeout=XDOTOOL_TIMEOUT) -> str:
        """Run xdotool on this display; its output. A failure fails the test."""
        done = subprocess.run(["xdotool", *map(str, args)], env=self.env(), timeout=timeout,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(map(str, args[:3]))} failed: {done.stderr.strip()}")
        return done.stdout

    # --- the pointer -----------------------------------------------------------------------------

    def show(self, widget):
        """Bring the Settings page that holds `widget` forward, and wait until it is on screen."""
        dialog = widget.winfo_toplevel()
        if hasattr(dialog, "show_page_of"):
            dialog.show_page_of(widget)
        self.wait(widget.winfo_viewable, f"{widget} on screen")

    def move_to(self, widget, x=None, y=None):
        """Put the pointer on `widget`: its centre, or (x, y) inside it."""
        self.show(widget)
        if self.pointer_was is None:
            self.pointer_was = self.xdotool("getmouselocation", "--shell")
        x = widget.winfo_rootx() + (widget.winfo_width() // 2 if x is None else x)
        y = widget.winfo_rooty() + (widget.winfo_height() // 2 if y is None else y)
        self.xdotool("mousemove", x, y)     # (--sync would wait for ever when already there)

    def click(self, widget, x=None, y=None, button=1, repeat=1):
        """A real click (or `repeat` of them) on `widget`: its centre, or (x, y) inside it."""
        self.move_to(widget, x, y)
        self.xdotool("click", "--repeat", repeat, "--delay", 80, button)

    def restore_pointer(self):
        """Put the pointer back where it was before the first move."""
        if self.pointer_was is not None:
            where = dict(line.split("=", 1) for line in self.pointer_was.split())
            self.xdotool("mousemove", where["X"], where["Y"])

    # --- the keyboard ----------------------------------------------------------------------------

    def type_text(self, text, delay=20):
        self.xdotool("type", "--delay", delay, "--", text)

    def press(self, *keys):
        self.xdotool("key", *keys)

    # --- menus -----------------------------------------------------------------------------------

    def point_at(self, menu, label):
        """Move the pointer onto the entry of the open `menu` whose label starts with `label`
        and wait until Tk highlights it; returns its index."""
        index = next(i for i in range(menu.index("end") + 1)
                     if menu.type(i) != "separator" and menu.entrycget(i, "label").startswith(label))
        top = menu.yposition(index)
        bottom = menu.yposition(index + 1) if index < menu.index("end") else menu.winfo_height()
        self.xdotool("mousemove", menu.winfo_rootx() + 30, menu.winfo_rooty() + (top + bottom) // 2)
        self.wait(lambda: menu.index("active") == index, f"{label!r} highlighted")
        return index

    def choose(self, menubutton, menu, label):
        """Open a menu button's menu with a real click and click the entry `label`."""
        self.click(menubutton)
        self.wait(menu.winfo_ismapped, f"the menu with {label!r} to open")
        self.point_at(menu, label)
        self.xdotool("click", 1)
        self.wait(lambda: not menu.winfo_ismapped(), "the menu to close")

    def choose_in_cascade(self, menubutton, menu, label, entry):
        """Open the menu, go onto its cascade `label`, and click `entry` in the submenu it opens."""
        self.click(menubutton)
        self.wait(menu.winfo_ismapped, f"the menu with {label!r} to open")
        sub = menu.nametowidget(menu.entrycget(self.point_at(menu, label), "menu"))
        self.wait(sub.winfo_ismapped, f"the {label!r} submenu to open")
        self.point_at(sub, entry)
        self.xdotool("click", 1)
        self.wait(lambda: not menu.winfo_ismapped(), "the menus to close")

    # --- the screen ------------------------------------------------------------------------------

    def grab(self, box):
        """The screen inside box (left, top, right, bottom) as an RGB image."""
        import mss
        from PIL import Image
        with mss.MSS(display=self.display) as sct:
            shot = sct.grab(box)
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")

    def grab_widget(self, widget):
        x, y = widget.winfo_rootx(), widget.winfo_rooty()
        return self.grab((x, y, x + widget.winfo_width(), y + widget.winfo_height()))


def keep_shot(image, name):
    """TAGIO_UI_SHOTS=DIR keeps a screenshot (a PIL image) for a person to look at."""
    folder = os.environ.get("TAGIO_UI_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        image.save(os.path.join(folder, f"{name}.png"))


def artifact_shot(display, widget, name, what):
    """Grab `widget` on `display`, save it as NAME.png in TAGIO_TEST_ARTIFACTS (else the temporary
    folder) and say where on stderr; returns (image, (left, top) of the widget on the screen)."""
    import sys
    widget.update()
    left, top = widget.winfo_rootx(), widget.winfo_rooty()
    image = Desk(display).grab((left, top, left + widget.winfo_width(), top + widget.winfo_height()))
    out = Path(os.environ.get("TAGIO_TEST_ARTIFACTS", tempfile.gettempdir())) / f"{name}.png"
    image.save(out)
    print(f"\n  {what} screenshot: {out}", file=sys.stderr)
    return image, (left, top)


def scratch_and_xvfb(test, width=320, height=240):
    """(a scratch folder, a small private Xvfb) for one test of the real programs, both released
    by `test`'s cleanups."""
    from tests.xvfb import Xvfb
    tmp = tempfile.TemporaryDirectory()
    test.addCleanup(tmp.cleanup)
    xvfb = Xvfb(width=width, height=height).start()
    test.addCleanup(xvfb.stop)
    return Path(tmp.name), xvfb


class AppClicks:
    """Mixin for a UiCase (tests/test_ui_app.py): `self.desk` on the shared display. After the
    first click the pointer goes back where it was and the focus onto the app's ID entry, before
    the app closes: Tk 8.6 under Xvfb kept the clicked window as its implicit focus after the main
    window was destroyed, and the next test's focus_force crashed."""

    @property
    def desk(self):
        if getattr(self, "_desk", None) is None:
            self._desk = Desk(self.xvfb.display, update=self.root.update, timeout=15.0)
            self.addCleanup(self._give_back)
        return self._desk

    def _give_back(self):
        desk = self._desk
        if desk.pointer_was is None:
            return
        desk.restore_pointer()
        entry = self.app.home.partner_entry
        entry.focus_force()
        desk.wait(lambda: self.root.focus_get() == entry, "focus back on the ID entry", 5)


class SettingsClicks(AppClicks):
    """AppClicks plus the app's Settings dialog: open it as the gear would, read what it saved."""

    def open_dialog(self):
        from tagio.ui.settings_dialog import SettingsDialog
        self.app.open_settings()
        return self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings dialog")

    def saved(self):
        import json
        with open(os.path.join(self.config_dir, "settings.json")) as f:
            return json.load(f)


class ProcessDeskCase(unittest.TestCase):
    """Class set-up for tests of the real programs: a private Xvfb, a scratch folder, a relay."""

    XVFB_SIZE = (320, 240)
    WITH_RELAY = True

    @classmethod
    def setUpClass(cls):
        from tests.relay_fixture import start_relay
        from tests.xvfb import Xvfb
        scratch = tempfile.TemporaryDirectory()
        cls.addClassCleanup(scratch.cleanup)
        cls.tmp = Path(scratch.name)
        cls.xvfb = Xvfb(*cls.XVFB_SIZE).start()
        cls.addClassCleanup(cls.xvfb.stop)
        cls.relay = cls.relay_text = None
        if cls.WITH_RELAY:
            cls.relay = start_relay()
            cls.addClassCleanup(cls.relay.stop)
            cls.relay_text = "%s:%d" % cls.relay.address

    def env(self, display=True) -> dict:
        """The environment of a child tagio-gui.py: this class's display (or none), this checkout
        on the path, unbuffered output, and no relay or config folder from the caller."""
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR") + (() if display else ("DISPLAY",)):
            env.pop(name, None)
        return env
