"""End to end: the clipboard crosses a real session both ways, and only when it should.

Two Xvfb displays: A is the host's desk, B the viewer's. A real relay process, real
`tagio-gui.py --cli host` processes on A, and on B either `tagio-gui.py --cli connect` or the
window itself (`tagio-gui.py`, driven with xdotool as a person would: type the ID, Return, type the
password, Return). The clipboards are set and read with xclip, an independent program: text copied
on A is pasted on B and the reverse, within CROSS_WITHIN seconds (the measured times are printed);
a PNG image crosses both ways pixel for pixel; a text over the limit is a notice on both sides and
leaves the other clipboard as it was; a view-only host and a host started with --no-clipboard let
nothing cross (checked after NOTHING_WAIT seconds, with the same copy crossing to a normal host as
the positive control).
"""

import io
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from PIL import Image

from tagio.protocol.session import MAX_CLIPBOARD
from tests import test_e2e as e2e
from tests.relay_fixture import run_relay_process
from tests.xvfb import Xvfb, skip_unless_xvfb

CROSS_WITHIN = 1.0      # seconds from a copy on one desk to the paste on the other (the goal)
CROSS_DEADLINE = 10.0   # how long we look before calling it lost
NOTHING_WAIT = 2.0      # seconds we watch for something that must not cross
TIMES = []              # (what, seconds) measured, printed at the end


def needs_xclip(obj):
    if shutil.which("xclip"):
        return obj
    return unittest.skip("needs xclip (apt-get install xclip; add it to .ci/run)")(obj)


def copy(env, data, target=None):
    argv = ["xclip", "-selection", "clipboard", "-i"] + (["-t", target] if target else [])
    subprocess.run(argv, input=data, env=env, timeout=10, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def paste(env, target=None):
    argv = ["xclip", "-selection", "clipboard", "-o"] + (["-t", target] if target else [])
    done = subprocess.run(argv, capture_output=True, env=env, timeout=10)
    return done.stdout if done.returncode == 0 else None


def crossing_time(env, expected, target=None, deadline=CROSS_DEADLINE, started=None):
    """Seconds until `env`'s clipboard holds `expected` (from `started`), or None."""
    started = time.monotonic() if started is None else started
    while time.monotonic() - started < deadline:
        if paste(env, target) == expected:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def png(size, seed):
    image = Image.new("RGB", size)
    image.putdata([((x * seed) % 256, (y * 3 + seed) % 256, (x ^ y) % 256)
                   for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), image


def crowd_atoms(display, count=300):
    """Intern `count` atoms on `display` and keep the connection open (the server keeps them), so
    the clipboard's own atoms are numbered above 255; the caller closes it."""
    from Xlib import display as xdisplay
    conn = xdisplay.Display(display)
    for index in range(count):
        conn.intern_atom(f"TAGIO_CROWD_{index}")
    for name in ("UTF8_STRING", "image/png"):
        if conn.intern_atom(name) <= 255:
            raise AssertionError(f"{name} is still atom {conn.intern_atom(name)}")
    conn.sync()
    return conn


@skip_unless_xvfb
@needs_xclip
class ClipboardEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.desk_a = Xvfb(width=320, height=240).start()
        cls.desk_b = Xvfb(width=800, height=600).start()
        # As on a real desktop, hundreds of atoms exist before ours (UTF8_STRING, image/png above
        # 255): a fresh Xvfb numbered them about 240 and hid a clipboard that read nothing there.
        cls.crowds = [crowd_atoms(desk.display) for desk in (cls.desk_a, cls.desk_b)]
        cls.relay, address = run_relay_process("--bind", "127.0.0.1:0", "--state-file", "")
        cls.relay_text = "%s:%d" % address
        cls.hosts = {}

    @classmethod
    def tearDownClass(cls):
        for host in cls.hosts.values():
            host.stop()
        cls.relay.terminate()
        cls.relay.wait(10)
        for conn in cls.crowds:
            conn.close()
        for desk in (cls.desk_a, cls.desk_b):
            desk.stop()
        cls._tmp.cleanup()
        if TIMES:
            times = ", ".join(f"{what} {t * 1000:.0f} ms" for what, t in TIMES)
            print(f"\nclipboard crossing times: {times}", file=sys.stderr)

    @classmethod
    def env(cls, desk):
        env = desk.env()
        env.update(PYTHONPATH=str(e2e.ROOT), PYTHONUNBUFFERED="1", TAGIO_LAN="0")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD"):
            env.pop(name, None)
        return env

    def host(self, name, *flags):
        """A CLI host on desk A (one per kind, kept for the class; sessions come and go)."""
        if name not in self.hosts:
            self.hosts[name] = e2e.Proc([sys.executable, e2e.GUI, "--cli", "host", "--json", "--relay",
                                         self.relay_text, "--config-dir", str(self.tmp / name),
                                         "--direct-bind", "127.0.0.1", *flags], self.env(self.desk_a))
            self.hosts[name].wait_for(lambda e: e.get("event") == "ready", what=f"{name} ready line")
        return self.hosts[name]

    def fresh_password(self, host):
        """(id, password) once the host announced a password no session has used yet."""
        sessions = len(host.events("session_started"))
        ready = host.wait_for(lambda e: e.get("event") == "ready"
                              and len(host.events("ready")) > sessions, what="a fresh password")
        return ready["id"], ready["password"]

    def cli_viewer(self, host, *flags, before=b""):
        """A CLI viewer on desk B in session with `host`. The viewer sends what desk B holds at the
        start (`before`; empty text is never sent, so by default nothing crosses at the start)."""
        copy(self.env(self.desk_b), before)
        host_id, password = self.fresh_password(host)
        started = len(host.events("session_started"))
        viewer = e2e.Proc([sys.executable, e2e.GUI, "--cli", "connect", host_id, "--password", password,
                           "--json", "--relay", self.relay_text, "--config-dir", str(self.tmp / "viewer"),
                           "--direct-bind", "127.0.0.1", "--duration", "300", *flags], self.env(self.desk_b))
        self.addCleanup(self.end_session, viewer, host, started)
        viewer.wait_for(lambda e: e.get("event") == "connected", what="connected")
        self.wait_session(host, started, before)
        return viewer

    def wait_session(self, host, started, before=b""):
        host.wait_for(lambda e: e.get("event") == "session_started"
                      and len(host.events("session_started")) > started, what="session started")
        if before:      # what the viewer's desk held at the start has crossed
            self.assertIsNotNone(crossing_time(self.env(self.desk_a), before), "start value not shared")

    def end_session(self, viewer, host, started):
        viewer.stop()
        host.wait_for(lambda e: e.get("event") == "session_ended"
                      and len(host.events("session_ended")) > started, what="session ended")

    def cross(self, what, source, target, data, mime=None):
        """Copy `data` on `source`, return the seconds until `target` pastes it."""
        started = time.monotonic()
        copy(source, data, mime)
        took = crossing_time(target, data, mime, started=started)
        self.assertIsNotNone(took, f"{what}: never arrived within {CROSS_DEADLINE}s")
        TIMES.append((what, took))
        return took

    def assert_both_ways(self, label):
        a, b = self.env(self.desk_a), self.env(self.desk_b)
        text_ab = f"from the host ✓ {label} {time.monotonic()}".encode()
        text_ba = f"from the viewer é {label} {time.monotonic()}".encode()
        to_viewer = self.cross(f"{label} A->B", a, b, text_ab)
        to_host = self.cross(f"{label} B->A", b, a, text_ba)
        self.assertLess(to_viewer, CROSS_WITHIN, f"host -> viewer took {to_viewer:.2f}s")
        self.assertLess(to_host, CROSS_WITHIN, f"viewer -> host took {to_host:.2f}s")

    # -- the tests ----------------------------------------------------------------------------------
    def test_cli_viewer_text_both_ways(self):
        self.cli_viewer(self.host("host"), before="copied on B before connecting ✓".encode())
        self.assert_both_ways("cli")

    def test_cli_viewer_png_both_ways_pixel_for_pixel(self):
        self.cli_viewer(self.host("host"))
        a, b = self.env(self.desk_a), self.env(self.desk_b)
        for what, source, target, seed in (("png A->B", a, b, 7), ("png B->A", b, a, 13)):
            with self.subTest(what):
                data, image = png((120, 80), seed)
                self.cross(what, source, target, data, "image/png")
                pasted = Image.open(io.BytesIO(paste(target, "image/png")))
                self.assertEqual(pasted.size, image.size)
                self.assertEqual(pasted.convert("RGB").tobytes(), image.tobytes())

    def test_text_over_the_limit_is_a_notice_and_nothing_is_truncated(self):
        host = self.host("host")
        viewer = self.cli_viewer(host)
        a, b = self.env(self.desk_a), self.env(self.desk_b)
        self.cross("small before big", a, b, b"small and shared")      # positive control
        big = b"x" * (MAX_CLIPBOARD + 1)
        copy(a, big)
        notice = host.wait_for(lambda e: e.get("event") == "clipboard_notice", what="host notice")
        self.assertEqual(notice["message"], "Clipboard not shared: the text you copied is 262,145 bytes, "
                                            "over the 262,144 bytes limit.")
        notice = viewer.wait_for(lambda e: e.get("event") == "clipboard_notice", what="viewer notice")
        self.assertIn("the text your partner copied is 262,145 bytes", notice["message"])
        self.assertEqual(paste(b), b"small and shared")                 # not a truncated copy
        copy(b, big + b"y")
        viewer.wait_for(lambda e: e.get("event") == "clipboard_notice" and "you copied" in e["message"],
                        what="viewer notice for its own copy")
        host.wait_for(lambda e: e.get("event") == "clipboard_notice" and "your partner" in e["message"],
                      what="host notice for the partner's copy")
        self.assertEqual(paste(a), big)

    def test_view_only_and_no_clipboard_let_nothing_cross(self):
        a, b = self.env(self.desk_a), self.env(self.desk_b)
        for name, flags in (("view-only", ("--view-only",)), ("no-clipboard", ("--no-clipboard",))):
            with self.subTest(name):
                host = self.host(name, *flags)
                started = len(host.events("session_started"))
                viewer = self.cli_viewer(host)
                copy(b, b"before " + name.encode())
                copy(a, b"host secret " + name.encode())
                self.assertIsNone(crossing_time(b, b"host secret " + name.encode(), deadline=NOTHING_WAIT))
                copy(b, b"viewer secret " + name.encode())
                self.assertIsNone(crossing_time(a, b"viewer secret " + name.encode(), deadline=NOTHING_WAIT))
                self.assertEqual(paste(a), b"host secret " + name.encode())
                self.end_session(viewer, host, started)
                # Positive control: the same desks and viewer with a host that shares.
                control = self.host("host")
                started = len(control.events("session_started"))
                viewer = self.cli_viewer(control)
                self.cross(f"control after {name}", a, b, b"control " + name.encode())
                self.end_session(viewer, control, started)

    def test_gui_viewer_text_both_ways(self):
        host = self.host("host")
        host_id, password = self.fresh_password(host)
        started = len(host.events("session_started"))
        b = self.env(self.desk_b)
        copy(b, b"")
        gui = e2e.Proc([sys.executable, e2e.GUI, "--config-dir", str(self.tmp / "gui"),
                        "--relay", self.relay_text], b)
        self.addCleanup(self.end_session, gui, host, started)
        self.type_into(b, "^TagIO$", host_id)
        self.type_into(b, "^Password$", password)
        self.wait_session(host, started)
        self.assert_both_ways("gui")

    def test_gui_host_text_both_ways(self):
        # The window as the host: unattended (a permanent password, no accept prompt), so that
        # a script knows the password without reading it off the screen.
        from tagio.client.settings import Settings
        from tagio.crypto.identity import Identity
        config = self.tmp / "gui-host"
        host_id = Identity.load_or_create(config).id
        settings = Settings(config, ask_before_accept=False)
        settings.set_permanent_password("unattended-pw", host_id)
        settings.save()
        a, b = self.env(self.desk_a), self.env(self.desk_b)
        gui = e2e.Proc([sys.executable, e2e.GUI, "--config-dir", str(config), "--relay", self.relay_text], a)
        self.addCleanup(gui.stop)
        copy(b, b"on B when the session starts")
        viewer = self.connect_when_online(host_id, "unattended-pw")
        self.addCleanup(viewer.stop)
        # The viewer's start value reaching A also says the host's side is sharing now.
        self.assertIsNotNone(crossing_time(a, b"on B when the session starts"), "start value not shared")
        self.assert_both_ways("gui host")

    def connect_when_online(self, host_id, password):
        """A CLI viewer on desk B; the window registers at the relay a moment after it opens, so an
        "unknown ID" attempt is made again (bounded)."""
        deadline = time.monotonic() + CROSS_DEADLINE * 2
        while True:
            viewer = e2e.Proc([sys.executable, e2e.GUI, "--cli", "connect", host_id, "--password", password,
                               "--json", "--relay", self.relay_text, "--config-dir", str(self.tmp / "viewer"),
                               "--direct-bind", "127.0.0.1", "--duration", "300"], self.env(self.desk_b))
            line = viewer.wait_for(lambda e: e.get("event") in ("connected", "error"), what="connect result")
            if line["event"] == "connected" or time.monotonic() > deadline:
                self.assertEqual(line["event"], "connected", line)
                return viewer
            viewer.stop()

    def type_into(self, env, title, text):
        """Give the window titled `title` the keyboard (there is no window manager) and type."""
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", title],
                               env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(found.returncode, 0, found.stderr)
        window = found.stdout.split()[0]
        for argv in (["windowfocus", "--sync", window], ["type", "--delay", "20", text], ["key", "Return"]):
            subprocess.run(["xdotool", *argv], env=env, timeout=30, check=True)


if __name__ == "__main__":
    unittest.main()
