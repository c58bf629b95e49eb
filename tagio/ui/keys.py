"""Viewer keyboard: Tk key events -> what the host is sent (text, or named key presses and releases).

Theory of operation. A key event that produced printable text while no shortcut modifier was held
is sent as that text (a `Text` message): the viewer's own layout already decided which character
the user meant, so the host only has to type it, whatever its layout. Everything else is sent as a
key by name (`Key` press/release, tagio.protocol.keys): shortcuts (Ctrl+C, Ctrl+Shift+T, Alt+Tab,
Super+E), keys that are not text (F5, arrows, Return, Tab, BackSpace, Escape) and the modifiers
themselves, so the host holds the same modifiers as the viewer. AltGr is not a shortcut modifier:
what it produces is text (on Windows, AltGr is reported as Ctrl+Alt; a printable character with
Ctrl+Alt held is therefore text there). Keys the viewer's own layout consumes are not sent: dead
keys and Compose (the composed character arrives as text), Caps Lock and Num Lock (their effect is
already in the characters).

Modifier state comes from Tk's event.state, whose bits differ by windowing system: on X11 0x0008
is Mod1 (Alt), on Windows it is Num Lock and Alt is 0x20000 (tkWinX.c TkWinGetModifierState), on
macOS 0x0008 is Command and 0x0010 Option. `modifiers()` reads them through one table per system.
Windows Tk reports no bit for the Windows key, so `KeyboardState` also counts a held Super key.

`KeyboardState` remembers which keys were sent as pressed (by Tk keycode), so a release is sent
for exactly those, even if the modifiers changed in between, and `release_all()` can let go of
all of them when the window loses the keyboard or the session ends.
"""

from tagio.protocol import keys

# Tk event.state bits per windowing system (`tk windowingsystem`).
STATE_MASKS = {
    "x11": {"Shift": 0x1, "Lock": 0x2, "Control": 0x4, "Alt": 0x8, "NumLock": 0x10, "Super": 0x40,
            "AltGr": 0x80},
    "win32": {"Shift": 0x1, "Lock": 0x2, "Control": 0x4, "NumLock": 0x8, "ScrollLock": 0x20,
              "Alt": 0x20000},
    "aqua": {"Shift": 0x1, "Lock": 0x2, "Control": 0x4, "Command": 0x8, "Option": 0x10},
}
SHORTCUT_MODIFIERS = frozenset({"Control", "Alt", "Super", "Command"})
SUPER_KEYS = frozenset({"Super_L", "Super_R"})
# Keys whose effect stays on the viewer (see the module docstring).
LOCAL_KEYS = frozenset({"Caps_Lock", "Num_Lock", "Multi_key", "Shift_Lock"})


def modifiers(state: int, windowing: str = "x11") -> frozenset:
    """The modifier names set in a Tk event.state on this windowing system."""
    masks = STATE_MASKS.get(windowing, STATE_MASKS["x11"])
    return frozenset(name for name, bit in masks.items() if state & bit)


def is_shortcut(mods: frozenset, windowing: str = "x11") -> bool:
    """True when the held modifiers make a key a shortcut rather than text. On Windows, Ctrl+Alt
    together is how AltGr is reported, so it does not count."""
    shortcut = mods & SHORTCUT_MODIFIERS
    if windowing == "win32" and {"Control", "Alt"} <= shortcut:
        shortcut = shortcut - {"Control", "Alt"}
    return bool(shortcut)


def event_text(char: str) -> str:
    """Tk's event.char as text: surrogate pairs (Tk 8.6 outside the BMP) joined; "" when it is
    not printable (control characters of Ctrl+letter, Return, Tab, BackSpace...)."""
    if not char:
        return ""
    try:
        char = char.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        return ""
    return char if char.isprintable() else ""


def key_name(keysym: str, char: str) -> str | None:
    """The name a key is sent by: its keysym (platform aliases resolved), or its character when
    Tk has no name for it; None when neither fits in a Key message."""
    if keysym and keysym != "??":
        name = keys.canonical(keysym)
    else:
        name = event_text(char)
    return name if keys.is_valid_name(name) else None


def is_local(keysym: str) -> bool:
    return keysym in LOCAL_KEYS or keysym.startswith("dead_")


class KeyboardState:
    """Turns one window's key events into ("text", s) / ("key", name, pressed) actions."""

    def __init__(self, windowing: str = "x11"):
        self.windowing = windowing
        self.held = {}          # Tk keycode -> name sent as pressed

    def press(self, keycode, keysym, char, state):
        """A KeyPress -> the actions to send (a list, maybe empty)."""
        if is_local(keysym):
            return []
        mods = modifiers(state, self.windowing)
        if self.super_held():
            mods = mods | {"Super"}
        text = event_text(char)
        if text and not is_shortcut(mods, self.windowing):
            return [("text", text)]
        name = key_name(keysym, char)
        if name is None:
            return []
        self.held[keycode] = name
        return [("key", name, True)]

    def release(self, keycode):
        """A KeyRelease -> the release of what its press sent, if that was a key."""
        name = self.held.pop(keycode, None)
        return [] if name is None else [("key", name, False)]

    def release_all(self):
        """Releases for every key still held (focus lost, session ending)."""
        names = list(self.held.values())
        self.held.clear()
        return [("key", name, False) for name in reversed(names)]

    def super_held(self):
        return any(name in SUPER_KEYS for name in self.held.values())
