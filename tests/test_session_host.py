"""Host and viewer pipelines end to end: real Xvfb, real mss capture, real pynput injection,
over a real SecureChannel (SPAKE2 handshake) on a 127.0.0.1 TCP connection.

A small Tk target window runs in a subprocess on the Xvfb display and prints the events it gets as
JSON lines, so typed text and clicks are checked where they land, not inside our own code.
"""

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import types
import unittest

from tagio.protocol.version import CAP_FILES, CLIPBOARD, SESSION_CAPABILITIES
from tests.platforms import NO_DISPLAY, skip_on_windows
from tests.xvfb import Xvfb, skip_unless_xvfb

PASSWORD = "test-pw-42"
# A host with no clipboard link and no files folder (as these stand-alone HostSessions) offers neither.
NO_CLIPBOARD = SESSION_CAPABILITIES & ~CLIPBOARD & ~CAP_FILES
HOST_ID, VIEWER_ID = "111111111", "222222222"

TARGET = r"""
import json, sys, tkinter as tk
root = tk.Tk()
root.geometry("400x300+100+100")
root.configure(bg="#ffd000")
label = tk.Label(root, text="TagIO target", font=("Helvetica", 28), bg="#ffd000")
label.place(x=20, y=20)
photo = tk.PhotoImage(width=160, height=120)
photo.put(" ".join("{" + " ".join("#%02x%02x%02x" % ((x * 7 + y * 3) % 256, (x * x + y) % 256, (y * 11) % 256)
                                    for x in range(160)) + "}" for y in range(120)), to=(0, 0))
tk.Label(root, image=photo, bd=0).place(x=220, y=160)
def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n"); sys.stdout.flush()
root.bind_all("<Key>", lambda e: emit(kind="key", keysym=e.keysym, char=e.char, state=e.state))
root.bind_all("<Button>", lambda e: emit(kind="button", num=e.num, x=e.x_root, y=e.y_root, state=e.state))
root.bind_all("<ButtonRelease>", lambda e: emit(kind="release", num=e.num, x=e.x_root, y=e.y_root))
root.bind_all("<Double-Button-1>", lambda e: emit(kind="double", x=e.x_root, y=e.y_root))
root.bind_all("<B1-Motion>", lambda e: emit(kind="drag", x=e.x_root, y=e.y_root))
def ready():
    root.focus_force()
    emit(kind="ready")
root.after(300, ready)
root.mainloop()
"""


def _hello():
    from tagio.protocol import session as m
    return m.Hello(m.PROTOCOL_VERSION, 0, 10, 10, 1)


HELLO_FROM_VIEWER = _hello()


def tcp_pair():
    """Two connected real TCP sockets on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def secure_pair(password=PASSWORD):
    """(host_channel, viewer_channel): a real SPAKE2 handshake over loopback TCP."""
    from tagio.crypto import handshake, kdf
    from tagio.net.stream import SocketStream
    host_sock, viewer_sock = tcp_pair()
    session_id = os.urandom(16)
    box = {}

    def host_side():
        try:
            box["host"] = handshake.host_handshake(
                SocketStream(host_sock, "direct-tcp"), [kdf.password_secret(password, HOST_ID)],
                viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id)
        except Exception as exc:      # surfaced below in the test thread
            box["error"] = exc

    thread = threading.Thread(target=host_side)
    thread.start()
    viewer = handshake.viewer_handshake(SocketStream(viewer_sock, "direct-tcp"), password,
                                        viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id)
    thread.join(15)
    if "error" in box:
        raise box["error"]
    return box["host"], viewer


def wait_for(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def grab_screen():
    return grab_screen_of(os.environ["DISPLAY"])


def grab_screen_of(display, box=None):
    """Screenshot of an X display (or of box = (left, top, right, bottom) on it)."""
    import mss
    from PIL import Image
    with mss.MSS(display=display) as sct:
        shot = sct.grab(box or sct.monitors[1])
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")


def max_channel_diff(a, b):
    from PIL import ImageChops
    return max(hi for _, hi in ImageChops.difference(a, b).getextrema())


def mean_diff(a, b):
    from PIL import ImageChops, ImageStat
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


class Target:
    """The Tk target window subprocess; `.events` is a queue of decoded JSON lines."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, "-c", TARGET], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.events = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait("ready", timeout=15)

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait(self, kind, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"target window never reported {kind!r}")
            event = self.events.get(timeout=left)
            if event["kind"] == kind:
                return event

    def collect(self, seconds, until=None):
        """Events for `seconds`, or up to the first one `until(event)` accepts (the last input
        sent: waiting for it rather than a fixed time keeps a loaded box from cutting it off)."""
        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                out.append(self.events.get(timeout=0.05))
            except queue.Empty:
                continue
            if until is not None and until(out[-1]):
                break
        return out

    def drain(self):
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()


def xdotool(env, *args):
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10).stdout


def pointer(env):
    fields = dict(part.split(":") for part in xdotool(env, "getmouselocation").split())
    return int(fields["x"]), int(fields["y"])


@skip_unless_xvfb
class SessionOnXvfb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = Xvfb(width=800, height=600).start()
        cls.saved_display = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = cls.xvfb.display   # mss and pynput open $DISPLAY
        cls.target = Target(cls.xvfb.env())

    @classmethod
    def tearDownClass(cls):
        cls.target.close()
        cls.xvfb.stop()
        if cls.saved_display is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = cls.saved_display

    def start_session(self, **host_kwargs):
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        host_channel, viewer_channel = secure_pair()
        self.host_events = []
        host = HostSession(host_channel, on_event=lambda name, **f: self.host_events.append((name, f)),
                           **host_kwargs)
        viewer = ViewerSession(viewer_channel)
        host.start()
        viewer.start()
        self.addCleanup(host.stop)
        self.addCleanup(viewer.stop)
        self.assertTrue(wait_for(lambda: viewer.stats["frames"] >= 1), "no frame arrived")
        return host, viewer

    def test_viewer_framebuffer_matches_host_screen(self):
        host, viewer = self.start_session(fps_cap=30)
        self.assertEqual(viewer.geometry, (800, 600))
        self.assertEqual(viewer.monitors, [(0, 0, 800, 600)])
        self.assertEqual(viewer.channel.path, "direct-tcp")
        screen = grab_screen()
        # The target's gradient photo is JPEG'd first and refreshed losslessly once it stays still.
        self.assertTrue(wait_for(lambda: max_channel_diff(viewer.framebuffer, screen) == 0, timeout=5),
                        f"after refresh still differs: max {max_channel_diff(viewer.framebuffer, screen)}")
        self.assertGreater(host.stats["bytes"], 1000)
        self.assertGreater(viewer.stats["bytes"], 1000)

    def test_changes_on_the_host_reach_the_viewer(self):
        host, viewer = self.start_session(fps_cap=60)
        frames = viewer.stats["frames"]
        env = self.xvfb.env()
        with_win = subprocess.Popen([sys.executable, "-c",
                                     "import tkinter as tk; r=tk.Tk(); r.geometry('120x80+600+450');"
                                     "r.configure(bg='#0040ff'); r.mainloop()"], env=env)
        self.addCleanup(with_win.wait, 5)
        self.addCleanup(with_win.kill)
        probe = (650, 490)
        self.assertTrue(wait_for(lambda: viewer.framebuffer.getpixel(probe) == (0, 0x40, 0xff)),
                        f"viewer shows {viewer.framebuffer.getpixel(probe)} where the host has blue")
        self.assertGreater(viewer.stats["frames"], frames)
        screen = grab_screen()
        self.assertLess(mean_diff(wait_for(lambda: viewer.framebuffer), screen), 2.0)

    def test_mouse_and_text_from_the_viewer_arrive_on_the_host(self):
        host, viewer = self.start_session()
        env = self.xvfb.env()
        viewer.send_mouse_move(150, 250)
        self.assertEqual(wait_for(lambda: pointer(env) == (150, 250) and pointer(env)), (150, 250))
        viewer.send_mouse_button(1, True, 300, 200)
        viewer.send_mouse_button(1, False)
        click = self.target.wait("button")
        self.assertEqual((click["num"], click["x"], click["y"]), (1, 300, 200))
        viewer.send_text("hi é!")
        viewer.send_key("Return", True)
        viewer.send_key("Return", False)
        keys = [e for e in self.target.collect(15, until=lambda e: e.get("keysym") == "Return")
                if e["kind"] == "key"]
        self.assertEqual("".join(e["char"] for e in keys if e["keysym"] != "Return"), "hi é!")
        self.assertIn("Return", [e["keysym"] for e in keys])
        self.assertTrue(wait_for(lambda: viewer.cursor == (300, 200)), f"cursor {viewer.cursor}")
        self.assertIsNotNone(viewer.cursor_shape, "the host never sent its pointer picture")

    def test_drag_double_click_wheel_and_modifiers(self):
        host, viewer = self.start_session()
        self.target.collect(0.1)
        viewer.send_mouse_button(1, True, 150, 150)         # drag from (150,150) to (250,180)
        viewer.send_mouse_move(200, 165)
        viewer.send_mouse_move(250, 180)
        viewer.send_mouse_button(1, False)
        viewer.send_click(1, 2, x=320, y=220)               # double-click
        viewer.send_scroll(0, 1)                            # wheel up, then right
        viewer.send_scroll(1, 0)
        for key, pressed in (("Control_L", True), ("a", True), ("a", False), ("Control_L", False),
                             ("F5", True), ("F5", False), ("Left", True), ("Left", False)):
            viewer.send_key(key, pressed)
        events = self.target.collect(15, until=lambda e: e.get("keysym") == "Left")
        kinds = [(e["kind"], e.get("num"), e.get("x"), e.get("y")) for e in events if e["kind"] != "key"]
        self.assertIn(("button", 1, 150, 150), kinds)
        self.assertIn(("drag", None, 250, 180), kinds)
        self.assertIn(("release", 1, 250, 180), kinds)
        self.assertIn(("double", None, 320, 220), kinds)
        self.assertIn(("button", 4, 320, 220), kinds)      # X11 wheel up
        # X11 wheel right is button 7; Tk 8.6 reports it as Shift + button 5 (its sideways convention)
        self.assertTrue(any(e["kind"] == "button" and (e["num"] == 7 or (e["num"] == 5 and e["state"] & 1))
                            for e in events), "no sideways scroll arrived")
        keys = [(e["keysym"], e["state"] & 0x4) for e in events if e["kind"] == "key"]
        self.assertIn(("a", 0x4), keys, "Ctrl+A did not arrive with Control held")
        self.assertIn(("F5", 0), keys)
        self.assertIn(("Left", 0), keys)

    def test_view_only_ignores_input(self):
        env = self.xvfb.env()
        subprocess.run(["xdotool", "mousemove", "10", "10"], env=env, timeout=10)
        host, viewer = self.start_session(view_only=True)
        self.target.drain()     # what earlier tests typed is not this test's input
        self.assertTrue(viewer.host_flags & 0x01, "Hello did not say view-only")
        viewer.send_mouse_move(400, 300)
        viewer.send_text("nope")
        time.sleep(0.7)     # the subject: nothing may move within the time an applied input would take
        self.assertEqual(pointer(env), (10, 10))
        self.assertEqual([e for e in self.target.collect(0.2) if e["kind"] == "key"], [])
        self.assertTrue(host.running and viewer.running)

    def shift_probe(self):
        from Xlib import XK, display
        conn = display.Display(self.xvfb.display)
        self.addCleanup(conn.close)
        code = conn.keysym_to_keycode(XK.string_to_keysym("Shift_L"))
        return lambda: bool(conn.query_keymap()[code // 8] & (1 << (code % 8)))

    def test_keys_held_are_released_when_the_viewer_says_bye_before_anyone_joins(self):
        host, viewer = self.start_session()
        shift_down = self.shift_probe()
        viewer.send_key("Shift_L", True)
        self.assertTrue(wait_for(shift_down), "Shift_L never went down")
        viewer.stop("bye")
        self.assertTrue(wait_for(lambda: not shift_down()), "Shift_L held until the host is joined")
        host.join(10)

    def test_stop_and_join_at_once_close_input_once(self):
        """The Disconnect button's thread calls stop() while the session's owner sits in join():
        both tear down. Two closes of one X connection at once hung the host for ever (Xlib's
        request lock stayed held), so the injector must be closed exactly once."""
        host, viewer = self.start_session()
        shift_down = self.shift_probe()
        viewer.send_key("Shift_L", True)
        self.assertTrue(wait_for(shift_down), "Shift_L never went down")
        closes = []
        injector = host._injector
        real_close = injector.close
        injector.close = lambda: (closes.append(threading.current_thread().name), real_close())
        start = threading.Barrier(2)
        threads = [threading.Thread(target=lambda call=call: (start.wait(5), call()), daemon=True)
                   for call in (host.stop, lambda: host.join(20))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "stop() or join() hung")
        self.assertEqual(len(closes), 1, closes)
        self.assertFalse(shift_down(), "Shift_L still held after the session ended")

    def test_keys_held_are_released_when_the_session_drops(self):
        host, viewer = self.start_session()
        shift_down = self.shift_probe()

        viewer.send_key("Shift_L", True)
        self.assertTrue(wait_for(shift_down), "Shift_L never went down")
        viewer.channel.stream.close()          # the viewer vanishes without a Bye
        from tagio.errors import ConnectionClosed, SecureChannelError
        with self.assertRaises((ConnectionClosed, SecureChannelError)):
            host.join(10)
        self.assertFalse(shift_down(), "Shift_L still held after the session dropped")

    def test_quality_and_monitor_requests(self):
        host, viewer = self.start_session()
        viewer.set_quality(40, 20)
        self.assertTrue(wait_for(lambda: host.fps_cap == 20 and host.target_quality == 40))
        host.send_clipboard("host text")
        viewer.send_clipboard("viewer text")
        self.assertTrue(wait_for(lambda: ("clipboard", {"text": "viewer text"}) in self.host_events))
        from tagio.session import events as ev
        self.assertTrue(wait_for(lambda: ev.Clipboard("host text") in self._drain(viewer)))
        viewer.select_monitor(1)
        self.assertTrue(wait_for(lambda: any(isinstance(u, ev.Size) for u in self._drain(viewer))),
                        "host did not restart the stream after SelectMonitor")

    @staticmethod
    def _drain(viewer):
        out = []
        while not viewer.updates.empty():
            out.append(viewer.updates.get_nowait())
        return out

    def test_malformed_viewer_messages_end_only_that_session(self):
        from tagio.errors import RemoteProtocolError
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        cases = [(b"\x99\x00\x01", "unknown session message type 153"),
                 (m.encode(m.FrameAck(999999)), "unknown frame 999999"),
                 (m.encode(HELLO_FROM_VIEWER), "host-only message"),
                 (b"\x05\x01", "must be 11 bytes")]
        for data, fragment in cases:
            with self.subTest(fragment=fragment):
                host_channel, raw_viewer = secure_pair()
                host = HostSession(host_channel)
                host.start()
                try:
                    self.assertIsInstance(m.decode(raw_viewer.recv()), m.Hello)
                    raw_viewer.send(data)
                    with self.assertRaises(RemoteProtocolError) as ctx:
                        host.join(10)
                    self.assertIn(fragment, str(ctx.exception))
                    bye = wait_for(lambda: self._next_bye(raw_viewer), timeout=5)
                    self.assertIn("protocol error", bye.text)
                finally:
                    host.stop()
                    raw_viewer.close()
        host, viewer = self.start_session()         # and the next session still works
        self.assertEqual(viewer.geometry, (800, 600))

    @staticmethod
    def _next_bye(channel):
        from tagio.protocol import session as m
        while True:
            msg = m.decode(channel.recv())
            if isinstance(msg, m.Bye):
                return msg

    def test_pull_flow_control_and_idle(self):
        """Without acks the host stops after MAX_IN_FLIGHT frames; a still screen sends nothing."""
        from tagio.protocol import session as m
        from tagio.session.host import MAX_IN_FLIGHT, HostSession
        env = self.xvfb.env()
        host_channel, raw_viewer = secure_pair()
        host = HostSession(host_channel, fps_cap=60, view_only=True)
        host.start()
        self.addCleanup(raw_viewer.close)
        self.addCleanup(host.stop)
        inbox = queue.Queue()

        def read():
            try:
                while True:
                    inbox.put(m.decode(raw_viewer.recv()))
            except Exception:       # closed at the end of the test
                pass
        threading.Thread(target=read, daemon=True).start()

        def finals(seconds, want=None):
            # Up to `seconds`, or until `want` frames came (then a loaded box only makes it slower).
            out, deadline = [], time.monotonic() + seconds
            while time.monotonic() < deadline and (want is None or len(out) < want):
                try:
                    msg = inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(msg, m.Frame) and msg.flags & m.FINAL:
                    out.append(msg.frame_id)
            return out

        mover = subprocess.Popen([sys.executable, "-c",
                                  "import tkinter as tk; r=tk.Tk(); r.geometry('200x100+500+400'); n=[0]\n"
                                  "def t():\n n[0]+=1; r.configure(bg='#%06x' % (n[0]*40503 % 0xffffff)); r.after(20, t)\n"
                                  "t(); r.mainloop()"], env=env)
        self.addCleanup(mover.wait, 5)
        self.addCleanup(mover.kill)
        sent = finals(15, want=MAX_IN_FLIGHT)      # the mover's Tk may start slowly
        sent += finals(0.5)
        self.assertEqual(len(sent), MAX_IN_FLIGHT, f"frames without acks: {sent}")
        raw_viewer.send(m.encode(m.FrameAck(sent[0])))
        more = finals(10, want=1)
        more += finals(0.5)
        self.assertEqual(len(more), 1, "one ack must buy exactly one more frame")
        mover.kill()
        mover.wait(5)
        for frame_id in sent[1:] + more:
            raw_viewer.send(m.encode(m.FrameAck(frame_id)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:      # ack until the screen settles (incl. the lossless refresh)
            got = finals(0.8)
            for frame_id in got:
                raw_viewer.send(m.encode(m.FrameAck(frame_id)))
            if not got:
                break
        self.assertEqual(finals(1.2), [], "a still screen must not produce frames")
        self.assertTrue(host.running)

    def test_viewer_bye_ends_host_cleanly(self):
        host, viewer = self.start_session()
        viewer.stop("done watching")
        host.join(10)           # no exception: a Bye is a clean end
        self.assertIn(("closed", {"reason": "done watching"}), self.host_events)
        self.assertFalse(host.running)


class EndedSessionJoin(unittest.TestCase):
    """A thread that outlives its session's end must not keep the session (a ghost that locks the
    host) alive for ever: join() gives the threads STOP_JOIN, then names the stuck one in the log."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_join_returns_and_names_a_stuck_thread(self):
        from unittest import mock
        from tagio.session import host as host_module

        class Closed:
            def close(self):
                pass
        session = host_module.HostSession(Closed())
        release = threading.Event()
        self.addCleanup(release.set)
        session._workers.spawn("stuck-capture", lambda: release.wait(30))     # ignores stopping
        session._workers.stop()
        started = time.monotonic()
        with mock.patch.object(host_module, "STOP_JOIN", 0.3), \
                self.assertLogs("tagio.session.host", "ERROR") as logs:
            session.join()
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIn("stuck-capture", "\n".join(logs.output))


class MonitorSwitch(unittest.TestCase):
    """Monitor choice logic with a stand-in grabber (Xvfb here offers a single monitor)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    class Grabber:
        monitors = [{"left": 0, "top": 0, "width": 3200, "height": 1080},
                    {"left": 0, "top": 0, "width": 1920, "height": 1080},
                    {"left": 1920, "top": 0, "width": 1280, "height": 1024}]

    def switch(self, index):
        from tagio.protocol import session as m
        from tagio.session.cursor import CursorTracker
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        host._cursor = CursorTracker(lambda: (2000, 10))
        chosen = host._switch_monitor(self.Grabber(), index)
        sent = []
        while not host._send_q.empty():
            sent.append(m.decode(host._send_q.get_nowait()))
        return host, chosen, sent

    def test_second_monitor_is_announced_and_tracked(self):
        from tagio.protocol import session as m
        host, chosen, sent = self.switch(2)
        self.assertEqual(chosen["box"], {"left": 1920, "top": 0, "width": 1280, "height": 1024})
        self.assertEqual(sent[0], m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 1280, 1024, 2, NO_CLIPBOARD))
        self.assertEqual(sent[1], m.MonitorList(2, [(0, 0, 1920, 1080), (1920, 0, 1280, 1024)]))
        self.assertEqual(host._cursor.poll(), m.Cursor(80, 10))      # relative to the new monitor

    def test_switch_waits_until_the_old_monitors_frames_are_acknowledged(self):
        # Frames of the old monitor still queued must reach the viewer before the new Hello.
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        host._in_flight[7] = time.monotonic()
        host._monitor_wanted = 2
        host._monitor_switch.set()
        result = []
        worker = threading.Thread(target=lambda: result.append(host._next_monitor(self.Grabber())))
        worker.start()
        try:
            worker.join(0.3)
            self.assertTrue(worker.is_alive())
            self.assertTrue(host._send_q.empty())           # no Hello while frame 7 is unacknowledged
            host._on_ack(m.FrameAck(7))
            worker.join(10)
            self.assertFalse(worker.is_alive())
        finally:
            host._workers.stop()
            worker.join(10)
        self.assertEqual(result[0]["index"], 2)
        self.assertEqual(m.decode(host._send_q.get_nowait()).monitor, 2)
        self.assertFalse(host._monitor_switch.is_set())

    def test_all_monitors_is_the_whole_virtual_screen(self):
        from tagio.protocol import session as m
        host, chosen, sent = self.switch(0)
        self.assertEqual(chosen["box"], {"left": 0, "top": 0, "width": 3200, "height": 1080})
        self.assertEqual(sent[0], m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 3200, 1080, 0, NO_CLIPBOARD))
        self.assertEqual(sent[1], m.MonitorList(0, [(0, 0, 1920, 1080), (1920, 0, 1280, 1024)]))
        self.assertEqual(host._cursor.poll(), m.Cursor(2000, 10))    # desktop coordinates

    def test_unknown_monitor_falls_back_to_the_first(self):
        host, chosen, sent = self.switch(9)
        self.assertEqual(chosen["index"], 1)
        self.assertEqual((sent[0].width, sent[0].monitor), (1920, 1))


class QualityLogic(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_sustained_full_screen_motion_lowers_jpeg_quality(self):
        from tagio.session.host import MOTION_QUALITY_DROP, HostSession
        host = HostSession(channel=None, quality=75)
        whole = 30 * 17                                  # every tile of 1920x1080
        self.assertEqual(host._frame_quality(whole, 1920, 1080), 75)     # one big change: not yet
        self.assertEqual(host._frame_quality(whole, 1920, 1080), 75 - MOTION_QUALITY_DROP)
        self.assertEqual(host._frame_quality(3, 1920, 1080), 75)         # motion over: full quality

    def test_slow_acks_trade_quality_for_frame_rate(self):
        from tagio.session.host import MIN_QUALITY, HostSession
        host = HostSession(channel=None, quality=60)
        for _ in range(10):
            host._adapt_quality(1.0)
        self.assertEqual(host.quality, MIN_QUALITY)
        host._adapt_quality(0.01)
        self.assertEqual(host.quality, MIN_QUALITY + 1)       # recovers slowly towards the target
        self.assertEqual(host.target_quality, 60)


class EncodeLogic(unittest.TestCase):
    """What the encoder makes of a grab's dirty tiles, and what it tells the lossless refresh."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    class Refresh:
        """Records what the encoder reports: (tiles, lossy) sent live, (tiles, "top-off") refreshed."""
        lossy = {}

        def __init__(self):
            self.calls = []

        def sent(self, tiles, lossy, size=0):
            self.calls.append((set(tiles), lossy))

        def refreshed(self, tiles, size):
            self.calls.append((set(tiles), "top-off"))

        def holds_lossy(self, tiles):
            return False

    def test_small_changes_of_one_grab_are_one_picture(self):
        from tagio.session.host_encode import _changed_in
        box = (881, 508, 53, 52)                            # a damage box over four tiles
        three = {(13, 7), (14, 7), (13, 8)}
        self.assertEqual(_changed_in(three, box, 1920, 1080), [box])
        whole = (0, 0, 1920, 1080)                          # far apart on a polled screen: two pictures
        self.assertEqual(sorted(_changed_in({(0, 0), (20, 10)}, whole, 1920, 1080)),
                         [(0, 0, 64, 64), (1280, 640, 64, 64)])

    def test_a_small_grab_whose_tiles_all_changed_is_one_picture_of_the_grab(self):
        from tagio.session.host_encode import _changed_in
        box = (881, 508, 53, 52)                            # four tiles, all of them dirty
        self.assertEqual(_changed_in({(13, 7), (14, 7), (13, 8), (14, 8)}, box, 1920, 1080), [box])
        row = (800, 510, 200, 50)                           # a grab of eight tiles, the top row dirty
        self.assertEqual(_changed_in({(c, 7) for c in range(12, 16)}, row, 1920, 1080), [(800, 510, 200, 2)])

    def test_one_rectangle_or_many_the_frames_carry_them_all(self):
        from tagio.protocol import session as m
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        one = [m.Rect(0, 0, 4, 4, m.ENC_FILL, b"abc")]
        self.assertEqual([m.decode(data) for data in host._pack_frames(9, 1.5, one)],
                         [m.Frame(9, m.FINAL, 1.5, host._latency_ms, one)])
        big = [m.Rect(0, i, 4, 1, m.ENC_PNG, bytes(m.MAX_MESSAGE // 3)) for i in range(4)]
        frames = [m.decode(data) for data in host._pack_frames(9, 1.5, big)]
        self.assertEqual([f.flags for f in frames], [0, m.FINAL])
        self.assertEqual([r for f in frames for r in f.rects], big)

    def test_a_grab_without_changes_has_nothing_to_encode(self):
        from tagio.session.host_encode import _changed_in
        for screen in ((100, 80), (1920, 1080)):        # a small screen is one small grab
            self.assertEqual(_changed_in(set(), (0, 0, *screen), *screen), [])

    def test_small_frames_are_encoded_on_the_spot_only_while_the_encoder_is_idle(self):
        from tagio.protocol import session as m
        from tagio.session import tiles as t
        from tagio.session.host import HostSession
        written = []                                # what went to the channel at once (the send queue was idle)
        host = HostSession(channel=type("Channel", (), {"send": staticmethod(written.append)})())
        host._frame_id = 0                          # as the capture loop starts it
        screen = t.ScreenCopy(1920, 1080)

        def emit(w, h):
            source = (bytes(w * h * 4), 0, 0, w, h, t.rects_tiles([(0, 0, w, h)], 1920, 1080), None)
            self.assertTrue(host._emit(time.monotonic(), [source], [], screen, 1))

        def sent_frames():                          # written, or queued for the send thread
            out, data = [], written[:]
            del written[:]
            while not host._send_q.empty():
                data.append(host._send_q.get_nowait())
            for item in data:
                msg = m.decode(item)
                out += [msg.frame_id] if isinstance(msg, m.Frame) else []
            return out
        emit(60, 50)                                # idle encoder: encoded here, at once
        self.assertEqual(sent_frames(), [1])
        self.assertTrue(host._encode_q.empty())
        emit(1920, 1080)                            # a big one goes to the encode thread ...
        emit(60, 50)                                # ... and a small one may not overtake it
        self.assertEqual(sent_frames(), [])
        self.assertEqual([host._encode_q.get_nowait()[0] for _ in range(2)], [2, 3])
        self.assertEqual(host._encoding, 2)

    def test_a_scroll_search_that_keeps_missing_pauses_and_a_scroll_is_still_found(self):
        import random
        from unittest import mock
        from tagio.session import motion
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        now = [0.0]
        host._search_gate = motion.SearchGate(lambda: now[0])
        w, h, rnd = 320, 256, random.Random(3)
        searched = []
        real_detect = motion.detect

        def counting_detect(*args, **kwargs):
            searched.append(now[0])
            return real_detect(*args, **kwargs)

        def frames(n):
            return [rnd.randbytes(w * h * 4) for _ in range(n)]
        whole = [(0, 0, w, h)]
        with mock.patch.object(motion, "detect", counting_detect):
            photos = frames(motion.MISSES_FREE + 3)     # whole-screen pictures: nothing scrolled
            for prev, cur in zip(photos, photos[1:]):
                self.assertEqual(host._find_copies([], set(), cur, prev, (0, 0, w, h), whole), whole)
            self.assertEqual(len(searched), motion.MISSES_FREE + 1)     # then paused
            now[0] += motion.MAX_PAUSE
            page = photos[-1] + photos[-1]              # a page twice the screen's height, scrolled 16 rows
            prev, cur = page[:w * h * 4], page[16 * w * 4:(16 + h) * w * 4]
            copies = []
            rest = host._find_copies(copies, set(), cur, prev, (0, 0, w, h), whole)
        self.assertEqual(len(searched), motion.MISSES_FREE + 2)
        self.assertTrue(copies)
        self.assertLessEqual(sum(rh for _x, _y, _w, rh in rest), 16)     # at most the 16 new rows as pixels
        self.assertTrue(host._search_gate.open())

    def test_a_small_exact_change_does_not_cancel_a_tiles_refresh(self):
        from PIL import Image
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        host._refresh = self.Refresh()
        rects = []
        flat = Image.new("RGB", (20, 10), (1, 2, 3))
        flat.putpixel((0, 0), (9, 9, 9))                    # two colours: a PNG, exact
        host._encode_rect(rects, flat, (70, 10), 75, False, (300, 200))
        self.assertEqual(host._refresh.calls[-1], (set(), False))     # covers no tile whole
        tile = flat.resize((64, 64))
        host._encode_rect(rects, tile, (64, 0), 75, False, (300, 200))
        self.assertEqual(host._refresh.calls[-1], ({(1, 0)}, False))
        edge = flat.resize((44, 8))                         # the partial tile at the screen's corner
        host._encode_rect(rects, edge, (256, 192), 75, True, (300, 200))
        self.assertEqual(host._refresh.calls[-1], ({(4, 3)}, "top-off"))


class SendLogic(unittest.TestCase):
    """A frame part or Cursor skips the send thread only while nothing waits for it, so no
    message ever overtakes one made before it."""

    def setUp(self):
        from tagio.session.host import HostSession
        self.written = []
        self.host = HostSession(channel=types.SimpleNamespace(send=lambda data: self.written.append(bytes(data))))

    def frame(self, frame_id, final=True, size=3):
        from tagio.protocol import session as m
        rect = m.Rect(0, 0, 1, 1, m.ENC_PNG, bytes(size))
        return m.encode(m.Frame(frame_id, m.FINAL if final else 0, 0.0, 0, [rect]))

    def test_written_at_once_while_the_queue_is_idle(self):
        data = self.frame(1)
        self.host._unsent = 1
        self.assertTrue(self.host._send_or_queue(data))
        self.assertEqual(self.written, [data])
        self.assertTrue(self.host._send_q.empty())
        self.assertEqual((self.host._unsent, self.host.stats["frames"], self.host.stats["bytes"]), (0, 1, len(data)))

    def test_queued_behind_a_message_the_send_thread_has_not_written_yet(self):
        from tagio.protocol import session as m
        hello = m.encode(m.Ping(7))
        self.host._queue(m.Ping(7))
        taken = self.host._send_q.get_nowait()      # the send thread took it but has not written it
        self.assertEqual(taken, hello)
        self.assertTrue(self.host._send_or_queue(self.frame(1)))
        self.assertEqual(self.written, [])
        self.host._send_q.task_done()               # written now: the next one may go at once
        self.host._unsent = 2
        self.assertTrue(self.host._send_or_queue(self.frame(2)))
        self.assertEqual(self.written, [], "frame 1 still waits in the queue")
        self.assertEqual(m.decode(self.host._send_q.get_nowait()).frame_id, 1)

    def test_queued_while_another_thread_writes_or_when_large(self):
        from tagio.session.host import INLINE_SEND
        with self.host._send_gate:
            self.assertTrue(self.host._send_or_queue(self.frame(1)))
        self.host._send_q.get_nowait()
        self.host._send_q.task_done()
        self.assertTrue(self.host._send_or_queue(self.frame(2, size=INLINE_SEND)))
        self.assertEqual(self.written, [])
        self.assertEqual(self.host._send_q.qsize(), 1)

    def test_a_frame_is_known_to_flow_control_before_its_last_part_is_written(self):
        seen = []
        self.host.channel.send = lambda data: seen.append(self.host._flow.estimator.in_flight)
        self.host._unsent = 1
        self.host._send_or_queue(self.frame(1, final=False))
        self.host._send_or_queue(self.frame(1))
        self.assertEqual(seen[0], 0)
        self.assertGreater(seen[1], 0)


class PolledCapture(unittest.TestCase):
    """Without damage reports (capture_win32.ScanProbe): what changed lately is grabbed at every
    frame, and the scanlines are read at most SCAN_FPS times a second."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses
    W, H = 320, 192

    class Screen:
        """A stand-in for mss: grabs of a BGRX buffer, counted by height."""

        def __init__(self, width, height):
            self.width, self.buf, self.grabs, self.tops = width, bytearray(width * height * 4), [], []

        def grab(self, box):
            self.grabs.append((box["width"], box["height"]))
            self.tops.append(box["top"])
            rows = [self.buf[((box["top"] + r) * self.width + box["left"]) * 4:
                             ((box["top"] + r) * self.width + box["left"] + box["width"]) * 4]
                    for r in range(box["height"])]
            return types.SimpleNamespace(raw=bytearray(b"".join(rows)))

        def paint(self, x, y, w, h, value):
            for row in range(y, y + h):
                self.buf[(row * self.width + x) * 4:(row * self.width + x + w) * 4] = bytes([value]) * (w * 4)

    def setUp(self):
        from tagio.session import capture_win32 as win
        from tagio.session import tiles as t
        from tagio.session.host import HostSession
        self.host = HostSession(channel=None)
        self.sct = self.Screen(self.W, self.H)
        box = {"left": 0, "top": 0, "width": self.W, "height": self.H}
        self.mon = {"index": 1, "box": box, "screen": t.ScreenCopy(self.W, self.H), "full_at": 0.0,
                    "hot": t.RecentChanges(clock=lambda: self.now)}
        self.probe = win.ScanProbe(lambda b: self.sct.grab(b).raw, clock=lambda: self.now)
        self.probe.watch(self.mon)
        self.now = 0.0
        self.capture()                                      # the first, whole grab

    def capture(self):
        return self.host._grab_changes(self.sct, self.mon, self.probe, self.now)

    def test_a_change_found_once_is_followed_at_every_frame(self):
        from tagio.session.capture_win32 import QUIET_SCAN_FPS, SCAN_FPS
        value, found_at = 1, None
        for frame in range(30):                             # 60 Hz frames of a 20x20 animation
            self.now = frame / 60
            value += 1
            self.sct.paint(100, 70, 20, 20, value)
            sources = self.capture()
            if sources and found_at is None:
                found_at = frame
            elif found_at is not None:
                self.assertTrue(sources, f"frame {frame}: the change was not followed")
        self.assertIsNotNone(found_at)
        self.assertLessEqual(found_at / 60, 2 / QUIET_SCAN_FPS)  # a 20-row change: a scan in two sees it
        scans = sum(1 for w, h in self.sct.grabs if (w, h) == (self.W, 1)) // len(range(0, self.H, 32))
        self.assertLessEqual(scans, 30 / 60 * SCAN_FPS + 1)   # scanned at most SCAN_FPS a second


    def test_two_animations_side_by_side_are_grabbed_as_one_box(self):
        for frame in range(3):                              # both found by the scans (after the
            self.now = 0.3 + frame / 20                     # first grab's tiles are no longer hot)
            self.sct.paint(70, 40, 20, 30, frame + 1)       # two tile rows apart in one tile column ...
            self.sct.paint(130, 100, 20, 20, frame + 1)     # ... and the next one
            self.capture()
        self.now, grabs = 0.42, len(self.sct.grabs)        # the next scan is due at 0.45
        self.sct.paint(70, 40, 20, 30, 9)
        self.sct.paint(130, 100, 20, 20, 9)
        sources = self.capture()                            # no scan due: the hot tiles only
        self.assertEqual(self.sct.grabs[grabs:], [(128, 128)])
        self.assertEqual(len(sources), 1)

    def test_a_one_row_change_in_a_far_corner_is_grabbed_within_the_sweep_bound(self):
        """Beside an animation followed at every frame, a one-row change in the bottom-right corner
        on a row the scanlines have just passed (the next one reaches it STEP scans later) is
        grabbed within SWEEP_SECONDS and a quiet scan interval; the whole screen is never grabbed
        again, and once the animation is known the scans slow down."""
        from tagio.session import capture_win32 as win
        frame, found, corner, marks = 0, None, None, {}
        while found is None and frame < 6 * 60:
            frame += 1
            self.now = frame / 60
            self.sct.paint(100, 70, 20, 20, frame % 200 + 1)
            marks[frame] = len(self.sct.grabs)
            if frame == 150:
                scanned = [top for top, size in zip(self.sct.tops, self.sct.grabs) if size == (self.W, 1)]
                corner = (self.W - 5, self.H - win.STEP + scanned[-1] % win.STEP)
                self.sct.paint(corner[0], corner[1], 5, 1, 0xFF)
            sources = self.capture()
            if frame >= 150 and any(x <= corner[0] < x + w and y <= corner[1] < y + h
                                    for _raw, x, y, w, h, _dirty, _prev in sources):
                found = frame
        self.assertIsNotNone(found, "the corner never reached the sources")
        self.assertLessEqual((found - 150) / 60, win.SWEEP_SECONDS + 1 / win.QUIET_SCAN_FPS)
        self.assertNotIn((self.W, self.H), self.sct.grabs[marks[1]:])
        quiet = self.sct.grabs[marks[90]:marks[150]]        # a second after the animation's first find
        scans = sum(1 for size in quiet if size == (self.W, 1)) / len(range(0, self.H, win.STEP))
        self.assertLessEqual(scans, win.QUIET_SCAN_FPS + 1)

    def test_a_tile_still_for_a_while_is_grabbed_only_with_the_scans(self):
        from tagio.session import tiles as t
        for frame in range(1, 31):                          # half a second of animation: found
            self.now = frame / 60
            self.sct.paint(100, 70, 20, 20, frame)
            self.capture()
        tile_frames, scan_frames = [], []
        for frame in range(31, 91):                         # then still for a second
            self.now, before = frame / 60, len(self.sct.grabs)
            self.capture()
            grabs = self.sct.grabs[before:]
            if (t.TILE, t.TILE) in grabs:
                tile_frames.append(frame)
            if (self.W, 1) in grabs:
                scan_frames.append(frame)
        hot = [f for f in range(31, 91) if (f - 30) / 60 < t.HOT_FOR]   # HOT_FOR after the last change
        self.assertEqual(tile_frames[:len(hot)], hot)
        self.assertEqual(tile_frames[len(hot):], [f for f in scan_frames if f > hot[-1]])
        self.assertLess(len(scan_frames), 60 / 2)

    def test_far_apart_hot_tiles_stay_apart(self):
        from tagio.session.host_capture import _fewer_boxes
        near = [(832, 448, 128, 64), (768, 512, 256, 64)]   # the bench's small scene: label and bar
        self.assertEqual(_fewer_boxes(near), [(768, 448, 256, 128)])
        far = [(0, 0, 64, 64), (1856, 1016, 64, 64)]
        self.assertEqual(_fewer_boxes(far), far)
        self.assertEqual(_fewer_boxes(far[:1]), far[:1])

class Pacing(unittest.TestCase):
    """Capture ticks lie on a fixed grid, so late wake-ups do not lower the frame rate."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_oversleeping_does_not_shift_the_grid(self):
        from tagio.session.host import next_tick
        now, slept = [100.0], []

        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds + 0.0008                  # every sleep overruns by 0.8 ms

        tick = 100.0
        for _ in range(60):
            tick = next_tick(tick, 60, lambda: now[0], sleep)
        self.assertAlmostEqual(tick, 101.0, places=6)   # 60 ticks in exactly one second
        self.assertLess(now[0] - tick, 0.001)
        self.assertTrue(all(0 < s <= 1 / 60 for s in slept))

    def test_a_late_capture_starts_a_new_grid_instead_of_bursting(self):
        from tagio.session.host import next_tick
        slept = []
        self.assertEqual(next_tick(10.0, 60, lambda: 10.5, slept.append), 10.5)
        self.assertEqual(next_tick(10.0, 60, lambda: 10.02, slept.append), 10.0 + 1 / 60)    # slightly late
        self.assertEqual(slept, [])
        self.assertEqual(next_tick(10.0, 10, lambda: 10.04, slept.append), 10.1)
        self.assertAlmostEqual(slept[0], 0.06)


class PacingWithDamage(unittest.TestCase):
    """pace_tick: the grid tick, then one wait for the server to draw (an injected clock)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def setUp(self):
        self.now = [100.0]
        self.waits = []

    def clock(self):
        return self.now[0]

    def sleep(self, seconds):
        self.now[0] += seconds

    def drawn_after(self, delay):
        """A wait_drawn whose drawing comes `delay` seconds after it is called (None: never)."""
        def wait(timeout):
            self.waits.append(timeout)
            took = timeout if delay is None else min(delay, timeout)
            self.now[0] += took
            return delay is not None and delay <= timeout
        return wait

    def test_drawing_already_there_keeps_the_grid(self):
        from tagio.session.host_capture import pace_tick
        tick = pace_tick(100.0, 60, self.clock, self.sleep, self.drawn_after(0.0001))
        self.assertEqual(tick, 100.0 + 1 / 60)
        self.assertEqual(len(self.waits), 1)                # one wait per frame, not two
        self.assertAlmostEqual(self.waits[0], 1 / 60)

    def test_late_drawing_starts_the_grid_at_its_time(self):
        from tagio.session.host_capture import pace_tick
        tick = pace_tick(100.0, 60, self.clock, self.sleep, self.drawn_after(0.005))
        self.assertAlmostEqual(tick, 100.0 + 1 / 60 + 0.005)
        self.assertEqual(tick, self.now[0])

    def test_nothing_drawn_waits_one_interval_more(self):
        from tagio.session.host_capture import pace_tick
        tick = pace_tick(100.0, 60, self.clock, self.sleep, self.drawn_after(None))
        self.assertAlmostEqual(tick, 100.0 + 2 / 60)

    def test_without_damage_reports_only_the_grid(self):
        from tagio.session.host_capture import pace_tick
        self.assertEqual(pace_tick(100.0, 60, self.clock, self.sleep), 100.0 + 1 / 60)

    def sleeps(self):
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            self.now[0] += seconds
        return slept, sleep

    def test_a_wait_that_found_the_drawing_there_is_not_late_even_after_an_oversleep(self):
        from tagio.session.host_capture import pace_drawing

        def oversleep(seconds):
            self.now[0] += seconds + 0.002             # the sleep to the tick overran by 2 ms
        tick, late = pace_drawing(100.0, 60, self.clock, oversleep, self.drawn_after(0.0))
        self.assertAlmostEqual(tick, 100.0 + 1 / 60 + 0.002)       # a new grid, as before
        self.assertFalse(late)                          # but the drawing was there in time
        tick, late = pace_drawing(tick, 60, self.clock, self.sleep, self.drawn_after(0.003))
        self.assertTrue(late)

    def test_early_wait_for_late_drawing_is_one_wake_up_and_the_same_tick(self):
        from tagio.session.host_capture import pace_drawing
        slept, sleep = self.sleeps()
        tick, late = pace_drawing(100.0, 60, self.clock, sleep, self.drawn_after(1 / 60 + 0.005), early=True)
        self.assertTrue(late)
        self.assertAlmostEqual(tick, 100.0 + 1 / 60 + 0.005)      # as without `early`
        self.assertEqual(tick, self.now[0])
        self.assertEqual((slept, len(self.waits)), ([], 1))        # no sleep to the tick first
        self.assertAlmostEqual(self.waits[0], 2 / 60)              # up to one interval past the tick

    def test_early_wait_for_drawing_before_the_tick_still_keeps_the_grid(self):
        from tagio.session.host_capture import pace_drawing
        slept, sleep = self.sleeps()
        tick, late = pace_drawing(100.0, 60, self.clock, sleep, self.drawn_after(0.004), early=True)
        self.assertFalse(late)
        self.assertEqual(tick, 100.0 + 1 / 60)
        self.assertAlmostEqual(self.now[0], 100.0 + 1 / 60)
        self.assertEqual(len(slept), 1)
        self.assertAlmostEqual(slept[0], 1 / 60 - 0.004)

    def test_early_wait_for_drawing_just_after_the_tick_keeps_the_grid(self):
        from tagio.session.host_capture import ON_GRID, pace_drawing
        tick, late = pace_drawing(100.0, 60, self.clock, self.sleep, self.drawn_after(1 / 60 + ON_GRID / 2), early=True)
        self.assertFalse(late)
        self.assertEqual(tick, 100.0 + 1 / 60)

    def test_early_wait_with_nothing_drawn_ends_one_interval_past_the_tick(self):
        from tagio.session.host_capture import pace_drawing
        tick, late = pace_drawing(100.0, 60, self.clock, self.sleep, self.drawn_after(None), early=True)
        self.assertTrue(late)
        self.assertAlmostEqual(tick, 100.0 + 2 / 60)

    def test_early_wait_far_behind_starts_a_new_grid(self):
        from tagio.session.host_capture import pace_drawing
        self.now[0] = 100.5
        tick, _ = pace_drawing(100.0, 60, self.clock, self.sleep, self.drawn_after(0.0), early=True)
        self.assertEqual(tick, 100.5)
        self.assertAlmostEqual(self.waits[0], 1 / 60)


class PaceMode(unittest.TestCase):
    """HostCapture._pace waits early only after a drawing came late, and only for short intervals
    (the stop Event is not watched while it waits)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    class Probe:
        def __init__(self, clock, delays):
            self.clock, self.delays, self.timeouts = clock, list(delays), []

        def wait(self, timeout):
            self.timeouts.append(timeout)
            self.clock.now += min(self.delays.pop(0), timeout)
            return True

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    def capture(self, clock, fps):
        from unittest import mock
        from tagio.session.host_capture import HostCapture
        host = HostCapture()
        host.fps_cap = fps
        host._nap = lambda seconds: setattr(clock, "now", clock.now + seconds)
        patch = mock.patch("tagio.session.host_capture.time.monotonic", clock)
        patch.start()
        self.addCleanup(patch.stop)
        return host

    def test_late_drawing_makes_the_next_wait_start_early(self):
        clock = self.Clock()
        host = self.capture(clock, 60)
        interval = 1 / 60
        probe = self.Probe(clock, [0.002, 0.0])        # delays from the start of each wait
        tick = host._pace(0.0, probe)                   # slept to the tick, then waited
        self.assertAlmostEqual(tick, interval + 0.002)
        self.assertAlmostEqual(probe.timeouts[0], interval)
        start = clock.now
        host._pace(tick, probe)                         # waits from now: up to two intervals
        self.assertAlmostEqual(probe.timeouts[1], tick + 2 * interval - start)

    def test_drawing_on_time_keeps_the_sleep_first(self):
        clock = self.Clock()
        host = self.capture(clock, 60)
        probe = self.Probe(clock, [0.0, 0.0])
        tick = host._pace(0.0, probe)
        self.assertEqual(tick, 1 / 60)
        host._pace(tick, probe)
        self.assertAlmostEqual(probe.timeouts[1], 1 / 60)      # slept to the tick first

    def test_after_the_sleep_the_probe_reads_at_once_and_early_it_only_waits(self):
        clock = self.Clock()
        host = self.capture(clock, 60)
        probe = self.Probe(clock, [0.002, 0.0])
        looked = []
        probe.look = lambda timeout: looked.append(timeout) or probe.wait(timeout)
        tick = host._pace(0.0, probe)                   # sleep first: look() (read, else wait)
        self.assertEqual(len(looked), 1)
        host._pace(tick, probe)                         # early: wait() only (the tick is ahead)
        self.assertEqual((len(looked), len(probe.timeouts)), (1, 2))

    def test_long_intervals_never_wait_early(self):
        from tagio.session.host_capture import NAP_MAX
        clock = self.Clock()
        fps = max(1, int(0.5 / NAP_MAX))                # intervals twice NAP_MAX
        host = self.capture(clock, fps)
        probe = self.Probe(clock, [0.01, 0.0])
        tick = host._pace(0.0, probe)
        self.assertGreater(tick, 1 / fps)               # drawn late ...
        host._pace(tick, probe)
        self.assertAlmostEqual(probe.timeouts[1], 1 / fps)     # ... yet slept to the tick first


class NoDisplay(unittest.TestCase):
    """A host that cannot capture says so once, to its caller and to the viewer; nothing crashes."""

    @skip_on_windows(NO_DISPLAY)
    def test_missing_display_is_a_clear_error_on_both_sides(self):
        from tagio.errors import ConfigError
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        host_channel, viewer_channel = secure_pair()
        events = []
        host = HostSession(host_channel, display=":65000", on_event=lambda n, **f: events.append(n))
        viewer = ViewerSession(viewer_channel)
        host.start()
        viewer.start()
        try:
            with self.assertRaises(ConfigError) as ctx:
                host.join(10)
            self.assertIn("cannot capture the screen of :65000", str(ctx.exception))
            self.assertIn("view_only", events)          # pynput could not load either
            viewer.join(10)                             # a Bye: the viewer ends cleanly ...
            self.assertIn("host error: cannot capture", viewer.closed_reason)   # ... and knows why
        finally:
            host.stop()
            viewer.stop()

    def test_a_grab_that_fails_is_a_config_error(self):
        from tagio.errors import ConfigError
        from tagio.session.host import grab

        class Gone:
            def grab(self, box):
                raise AssertionError()      # what mss 10 raises once the X server is gone
        with self.assertRaises(ConfigError) as ctx:
            grab(Gone(), {"left": 0, "top": 0, "width": 8, "height": 8})
        self.assertIn("screen capture stopped", str(ctx.exception))

    @skip_unless_xvfb
    def test_x_server_going_away_mid_session_is_a_clear_error(self):
        from tagio.errors import ConfigError
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        server = Xvfb(width=320, height=240).start()
        self.addCleanup(server.stop)
        host_channel, viewer_channel = secure_pair()
        host = HostSession(host_channel, display=server.display, view_only=True)
        viewer = ViewerSession(viewer_channel)
        host.start()
        viewer.start()
        try:
            self.assertTrue(wait_for(lambda: viewer.stats["frames"] >= 1), "no first frame")
            server.stop()
            with self.assertRaises(ConfigError):
                host.join(10)
            viewer.join(10)
            self.assertIn("host error", viewer.closed_reason)
        finally:
            host.stop()
            viewer.stop()


if __name__ == "__main__":
    unittest.main()
