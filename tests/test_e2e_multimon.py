"""End to end on a real two-monitor X server: the picture is the chosen monitor, clicks land on it.

A real Xorg with the dummy driver and two RandR outputs (tests/multimon.py: 1280x720 at +0+0 and
1024x768 at +1280+0), a real relay, real `tagio-gui.py --cli host --monitor N` processes capturing it
and real `--cli connect` viewers; and the real session window (Tk on an Xvfb in this process) whose
Monitor menu switches between monitor 1, monitor 2 and "All monitors" (SelectMonitor 0: the whole
virtual screen as one 2304x768 picture). Each monitor shows its own Tk window (four colour blocks, different
on each monitor) that prints every click with its root coordinates. For N = 1 and N = 2 the viewer's
snapshot must have that monitor's size and colours and match a screenshot of that monitor, and a
click the viewer sends at (100, 100) must arrive at the monitor's left edge + 100.
"""

import json
import signal
import sys
import tempfile
import unittest
from pathlib import Path

from tests.multimon import MultiMonitorX, skip_unless_multimon
from tests.relay_fixture import start_relay
from tests.test_e2e import GUI, ROOT, Proc

PALETTES = {
    1: [(224, 48, 48), (48, 192, 64), (48, 80, 224), (240, 208, 32)],
    2: [(250, 128, 0), (128, 0, 160), (0, 160, 160), (250, 250, 250)],
}

# One borderless window covering one monitor: four colour blocks on top, clicks reported as JSON.
TARGET = r"""
import json, sys, tkinter as tk
left, top, w, h, colours = json.loads(sys.argv[1])
root = tk.Tk()
root.overrideredirect(True)
root.geometry(f"{w}x{h}+{left}+{top}")
canvas = tk.Canvas(root, width=w, height=h, highlightthickness=0, bg="#202020")
canvas.pack()
for i, rgb in enumerate(colours):
    canvas.create_rectangle(i * w // 4, 0, (i + 1) * w // 4, h // 2, width=0,
                            fill="#%02x%02x%02x" % tuple(rgb))
canvas.bind("<ButtonPress>", lambda e: print(json.dumps({"click": [e.x_root, e.y_root, e.num]}),
                                            flush=True))
root.after(200, lambda: print(json.dumps({"ready": True}), flush=True))
root.mainloop()
"""


@skip_unless_multimon
class MultiMonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.x = MultiMonitorX().start()
        cls.relay = start_relay()
        cls.relay_text = "%s:%d" % cls.relay.address
        cls.targets = {}
        for index, (left, top, width, height) in enumerate(cls.x.monitors, start=1):
            spec = json.dumps([left, top, width, height, PALETTES[index]])
            target = Proc([sys.executable, "-c", TARGET, spec], cls.env())
            target.wait_for(lambda e: e.get("ready"), what=f"target window on monitor {index}")
            cls.targets[index] = target

    @classmethod
    def tearDownClass(cls):
        for target in cls.targets.values():
            target.stop()
        cls.relay.stop()
        cls.x.stop()
        cls._tmp.cleanup()

    @classmethod
    def env(cls):
        env = cls.x.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.pop("TAGIO_RELAY", None)
        env.pop("TAGIO_CONFIG_DIR", None)
        return env

    def start_host(self, monitor):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", self.relay_text,
                     "--config-dir", str(self.tmp / f"host{monitor}"), "--direct-bind", "127.0.0.1",
                     "--monitor", str(monitor)], self.env())
        self.addCleanup(host.stop)
        ready = host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return ready["id"], ready["password"]

    def view(self, monitor, host_id, password):
        script = self.tmp / f"click{monitor}.txt"
        script.write_text("move 100 100\nclick 1\n")
        snapshot = self.tmp / f"snap{monitor}.png"
        env = self.env()
        env.pop("DISPLAY")
        viewer = Proc([sys.executable, GUI, "--cli", "connect", host_id, "--password", password,
                       "--json", "--relay", self.relay_text, "--config-dir",
                       str(self.tmp / f"viewer{monitor}"), "--direct-bind", "127.0.0.1",
                       "--snapshot", str(snapshot), "--duration", "60", "--script", str(script)], env)
        self.addCleanup(viewer.stop)
        return viewer, snapshot

    def check_monitor(self, monitor):
        left, top, width, height = self.x.monitors[monitor - 1]
        other = self.targets[3 - monitor]
        clicks_before = len(other.events(key="click"))
        host_id, password = self.start_host(monitor)
        viewer, snapshot = self.view(monitor, host_id, password)
        target = self.targets[monitor]
        target.wait_for(lambda e: e.get("click") == [left + 100, top + 100, 1], timeout=40,
                        what=f"the click on monitor {monitor}")
        self.assertEqual(other.events(key="click")[clicks_before:], [],
                         "a click reached the other monitor")
        viewer.wait_for(lambda e: e.get("event") == "connected", what="connected")
        viewer.popen.send_signal(signal.SIGINT)
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        self.assert_picture(snapshot, monitor)

    def assert_picture(self, snapshot, monitor):
        import mss
        from PIL import Image, ImageChops, ImageStat
        left, top, width, height = self.x.monitors[monitor - 1]
        with mss.mss(display=self.x.display) as sct:
            grab = sct.grab({"left": left, "top": top, "width": width, "height": height})
        screen = Image.frombytes("RGB", grab.size, grab.bgra, "raw", "BGRX")
        got = Image.open(snapshot).convert("RGB")
        self.assertEqual(got.size, (width, height))
        mean = sum(ImageStat.Stat(ImageChops.difference(got, screen)).mean) / 3
        self.assertLess(mean, 4.0, f"snapshot differs from monitor {monitor}")
        for i, rgb in enumerate(PALETTES[monitor]):
            pixel = got.getpixel(((2 * i + 1) * width // 8, height // 4))
            self.assertTrue(all(abs(a - b) <= 24 for a, b in zip(pixel, rgb)), (monitor, i, pixel, rgb))

    def test_monitor_1_picture_and_click(self):
        self.check_monitor(1)

    def test_monitor_2_picture_and_click(self):
        self.check_monitor(2)

    # -- switching from the session window -------------------------------------------------------
    def test_switching_monitors_from_the_session_window(self):
        """The real session window (Tk on its own Xvfb, in this process) on a real `--cli host`:
        its Monitor menu, clicked with xdotool, switches to monitor 2, to "All monitors" and back
        to 1; each time the picture (the session's framebuffer and the window on screen) matches
        that part of the Xorg screen, and a click in the window lands on the right monitor."""
        import tkinter as tk
        from tagio.client.core import Client
        from tagio.ui.viewer_window import ViewerWindow
        from tests.xvfb import shared_xvfb
        host_id, password = self.start_host(1)
        viewer_x = shared_xvfb(2560, 1000)      # room for all monitors (2304x768) at 1:1
        client = Client(self.tmp / "window-viewer", relay=self.relay_text, direct_bind=None)
        client.start()
        self.addCleanup(client.close)
        session = client.connect(host_id, password).open_session()
        session.start()
        self.addCleanup(session.stop)
        root = tk.Tk(screenName=viewer_x.display)
        root.withdraw()
        self.addCleanup(root.destroy)
        window = ViewerWindow(root, session, "Two monitors", fit=False)
        window.geometry("2500x940+0+0")
        self.viewer_x, self.root, self.window = viewer_x, root, window
        monitors = self.x.monitors
        everything = (0, 0, max(l + w for l, _t, w, _h in monitors), max(t + h for _l, t, _w, h in monitors))
        self.pump(lambda: window.toolbar.monitor_menu.index("end") == 2, "the monitor menu filled")
        for index, label, box in ((2, "Monitor 2", monitors[1]), (0, "All monitors", everything),
                                  (1, "Monitor 1", monitors[0])):
            self.choose_monitor(label)
            self.pump(lambda: window.monitor == index and window.remote_size == box[2:], f"{label} shown", 30)
            self.assert_shows(session, box)
            for monitor, (left, top, width, height) in enumerate(monitors, start=1):
                if index in (0, monitor):       # a point 100, 100 inside that monitor, in the picture
                    self.click_and_check(left - box[0] + 100, top - box[1] + 100, monitor)
        window.close()

    def pump(self, predicate, what, timeout=20):
        from tests.waiting import wait_until
        return wait_until(predicate, timeout=timeout, what=what, poll=self.root.update)

    def viewer_xdotool(self, *args):
        import subprocess
        subprocess.run(["xdotool", *args], env=self.viewer_x.env(), timeout=10, check=True)

    def choose_monitor(self, label):
        button, menu = self.window.toolbar.monitor_button, self.window.toolbar.monitor_menu
        self.pump(button.winfo_viewable, "the Monitor button")
        self.viewer_xdotool("mousemove", str(button.winfo_rootx() + 10), str(button.winfo_rooty() + 8),
                            "click", "1")
        self.pump(menu.winfo_ismapped, "the monitor menu open")
        index = next(i for i in range(menu.index("end") + 1) if menu.entrycget(i, "label").startswith(label))
        self.viewer_xdotool("mousemove", str(menu.winfo_rootx() + 30),
                            str(menu.winfo_rooty() + menu.yposition(index) + 8))
        self.pump(lambda: menu.index("active") == index, f"{label} highlighted")
        self.viewer_xdotool("click", "1")
        self.pump(lambda: not menu.winfo_ismapped(), "the menu closed")

    def grab(self, display, box):
        import mss
        from PIL import Image
        left, top, width, height = box
        with mss.mss(display=display) as sct:
            shot = sct.grab({"left": left, "top": top, "width": width, "height": height})
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")

    def assert_shows(self, session, box):
        """The framebuffer, and the window on the viewer's screen, match `box` of the Xorg screen."""
        from PIL import ImageChops, ImageStat

        def difference(picture):
            return sum(ImageStat.Stat(ImageChops.difference(picture, self.grab(self.x.display, box))).mean) / 3
        self.pump(lambda: session.framebuffer is not None and session.framebuffer.size == box[2:]
                  and difference(session.framebuffer) < 4.0, f"the framebuffer to show {box}", 30)
        c = self.window.canvas
        self.pump(lambda: difference(self.grab(self.viewer_x.display, (c.winfo_rootx(), c.winfo_rooty(),
                                                                       *box[2:]))) < 4.0,
                  f"the window to show {box}", 30)

    def click_and_check(self, x, y, monitor):
        """Click the window at picture point (x, y): the target on `monitor` gets it at its
        left + 100, top + 100, and the other monitor's target gets nothing."""
        left, top = self.x.monitors[monitor - 1][:2]
        target, other = self.targets[monitor], self.targets[3 - monitor]
        before, other_before = len(target.events(key="click")), len(other.events(key="click"))
        c = self.window.canvas
        self.viewer_xdotool("mousemove", str(c.winfo_rootx() + x), str(c.winfo_rooty() + y), "click", "1")
        self.pump(lambda: len(target.events(key="click")) > before, f"the click on monitor {monitor}", 20)
        self.assertEqual(target.events(key="click")[before:], [{"click": [left + 100, top + 100, 1]}])
        self.assertEqual(other.events(key="click")[other_before:], [], "a click reached the other monitor")


if __name__ == "__main__":
    unittest.main()
