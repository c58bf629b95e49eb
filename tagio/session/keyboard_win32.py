"""Host keyboard on Windows: SendInput, characters as Unicode packets, keys as virtual keys.

Theory of operation. Characters (Text) are sent as KEYEVENTF_UNICODE packets, one down/up pair
per UTF-16 code unit (a character outside the BMP is its two surrogates): Windows delivers them as
WM_CHAR whatever the layout of the window in front, so `é`, `ж` or `中` arrive as themselves. The
modifiers the viewer holds (AltGr arrives from a Windows viewer as Ctrl+Alt) are let go around them,
so an application does not read Ctrl+character. Newline and tab are the Return and Tab keys.

Keys (shortcuts, special keys) are virtual keys with their scan code, and the extended flag where
the key is one of the extended set (arrows, Insert/Delete/Home/End/Page keys, right Ctrl/Alt, the
Windows keys...). A key named by a character is looked up in the layout of the *foreground*
window's thread (VkKeyScanExW with that thread's GetKeyboardLayout), not in our own thread's, so
Ctrl+C is the key that types `c` where the user is typing. The modifiers are real key presses,
sent when the viewer pressed them: Ctrl+Shift+T is VK_LCONTROL, VK_LSHIFT, 'T' and fires as such
(pynput sends Shift+letter as a Unicode packet, and the shortcut never fires).

Everything but `SendInputSender` and `foreground_char_vk` is pure and runs on any platform; tests
give `Win32Keyboard` a recording `send` and a table for `char_vk`.
"""

from collections import namedtuple

from tagio.protocol import keys

KEYEVENTF_EXTENDEDKEY = 0x0001
KEYEVENTF_KEYUP = 0x0002
KEYEVENTF_UNICODE = 0x0004
INPUT_KEYBOARD = 1

KeyInput = namedtuple("KeyInput", "vk scan flags")     # one KEYBDINPUT (scan 0: look it up)

# Named key -> (virtual key, extended).
VIRTUAL_KEYS = {
    "Return": (0x0D, False), "KP_Enter": (0x0D, True), "BackSpace": (0x08, False),
    "Tab": (0x09, False), "Escape": (0x1B, False), "Delete": (0x2E, True), "KP_Delete": (0x2E, False),
    "Insert": (0x2D, True), "Home": (0x24, True), "End": (0x23, True), "Prior": (0x21, True),
    "Next": (0x22, True), "Left": (0x25, True), "Up": (0x26, True), "Right": (0x27, True),
    "Down": (0x28, True), "Shift_L": (0xA0, False), "Shift_R": (0xA1, False),
    "Control_L": (0xA2, False), "Control_R": (0xA3, True), "Alt_L": (0xA4, False),
    "Alt_R": (0xA5, True), "ISO_Level3_Shift": (0xA5, True),     # AltGr is the right Alt key
    "Super_L": (0x5B, True), "Super_R": (0x5C, True), "Caps_Lock": (0x14, False),
    "Num_Lock": (0x90, True), "Scroll_Lock": (0x91, False), "Print": (0x2C, True),
    "Pause": (0x13, False), "Menu": (0x5D, True), "space": (0x20, False),
    **{f"F{n}": (0x6F + n, False) for n in range(1, 21)},
}
MODIFIER_VKS = frozenset({0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x5B, 0x5C})


def unicode_inputs(char: str) -> list:
    """Down/up Unicode packets for one character (two pairs for a surrogate pair)."""
    data = char.encode("utf-16-le")
    units = [int.from_bytes(data[i:i + 2], "little") for i in range(0, len(data), 2)]
    out = []
    for unit in units:
        out.append(KeyInput(0, unit, KEYEVENTF_UNICODE))
        out.append(KeyInput(0, unit, KEYEVENTF_UNICODE | KEYEVENTF_KEYUP))
    return out


def vk_input(vk, extended, pressed) -> KeyInput:
    flags = (KEYEVENTF_EXTENDEDKEY if extended else 0) | (0 if pressed else KEYEVENTF_KEYUP)
    return KeyInput(vk, 0, flags)


def key_vk(name, char_vk):
    """A key name -> (virtual key, extended). `char_vk(char)` looks a character up in the
    foreground layout (-> vk or None). Raises KeyError for names that are no key here."""
    name = keys.canonical(name)
    if name in VIRTUAL_KEYS:
        return VIRTUAL_KEYS[name]
    char = keys.key_char(name)
    if char is None:
        raise KeyError(name)
    if char.isascii() and char.isalnum():
        return ord(char.upper()), False         # VK_A..VK_Z, VK_0..VK_9 on every layout
    vk = char_vk(char)
    if vk is None:
        raise KeyError(name)
    return vk, False


class Win32Keyboard:
    """The keyboard backend (tagio.session.inject). `send(list[KeyInput])` injects; `char_vk`
    as in key_vk."""

    def __init__(self, send=None, char_vk=None):
        self._send = SendInputSender() if send is None else send
        self._char_vk = foreground_char_vk if char_vk is None else char_vk
        self._held = {}             # key name -> (vk, extended)

    def press(self, name):
        vk, extended = key_vk(name, self._char_vk)
        self._send([vk_input(vk, extended, True)])
        self._held[name] = (vk, extended)

    def release(self, name):
        held = self._held.pop(name, None)
        if held is not None:            # else never pressed here, or released already
            self._send([vk_input(*held, False)])

    def type(self, text):
        lifted = [(vk, ext) for vk, ext in self._held.values() if vk in MODIFIER_VKS]
        inputs = [vk_input(vk, ext, False) for vk, ext in lifted]
        for kind, value in keys.text_units(text):
            if kind == "key":
                vk, ext = VIRTUAL_KEYS[value]
                inputs += [vk_input(vk, ext, True), vk_input(vk, ext, False)]
            else:
                inputs += unicode_inputs(value)
        inputs += [vk_input(vk, ext, True) for vk, ext in lifted]
        self._send(inputs)

    def release_all(self):
        held = list(self._held.values())
        self._held.clear()
        if held:
            self._send([vk_input(vk, ext, False) for vk, ext in reversed(held)])

    def close(self):
        self.release_all()


def foreground_char_vk(char):
    """The virtual key that types `char` in the layout of the window the user types into."""
    import ctypes
    from ctypes import wintypes
    user32 = ctypes.WinDLL("user32", use_last_error=True)
    # Handles are pointer-sized: without these declarations ctypes would cut them to 32 bits.
    user32.GetForegroundWindow.restype = wintypes.HWND
    user32.GetWindowThreadProcessId.argtypes = (wintypes.HWND, ctypes.c_void_p)
    user32.GetWindowThreadProcessId.restype = wintypes.DWORD
    user32.GetKeyboardLayout.argtypes = (wintypes.DWORD,)
    user32.GetKeyboardLayout.restype = wintypes.HKL
    user32.VkKeyScanExW.argtypes = (wintypes.WCHAR, wintypes.HKL)
    user32.VkKeyScanExW.restype = ctypes.c_short
    if len(char.encode("utf-16-le")) != 2:
        return None                             # outside the BMP: no key types it
    thread = user32.GetWindowThreadProcessId(user32.GetForegroundWindow(), None)
    result = user32.VkKeyScanExW(char, user32.GetKeyboardLayout(thread))
    return None if result == -1 or (result & 0xFF) == 0xFF else result & 0xFF


class SendInputSender:
    """SendInput through ctypes (Windows only): the structures as winuser.h lays them out."""

    def __init__(self):
        import ctypes
        from ctypes import wintypes
        self._ctypes = ctypes
        self._user32 = ctypes.WinDLL("user32", use_last_error=True)

        class KEYBDINPUT(ctypes.Structure):
            _fields_ = [("wVk", wintypes.WORD), ("wScan", wintypes.WORD), ("dwFlags", wintypes.DWORD),
                        ("time", wintypes.DWORD), ("dwExtraInfo", ctypes.c_size_t)]

        class MOUSEINPUT(ctypes.Structure):     # the union's largest member: sets INPUT's size
            _fields_ = [("dx", wintypes.LONG), ("dy", wintypes.LONG), ("mouseData", wintypes.DWORD),
                        ("dwFlags", wintypes.DWORD), ("time", wintypes.DWORD),
                        ("dwExtraInfo", ctypes.c_size_t)]

        class _UNION(ctypes.Union):
            _fields_ = [("ki", KEYBDINPUT), ("mi", MOUSEINPUT)]

        class INPUT(ctypes.Structure):
            _fields_ = [("type", wintypes.DWORD), ("u", _UNION)]

        self._INPUT, self._KEYBDINPUT = INPUT, KEYBDINPUT
        self._user32.SendInput.argtypes = (wintypes.UINT, ctypes.POINTER(INPUT), ctypes.c_int)
        self._user32.MapVirtualKeyW.argtypes = (wintypes.UINT, wintypes.UINT)

    def __call__(self, inputs):
        array = (self._INPUT * len(inputs))()
        for slot, item in zip(array, inputs):
            scan = item.scan
            if not item.flags & KEYEVENTF_UNICODE:
                scan = self._user32.MapVirtualKeyW(item.vk, 0)     # MAPVK_VK_TO_VSC
            slot.type = INPUT_KEYBOARD
            slot.u.ki = self._KEYBDINPUT(item.vk, scan, item.flags, 0, 0)
        sent = self._user32.SendInput(len(inputs), array, self._ctypes.sizeof(self._INPUT))
        if sent != len(inputs):
            raise OSError(f"SendInput injected {sent} of {len(inputs)} key events "
                          f"(error {self._ctypes.get_last_error()})")
