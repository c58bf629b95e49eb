"""Key names shared by the viewer and the host: the one place that says what a Key message may name.

Theory of operation. The viewer sends what the user typed in one of two forms (tagio.protocol.session):

- `Text`: the characters a key event produced, when it produced printable text and no shortcut
  modifier (Ctrl, Alt, Super) was held. The host types those characters as themselves, whatever
  its own keyboard layout: this is how `<`, `é`, `ж` or `中` arrive as themselves.
- `Key`: one press or release of a key by name, for shortcuts and keys that are not text (Ctrl+C,
  Alt+Tab, F5, arrows, Return, the modifiers themselves). A name is an X11 keysym name as Tk
  reports it on X11 ("Return", "F5", "Control_L", "c", "T", "Cyrillic_zhe", "U4E2D"), or, from
  older viewers, one character. The host presses the key with the modifiers the viewer holds.

Tk on Windows and macOS names a few keys differently ("Win_L", "App"); `canonical()` maps those
to the X11 names, so the host backends know one set of names. `NAMED_KEYS` lists the keys that
are not characters; each host backend (X11, Windows, pynput) has a table for at least these.
"""

MAX_NAME_BYTES = 32         # = tagio.protocol.session.MAX_KEYSYM

# Keys that are not characters, by X11 keysym name.
MODIFIER_KEYS = frozenset({
    "Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Super_L", "Super_R",
    "ISO_Level3_Shift", "Caps_Lock", "Num_Lock",
})
NAMED_KEYS = MODIFIER_KEYS | frozenset({
    "Return", "KP_Enter", "BackSpace", "Tab", "Escape", "Delete", "KP_Delete", "Insert", "Home",
    "End", "Prior", "Next", "Left", "Right", "Up", "Down", "Scroll_Lock", "Print", "Pause", "Menu",
    "space", *(f"F{n}" for n in range(1, 21)),
})

# Names Tk uses on other platforms (or for a shifted key) -> the X11 name the host understands.
ALIASES = {
    "Win_L": "Super_L", "Win_R": "Super_R",     # Tk on Windows
    "App": "Menu",                              # Tk on Windows: the context-menu key
    "Meta_L": "Alt_L", "Meta_R": "Alt_R",       # Tk on macOS: Command (TagIO has sent it as Alt)
    "ISO_Left_Tab": "Tab",                      # X11: Shift+Tab; Shift is held on the host too
    # Keypad keys with Num Lock off: the keys they stand for, whatever the host's Num Lock says.
    "KP_Home": "Home", "KP_End": "End", "KP_Left": "Left", "KP_Right": "Right", "KP_Up": "Up",
    "KP_Down": "Down", "KP_Prior": "Prior", "KP_Next": "Next", "KP_Insert": "Insert",
}

# Keysym names of punctuation -> the character (older viewers sent these names for Shift+key).
CHAR_KEYSYMS = {
    "comma": ",", "period": ".", "slash": "/", "semicolon": ";", "apostrophe": "'", "quoteright": "'",
    "bracketleft": "[", "bracketright": "]", "backslash": "\\", "minus": "-", "equal": "=",
    "grave": "`", "quoteleft": "`", "exclam": "!", "at": "@", "numbersign": "#", "dollar": "$",
    "percent": "%", "asciicircum": "^", "ampersand": "&", "asterisk": "*", "parenleft": "(",
    "parenright": ")", "underscore": "_", "plus": "+", "colon": ":", "quotedbl": '"', "less": "<",
    "greater": ">", "question": "?", "braceleft": "{", "braceright": "}", "bar": "|", "asciitilde": "~",
}

# Characters that stand for a named key when they appear in Text ("\r\n" is one Return).
TEXT_KEYS = {"\n": "Return", "\r": "Return", "\t": "Tab"}


def canonical(name: str) -> str:
    """A key name as the host backends know it (platform aliases resolved)."""
    return ALIASES.get(name, name)


def is_valid_name(name: str) -> bool:
    """True when `name` fits in a Key message."""
    return bool(name) and len(name.encode("utf-8")) <= MAX_NAME_BYTES


def key_char(name: str):
    """The one character a key name stands for ("a", "less", "U4E2D", "é"), or None for named
    keys and names that are no single character. Names of other keysyms ("Cyrillic_zhe") are for
    the host backend's own keysym table."""
    if len(name) == 1:
        return name
    if name in CHAR_KEYSYMS:
        return CHAR_KEYSYMS[name]
    if name == "space":
        return " "
    if len(name) >= 5 and name[0] == "U":
        try:
            code = int(name[1:], 16)
        except ValueError:
            return None
        return chr(code) if 0x20 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else None
    return None


def text_units(text: str):
    """Split Text into what a host types: ("char", c) for characters and ("key", name) for the
    control characters that are keys (newline, tab). "\\r\\n" is one Return; other control
    characters are dropped (they are not text)."""
    units, previous = [], ""
    for char in text:
        if char == "\n" and previous == "\r":
            previous = char
            continue
        previous = char
        if char in TEXT_KEYS:
            units.append(("key", TEXT_KEYS[char]))
        elif char.isprintable() or char == " ":
            units.append(("char", char))
    return units
