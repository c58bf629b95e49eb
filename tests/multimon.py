"""A real multi-monitor X server for tests: Xorg with the dummy video driver and two RandR outputs.

Theory of operation: Xvfb's RandR always reports one monitor (also with +xinerama), so it cannot show
how TagIO chooses between monitors. Xorg's `dummy` driver (Debian: xserver-xorg-core and
xserver-xorg-video-dummy) has sixteen RandR outputs, DUMMY0..DUMMY15, of which only DUMMY0 is
connected. `MultiMonitorX.start()` writes a small xorg.conf with a large virtual screen into a
temporary folder, starts `Xorg -displayfd` on a display number the server picks itself, then uses
`xrandr` exactly as a user would to give DUMMY0 and DUMMY1 a mode each and place them side by side:

    DUMMY0  1280x720 at +0+0        (monitor 1, primary)
    DUMMY1  1024x768 at +1280+0     (monitor 2)

mss, python-xlib and xdotool then see two monitors, with DAMAGE, XTEST and XFIXES, like a desk with two
screens. `skip_unless_multimon` skips with the reason and the packages to install when Xorg, the
dummy driver or xrandr is missing, or when the server cannot start (Xorg needs root here).
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from tests.xvfb import Xvfb

DRIVER = "/usr/lib/xorg/modules/drivers/dummy_drv.so"
MONITORS = (("DUMMY0", 1280, 720, 0), ("DUMMY1", 1024, 768, 1280))
VIRTUAL = (4096, 2048)
CONFIG = """\
Section "Device"
  Identifier "dummy"
  Driver "dummy"
  VideoRam 256000
EndSection
Section "Monitor"
  Identifier "monitor"
  HorizSync 5.0-1000.0
  VertRefresh 5.0-200.0
EndSection
Section "Screen"
  Identifier "screen"
  Device "dummy"
  Monitor "monitor"
  DefaultDepth 24
  SubSection "Display"
    Depth 24
    Virtual {width} {height}
  EndSubSection
EndSection
Section "ServerFlags"
  Option "AutoAddDevices" "false"
  Option "DontVTSwitch" "true"
EndSection
"""


def missing_reason() -> str:
    """Why no multi-monitor server can run here, or "" when one can."""
    if os.name != "posix":
        return "a multi-monitor Xorg needs a POSIX system"
    tools = [tool for tool in ("Xorg", "xrandr", "xdotool") if not shutil.which(tool)]
    if tools or not os.path.exists(DRIVER):
        return ("needs Xorg with the dummy driver and xrandr (apt-get install xserver-xorg-core "
                "xserver-xorg-video-dummy x11-xserver-utils xdotool)")
    if os.geteuid() != 0:
        return "Xorg with the dummy driver needs root here"
    return ""


def skip_unless_multimon(obj):
    reason = missing_reason()
    return unittest.skip(reason)(obj) if reason else obj


def _modeline(width, height, refresh=60):
    """A CVT-like modeline for WIDTHxHEIGHT (the dummy driver accepts any sane timing)."""
    htotal, vtotal = width + 304, height + 30
    clock = htotal * vtotal * refresh / 1e6
    return [f"{clock:.2f}", str(width), str(width + 48), str(width + 152), str(htotal),
            str(height), str(height + 3), str(height + 7), str(vtotal), "-hsync", "+vsync"]


class MultiMonitorX(Xvfb):
    """Xorg + dummy driver with the two monitors of MONITORS (a Xvfb-like handle: env(), stop())."""

    def __init__(self):
        super().__init__(width=VIRTUAL[0], height=VIRTUAL[1])
        self._dir = None

    @property
    def monitors(self):
        """[(left, top, width, height), ...] in monitor order (1 first), as a viewer should see them."""
        return [(left, 0, width, height) for _name, width, height, left in MONITORS]

    def start(self) -> "MultiMonitorX":
        if self.proc is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="tagio-xorg-")
        config = os.path.join(self._dir, "xorg.conf")
        with open(config, "w") as f:
            f.write(CONFIG.format(width=VIRTUAL[0], height=VIRTUAL[1]))
        self._launch(lambda fd: ["Xorg", "-displayfd", str(fd), "-config", config, "-configdir", self._dir,
                                 "-noreset", "-nolisten", "tcp", "-logfile", os.path.join(self._dir, "xorg.log"),
                                 "-novtswitch", "-sharevts"])
        self._layout()
        return self

    def _xrandr(self, *args):
        subprocess.run(["xrandr", *args], env=self.env(), check=True, capture_output=True, timeout=20)

    def _layout(self):
        total_w = max(left + width for _n, width, _h, left in MONITORS)
        total_h = max(height for _n, _w, height, _l in MONITORS)
        placement = ["--fb", f"{total_w}x{total_h}"]
        for name, width, height, left in MONITORS:
            mode = f"tagio{width}x{height}"
            self._xrandr("--newmode", mode, *_modeline(width, height))
            self._xrandr("--addmode", name, mode)
            placement += ["--output", name, "--mode", mode, "--pos", f"{left}x0"]
        # One call: the frame buffer and both outputs change together (a smaller --fb alone is
        # refused while the start-up mode of DUMMY0 does not fit in it).
        self._xrandr(*placement, "--output", MONITORS[0][0], "--primary")

    def stop(self) -> None:
        super().stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
