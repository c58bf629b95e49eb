"""Input injection on the host: viewer Mouse/Key/Scroll/Text messages -> the local desktop.

Theory of operation: the mouse goes through pynput, imported lazily inside `Injector.open()`
because on X11 merely importing it fails without a display; a host where input cannot load runs
view-only and says why. The keyboard goes through a backend chosen by platform (`open_keyboard`),
each with the same small interface - press(name), release(name), type(text), release_all(),
close() - and each raising KeyError for a key name or character it cannot produce:

- X11 (tagio.session.keyboard_x11): XTest for every key and character, so typing works with or
  without a window manager and whatever the two keyboard layouts are.
- Windows (tagio.session.keyboard_win32): SendInput, characters as KEYEVENTF_UNICODE, keys as
  virtual keys (a real Shift, so Ctrl+Shift+X shortcuts fire).
- macOS (tagio.session.keyboard_pynput): pynput's keyboard controller.

Key names are those of tagio.protocol.keys. Every key and button pressed is remembered so
`release_all()` can let go of them when the session ends - a dropped connection must not leave Ctrl
held down on the host.
"""

import contextlib
import os
import sys
import threading

from tagio.protocol import session as m

_BUTTONS = {1: "left", 2: "middle", 3: "right"}
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _display_env(display):
    if not display:
        yield
        return
    with _ENV_LOCK:
        saved = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = saved


def open_keyboard(display=None):
    """The keyboard backend for this platform (see the module docstring)."""
    if sys.platform == "win32":
        from tagio.session.keyboard_win32 import Win32Keyboard
        return Win32Keyboard()
    if sys.platform == "darwin":
        from tagio.session.keyboard_pynput import PynputKeyboard
        return PynputKeyboard()
    from tagio.session.keyboard_x11 import X11Keyboard
    return X11Keyboard.open(display)


class InjectorUnavailable(Exception):
    """pynput could not load (no display, no backend): the host must run view-only."""


class Injector:
    """Replays viewer input on this machine's desktop. Not thread-safe: one inject thread owns it."""

    def __init__(self, origin=(0, 0), size=(1 << 15, 1 << 15)):
        self.origin = origin        # top-left of the captured monitor in desktop coordinates
        self.size = size
        self._mouse = self._keyboard = None
        self._held_buttons = set()

    def open(self, display=None):
        """Load pynput and make controllers. Raises InjectorUnavailable with the reason.

        `display` (X11 only) names a display other than $DISPLAY; pynput reads only the environment,
        so it is set for the duration of the import and controller creation."""
        with _display_env(display):
            try:
                from pynput import mouse        # lazy: importing needs a display on X11
                self._pynput_mouse = mouse
                self._mouse = mouse.Controller()
                self._keyboard = open_keyboard(display)
            except Exception as exc:            # any backend failure means "no input here"
                self._mouse = self._keyboard = None
                raise InjectorUnavailable(f"input injection unavailable: {exc}") from exc
        return self

    def set_monitor(self, left, top, width, height):
        self.origin, self.size = (left, top), (width, height)

    def pointer_absolute(self):
        """The pointer position on the whole desktop, or None if unknown."""
        try:
            x, y = self._mouse.position
        except Exception:       # the backend may refuse while the display is going away
            return None
        return int(x), int(y)

    def handle(self, msg):
        """Inject one Mouse/Key/Scroll/Text message. Raises KeyError for an unknown key name."""
        self._HANDLERS[type(msg)](self, msg)

    def _move(self, x, y):
        x = min(max(x, 0), self.size[0] - 1)
        y = min(max(y, 0), self.size[1] - 1)
        self._mouse.position = (self.origin[0] + x, self.origin[1] + y)

    def _on_mouse(self, msg):
        self._move(msg.x, msg.y)
        if msg.action == m.MOUSE_MOVE or msg.button not in _BUTTONS:
            return
        button = getattr(self._pynput_mouse.Button, _BUTTONS[msg.button])
        if msg.action == m.MOUSE_PRESS:
            self._mouse.press(button)
            self._held_buttons.add(button)
        elif msg.action == m.MOUSE_RELEASE:
            self._mouse.release(button)
            self._held_buttons.discard(button)
        else:
            self._mouse.click(button, msg.count)

    def _on_scroll(self, msg):
        self._mouse.scroll(msg.dx, msg.dy)

    def _on_key(self, msg):
        if msg.pressed:
            self._keyboard.press(msg.key)
        else:
            self._keyboard.release(msg.key)

    def _on_text(self, msg):
        self._keyboard.type(msg.text)

    def release_all(self):
        """Let go of every key and button still held (the session is ending)."""
        if self._keyboard is not None:
            self._safely(lambda _: self._keyboard.release_all(), None)
        for button in list(self._held_buttons):
            self._safely(self._mouse.release, button)
        self._held_buttons.clear()

    def close(self):
        """Release everything and drop the controllers now, while the display is still there."""
        if self._mouse is not None:
            self.release_all()
        if self._keyboard is not None:
            self._safely(lambda _: self._keyboard.close(), None)
        self._mouse = self._keyboard = None     # pynput closes its display connections on collection

    @staticmethod
    def _safely(fn, arg):
        try:
            fn(arg)
        except Exception:       # best effort while tearing down; the display may be gone
            pass

    _HANDLERS = {m.Mouse: _on_mouse, m.Scroll: _on_scroll, m.Key: _on_key, m.Text: _on_text}
