"""Host keyboard through pynput's controller (macOS, where TagIO has no keyboard backend of its own).

Theory of operation: named keys (tagio.protocol.keys) map to pynput `Key` members through
`PYNPUT_KEYS`; any other name must stand for one character (`keys.key_char`) and is pressed as
`KeyCode.from_char`. Text is typed by pynput as Unicode, independent of the layout. Keys pressed
are remembered so `release_all()` lets go of them when the session ends.
"""

from tagio.protocol import keys

# Named key (X11 keysym name) -> pynput Key attribute name.
PYNPUT_KEYS = {
    "Return": "enter", "KP_Enter": "enter", "BackSpace": "backspace", "Tab": "tab", "Escape": "esc",
    "Delete": "delete", "KP_Delete": "delete", "Insert": "insert", "Home": "home", "End": "end",
    "Prior": "page_up", "Next": "page_down", "Left": "left", "Right": "right", "Up": "up",
    "Down": "down", "Shift_L": "shift_l", "Shift_R": "shift_r", "Control_L": "ctrl_l",
    "Control_R": "ctrl_r", "Alt_L": "alt_l", "Alt_R": "alt_r", "ISO_Level3_Shift": "alt_gr",
    "Super_L": "cmd_l", "Super_R": "cmd_r", "Caps_Lock": "caps_lock", "Num_Lock": "num_lock",
    "Scroll_Lock": "scroll_lock", "Print": "print_screen", "Pause": "pause", "Menu": "menu",
    "space": "space", **{f"F{n}": f"f{n}" for n in range(1, 21)},
}


class PynputKeyboard:
    def __init__(self, keyboard_module=None):
        if keyboard_module is None:
            from pynput import keyboard as keyboard_module     # lazy: needs a display on X11
        self._module = keyboard_module
        self._controller = keyboard_module.Controller()
        self._held = {}

    def resolve(self, name):
        """A key name -> a pynput key. Raises KeyError for names we do not know."""
        name = keys.canonical(name)
        if name in PYNPUT_KEYS:
            return getattr(self._module.Key, PYNPUT_KEYS[name])
        char = keys.key_char(name)
        if char is None:
            raise KeyError(name)
        return self._module.KeyCode.from_char(char)

    def press(self, name):
        key = self.resolve(name)
        self._controller.press(key)
        self._held[name] = key

    def release(self, name):
        key = self._held.pop(name, None)
        if key is not None:             # else never pressed here, or released already
            self._controller.release(key)

    def type(self, text):
        self._controller.type(text)

    def release_all(self):
        for name in reversed(list(self._held)):
            self._controller.release(self._held.pop(name))

    def close(self):
        self.release_all()
        self._controller = None
