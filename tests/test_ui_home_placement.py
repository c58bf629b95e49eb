"""Where the home window opens, through the real program: `tagio-gui.py` on an X server with no
window manager (nothing else would place it), looked at with xdotool.

It opens home.HOME_WIDTH wide (what its cards ask for, whatever their texts), centred on the primary monitor: on a
plain Xvfb, the screen's middle; on a real two-monitor X server (tests/multimon.py: 1280x720
primary on the left, 1024x768 beside it), the first monitor's middle, not the seam between the
two where the virtual screen's middle is (and not 0,0, where Tk leaves a window on its own).
"""

import re
import subprocess
import sys
import tempfile
import unittest

from tagio.ui.home import HOME_WIDTH
from tests.desk import ROOT
from tests.multimon import MultiMonitorX, skip_unless_multimon
from tests.test_e2e import GUI, _reap, free_port
from tests.waiting import wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb

WINDOW_WAIT = 30.0
STATUS_LINE = 24            # pixels: a line of the status bar


def window_geometry(display_env):
    """(x, y, width, height) of the mapped window named "TagIO", or None while there is none."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^TagIO$",
                            "getwindowgeometry"], env=display_env, capture_output=True, text=True,
                           timeout=10).stdout
    position = re.search(r"Position: (-?\d+),(-?\d+)", found)
    size = re.search(r"Geometry: (\d+)x(\d+)", found)
    if not (position and size):
        return None
    return tuple(map(int, position.groups() + size.groups()))


class HomePlacementCase(unittest.TestCase):
    def open_home(self, server):
        """Start the real window on `server`; its geometry once it has its size."""
        self.addCleanup(server.stop)
        config = tempfile.TemporaryDirectory()
        self.addCleanup(config.cleanup)
        env = server.env()
        env.update(PYTHONPATH=str(ROOT), TAGIO_LAN="0")
        env.pop("TAGIO_RELAY", None)
        proc = subprocess.Popen([sys.executable, GUI, "--config-dir", config.name, "--relay",
                                 f"127.0.0.1:{free_port(__import__('socket').SOCK_STREAM)}"],
                                env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(_reap, proc)
        return wait_until(lambda: (lambda g: g if g and g[2] > 1 else None)(window_geometry(env)),
                          timeout=WINDOW_WAIT, what="the home window on screen")

    def assert_centred(self, geometry, monitor):
        x, y, width, height = geometry
        left, top, mon_w, mon_h = monitor
        self.assertEqual(width, HOME_WIDTH)
        self.assertLess(height, mon_h)
        self.assertLessEqual(abs(x - (left + (mon_w - width) // 2)), 1, geometry)
        # (its height may grow by a line after it was placed: the status bar follows what it says)
        self.assertLessEqual(abs(y - (top + (mon_h - height) // 2)), STATUS_LINE, geometry)


@skip_unless_xvfb
class OneScreenTest(HomePlacementCase):
    def test_centred_at_its_own_size_without_a_window_manager(self):
        geometry = self.open_home(Xvfb(1280, 800).start())
        self.assert_centred(geometry, (0, 0, 1280, 800))


@skip_unless_multimon
class TwoMonitorsTest(HomePlacementCase):
    def test_centred_on_the_primary_monitor(self):
        server = MultiMonitorX().start()
        geometry = self.open_home(server)
        self.assert_centred(geometry, server.monitors[0])


if __name__ == "__main__":
    unittest.main()
