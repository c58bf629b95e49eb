"""The "being controlled" bar (tagio.ui.prompts.ControlledIndicator) on a desk with two monitors.

A tester with two monitors found the bar centred on the whole virtual screen, that is astride the
edge between them. Here a real Xorg with two RandR outputs (tests/multimon.py) has its SECOND
output made primary with xrandr, as a person does in the display settings, and a child process
(Tk must not live in this process on an X server that stops: tests/xvfb.py) opens the bar and
says where it is: at the top of the primary monitor, centred on it. On one monitor the bar is
centred on the screen as before.
"""

import subprocess
import sys
import unittest

from tests.desk import ROOT
from tests.multimon import MONITORS, MultiMonitorX, skip_unless_multimon
from tests.xvfb import Xvfb, skip_unless_xvfb

# Opens the bar, waits until it is mapped (bounded), prints "x y width" of it.
CHILD = """
import time, tkinter as tk
from tagio.ui import theme
from tagio.ui.prompts import ControlledIndicator
root = tk.Tk(); theme.apply(root); root.withdraw()
bar = ControlledIndicator(root, "123456789", lambda _p: None)
deadline = time.monotonic() + 20
while not bar.winfo_viewable() and time.monotonic() < deadline:
    root.update()
    time.sleep(0.01)
root.update()
print(bar.winfo_rootx(), bar.winfo_rooty(), bar.winfo_width())
"""


def bar_place(x_display):
    env = x_display.env()
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
    if done.returncode != 0:
        raise AssertionError(f"the bar's process failed: {done.stderr.strip()[-2000:]}")
    return tuple(int(v) for v in done.stdout.split())


@skip_unless_multimon
class TwoMonitors(unittest.TestCase):
    def test_the_bar_is_centred_on_the_primary_monitor(self):
        x = MultiMonitorX().start()
        self.addCleanup(x.stop)
        name, width, _height, left = MONITORS[1]
        subprocess.run(["xrandr", "--output", name, "--primary"], env=x.env(), check=True,
                       capture_output=True, timeout=20)
        bar_x, bar_y, bar_w = bar_place(x)
        self.assertEqual(bar_y, 0)
        self.assertLessEqual(abs(bar_x + bar_w // 2 - (left + width // 2)), 1, (bar_x, bar_w))


@skip_unless_xvfb
class OneMonitor(unittest.TestCase):
    def test_the_bar_is_centred_on_the_screen(self):
        x = Xvfb(1000, 600).start()
        self.addCleanup(x.stop)
        bar_x, bar_y, bar_w = bar_place(x)
        self.assertEqual(bar_y, 0)
        self.assertLessEqual(abs(bar_x + bar_w // 2 - 500), 1, (bar_x, bar_w))


if __name__ == "__main__":
    unittest.main()
