"""Host keyboard on X11: keys and characters injected with XTest, like a real keyboard.

Theory of operation. XTest key events go where a real keyboard's go (the focus window, with or
without a window manager), and the X server computes their modifier state itself. So every key
is an XTest press/release of a keycode; what differs is how the keycode is chosen:

- A *key* (a shortcut or special key, by keysym name): the keycode that carries that keysym at any
  level, pressed with whatever modifiers the viewer holds (they were pressed as keys before it).
  Ctrl+Shift+T is Control_L, Shift_L, then the keycode of T: the host sees exactly that.
- A *character* (Text): a keycode and level of the current keyboard mapping that produce it
  (`Keymap.find`, levels 1-4: none, Shift, ISO_Level3_Shift, both), typed with exactly the
  modifiers that level needs: the modifiers the viewer holds are released around it and pressed
  again after, and Caps Lock is switched off around a character that has a case. So `<` arrives as
  `<` even while the viewer holds Shift (the old bug: Shift plus the already shifted keysym).
- A character or keysym that no keycode carries borrows a spare keycode (one with no keysyms):
  the keycode is mapped to the keysym (xdotool's approach), we wait for the server's MappingNotify
  of that change, then type it. X gives no sign of when *another* client has taken in a mapping
  change, and Tk computes a key's character as soon as it reads the event from the socket, before it
  handles a MappingNotify read in the same batch: typed at once, the key was now and then read with
  the old mapping (measured: 1 run in 6 of a 300-character text had one wrong character; none in
  10 runs after a SETTLE of 20 ms between the change and the key; on a loaded CI machine 20 ms
  once lost two characters of 300, so it is 50 ms: paid once per borrowed keysym, not per key).
  For the same reason a borrowed
  keycode keeps its keysym: it is reused for another keysym least-recently-used first and not
  within REUSE_AFTER seconds of its last use (`SparePool`), and the original mapping comes back at
  close().

A character's keysym is its Latin-1 code point, or the legacy keysym (found through pynput's
keysym table when it is there, so a Cyrillic layout's `Cyrillic_zhe` key is found), or the Unicode
keysym 0x01000000 + code point. Not thread-safe: the host's inject thread owns it.
"""

import collections
import contextlib
import select
import time

from tagio.protocol import keys

UNICODE_KEYSYM = 0x01000000
XK_SHIFT_L = 0xFFE1
XK_CAPS_LOCK = 0xFFE5
XK_NUM_LOCK = 0xFF7F
XK_ISO_LEVEL3_SHIFT = 0xFE03
LOCK_MASK = 0x02
LEVEL_MODIFIERS = {0: (), 1: ("shift",), 4: ("level3",), 5: ("shift", "level3")}   # core keymap index
REUSE_AFTER = 1.0           # seconds a borrowed keycode keeps its keysym after its last use
NOTIFY_TIMEOUT = 1.0        # seconds to wait for the MappingNotify of our own change
SETTLE = 0.05               # seconds between a mapping change and the key that needs it
_LEGACY = None


def legacy_keysyms():
    """char -> legacy keysym, from pynput's copy of X11's keysymdef.h ({} without it)."""
    global _LEGACY
    if _LEGACY is None:
        table = {}
        SYMBOLS = _pynput_symbols()
        pairs = sorted((keysym, char) for keysym, char in SYMBOLS.values()
                       if isinstance(char, str) and len(char) == 1 and keysym < UNICODE_KEYSYM)
        for keysym, char in pairs:
            table.setdefault(char, keysym)
        _LEGACY = table
    return _LEGACY


def _pynput_symbols():
    """pynput's keysym table ({} without pynput). Importing pynput itself needs a display on X11,
    so without one the table's file is loaded on its own."""
    try:
        from pynput._util.xorg_keysyms import SYMBOLS       # shipped with pynput, which we require
        return SYMBOLS
    except ImportError:
        pass
    import importlib.util
    import os
    try:
        spec = importlib.util.find_spec("pynput")
        path = os.path.join(os.path.dirname(spec.origin), "_util", "xorg_keysyms.py")
        module_spec = importlib.util.spec_from_file_location("_tagio_xorg_keysyms", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.SYMBOLS
    except (ImportError, AttributeError, TypeError, OSError):
        return {}


def char_keysyms(char: str, legacy=None) -> list:
    """The keysyms that type `char`, the preferred one first."""
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return [code]
    table = legacy_keysyms() if legacy is None else legacy
    found = [table[char]] if char in table else []
    return found + [UNICODE_KEYSYM | code]


def name_keysym(name: str, lookup=None):
    """A key name (tagio.protocol.keys) -> keysym, or None when it names nothing we know."""
    name = keys.canonical(name)
    keysym = (lookup or _xlib_lookup)(name)
    if keysym:
        return keysym
    char = keys.key_char(name)
    return char_keysyms(char)[0] if char else None


def _xlib_lookup(name):
    from Xlib import XK
    if not getattr(_xlib_lookup, "loaded", False):
        import Xlib.keysymdef
        for group in Xlib.keysymdef.__all__:
            XK.load_keysym_group(group)
        _xlib_lookup.loaded = True
    return XK.string_to_keysym(name)


class Keymap:
    """A snapshot of the core keyboard mapping and modifier map (pure; no X calls)."""

    def __init__(self, first_keycode, rows, modmap):
        self.first = first_keycode
        self.rows = [tuple(row) for row in rows]
        self.modmap = [tuple(code for code in row if code) for row in modmap]
        self._places = None         # keysym -> [(index, keycode)], built when first needed

    def row(self, keycode):
        return self.rows[keycode - self.first]

    def set_row(self, keycode, row):
        self.rows[keycode - self.first] = tuple(row)
        self._places = None

    def places(self, keysym):
        """[(index, keycode)] where `keysym` is, lowest keycode first."""
        if self._places is None:
            self._places = collections.defaultdict(list)
            for i, row in enumerate(self.rows):
                for index, sym in enumerate(row):
                    if sym:
                        self._places[sym].append((index, self.first + i))
        return self._places.get(keysym, ())

    def spare_keycodes(self):
        """Keycodes with no keysym at all, which no real key produces."""
        return [self.first + i for i, row in enumerate(self.rows) if not any(row)]

    def find(self, keysyms, indexes, exclude=()):
        """(keycode, index) of the first of `keysyms` at one of `indexes` (in preference order),
        lowest keycode first; None when no keycode has it."""
        for keysym in keysyms:
            places = self.places(keysym)
            for index in indexes:
                for at, code in places:
                    if at == index and code not in exclude:
                        return code, index
        return None

    def keycode_of(self, keysym):
        found = self.find([keysym], range(len(self.rows[0]) if self.rows else 0))
        return found[0] if found else None

    def modifier_keycodes(self):
        """Keycodes of the modifiers that change which character a key types (Shift, Control,
        Mod1-5), but not of the lock modifiers Lock and Num Lock's, which are toggles."""
        num_lock = self.keycode_of(XK_NUM_LOCK)
        codes = set()
        for index, row in enumerate(self.modmap):
            if index != 1 and num_lock not in row:
                codes.update(row)
        return codes

    def is_modifier(self, keycode):
        return any(keycode in row for row in self.modmap)


class SparePool:
    """Spare keycodes lent to keysyms that no key carries, least recently used first."""

    def __init__(self, keycodes, clock=time.monotonic, reuse_after=REUSE_AFTER):
        self.free = list(keycodes)
        self.lent = collections.OrderedDict()      # keysym -> [keycode, last use]
        self.clock = clock
        self.reuse_after = reuse_after

    @property
    def keycodes(self):
        return set(self.free) | {code for code, _ in self.lent.values()}

    def lookup(self, keysym):
        entry = self.lent.get(keysym)
        return None if entry is None else entry[0]

    def lend(self, keysym, busy=()):
        """A keycode for `keysym` and how long to wait before remapping it (0 for a free one).
        Raises KeyError when every spare keycode is held down (or there is none)."""
        if self.free:
            code, wait = self.free.pop(0), 0.0
        else:
            victim = next((k for k, (code, _) in self.lent.items() if code not in busy), None)
            if victim is None:
                raise KeyError(keysym)
            code, used = self.lent.pop(victim)
            wait = max(0.0, used + self.reuse_after - self.clock())
        self.lent[keysym] = [code, self.clock()]
        return code, wait

    def touch(self, keysym):
        entry = self.lent.get(keysym)
        if entry is not None:
            entry[1] = self.clock()
            self.lent.move_to_end(keysym)

    def forget(self, keysym):
        """The server's mapping no longer has our keysym there: someone loaded another keymap,
        which may use that keycode for a real key now, so it is not ours to lend any more."""
        self.lent.pop(keysym)

    def settle_time(self):
        """Seconds until every borrowed keycode may safely change again."""
        now = self.clock()
        return max([0.0] + [used + self.reuse_after - now for _, used in self.lent.values()])


class X11Keyboard:
    """Keys and characters into an X display by XTest. Methods raise KeyError for a name or
    character they cannot type (after typing the rest)."""

    def __init__(self, conn, *, clock=time.monotonic, sleep=time.sleep):
        from Xlib import X
        from Xlib.ext import xtest
        self._X, self._xtest = X, xtest
        self._conn = conn
        self._clock, self._sleep = clock, sleep
        self._held = {}             # key name -> keycode we pressed
        self._keymap = self._read_keymap()
        self._pool = SparePool(self._keymap.spare_keycodes(), clock)
        self._originals = {}        # borrowed keycode -> its row before we changed it

    @classmethod
    def open(cls, display=None):
        """Connect to `display` (None: $DISPLAY). Raises OSError without the XTEST extension;
        Xlib's own errors when the display cannot be opened."""
        from Xlib import display as xdisplay
        conn = xdisplay.Display(display)
        if not conn.has_extension("XTEST"):
            conn.close()
            raise OSError("the X server has no XTEST extension")
        return cls(conn)

    # -- the interface used by tagio.session.inject -------------------------------------------
    def press(self, name):
        self._notice_mapping_changes()
        keycode = self._key_keycode(name)
        self._fake(self._X.KeyPress, keycode)
        self._held[name] = keycode
        self._conn.sync()

    def release(self, name):
        self._notice_mapping_changes()
        keycode = self._held.pop(name, None)
        if keycode is None:
            return          # never pressed here (its press failed, or it was released already)
        self._fake(self._X.KeyRelease, keycode)
        self._conn.sync()

    def type(self, text):
        """Type `text` as characters (newline and tab as Return and Tab)."""
        self._notice_mapping_changes()
        units = keys.text_units(text)
        skipped = []
        cased = any(kind == "char" and value.lower() != value.upper() for kind, value in units)
        with self._plain_modifiers(cased):
            for kind, value in units:
                if kind == "key":
                    self._tap(self._key_keycode(value), ())
                elif not self._type_char(value):
                    skipped.append(value)
        self._conn.sync()
        if skipped:
            raise KeyError(skipped[0])

    def release_all(self):
        for name in reversed(list(self._held)):
            self._fake(self._X.KeyRelease, self._held.pop(name))
        self._conn.sync()

    def close(self):
        """Release held keys, give borrowed keycodes their old mapping back, disconnect."""
        try:
            self.release_all()
            self._sleep(min(self._pool.settle_time(), REUSE_AFTER))
            for keycode, row in self._originals.items():
                self._conn.change_keyboard_mapping(keycode, [row])
            self._conn.sync()
        finally:
            self._conn.close()

    # -- characters ---------------------------------------------------------------------------
    def _type_char(self, char):
        keysyms = char_keysyms(char)
        found = self._keymap.find(keysyms, self._text_indexes(), exclude=self._pool.keycodes)
        if found is not None:
            keycode, index = found
            self._tap(keycode, LEVEL_MODIFIERS[index])
            return True
        keysym = keysyms[0]
        keycode = self._borrowed(keysym)
        if keycode is None:
            return False
        self._tap(keycode, ())
        self._pool.touch(keysym)
        return True

    def _text_indexes(self):
        """Core keymap indexes we can reach: 0, 1 (Shift), and 4, 5 when ISO_Level3_Shift is a
        modifier here."""
        level3 = self._keymap.keycode_of(XK_ISO_LEVEL3_SHIFT)
        return (0, 1, 4, 5) if level3 is not None and self._keymap.is_modifier(level3) else (0, 1)

    def _tap(self, keycode, modifiers):
        mods = [self._modifier_keycode(m) for m in modifiers]
        for code in mods:
            self._fake(self._X.KeyPress, code)
        self._fake(self._X.KeyPress, keycode)
        self._fake(self._X.KeyRelease, keycode)
        for code in reversed(mods):
            self._fake(self._X.KeyRelease, code)

    def _modifier_keycode(self, modifier):
        keysym = {"shift": XK_SHIFT_L, "level3": XK_ISO_LEVEL3_SHIFT}[modifier]
        return self._keymap.keycode_of(keysym)

    @contextlib.contextmanager
    def _plain_modifiers(self, cased):
        """Around typed characters: the modifier keys we hold are let go, and Caps Lock is switched
        off when it would change a character's case; both come back afterwards."""
        modifiers = self._keymap.modifier_keycodes()
        lifted = [code for code in self._held.values() if code in modifiers]
        for code in lifted:
            self._fake(self._X.KeyRelease, code)
        lock = cased and self._lock_on()
        if lock:
            self._toggle_lock()
        try:
            yield
        finally:
            if lock:
                self._toggle_lock()
            for code in lifted:
                self._fake(self._X.KeyPress, code)

    def _toggle_lock(self):
        code = self._keymap.keycode_of(XK_CAPS_LOCK)
        if code is not None:
            self._tap(code, ())

    def _lock_on(self):
        return bool(self._conn.screen().root.query_pointer().mask & LOCK_MASK)

    # -- keys -----------------------------------------------------------------------------------
    def _key_keycode(self, name):
        keysym = name_keysym(name)
        if keysym is None:
            raise KeyError(name)
        found = self._keymap.find([keysym], range(len(self._keymap.rows[0])), exclude=self._pool.keycodes)
        if found is not None:
            return found[0]
        keycode = self._borrowed(keysym)
        if keycode is None:
            raise KeyError(name)
        self._pool.touch(keysym)
        return keycode

    # -- borrowing spare keycodes ----------------------------------------------------------------
    def _borrowed(self, keysym):
        """A keycode that now carries `keysym` (borrowed from the spares), or None."""
        keycode = self._pool.lookup(keysym)
        if keycode is not None:
            return keycode
        while True:
            try:
                keycode, wait = self._pool.lend(keysym, busy=set(self._held.values()))
            except KeyError:
                return None
            if self._still_as_we_left_it(keycode):
                break
            self._pool.forget(keysym)   # another client (a second session, xdotool) took it
        if wait > 0:
            self._sleep(wait)       # a client may not have read this keycode's last keysym yet
        self._originals.setdefault(keycode, self._keymap.row(keycode))
        self._conn.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._keymap.set_row(keycode, (keysym, keysym))
        self._await_mapping_notify(keycode)
        self._sleep(SETTLE)
        return keycode

    def _still_as_we_left_it(self, keycode):
        """True when the server's row for `keycode` holds what we last put there (or nothing)."""
        now = self._conn.get_keyboard_mapping(keycode, 1)[0]
        return set(now) - {0} == set(self._keymap.row(keycode)) - {0}

    def _await_mapping_notify(self, keycode):
        """Wait (bounded) until the server reports our mapping change: from then on every client
        that reads the mapping sees it."""
        deadline = self._clock() + NOTIFY_TIMEOUT
        while True:
            for event in self._pending_events():
                if self._is_mapping_notify(event, keycode):
                    return True
                if self._is_mapping_notify(event):
                    self._reload_keymap()
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            select.select([self._conn.fileno()], [], [], remaining)

    def _pending_events(self):
        while self._conn.pending_events():
            yield self._conn.next_event()

    def _is_mapping_notify(self, event, keycode=None):
        X = self._X
        if event.type != X.MappingNotify:
            return False
        if keycode is None:
            return True
        return (event.request == X.MappingKeyboard
                and event.first_keycode <= keycode < event.first_keycode + event.count)

    def _notice_mapping_changes(self):
        """Someone else changed the mapping (a layout switch): read it again."""
        if any(self._is_mapping_notify(event) for event in list(self._pending_events())):
            self._reload_keymap()

    def _reload_keymap(self):
        """Read the mapping again; spare keycodes that are no longer as we left them leave the pool."""
        self._keymap = self._read_keymap()
        for keysym, (keycode, _) in list(self._pool.lent.items()):
            if self._keymap.row(keycode)[:1] != (keysym,):
                self._pool.forget(keysym)
        self._pool.free = [code for code in self._pool.free if not any(self._keymap.row(code))]

    def _read_keymap(self):
        info = self._conn.display.info
        first, count = info.min_keycode, info.max_keycode - info.min_keycode + 1
        return Keymap(first, self._conn.get_keyboard_mapping(first, count),
                      self._conn.get_modifier_mapping())

    def _fake(self, event_type, keycode):
        self._xtest.fake_input(self._conn, event_type, keycode)
