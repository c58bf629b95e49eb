"""The X11 host keyboard (tagio.session.keyboard_x11): pure keymap logic, then real XTest typing
into a Tk Text on a private Xvfb display (no window manager) checked where it lands."""

import json
import queue
import subprocess
import sys
import threading
import time
import unittest

from tagio.protocol import keys
from tagio.session import keyboard_x11 as kx
from tests.platforms import XLIB, skip_unless_module
from tests.xvfb import Xvfb, skip_unless_xvfb

# A Tk window with a Text that has the keyboard focus. It prints every KeyPress (keysym, char,
# state) as a JSON line and, on F12, the Text's whole content (F12 itself is not inserted). Events
# arrive in order, so the content printed on F12 holds every character typed before it.
TARGET = r"""
import json, sys, tkinter as tk
root = tk.Tk()
root.title("keyboard target")
root.geometry("640x400+0+0")
text = tk.Text(root, font=("TkFixedFont", 10))
text.pack(fill="both", expand=True)
def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n"); sys.stdout.flush()
def on_key(event):
    emit(kind="key", keysym=event.keysym, char=event.char, state=event.state)
    if event.keysym == "F12":
        emit(kind="content", text=text.get("1.0", "end-1c"))
        return "break"
    if event.state & 0x4c:          # Ctrl/Alt/Super combinations are logged, not applied
        return "break"
text.bind("<KeyPress>", on_key)
def clear():
    text.delete("1.0", "end")
    emit(kind="cleared")
text.bind("<F11>", lambda e: (clear(), "break")[1])
def ready():
    root.focus_force()
    text.focus_set()
    emit(kind="ready", frame=int(root.wm_frame(), 16))
root.after(200, ready)
root.mainloop()
"""

# 300 characters: ASCII punctuation (with < > | \ { } ~ @), accented and symbols (é è ê ñ ß €),
# Cyrillic, CJK and Korean, tabs and newlines.
_PIECES = (
    "Hello, World! <tag> a|b \\path\\ {x} ~home @user #1 $2 %3 ^4 &5 *6 (7) _8 +9 =0 [a] ;: 'q' \"d\" `b` ?/\n",
    "\tcafé crème, être, niño, straße, 100 € ÉÈÊÑ\n",
    "\tПривет, мир! Съешь же ещё этих мягких булок. ЖжЁё\n",
    "中文输入测试，日本語のテキスト。한국어\n",
)
MIXED = ("".join(_PIECES) * 3)[:300]
assert len(MIXED) == 300


class Target:
    """The TARGET script as a process on `env`'s display; its JSON lines arrive on a queue."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, "-c", TARGET], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, encoding="utf-8")
        self.lines = queue.Queue(maxsize=100_000)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait(self, kind, timeout=30):
        """The next line of `kind`, skipping others; those skipped are returned too."""
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if line["kind"] == kind:
                return line, seen
        raise AssertionError(f"no {kind!r} line from the target within {timeout} s; saw {seen[-5:]}")

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


@skip_unless_module("Xlib", XLIB)
class KeysymsAndNames(unittest.TestCase):
    def test_char_keysyms(self):
        self.assertEqual(kx.char_keysyms("<"), [0x3C])
        self.assertEqual(kx.char_keysyms("é"), [0xE9])
        self.assertEqual(kx.char_keysyms("ж", legacy={"ж": 0x6D6}), [0x6D6, 0x1000436])
        self.assertEqual(kx.char_keysyms("中", legacy={}), [0x1004E2D])
        self.assertEqual(kx.legacy_keysyms().get("€"), 0x20AC)

    def test_name_keysym(self):
        self.assertEqual(kx.name_keysym("Return"), 0xFF0D)
        self.assertEqual(kx.name_keysym("Win_L"), 0xFFEB)          # Super_L
        self.assertEqual(kx.name_keysym("Cyrillic_zhe"), 0x6D6)
        self.assertEqual(kx.name_keysym("U4E2D"), 0x1004E2D)
        self.assertEqual(kx.name_keysym("less"), 0x3C)
        self.assertEqual(kx.name_keysym("é"), 0xE9)
        self.assertIsNone(kx.name_keysym("NoSuchKeyName"))

    def test_every_named_key_has_a_keysym(self):
        for name in keys.NAMED_KEYS | set(keys.ALIASES):
            self.assertIsNotNone(kx.name_keysym(name), name)

    def test_text_units(self):
        self.assertEqual(keys.text_units("a\r\nb\tc\x07"),
                         [("char", "a"), ("key", "Return"), ("char", "b"), ("key", "Tab"), ("char", "c")])


class KeymapLogic(unittest.TestCase):
    # keycodes 10.. : a/A, </>, (empty), Shift_L, ISO_Level3_Shift, q/Q/@ (level 3), Num_Lock, Caps_Lock
    ROWS = [(0x61, 0x41, 0, 0, 0, 0), (0x3C, 0x3E, 0, 0, 0x7C, 0), (0, 0, 0, 0, 0, 0),
            (0xFFE1, 0, 0, 0, 0, 0), (0xFE03, 0, 0, 0, 0, 0), (0x71, 0x51, 0, 0, 0x40, 0),
            (0xFF7F, 0, 0, 0, 0, 0), (0xFFE5, 0, 0, 0, 0, 0)]
    MODMAP = [(13,), (17,), (), (), (16,), (), (), (14,)]

    def keymap(self):
        return kx.Keymap(10, self.ROWS, self.MODMAP)

    def test_find_prefers_lower_levels_and_reports_the_level(self):
        km = self.keymap()
        self.assertEqual(km.find([0x3E], (0, 1, 4, 5)), (11, 1))
        self.assertEqual(km.find([0x40], (0, 1, 4, 5)), (15, 4))
        self.assertIsNone(km.find([0x40], (0, 1)))
        self.assertEqual(km.find([0x999, 0x61], (0, 1)), (10, 0))
        self.assertIsNone(km.find([0x61], (0, 1), exclude={10}))

    def test_spares_and_modifiers(self):
        km = self.keymap()
        self.assertEqual(km.spare_keycodes(), [12])
        self.assertEqual(km.modifier_keycodes(), {13, 14})      # not Caps Lock, not Num Lock
        self.assertEqual(km.keycode_of(0xFE03), 14)
        self.assertEqual(kx.LEVEL_MODIFIERS[km.find([0x40], (0, 1, 4, 5))[1]], ("level3",))


class SparePoolLogic(unittest.TestCase):
    def test_free_first_then_least_recently_used_after_the_grace_time(self):
        now = [100.0]
        pool = kx.SparePool([8, 9], clock=lambda: now[0], reuse_after=1.0)
        self.assertEqual(pool.lend(0x1000436), (8, 0.0))
        self.assertEqual(pool.lend(0x1004E2D), (9, 0.0))
        now[0] = 100.4
        pool.touch(0x1000436)                   # ж used again: 中 is now the oldest
        code, wait = pool.lend(0x10020AC)
        self.assertEqual(code, 9)
        self.assertAlmostEqual(wait, 0.6)       # 中 was last used at 100.0
        self.assertIsNone(pool.lookup(0x1004E2D))
        self.assertEqual(pool.lookup(0x10020AC), 9)
        self.assertAlmostEqual(pool.settle_time(), 1.0)

    def test_a_held_keycode_is_never_taken_and_none_left_is_keyerror(self):
        pool = kx.SparePool([8], clock=lambda: 0.0)
        pool.lend(1)
        with self.assertRaises(KeyError):
            pool.lend(2, busy={8})
        self.assertEqual(pool.lend(2, busy=set())[0], 8)
        with self.assertRaises(KeyError):
            kx.SparePool([], clock=lambda: 0.0).lend(3)


@skip_unless_xvfb
class TypingOnXvfb(unittest.TestCase):
    """XTest typing with no window manager: the target holds the focus by itself (focus_force)."""

    @classmethod
    def setUpClass(cls):
        cls.xvfb = Xvfb(640, 400).start()
        cls.target = Target(cls.xvfb.env())
        cls.target.wait("ready")
        cls.kb = kx.X11Keyboard.open(cls.xvfb.display)

    @classmethod
    def tearDownClass(cls):
        cls.kb.close()
        cls.target.stop()
        cls.xvfb.stop()

    def setUp(self):
        self.tap("F11")
        self.target.wait("cleared")

    def tap(self, name):
        self.kb.press(name)
        self.kb.release(name)

    def content(self):
        self.tap("F12")
        return self.target.wait("content")

    def test_less_with_shift_held_arrives_as_less(self):
        """The old bug: `<` typed while the viewer holds Shift arrived as `>`."""
        self.kb.press("Shift_L")
        self.kb.type("<")
        self.kb.type(">|")
        self.kb.release("Shift_L")
        self.assertEqual(self.content()[0]["text"], "<>|")

    def test_mixed_text_arrives_exactly(self):
        for start in range(0, len(MIXED), 37):      # in pieces, as Text messages arrive
            self.kb.type(MIXED[start:start + 37])
        self.assertEqual(self.content()[0]["text"], MIXED)

    def test_caps_lock_on_the_host_does_not_change_typed_case(self):
        self.tap("Caps_Lock")
        try:
            self.kb.type("aB ж")
            self.tap("a")                           # a key, not text: Caps Lock applies
        finally:
            self.tap("Caps_Lock")
        self.assertEqual(self.content()[0]["text"], "aB жA")

    def test_shortcuts_arrive_as_combinations(self):
        combos = (("Control_L", "c"), ("Control_L", "Shift_L", "T"), ("Alt_L", "Tab"), ("Super_L", "e"))
        for combo in combos:
            for name in combo:
                self.kb.press(name)
            for name in reversed(combo):
                self.kb.release(name)
        _, seen = self.content()
        got = [(e["keysym"], e["state"] & 0x4D) for e in seen if e["kind"] == "key"]
        for expected in (("c", 0x4), ("T", 0x5), ("Tab", 0x8), ("e", 0x40), ("Super_L", 0)):
            self.assertIn(expected, got)

    def test_keys_held_are_released_and_borrowed_keycodes_restored_on_close(self):
        from Xlib import display
        kb = kx.X11Keyboard.open(self.xvfb.display)
        probe = display.Display(self.xvfb.display)
        self.addCleanup(probe.close)
        spares = kb._keymap.spare_keycodes()
        kb.type("ꙮ")                                # on no keyboard: borrows a spare keycode
        kb.press("Control_L")
        control = kb._keymap.keycode_of(0xFFE3)
        is_down = lambda: bool(probe.query_keymap()[control // 8] & (1 << (control % 8)))
        self.assertTrue(is_down())
        kb.close()
        self.assertFalse(is_down())
        first = probe.display.info.min_keycode
        rows = probe.get_keyboard_mapping(first, probe.display.info.max_keycode - first + 1)
        self.assertEqual([code for code in spares if any(rows[code - first])], [])
        self.assertEqual(self.content()[0]["text"], "ꙮ")

    def test_a_spare_keycode_another_client_took_is_left_alone(self):
        from Xlib import display
        kb = kx.X11Keyboard.open(self.xvfb.display)
        other = display.Display(self.xvfb.display)
        self.addCleanup(other.close)
        taken = kb._pool.free[0]                    # what kb would borrow first...
        other.change_keyboard_mapping(taken, [(0x1000A66E, 0x1000A66E)])    # ...but xdotool got it
        other.sync()
        self.addCleanup(lambda: (other.change_keyboard_mapping(taken, [(0, 0)]), other.sync()))
        kb.type("ꙭ")
        self.assertEqual(set(other.get_keyboard_mapping(taken, 1)[0]) - {0}, {0x1000A66E})
        kb.close()
        self.assertEqual(set(other.get_keyboard_mapping(taken, 1)[0]) - {0}, {0x1000A66E})
        self.assertEqual(self.content()[0]["text"], "ꙭ")

    def test_unknown_names_raise_keyerror(self):
        with self.assertRaises(KeyError):
            self.kb.press("NoSuchKeyName")


if __name__ == "__main__":
    unittest.main()
