"""Thinned frame acknowledgements: the viewer's policy (tagio.session.acks) on an injected clock, the
host reading an ack as standing for every earlier frame, the capability both ways, a scripted host
on a real channel, and a real host and viewer streaming a small animation on Xvfb."""

import threading
import time
import unittest

from tagio.errors import RemoteProtocolError
from tagio.protocol import session as m
from tagio.protocol import version as v
from tagio.session.acks import ACK_HOLD, SMALL_FRAME, AckThinner
from tests.test_session_host import wait_for
from tests.test_session_viewer import ScriptedHostCase

SMALL, LARGE = 2000, SMALL_FRAME + 1
FAST, SLOW = ACK_HOLD / 2, ACK_HOLD * 2


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def thinner(upto=True):
    clock = Clock()
    acks = AckThinner(clock)
    acks.upto = upto
    return acks, clock


def stream(acks, clock, frames, gap, size=SMALL, first=1):
    """Frames `first`.. arriving `gap` apart: the acks sent for each, one list per frame."""
    sent = []
    for seq in range(first, first + frames):
        clock.now += gap
        sent.append(acks.due(seq, 1000 + seq, size))
    return sent


class ThinnerTest(unittest.TestCase):
    LAYER = "unit"

    def test_fast_small_frames_send_one_ack_in_two(self):
        acks, clock = thinner()
        sent = stream(acks, clock, 8, FAST)
        # The first is never "fast" (nothing came before it); then one held, the next covers it.
        self.assertEqual(sent, [[1001], [], [1003], [], [1005], [], [1007], []])
        self.assertEqual(acks.held, (8, 1008))

    def test_a_held_ack_goes_out_at_its_deadline(self):
        acks, clock = thinner()
        stream(acks, clock, 2, FAST)
        self.assertAlmostEqual(acks.wait(0.1), ACK_HOLD)
        clock.now += ACK_HOLD / 2
        self.assertEqual(acks.expire(), [])
        self.assertAlmostEqual(acks.wait(0.1), ACK_HOLD / 2)
        clock.now += ACK_HOLD / 2
        self.assertEqual(acks.expire(), [1002])
        self.assertEqual((acks.held, acks.wait(0.1)), (None, 0.1))
        self.assertEqual(acks.expire(), [])

    def test_release_sends_the_held_ack_at_once(self):
        acks, clock = thinner()
        stream(acks, clock, 2, FAST)
        self.assertEqual(acks.release(), [1002])
        self.assertEqual(acks.release(), [])

    def test_large_frames_and_slow_streams_are_acked_at_once(self):
        acks, clock = thinner()
        self.assertEqual(stream(acks, clock, 4, FAST, LARGE), [[1001], [1002], [1003], [1004]])
        self.assertEqual(stream(acks, clock, 4, SLOW, first=5), [[1005], [1006], [1007], [1008]])
        self.assertIsNone(acks.held)

    def test_without_the_capability_every_frame_is_acked(self):
        acks, clock = thinner(upto=False)
        self.assertEqual(stream(acks, clock, 4, FAST), [[1001], [1002], [1003], [1004]])
        self.assertEqual((acks.release(), acks.expire(), acks.wait(0.1)), ([], [], 0.1))

    def test_an_ack_covered_by_a_newer_one_is_never_sent(self):
        # The host pops every frame up to the acked one: an older ack after it names a frame the
        # host no longer knows (and it ends the session).
        acks, clock = thinner()
        clock.now += SLOW
        self.assertEqual(acks.due(5, 1005, LARGE), [1005])
        clock.now += SLOW
        self.assertEqual(acks.due(3, 1003, SMALL), [])
        self.assertEqual(acks.due(5, 1005, SMALL), [])


class HostAckTest(unittest.TestCase):
    """HostSession._on_ack without a channel: the frames it pops and what it refuses."""
    LAYER = "unit"

    def host(self, upto, frame_ids):
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        taken = v.SESSION_CAPABILITIES if upto else v.SESSION_CAPABILITIES & ~v.CAP_ACK_UPTO
        host._on_viewer_capabilities(m.ViewerCapabilities(taken))
        acked = []
        real = host._flow.acked
        host._flow.acked = lambda fid: (acked.append(fid), real(fid))[1]
        for fid in frame_ids:
            host._in_flight[fid] = time.monotonic()
            host._flow.sent(fid, 1000)
        return host, acked

    def test_an_ack_pops_every_frame_up_to_it_in_send_order(self):
        ids = [0xFFFFFFFE, 0xFFFFFFFF, 0, 1, 2]         # the ids wrap: send order decides, not <
        host, acked = self.host(True, ids)
        host._on_ack(m.FrameAck(0))
        self.assertEqual(acked, [0xFFFFFFFE, 0xFFFFFFFF, 0])
        self.assertEqual(list(host._in_flight), [1, 2])
        self.assertEqual(sorted(host._flow.estimator.frames), [1, 2])
        host._on_ack(m.FrameAck(2))
        self.assertEqual((acked[3:], host._in_flight), ([1, 2], {}))

    def test_an_unknown_or_already_covered_frame_is_refused(self):
        host, acked = self.host(True, [1, 2, 3])
        for bad in (7, 0):
            with self.assertRaisesRegex(RemoteProtocolError, f"unknown frame {bad}"):
                host._on_ack(m.FrameAck(bad))
        self.assertEqual((acked, list(host._in_flight)), ([], [1, 2, 3]))
        host._on_ack(m.FrameAck(2))
        with self.assertRaisesRegex(RemoteProtocolError, "unknown frame 1"):
            host._on_ack(m.FrameAck(1))

    def test_an_older_viewer_acks_one_frame_at_a_time(self):
        # It never said CAP_ACK_UPTO: an ack stands for its own frame only (it may ack out of order).
        host, acked = self.host(False, [1, 2, 3])
        host._on_ack(m.FrameAck(2))
        self.assertEqual((acked, list(host._in_flight)), ([2], [1, 3]))
        host._on_ack(m.FrameAck(1))
        self.assertEqual((acked, list(host._in_flight)), ([2, 1], [3]))


class CapabilityTest(unittest.TestCase):
    LAYER = "unit"

    def test_the_bit_is_offered_named_and_agreed_only_by_both(self):
        self.assertTrue(v.SESSION_CAPABILITIES & v.CAP_ACK_UPTO)
        self.assertEqual(v.CAP_ACK_UPTO, 1 << 7)
        self.assertIn("cumulative frame acknowledgements", v.describe(v.CAP_ACK_UPTO))
        older = v.SESSION_CAPABILITIES & ~v.CAP_ACK_UPTO
        self.assertFalse(v.agree(v.SESSION_VERSION, older) & v.CAP_ACK_UPTO)         # an older host
        self.assertFalse(v.agree(v.SESSION_VERSION, v.SESSION_CAPABILITIES,
                                 our_capabilities=older) & v.CAP_ACK_UPTO)            # an older viewer
        self.assertTrue(v.agree(v.SESSION_VERSION, v.SESSION_CAPABILITIES) & v.CAP_ACK_UPTO)

    def test_the_host_offers_it_in_every_hello(self):
        from tagio.session.host import HostSession
        self.assertTrue(HostSession(channel=None)._capabilities() & v.CAP_ACK_UPTO)


FILL = [m.Rect(0, 0, 8, 8, m.ENC_FILL, b"\x01\x02\x03")]


class ScriptedHostTest(ScriptedHostCase):
    """A ViewerSession on a real SecureChannel, against a scripted host that offers the bit."""

    def recv(self):
        return m.decode(self.host.recv())

    def hello(self, caps=v.SESSION_CAPABILITIES):
        self.send(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 64, 64, 1, caps))
        self.assertEqual(self.recv(), m.ViewerCapabilities(caps))   # the host's cue to read acks so

    def test_a_burst_of_small_frames_gets_fewer_acks_and_the_last_goes_out_by_the_deadline(self):
        self.hello()
        for fid in range(1, 11):
            self.send(m.Frame(fid, m.FINAL, 0.0, 0, FILL))
        acks = []
        while not acks or acks[-1] != m.FrameAck(10):
            acks.append(self.recv())
        ids = [a.frame_id for a in acks]
        self.assertEqual(ids, sorted(ids))
        self.assertLess(len(ids), 10)

    def test_a_display_that_drew_several_frames_sends_one_ack(self):
        self.viewer.attach_display()
        self.hello()
        for fid in (1, 2, 3):
            self.send(m.Frame(fid, m.FINAL, 0.0, 0, FILL))
        wait_for(lambda: self.viewer.stats["frames"] == 3)
        self.viewer.displayed(3)
        self.assertEqual(self.recv(), m.FrameAck(3))
        self.send(m.Frame(4, m.FINAL, 0.0, 0, FILL))
        wait_for(lambda: self.viewer.stats["frames"] == 4)
        self.viewer.detach_display()                        # the display leaves: at once, nothing held
        self.assertEqual(self.recv(), m.FrameAck(4))

    def test_an_ack_held_for_a_drawn_frame_goes_out_by_its_deadline(self):
        # The decoder sleeps up to ACK_CHECK when nothing comes; a hold made by displayed() on
        # another thread wakes it, so the held ack goes out after ACK_HOLD, not ACK_CHECK.
        from unittest import mock
        patcher = mock.patch("tagio.session.viewer.ACK_CHECK", 60.0)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.viewer.attach_display()
        self.hello()
        for fid in (1, 2):
            self.send(m.Frame(fid, m.FINAL, 0.0, 0, FILL))
        wait_for(lambda: self.viewer.stats["frames"] == 2)
        self.viewer.displayed(1)
        self.viewer.displayed(2)                    # drawn fast after 1: its ack is held
        got = []
        reader = threading.Thread(target=lambda: got.extend([self.recv(), self.recv()]), daemon=True)
        reader.start()
        reader.join(10)
        self.assertEqual(got, [m.FrameAck(1), m.FrameAck(2)])

    def test_an_older_host_gets_every_ack(self):
        self.send(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 64, 64, 1, v.SESSION_CAPABILITIES & ~(
            v.CAP_ACK_UPTO | v.CAP_SCALED_RECT)))
        for fid in range(1, 11):
            self.send(m.Frame(fid, m.FINAL, 0.0, 0, FILL))
        self.assertEqual([self.recv() for _ in range(10)], [m.FrameAck(f) for f in range(1, 11)])


SMALL_SCENE = r"""
import sys, tkinter as tk
W, H, TICKS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
root = tk.Tk()
root.geometry(f"{W}x{H}+0+0")
root.overrideredirect(True)
canvas = tk.Canvas(root, width=W, height=H, highlightthickness=0, bg="#3a6ea5")
canvas.pack()
bar = canvas.create_rectangle(60, 50, 260, 150, fill="#202020", outline="")
dot = canvas.create_rectangle(60, 90, 80, 110, fill="#ff8000", outline="")
label = canvas.create_text(160, 70, text="0", fill="white", font=("Helvetica", 16))
state = {"n": 0}
def tick():
    n = state["n"] = state["n"] + 1
    x = 60 + (n * 3) % 180
    canvas.coords(dot, x, 90, x + 20, 110)
    canvas.itemconfigure(label, text=str(n))
    if n < TICKS:
        root.after(16, tick)
    else:
        print("done", flush=True)
def ready():
    print("ready", flush=True)
    root.after(16, tick)
root.after(300, ready)
root.mainloop()
"""


class SmallAnimationOnXvfb(unittest.TestCase):
    """A real host and viewer over loopback, a 200x100 change at 60 Hz: about one ack in two."""

    def test_fewer_acks_than_frames_and_the_picture_converges(self):
        from tests.wan_session import converged, scene_on_xvfb, session_over_link
        xvfb, scene, first = scene_on_xvfb(self, 320, 200, SMALL_SCENE, (320, 200, 240))
        self.assertEqual(first, "ready")
        acks = []
        host, viewer = session_over_link(self, xvfb.display, rtt_ms=0, mbit=None,
                                         wrap=lambda channel: AckCounter(channel, acks))
        host.fps_cap = 60
        self.assertEqual(scene.stdout.readline().strip(), "done")
        self.assertTrue(wait_for(lambda: converged(viewer, xvfb.display), timeout=15))
        frames = host.stats["frames"]
        self.assertGreater(frames, 60)                  # it streamed: 240 changes in about 4 s
        self.assertTrue(viewer.capabilities & v.CAP_ACK_UPTO)
        self.assertLess(len(acks), 0.7 * frames, f"{len(acks)} acks for {frames} frames")


class AckCounter:
    """A channel that counts the FrameAcks written to it (what the host receives, in order)."""

    def __init__(self, channel, acks):
        self._channel, self._acks, self._lock = channel, acks, threading.Lock()

    def send(self, data):
        msg = m.decode(bytes(data))
        if isinstance(msg, m.FrameAck):
            with self._lock:
                self._acks.append(msg.frame_id)
        return self._channel.send(data)

    def __getattr__(self, name):
        return getattr(self._channel, name)


if __name__ == "__main__":
    unittest.main()
