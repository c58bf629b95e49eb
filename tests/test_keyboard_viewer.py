"""Viewer keyboard translation (tagio.ui.keys): Tk key events as X11, Windows and macOS Tk report
them -> text or named keys. Pure: no Tk, no X."""

import unittest

from tagio.ui.keys import KeyboardState, event_text, is_shortcut, key_name, modifiers

SHIFT, LOCK, CTRL = 0x1, 0x2, 0x4
X11_ALT, X11_NUMLOCK, X11_SUPER, X11_ALTGR = 0x8, 0x10, 0x40, 0x80
WIN_NUMLOCK, WIN_ALT = 0x8, 0x20000


def press(kb, keysym, char, state=0, keycode=None):
    return kb.press(keycode if keycode is not None else hash(keysym) & 0xFFFF, keysym, char, state)


LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class ModifierMasks(unittest.TestCase):
    def test_x11_bit_8_is_alt(self):
        self.assertEqual(modifiers(X11_ALT | CTRL, "x11"), {"Alt", "Control"})
        self.assertEqual(modifiers(X11_NUMLOCK | X11_ALTGR, "x11"), {"NumLock", "AltGr"})
        self.assertEqual(modifiers(X11_SUPER, "x11"), {"Super"})

    def test_windows_bit_8_is_num_lock_and_alt_is_0x20000(self):
        self.assertEqual(modifiers(WIN_NUMLOCK, "win32"), {"NumLock"})
        self.assertEqual(modifiers(WIN_ALT | SHIFT, "win32"), {"Alt", "Shift"})
        self.assertFalse(is_shortcut(modifiers(WIN_NUMLOCK | SHIFT | LOCK, "win32"), "win32"))
        self.assertTrue(is_shortcut(modifiers(WIN_ALT, "win32"), "win32"))

    def test_windows_ctrl_alt_is_altgr_not_a_shortcut(self):
        self.assertFalse(is_shortcut(modifiers(CTRL | WIN_ALT, "win32"), "win32"))
        self.assertTrue(is_shortcut(modifiers(CTRL | X11_ALT, "x11"), "x11"))

    def test_macos_command_is_a_shortcut_option_is_text(self):
        self.assertTrue(is_shortcut(modifiers(0x8, "aqua"), "aqua"))
        self.assertFalse(is_shortcut(modifiers(0x10, "aqua"), "aqua"))


class TextOrKey(unittest.TestCase):
    def test_translation_table(self):       # (moved from test_viewer_window.KeyNames)
        kb = KeyboardState("x11")
        self.assertEqual(press(kb, "Return", "\r"), [("key", "Return", True)])
        self.assertEqual(press(kb, "F5", ""), [("key", "F5", True)])
        self.assertEqual(press(kb, "a", "a"), [("text", "a")])
        self.assertEqual(press(kb, "exclam", "!", SHIFT), [("text", "!")])
        self.assertEqual(press(kb, "eacute", "é"), [("text", "é")])
        self.assertEqual(press(kb, "c", "\x03", CTRL), [("key", "c", True)])       # Ctrl+C
        self.assertEqual(press(kb, "Control_L", ""), [("key", "Control_L", True)])

    def test_shift_less_is_the_character_not_shift_plus_less(self):
        """The old bug: Shift plus the already shifted keysym was typed shifted again (`>`)."""
        kb = KeyboardState("x11")
        self.assertEqual(press(kb, "Shift_L", "", 0, keycode=50), [("key", "Shift_L", True)])
        self.assertEqual(press(kb, "less", "<", SHIFT, keycode=94), [("text", "<")])
        self.assertEqual(kb.release(94), [])
        self.assertEqual(kb.release(50), [("key", "Shift_L", False)])

    def test_altgr_characters_are_text(self):
        kb = KeyboardState("x11")
        self.assertEqual(press(kb, "ISO_Level3_Shift", "", 0), [("key", "ISO_Level3_Shift", True)])
        for keysym, char in (("at", "@"), ("EuroSign", "€"), ("bar", "|"), ("braceleft", "{")):
            self.assertEqual(press(kb, keysym, char, X11_ALTGR), [("text", char)])
        win = KeyboardState("win32")
        self.assertEqual(press(win, "Control_L", "", CTRL), [("key", "Control_L", True)])
        self.assertEqual(press(win, "Alt_R", "", CTRL | WIN_ALT), [("key", "Alt_R", True)])
        self.assertEqual(press(win, "q", "@", CTRL | WIN_ALT), [("text", "@")])     # AltGr+Q (German)

    def test_num_lock_on_windows_does_not_drop_non_ascii(self):
        kb = KeyboardState("win32")
        for keysym, char in (("adiaeresis", "ä"), ("eacute", "é"), ("ssharp", "ß"), ("??", "ж")):
            self.assertEqual(press(kb, keysym, char, WIN_NUMLOCK), [("text", char)])
            self.assertEqual(press(kb, keysym, char, WIN_NUMLOCK | SHIFT | LOCK), [("text", char)])

    def test_shortcuts_are_keys_with_their_modifiers(self):
        kb = KeyboardState("x11")
        sent = (press(kb, "Control_L", "", 0, 37) + press(kb, "Shift_L", "", CTRL, 50)
                + press(kb, "T", "\x14", CTRL | SHIFT, 28))
        self.assertEqual(sent, [("key", "Control_L", True), ("key", "Shift_L", True), ("key", "T", True)])
        self.assertEqual(press(kb, "1", "1", CTRL, 10), [("key", "1", True)])     # Ctrl+1 has a char
        alt_tab = KeyboardState("x11")
        self.assertEqual(press(alt_tab, "Alt_L", "", 0, 64) + press(alt_tab, "Tab", "\t", X11_ALT, 23),
                         [("key", "Alt_L", True), ("key", "Tab", True)])
        self.assertEqual(press(KeyboardState("x11"), "e", "e", X11_SUPER), [("key", "e", True)])

    def test_windows_key_held_makes_a_shortcut_although_tk_has_no_bit_for_it(self):
        kb = KeyboardState("win32")
        self.assertEqual(press(kb, "Win_L", "", 0, 91), [("key", "Super_L", True)])
        self.assertEqual(press(kb, "e", "e", 0, 69), [("key", "e", True)])
        kb.release(69)
        self.assertEqual(kb.release(91), [("key", "Super_L", False)])
        self.assertEqual(press(kb, "e", "e", 0, 69), [("text", "e")])

    def test_release_follows_what_the_press_sent_even_if_modifiers_changed(self):
        kb = KeyboardState("x11")
        press(kb, "Control_L", "", 0, 37)
        self.assertEqual(press(kb, "c", "\x03", CTRL, 54), [("key", "c", True)])
        self.assertEqual(kb.release(37), [("key", "Control_L", False)])
        self.assertEqual(kb.release(54), [("key", "c", False)])     # Ctrl let go first: still a key

    def test_release_all_lets_go_of_held_keys_only(self):
        kb = KeyboardState("x11")
        press(kb, "Shift_L", "", 0, 50)
        press(kb, "a", "A", SHIFT, 38)                              # text: nothing held
        press(kb, "Control_R", "", SHIFT, 105)
        self.assertEqual(kb.release_all(), [("key", "Control_R", False), ("key", "Shift_L", False)])
        self.assertEqual(kb.release_all(), [])
        self.assertEqual(kb.release(50), [])

    def test_keys_the_viewer_layout_consumes_are_not_sent(self):
        kb = KeyboardState("x11")
        for keysym in ("dead_acute", "dead_circumflex", "Multi_key", "Caps_Lock", "Num_Lock"):
            self.assertEqual(press(kb, keysym, ""), [], keysym)
        self.assertEqual(press(kb, "e", "é"), [("text", "é")])       # what the dead key composed

    def test_input_method_commits_and_astral_characters_are_text(self):
        kb = KeyboardState("x11")
        self.assertEqual(press(kb, "Cyrillic_zhe", "ж"), [("text", "ж")])
        self.assertEqual(press(kb, "U4E2D", "中文"), [("text", "中文")])
        self.assertEqual(press(kb, "U1F600", "\ud83d\ude00"), [("text", "\U0001F600")])

    def test_names(self):
        self.assertEqual(key_name("Win_R", ""), "Super_R")
        self.assertEqual(key_name("App", ""), "Menu")
        self.assertEqual(key_name("KP_End", ""), "End")         # Num Lock off on the viewer
        self.assertEqual(key_name("??", "ж"), "ж")
        self.assertIsNone(key_name("??", "\x01"))
        self.assertIsNone(key_name("x" * 33, ""))
        self.assertEqual(event_text("\x7f"), "")
        self.assertEqual(event_text(" "), " ")


if __name__ == "__main__":
    unittest.main()
