"""The Windows console of the relay, with a fake kernel32 in place of Windows': QuickEdit is switched
off where a console is attached (and nothing happens without one), and a start-up error waits for
Enter only when the console was created for this process (a double-clicked exe)."""

import unittest

from tagio import platform
from tests.platforms import windows_only

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class FakeKernel32:
    def __init__(self, mode=0x01F7, console=True, processes=1):
        self.mode, self.console, self.processes = mode, console, processes
        self.set_modes = []

    def GetStdHandle(self, which):
        assert which == platform.STD_INPUT_HANDLE
        return 0x50 if self.console else None

    def GetConsoleMode(self, handle, mode_ref):
        if not self.console:
            return 0                             # a pipe or a file: not a console
        mode_ref._obj.value = self.mode
        return 1

    def SetConsoleMode(self, handle, mode):
        self.set_modes.append(mode.value)
        return 1

    def GetConsoleProcessList(self, buffer, size):
        return self.processes if self.console else 0


class QuickEdit(unittest.TestCase):
    def test_mode_arithmetic(self):
        self.assertEqual(platform.without_quick_edit(0x01F7), 0x01B7)     # Windows 10's default input mode
        self.assertEqual(platform.without_quick_edit(0x0007), 0x0087)     # the extended flag makes it count

    def test_switched_off_where_a_console_is_attached(self):
        kernel32 = FakeKernel32(mode=0x01F7)
        self.assertTrue(platform.quick_edit_off(kernel32))
        self.assertEqual(kernel32.set_modes, [0x01B7])

    def test_nothing_to_do_or_no_console(self):
        already = FakeKernel32(mode=0x0087)
        self.assertTrue(platform.quick_edit_off(already))
        self.assertEqual(already.set_modes, [])
        none = FakeKernel32(console=False)
        self.assertFalse(platform.quick_edit_off(none))
        self.assertEqual(none.set_modes, [])
        if not platform.WINDOWS:
            self.assertFalse(platform.quick_edit_off())


class Keyboard:
    def __init__(self, tty=True):
        self.tty = tty

    def isatty(self):
        return self.tty


class PressEnter(unittest.TestCase):
    def test_waits_only_in_a_console_of_our_own(self):
        asked = []
        self.assertTrue(platform.keep_console_open(asked.append, FakeKernel32(processes=1), Keyboard()))
        self.assertEqual(asked, ["Press Enter to close this window."])
        self.assertFalse(platform.keep_console_open(asked.append, FakeKernel32(processes=2), Keyboard()))
        self.assertFalse(platform.keep_console_open(asked.append, FakeKernel32(console=False), Keyboard()))
        self.assertFalse(platform.keep_console_open(asked.append, FakeKernel32(processes=1), Keyboard(False)))
        self.assertEqual(len(asked), 1)

    def test_closed_stdin_does_not_raise(self):
        def eof(_prompt):
            raise EOFError
        self.assertTrue(platform.keep_console_open(eof, FakeKernel32(processes=1), Keyboard()))


@windows_only("the real kernel32 console calls")
class RealConsole(unittest.TestCase):
    def test_calls_do_not_raise(self):
        self.assertIn(platform.quick_edit_off(), (True, False))      # CI: there may be no console
        self.assertIsInstance(platform.console_is_ours(), bool)


if __name__ == "__main__":
    unittest.main()
