"""tagio.platform's Windows branches with fake DLLs: per-monitor DPI awareness (and its fallbacks
on older Windows), and the message box for start-up errors of the windowed exe."""

import ctypes
import unittest
from unittest import mock

from tagio import platform
from tests.platforms import windows_only

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class FakeUser32:
    def __init__(self, has_context=True, context_ok=True):
        self.calls = []
        if has_context:
            self.SetProcessDpiAwarenessContext = self._context
        self._context_ok = context_ok

    def _context(self, value):
        self.calls.append(("context", value.value))
        return 1 if self._context_ok else 0

    def SetProcessDPIAware(self):
        self.calls.append(("system",))
        return 1


class FakeShcore:
    def __init__(self, result=0):
        self.result, self.calls = result, []

    def SetProcessDpiAwareness(self, value):
        self.calls.append(value)
        return self.result


class DpiAwareness(unittest.TestCase):
    def test_windows_10_gets_per_monitor_v2(self):
        user32 = FakeUser32()
        self.assertEqual(platform.set_dpi_awareness(user32, FakeShcore()), "per-monitor-v2")
        self.assertEqual(user32.calls, [("context", ctypes.c_void_p(-4).value)])   # the HANDLE (DPI_AWARENESS_CONTEXT)-4

    def test_windows_8_1_falls_back_to_per_monitor(self):
        shcore = FakeShcore()
        self.assertEqual(platform.set_dpi_awareness(FakeUser32(has_context=False), shcore), "per-monitor")
        self.assertEqual(shcore.calls, [2])

    def test_already_set_or_old_windows(self):
        user32 = FakeUser32(context_ok=False)     # a second call fails (E_ACCESSDENIED)
        self.assertEqual(platform.set_dpi_awareness(user32, FakeShcore(result=-2147024891)), "system")
        self.assertEqual(platform.set_dpi_awareness(FakeUser32(has_context=False), None), "system")

    def test_nothing_elsewhere(self):
        if not platform.WINDOWS:
            self.assertEqual(platform.set_dpi_awareness(), "")


class StartupErrorBox(unittest.TestCase):
    def test_box_only_when_stderr_went_to_the_log(self):
        shown = []
        for mode, expected in (("log", True), ("discarded", True), ("console", False), ("unchanged", False)):
            with self.subTest(mode), mock.patch.object(platform, "streams_mode", mode):
                got = platform.tell_user("cannot open a window", show=lambda t, x: shown.append((t, x)) or True)
                self.assertEqual(got, expected)
        self.assertEqual(shown, [("TagIO", "cannot open a window")] * 2)


@windows_only("the real SetProcessDpiAwarenessContext")
class RealDpi(unittest.TestCase):
    LAYER = "e2e"

    def test_the_call_does_not_raise(self):
        self.assertIn(platform.set_dpi_awareness(), ("per-monitor-v2", "per-monitor", "system", ""))


if __name__ == "__main__":
    unittest.main()
