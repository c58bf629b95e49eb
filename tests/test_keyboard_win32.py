"""The Windows host keyboard (tagio.session.keyboard_win32), its pure parts on any platform: what
SendInput would be given for text, shortcuts and special keys. A recording `send` stands in for
SendInput and a table for the foreground layout's VkKeyScanExW."""

import sys
import unittest

from tagio.protocol import keys
from tagio.session import keyboard_win32 as kw
from tagio.session.keyboard_pynput import PYNPUT_KEYS

UNI, UP, EXT = kw.KEYEVENTF_UNICODE, kw.KEYEVENTF_KEYUP, kw.KEYEVENTF_EXTENDEDKEY
GERMAN = {"<": 0xE2, "@": 0x51, "-": 0xBD, "ß": 0xDB}   # VkKeyScanExW low bytes, German layout


LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class Recorder(list):
    def __call__(self, inputs):
        self.extend(inputs)


def keyboard():
    sent = Recorder()
    return kw.Win32Keyboard(send=sent, char_vk=GERMAN.get), sent


class Win32Keys(unittest.TestCase):
    def test_text_is_unicode_packets_whatever_the_layout(self):
        kb, sent = keyboard()
        kb.type("é<ж")
        self.assertEqual(sent, [(0, 0xE9, UNI), (0, 0xE9, UNI | UP), (0, 0x3C, UNI), (0, 0x3C, UNI | UP),
                                (0, 0x436, UNI), (0, 0x436, UNI | UP)])

    def test_astral_characters_are_two_surrogates_and_newline_tab_are_keys(self):
        kb, sent = keyboard()
        kb.type("\U0001F600\r\n\t")
        self.assertEqual(sent, [(0, 0xD83D, UNI), (0, 0xD83D, UNI | UP), (0, 0xDE00, UNI),
                                (0, 0xDE00, UNI | UP), (0x0D, 0, 0), (0x0D, 0, UP), (0x09, 0, 0), (0x09, 0, UP)])

    def test_ctrl_shift_t_is_virtual_keys_with_a_real_shift(self):
        """Issue 15 item 3: pynput sent Shift+letter as a Unicode packet; the shortcut never fired."""
        kb, sent = keyboard()
        for name in ("Control_L", "Shift_L", "T"):
            kb.press(name)
        for name in ("T", "Shift_L", "Control_L"):
            kb.release(name)
        self.assertEqual(sent, [(0xA2, 0, 0), (0xA0, 0, 0), (0x54, 0, 0), (0x54, 0, UP), (0xA0, 0, UP),
                                (0xA2, 0, UP)])
        self.assertFalse(any(flags & UNI for _, _, flags in sent))

    def test_special_keys_carry_the_extended_flag(self):
        kb, sent = keyboard()
        for name in ("Left", "Delete", "Win_L", "Alt_R", "F5", "Return", "KP_Enter"):
            kb.press(name)
        self.assertEqual(sent, [(0x25, 0, EXT), (0x2E, 0, EXT), (0x5B, 0, EXT), (0xA5, 0, EXT),
                                (0x74, 0, 0), (0x0D, 0, 0), (0x0D, 0, EXT)])

    def test_characters_as_keys_use_the_foreground_layout(self):
        kb, sent = keyboard()
        kb.press("less")                    # Ctrl+< on a German host: the key left of Y
        kb.press("c")
        self.assertEqual(sent, [(0xE2, 0, 0), (0x43, 0, 0)])
        with self.assertRaises(KeyError):
            kb.press("Cyrillic_zhe")        # not a single character, and no key for it
        with self.assertRaises(KeyError):
            kb.press("ж")                   # no key types it in this layout

    def test_held_modifiers_are_lifted_around_text(self):
        """AltGr from a Windows viewer arrives as Ctrl+Alt held, then the character as text."""
        kb, sent = keyboard()
        kb.press("Control_L")
        kb.press("Alt_R")
        del sent[:]
        kb.type("@")
        self.assertEqual(sent, [(0xA2, 0, UP), (0xA5, 0, EXT | UP), (0, 0x40, UNI), (0, 0x40, UNI | UP),
                                (0xA2, 0, 0), (0xA5, 0, EXT)])

    def test_release_all(self):
        kb, sent = keyboard()
        kb.press("Shift_L")
        kb.press("a")
        del sent[:]
        kb.release_all()
        self.assertEqual(sent, [(0x41, 0, UP), (0xA0, 0, UP)])
        del sent[:]
        kb.close()
        self.assertEqual(sent, [])

    @unittest.skipUnless(sys.platform == "win32", "SendInput exists only on Windows")
    def test_send_input_structure_size(self):
        sender = kw.SendInputSender()
        import ctypes
        self.assertEqual(ctypes.sizeof(sender._INPUT), 40 if ctypes.sizeof(ctypes.c_void_p) == 8 else 28)


class BackendTables(unittest.TestCase):
    def test_every_named_key_is_known_to_every_backend(self):
        for name in keys.NAMED_KEYS | set(keys.ALIASES):
            self.assertIn(keys.canonical(name), kw.VIRTUAL_KEYS, name)
            self.assertIn(keys.canonical(name), PYNPUT_KEYS, name)

    def test_key_chars(self):
        self.assertEqual(keys.key_char("less"), "<")
        self.assertEqual(keys.key_char("U4E2D"), "中")
        self.assertEqual(keys.key_char("é"), "é")
        self.assertEqual(keys.key_char("space"), " ")
        self.assertIsNone(keys.key_char("Return"))
        self.assertIsNone(keys.key_char("UD800"))
        self.assertIsNone(keys.key_char("Undo"))


if __name__ == "__main__":
    unittest.main()
