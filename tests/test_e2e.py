"""End to end: relay + `tagio-gui.py --cli host` on an Xvfb display + `tagio-gui.py --cli connect`.

Everything is a real process talking over 127.0.0.1: a relay, a host that captures a private Xvfb
display showing a small Tk target window (known colour blocks and a text field that reports clicks
and typed text on stdout), and viewers that connect with --json, --snapshot and a --script of input.
Checked: the snapshot matches a screenshot of the host display within JPEG tolerance; the pointer
move, click and typed text arrive on the host; wrong password, unknown ID, host quitting and the relay
dying mid-session each end the viewer with one clear line and its own non-zero exit status; the
host keeps serving after a wrong password and survives losing the relay.
"""

import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

from tagio.cli import output as cli
from tests import waiting
from tests.relay_fixture import run_relay_process, start_relay
from tests.xvfb import Xvfb, skip_unless_xvfb

ROOT = Path(__file__).resolve().parent.parent
GUI = str(ROOT / "tagio-gui.py")
WIDTH, HEIGHT = 480, 320
ENTRY_AT = (WIDTH // 2, 3 * HEIGHT // 4)
TRYING = 4          # --reconnect-for where a test waits for the viewer to give up
COLOURS = [(224, 48, 48), (48, 192, 64), (48, 80, 224), (240, 208, 32)]

# The host's desktop: four colour blocks over a blue background and a text field, full screen.
TARGET = r"""
import json, sys, tkinter as tk
W, H, COLOURS = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
root = tk.Tk()
root.overrideredirect(True)
root.geometry(f"{W}x{H}+0+0")
canvas = tk.Canvas(root, width=W, height=H, highlightthickness=0, bg="#204080")
canvas.pack()
for i, rgb in enumerate(COLOURS):
    canvas.create_rectangle(i * W // 4, 0, (i + 1) * W // 4, H // 2, width=0,
                            fill="#%02x%02x%02x" % tuple(rgb))
entry = tk.Entry(root, font=("TkFixedFont", 12))
canvas.create_window(W // 2, 3 * H // 4, window=entry, width=W // 2)
def say(**kw):
    print(json.dumps(kw), flush=True)
for widget in (canvas, entry):
    widget.bind("<ButtonPress>", lambda e: say(click=[e.x_root, e.y_root, e.num]))
entry.bind("<KeyRelease>", lambda e: say(text=entry.get()))
root.after(300, lambda: (entry.focus_force(), say(ready=True, frame=int(root.wm_frame(), 16))))
root.mainloop()
"""


class Proc:
    """A child process whose stdout lines (JSON where possible) are collected by a reader thread."""

    def __init__(self, argv, env, stdin_text=None):
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env, cwd=str(ROOT),
                                      stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE)
        if stdin_text is not None:
            self.popen.stdin.write(stdin_text)
            self.popen.stdin.close()
        self.lines, self._cond = [], threading.Condition()
        self.stderr = ""
        self._readers = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_out(self):
        for line in self.popen.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                item = {"raw": line.rstrip("\n")}
            with self._cond:
                self.lines.append(item)
                self._cond.notify_all()

    def _read_err(self):
        self.stderr = self.popen.stderr.read()

    def events(self, name=None, key="event"):
        """Lines whose `key` equals `name` (or, without a name, every line that has `key`)."""
        with self._cond:
            return [e for e in self.lines if key in e and (name is None or e[key] == name)]

    def wait_for(self, predicate, timeout=20, what="line"):
        with self._cond:
            if not self._cond.wait_for(lambda: any(predicate(e) for e in self.lines)
                                       or self.popen.poll() is not None, timeout) \
                    or not any(predicate(e) for e in self.lines):
                raise AssertionError(f"no {what} within {timeout}s: {self.lines} / {self.stderr}")
            return [e for e in self.lines if predicate(e)][-1]

    def finish(self, timeout=30):
        rc = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return rc

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for reader in self._readers:
            reader.join(5)


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@skip_unless_xvfb
class EndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.xvfb = Xvfb(width=WIDTH, height=HEIGHT).start()
        cls.relay = start_relay()
        cls.relay_text = "%s:%d" % cls.relay.address
        cls.target = Proc([sys.executable, "-c", TARGET, str(WIDTH), str(HEIGHT), json.dumps(COLOURS)],
                          cls.env())
        ready = cls.target.wait_for(lambda e: e.get("ready"), what="target window")
        # Xvfb has no window manager, so nobody gives the window the X input focus (it stays
        # PointerRoot, where pynput's synthetic key events go nowhere); do what a WM would.
        subprocess.run(["xdotool", "windowfocus", "--sync", str(ready["frame"])], env=cls.env(),
                       timeout=10, check=True, capture_output=True)
        cls.host = cls.start_host("host")

    @classmethod
    def tearDownClass(cls):
        for proc in (cls.host, cls.target):
            proc.stop()
        cls.relay.stop()
        cls.xvfb.stop()
        cls._tmp.cleanup()

    @classmethod
    def env(cls):
        env = cls.xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.pop("TAGIO_RELAY", None)
        env.pop("TAGIO_CONFIG_DIR", None)
        return env

    @classmethod
    def start_host(cls, name, relay=None, direct="127.0.0.1", extra=()):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", relay or cls.relay_text,
                     "--config-dir", str(cls.tmp / name), "--direct-bind", direct, *extra], cls.env())
        host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return host

    @staticmethod
    def credentials(host):
        ready = host.events("ready")[-1]
        return ready["id"], ready["password"]

    def connect(self, host_id, password, *extra, relay=None, name="viewer", direct="127.0.0.1"):
        argv = [sys.executable, GUI, "--cli", "connect", host_id, "--password", password, "--json",
                "--relay", relay or self.relay_text, "--config-dir", str(self.tmp / name),
                "--direct-bind", direct, *extra]
        env = self.env()
        env.pop("DISPLAY")                           # the viewer is headless
        proc = Proc(argv, env)
        self.addCleanup(proc.stop)
        return proc

    def pointer_script(self, name, x, y):
        """A --script moving the host's pointer to (x, y). The viewer plays a script only once its
        first frame has arrived, so the pointer reaching (x, y) shows the viewer has the screen."""
        script = self.tmp / f"{name}.txt"
        script.write_text(f"move {x} {y}\n")
        return script

    def wait_pointer_at(self, x, y):
        def location():
            return subprocess.run(["xdotool", "getmouselocation"], capture_output=True, text=True,
                                  env=self.env(), timeout=10).stdout
        waiting.wait_until(lambda: f"x:{x} y:{y} " in location(), timeout=30, interval=0.05,
                           what=f"the viewer's first frame (its script moves the pointer to {x},{y})")

    def assert_one_error_line(self, proc, needle):
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn(needle, lines[0])
        self.assertNotIn("Traceback", proc.stderr)

    # ---------------------------------------------------------------- the product works

    def test_view_and_control(self):
        host_id, password = self.credentials(self.host)
        script = self.tmp / "input.txt"
        script.write_text(f"move 40 40\nwait 0.2\nmove {ENTRY_AT[0]} {ENTRY_AT[1]}\nwait 0.2\n"
                          "click 1\nwait 0.3\ntype hello TagIO\nwait 0.3\nkey BackSpace\n"
                          "scroll 0 -1\n")
        snapshot = self.tmp / "snap.png"
        viewer = self.connect(host_id, password, "--snapshot", str(snapshot), "--duration", "60",
                              "--script", str(script))
        # The session runs until the last scripted input has arrived (however loaded the machine),
        # then Ctrl+C ends it cleanly. The snapshot check below tolerates that the last change
        # (one deleted character) may not have reached the viewer yet.
        self.target.wait_for(lambda e: e.get("text") == "hello TagI", timeout=40, what="BackSpace")
        self.assertTrue(wait_until(lambda: [ENTRY_AT[0], ENTRY_AT[1], 5] in
                                   [e["click"] for e in self.target.events(key="click")], 10))
        viewer.popen.send_signal(signal.SIGINT)
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        connected = viewer.events("connected")[0]
        self.assertEqual(connected["peer"], host_id)
        # Both ends have listeners, so a direct path normally wins; on a loaded machine the relay
        # (tried 0.3 s later) may finish first. test_lan_only_* checks a direct path on its own.
        self.assertIn(connected["path"], ("direct-tcp", "direct-udp", "relay"))
        self.assertGreater(connected["connect_ms"], 0)
        closed = viewer.events("closed")[0]
        self.assertGreater(closed["frames"], 0)
        self.assertGreater(closed["bytes"], 0)
        # The summary's rate is the whole session's: at least a second ran, so fps < frames.
        self.assertGreater(closed["fps"], 0)
        self.assertLess(closed["fps"], closed["frames"])
        print(f"\n  e2e connect_ms={connected['connect_ms']} path={connected['path']} "
              f"frames={closed['frames']} bytes={closed['bytes']}", file=sys.stderr)

        presses = [e["click"] for e in self.target.events(key="click")]
        self.assertIn([ENTRY_AT[0], ENTRY_AT[1], 1], presses)            # left click on the field
        self.assertIn([ENTRY_AT[0], ENTRY_AT[1], 5], presses)            # one wheel step down (X11)
        self.target.wait_for(lambda e: e.get("text") == "hello TagIO", what="typed text")
        self.target.wait_for(lambda e: e.get("text") == "hello TagI", what="BackSpace")
        location = subprocess.run(["xdotool", "getmouselocation"], capture_output=True, text=True,
                                  env=self.env(), timeout=10).stdout
        self.assertIn(f"x:{ENTRY_AT[0]} y:{ENTRY_AT[1]} ", location)
        self.assert_snapshot_matches(snapshot)
        self.assertNotIn(password, json.dumps(viewer.lines) + viewer.stderr)

    def assert_snapshot_matches(self, snapshot):
        import mss
        from PIL import Image, ImageChops, ImageStat
        with mss.mss(display=self.xvfb.display) as sct:
            grab = sct.grab(sct.monitors[1])
        screen = Image.frombytes("RGB", grab.size, grab.bgra, "raw", "BGRX")
        got = Image.open(snapshot).convert("RGB")
        self.assertEqual(got.size, screen.size)
        mean = sum(ImageStat.Stat(ImageChops.difference(got, screen)).mean) / 3
        self.assertLess(mean, 4.0, "snapshot differs from the host screen")
        for i, rgb in enumerate(COLOURS):               # each block's centre, JPEG tolerance
            pixel = got.getpixel(((2 * i + 1) * WIDTH // 8, HEIGHT // 4))
            self.assertTrue(all(abs(a - b) <= 24 for a, b in zip(pixel, rgb)), (i, pixel, rgb))

    def test_text_output_for_people(self):
        host = Proc([sys.executable, GUI, "--cli", "host", "--relay", self.relay_text, "--config-dir",
                     str(self.tmp / "host-text"), "--direct-bind", "127.0.0.1"], self.env())
        self.addCleanup(host.stop)
        ready = host.wait_for(lambda e: "host ready" in e.get("raw", ""), what="ready line")["raw"]
        found = re.search(r"ID: (\d{3} \d{3} \d{3})  Password: (\S+)$", ready)
        self.assertIsNotNone(found, ready)
        viewer = Proc([sys.executable, GUI, "--cli", "connect", found.group(1), "--password",
                       found.group(2), "--relay", self.relay_text, "--direct-bind", "127.0.0.1",
                       "--config-dir", str(self.tmp / "viewer-text"), "--duration", "1"], self.env())
        self.addCleanup(viewer.stop)
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        text = "\n".join(e.get("raw", "") for e in viewer.lines)
        self.assertIn(f"connected to {found.group(1)} via direct-", text)
        self.assertRegex(text, r"session closed: \d+ frames")
        self.assertNotIn("view only", text)            # this host lets the viewer control it
        self.assertNotIn(found.group(2), text)

    def test_unattended_password_from_stdin(self):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", self.relay_text,
                     "--config-dir", str(self.tmp / "host-unattended"), "--direct-bind", "127.0.0.1",
                     "--password", "-"], self.env(), stdin_text="unattended-pw\n")
        self.addCleanup(host.stop)
        host_id, otp = self.credentials_from(host)
        viewer = self.connect(host_id, "unattended-pw", "--duration", "1", name="viewer-unattended")
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        host.wait_for(lambda e: e.get("event") == "session_started", what="session start")
        self.assertEqual(self.credentials(host)[1], otp)     # the one-time password was not used up
        self.assertNotIn("unattended-pw", json.dumps(host.lines) + host.stderr)

    def test_view_only_host_ignores_input(self):
        host = self.start_host("host-view-only", extra=["--view-only"])
        self.addCleanup(host.stop)
        host_id, password = self.credentials(host)
        clicks_before = len(self.target.events(key="click"))
        script = self.tmp / "view-only.txt"
        script.write_text("move 30 30\nclick 1\ntype ignored\nwait 0.5\n")
        viewer = self.connect(host_id, password, "--duration", "3", "--script", str(script),
                              name="viewer-view-only")
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        self.assertGreater(viewer.events("closed")[0]["frames"], 0)     # it did see the screen
        self.assertEqual(len(viewer.events("view_only")), 1, viewer.lines)  # said once
        self.assertEqual(len(self.target.events(key="click")), clicks_before)
        location = subprocess.run(["xdotool", "getmouselocation"], capture_output=True, text=True,
                                  env=self.env(), timeout=10).stdout
        self.assertNotIn("x:30 y:30 ", location)

    def test_viewer_ctrl_c_is_a_clean_exit(self):
        host_id, password = self.credentials(self.host)
        before = len(self.host.events("session_started"))
        snapshot = self.tmp / "ctrl-c.png"
        viewer = self.connect(host_id, password, "--duration", "60", "--snapshot", str(snapshot),
                              "--script", str(self.pointer_script("ctrl-c", 11, 13)))
        viewer.wait_for(lambda e: e.get("event") == "connected", what="connected")
        self.assertTrue(wait_until(lambda: len(self.host.events("session_started")) > before))
        self.wait_pointer_at(11, 13)                  # the first frame has arrived
        viewer.popen.send_signal(signal.SIGINT)
        self.assertEqual(viewer.finish(15), 0, viewer.stderr)
        self.assertEqual(viewer.stderr, "")
        self.assertEqual(len(viewer.events("closed")), 1)
        self.assertTrue(snapshot.exists())

    # ---------------------------------------------------------------- clear failures

    def settle(self, host):
        """Wait until every session the host ran has ended and the one-time password it used has
        rotated (that ready line follows the session_ended line), so the password read now stays."""
        def settled():
            names = [e.get("event") for e in list(host.lines)]
            if names.count("session_ended") < names.count("session_started"):
                return False
            last = {name: i for i, name in enumerate(names)}
            return last.get("ready", -1) > last.get("session_ended", -1)
        self.assertTrue(wait_until(settled, 20), f"the host never settled: {host.lines}")

    def test_wrong_password_then_host_keeps_serving(self):
        self.settle(self.host)                      # an earlier test's session may still be ending
        host_id, password = self.credentials(self.host)
        before = len(self.host.events("ready"))
        viewer = self.connect(host_id, "definitely-wrong")
        self.assertEqual(viewer.finish(), cli.EXIT_AUTH, viewer.stderr)
        self.assert_one_error_line(viewer, "wrong password")
        self.assertEqual(viewer.events("error")[0]["kind"], "wrong_password")
        self.host.wait_for(lambda e: e.get("event") == "auth_failed", what="auth_failed")
        # One wrong try does not cost a new password (three do: test_client_core); no new ready
        # line, and the password shown still works.
        self.assertEqual(len(self.host.events("ready")), before)
        self.assertEqual(self.credentials(self.host)[1], password)
        self.assertIsNone(self.host.popen.poll())
        self.assertNotIn("definitely-wrong", json.dumps(self.host.lines) + self.host.stderr)
        again = self.connect(host_id, password, "--duration", "0.5")
        self.assertEqual(again.finish(), 0, again.stderr)

    def test_host_start_errors(self):
        # An unreachable relay is no longer a start error: the host keeps trying it for ever
        # (test_e2e_flow.LivenessTest.test_cli_host_waits_for_a_relay_that_comes_later).
        cases = [(["--relay", self.relay_text, "--monitor", "3"], cli.EXIT_USAGE, "no monitor 3")]
        for extra, status, needle in cases:
            with self.subTest(extra=extra):
                host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--direct-bind", "127.0.0.1",
                             "--config-dir", str(self.tmp / "host-errors"), *extra], self.env())
                self.addCleanup(host.stop)
                self.assertEqual(host.finish(20), status, host.stderr)
                self.assert_one_error_line(host, needle)
                self.assertEqual(host.events("ready"), [])            # no password was shown

    def test_lan_only_when_the_relay_is_unreachable(self):
        nowhere = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"           # no relay there
        # A loopback-only "LAN". Both ends share one machine and one UDP port (SO_REUSEPORT), where
        # a unicast answer to a query reaches either socket, so announcements come often instead.
        lan = ["--lan", "--lan-target", "127.255.255.255", "--lan-interval", "0.2",
               "--lan-port", str(free_port(socket.SOCK_DGRAM))]
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", nowhere,
                     "--config-dir", str(self.tmp / "lan-host"), "--direct-bind", "127.0.0.1", *lan],
                    self.env())
        self.addCleanup(host.stop)
        host_id, password = self.credentials_from(host)
        self.assertTrue(host.events("relay")[-1]["status"].startswith("unreachable"))
        self.assertEqual(len(host.events("relay")), 1, host.lines)    # said once, not twice
        self.assertTrue(host.events("relay")[0]["retrying"])
        viewer = self.connect(host_id, password, "--duration", "3", *lan, relay=nowhere,
                              name="lan-viewer")
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        self.assertIn(viewer.events("connected")[0]["path"], ("direct-tcp", "direct-udp"))
        self.assertGreater(viewer.events("closed")[0]["frames"], 0)

    def credentials_from(self, host):
        host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return self.credentials(host)

    def test_unknown_id(self):
        viewer = self.connect("123456789", "whatever1")
        self.assertEqual(viewer.finish(), cli.EXIT_RELAY, viewer.stderr)
        self.assertIn(viewer.events("error")[0]["kind"], ("unknown_id", "offline"))
        self.assert_one_error_line(viewer, "123456789" if "offline" in viewer.stderr else "unknown ID")

    def test_host_quits_mid_session(self):
        host = self.start_host("host-quits")
        self.addCleanup(host.stop)
        host_id, password = self.credentials(host)
        viewer = self.connect(host_id, password, "--duration", "60",
                              "--script", str(self.pointer_script("host-quits", 12, 14)))
        viewer.wait_for(lambda e: e.get("event") == "connected", what="connected")
        host.wait_for(lambda e: e.get("event") == "session_started", what="session start")
        self.wait_pointer_at(12, 14)                  # mid-session: the viewer shows the screen
        host.popen.send_signal(signal.SIGTERM)
        self.assertEqual(host.finish(), 0, host.stderr)         # a clean shutdown
        self.assertEqual(host.events("session_ended")[-1]["reason"], "ended on this desk")
        self.assertEqual(viewer.finish(15), cli.EXIT_GONE, viewer.stderr)
        self.assert_one_error_line(viewer, "partner gone")
        self.assertEqual(viewer.events("error")[0]["kind"], "partner_gone")
        self.assertEqual(len(viewer.events("closed")), 1)

    def test_relay_killed_mid_session(self):
        relay, (host_ip, port) = run_relay_process("--bind", "127.0.0.1:0", "--state-file", "")
        relay_text = f"{host_ip}:{port}"
        self.addCleanup(_reap, relay)
        host = self.start_host("host-relay", relay=relay_text, direct="none")   # relay path only
        self.addCleanup(host.stop)
        host_id, password = self.credentials(host)
        viewer = self.connect(host_id, password, "--duration", "60", "--reconnect-for", str(TRYING),
                              relay=relay_text, direct="none")
        connected = viewer.wait_for(lambda e: e.get("event") == "connected", what="connected")
        self.assertEqual(connected["path"], "relay")
        host.wait_for(lambda e: e.get("event") == "session_started", what="session start")
        relay.kill()                                              # SIGKILL: no goodbyes
        relay.wait(10)
        # The viewer tries to come back (client/resume.py) for --reconnect-for; the relay stays away.
        viewer.wait_for(lambda e: e.get("event") == "reconnecting", what="reconnecting")
        lost = time.monotonic()
        self.assertEqual(viewer.finish(TRYING + 15), cli.EXIT_GONE, viewer.stderr)
        gave_up = time.monotonic() - lost
        self.assertGreaterEqual(gave_up, TRYING - 1)     # it kept trying as long as it was told
        self.assertLess(gave_up, TRYING + 10)
        self.assertFalse(viewer.events("reconnected"))
        self.assert_one_error_line(viewer, "partner gone")
        host.wait_for(lambda e: e.get("event") == "session_ended", what="host session end")
        host.wait_for(lambda e: e.get("event") == "relay" and e["status"] != "online",
                      what="host noticing the relay is gone")
        self.assertIsNone(host.popen.poll(), "the host must keep running without its relay")


if __name__ == "__main__":
    unittest.main()
