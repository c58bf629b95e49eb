"""tagio.session.inject: the keyboard backend chosen per platform, and Key/Text messages routed to
it (a recording keyboard stands in; the real backends have their own tests)."""

import unittest
from unittest import mock

from tagio.protocol import session as m
from tagio.session import inject


class RecordingKeyboard:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


class KeyboardBackends(unittest.TestCase):
    def test_backend_per_platform(self):
        with mock.patch.object(inject.sys, "platform", "win32"):
            with mock.patch("tagio.session.keyboard_win32.SendInputSender", lambda: "sender"):
                self.assertEqual(type(inject.open_keyboard()).__name__, "Win32Keyboard")
        with mock.patch.object(inject.sys, "platform", "linux"):
            with mock.patch("tagio.session.keyboard_x11.X11Keyboard.open", lambda display: ("x11", display)):
                self.assertEqual(inject.open_keyboard(":5"), ("x11", ":5"))

    def test_key_and_text_messages_reach_the_keyboard(self):
        injector = inject.Injector()
        injector._keyboard = keyboard = RecordingKeyboard()
        for msg in (m.Key("Shift_L", True), m.Text("<é"), m.Key("Shift_L", False)):
            injector.handle(msg)
        injector.release_all()
        self.assertEqual(keyboard.calls, [("press", "Shift_L"), ("type", "<é"), ("release", "Shift_L"),
                                          ("release_all",)])

    def test_unknown_key_is_keyerror_for_the_host_to_report(self):
        class Refusing(RecordingKeyboard):
            def press(self, name):
                raise KeyError(name)
        injector = inject.Injector()
        injector._keyboard = Refusing()
        with self.assertRaises(KeyError):
            injector.handle(m.Key("NoSuchKey", True))


if __name__ == "__main__":
    unittest.main()
