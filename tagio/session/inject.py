"""Input injection on the host: viewer Mouse/Key/Scroll/Text messages -> the local desktop via pynput.

Theory of operation: pynput is imported lazily, inside `Injector.open()`, because on X11 merely
importing it fails without a display; a host where it cannot load runs view-only and says why.
Key names are Tk keysyms (what the viewer window sees) or a single character; `SPECIAL_KEYS` maps the
named ones to pynput's `Key` members, single characters go through `KeyCode.from_char` (pynput maps
characters that are not on the host's layout itself). Text is typed as Unicode, independent of the
keyboard layout. Every key and button pressed is remembered so `release_all()` can let go of them
when the session ends - a dropped connection must not leave Ctrl held down on the host.
"""

import contextlib
import os
import threading

from tagio.protocol import session as m

# Tk keysym -> pynput Key attribute name.
SPECIAL_KEYS = {
    "Return": "enter", "KP_Enter": "enter", "BackSpace": "backspace", "Tab": "tab", "ISO_Left_Tab": "tab",
    "Escape": "esc", "Delete": "delete", "KP_Delete": "delete", "Insert": "insert", "Home": "home",
    "End": "end", "Prior": "page_up", "Next": "page_down", "Left": "left", "Right": "right",
    "Up": "up", "Down": "down", "Shift_L": "shift_l", "Shift_R": "shift_r", "Control_L": "ctrl_l",
    "Control_R": "ctrl_r", "Alt_L": "alt_l", "Alt_R": "alt_r", "ISO_Level3_Shift": "alt_gr",
    "Meta_L": "alt_l", "Meta_R": "alt_r", "Super_L": "cmd_l", "Super_R": "cmd_r", "Win_L": "cmd_l",
    "Win_R": "cmd_r", "Caps_Lock": "caps_lock", "Num_Lock": "num_lock", "Scroll_Lock": "scroll_lock",
    "Print": "print_screen", "Pause": "pause", "Menu": "menu", "App": "menu", "space": "space",
    **{f"F{n}": f"f{n}" for n in range(1, 21)},
}

# Tk keysym names of common punctuation -> the character (the viewer usually sends the character).
CHAR_KEYSYMS = {
    "comma": ",", "period": ".", "slash": "/", "semicolon": ";", "apostrophe": "'", "quoteright": "'",
    "bracketleft": "[", "bracketright": "]", "backslash": "\\", "minus": "-", "equal": "=",
    "grave": "`", "quoteleft": "`", "exclam": "!", "at": "@", "numbersign": "#", "dollar": "$",
    "percent": "%", "asciicircum": "^", "ampersand": "&", "asterisk": "*", "parenleft": "(",
    "parenright": ")", "underscore": "_", "plus": "+", "colon": ":", "quotedbl": '"', "less": "<",
    "greater": ">", "question": "?", "braceleft": "{", "braceright": "}", "bar": "|", "asciitilde": "~",
}

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


class InjectorUnavailable(Exception):
    """pynput could not load (no display, no backend): the host must run view-only."""


class Injector:
    """Replays viewer input on this machine's desktop. Not thread-safe: one inject thread owns it."""

    def __init__(self, origin=(0, 0), size=(1 << 15, 1 << 15)):
        self.origin = origin        # top-left of the captured monitor in desktop coordinates
        self.size = size
        self._mouse = self._keyboard = None
        self._held_keys = set()
        self._held_buttons = set()

    def open(self, display=None):
        """Load pynput and make controllers. Raises InjectorUnavailable with the reason.

        `display` (X11 only) names a display other than $DISPLAY; pynput reads only the environment,
        so it is set for the duration of the import and controller creation."""
        with _display_env(display):
            try:
                from pynput import keyboard, mouse     # lazy: importing needs a display on X11
                self._pynput_keyboard, self._pynput_mouse = keyboard, mouse
                self._mouse = mouse.Controller()
                self._keyboard = keyboard.Controller()
            except Exception as exc:                    # any backend failure means "no input here"
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
        key = self.resolve_key(msg.key)
        if msg.pressed:
            self._keyboard.press(key)
            self._held_keys.add(key)
        else:
            self._keyboard.release(key)
            self._held_keys.discard(key)

    def _on_text(self, msg):
        self._keyboard.type(msg.text)

    def resolve_key(self, name):
        """Tk keysym or one character -> a pynput key. Raises KeyError for names we do not know."""
        if name in SPECIAL_KEYS:
            return getattr(self._pynput_keyboard.Key, SPECIAL_KEYS[name])
        char = CHAR_KEYSYMS.get(name, name)
        if len(char) != 1:
            raise KeyError(name)
        return self._pynput_keyboard.KeyCode.from_char(char)

    def release_all(self):
        """Let go of every key and button still held (the session is ending)."""
        for key in list(self._held_keys):
            self._safely(self._keyboard.release, key)
        for button in list(self._held_buttons):
            self._safely(self._mouse.release, button)
        self._held_keys.clear()
        self._held_buttons.clear()

    def close(self):
        """Release everything and drop the controllers now, while the display is still there."""
        if self._mouse is not None:
            self.release_all()
        self._mouse = self._keyboard = None     # pynput closes its display connections on collection

    @staticmethod
    def _safely(fn, arg):
        try:
            fn(arg)
        except Exception:       # best effort while tearing down; the display may be gone
            pass

    _HANDLERS = {m.Mouse: _on_mouse, m.Scroll: _on_scroll, m.Key: _on_key, m.Text: _on_text}
