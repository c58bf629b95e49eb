"""tests/wanlink.py: the timing model on its own (unit), and the proxy with real sockets on 127.0.0.1."""

import socket
import threading
import time
import unittest

from tests.wan_session import converged, scene_on_xvfb, screen, session_over_link
from tests.waiting import wait_until
from tests.wanlink import SEGMENT, LinkProfile, Schedule, WanLink


class ScheduleTest(unittest.TestCase):
    LAYER = "unit"

    def test_delay_only(self):
        s = Schedule(LinkProfile(rtt_ms=60))
        self.assertAlmostEqual(s.deliver_at(1.0, 1000), 1.030)
        self.assertAlmostEqual(s.deliver_at(1.5, 50_000), 1.530)

    def test_rate_serializes_back_to_back_segments(self):
        s = Schedule(LinkProfile(rtt_ms=20, mbit=8))          # 1 MB/s: 4096 bytes take 4.096 ms
        first = s.deliver_at(0.0, 4096)
        second = s.deliver_at(0.0, 4096)
        self.assertAlmostEqual(first, 0.004096 + 0.010)
        self.assertAlmostEqual(second - first, 0.004096)

    def test_idle_link_does_not_bank_credit(self):
        s = Schedule(LinkProfile(rtt_ms=0, mbit=8))
        s.deliver_at(0.0, 4096)
        self.assertAlmostEqual(s.deliver_at(10.0, 4096), 10.004096)    # no burst after a pause

    def test_loss_costs_one_rtt_and_holds_what_follows(self):
        profile = LinkProfile(rtt_ms=100, mbit=8, loss=1.0)
        s = Schedule(profile)
        lost = s.deliver_at(0.0, 1000)
        self.assertAlmostEqual(lost, 0.001 + 0.050 + 0.100)
        profile.loss = 0.0
        after = s.deliver_at(0.0, 1000)
        self.assertGreaterEqual(after, lost)                    # in order: behind the resend

    def test_loss_rate_per_packet(self):
        profile = LinkProfile(loss=0.02, seed=7)
        lost = sum(profile.segment_lost(1448) for _ in range(20000))
        self.assertTrue(300 < lost < 500, lost)                 # ~2% of one-packet segments
        lost3 = sum(profile.segment_lost(3 * 1448) for _ in range(20000))
        self.assertTrue(1000 < lost3 < 1400, lost3)             # 1 - 0.98**3 = 5.9%

    def test_default_queue_is_bounded_by_rate(self):
        self.assertEqual(LinkProfile(mbit=20).queue_bytes, 250_000)
        self.assertEqual(LinkProfile(mbit=1).queue_bytes, 64 * 1024)


class Echo:
    """A TCP echo server on 127.0.0.1 (one connection) in a thread."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self):
        self.listener.close()
        self.thread.join(5)


def recv_exactly(sock, n):
    parts, got = [], 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class WanLinkSocketTest(unittest.TestCase):
    def setUp(self):
        self.echo = Echo()
        self.addCleanup(self.echo.close)

    def connect(self, **kw):
        link = WanLink(("127.0.0.1", self.echo.port), **kw).start()
        self.addCleanup(link.close)
        sock = socket.create_connection(("127.0.0.1", link.port), timeout=10)
        self.addCleanup(sock.close)
        return link, sock

    def test_round_trip_takes_the_rtt(self):
        link, sock = self.connect(rtt_ms=80)
        start = time.monotonic()
        sock.sendall(b"ping")
        self.assertEqual(recv_exactly(sock, 4), b"ping")
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.080)
        self.assertLess(elapsed, 0.5)

    def test_rate_cap_limits_throughput_and_keeps_bytes_in_order(self):
        link, sock = self.connect(rtt_ms=0, mbit=8)                 # 1 MB/s each way
        payload = bytes(range(256)) * (400_000 // 256)
        start = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        echoed = recv_exactly(sock, len(payload))
        elapsed = time.monotonic() - start
        sender.join(10)
        self.assertEqual(echoed, payload)
        self.assertGreaterEqual(elapsed, 0.38)                      # 400 KB at 1 MB/s (pipelined)
        self.assertLess(elapsed, 3.0)
        self.assertEqual(link.stats["up"][0], len(payload))
        wait_until(lambda: link.stats["down"][0] == len(payload), 5, "the down counter")    # counted after send

    def test_queue_stays_bounded_under_a_fast_sender(self):
        link, sock = self.connect(rtt_ms=0, mbit=2, queue_bytes=8 * SEGMENT)
        stop = threading.Event()
        peak = []

        def watch():
            while not stop.is_set():
                peak.append(max((p.queued for p in link.pipes), default=0))
                time.sleep(0.005)       # sampling period of the probe, not a wait for a condition
        watcher = threading.Thread(target=watch)
        watcher.start()
        sender = threading.Thread(target=sock.sendall, args=(b"x" * 300_000,))
        sender.start()
        echoed = recv_exactly(sock, 300_000)
        stop.set()
        watcher.join(5)
        sender.join(10)
        self.assertEqual(len(echoed), 300_000)
        self.assertLessEqual(max(peak), 8 * SEGMENT)


if __name__ == "__main__":
    unittest.main()


SCROLL_SCENE = r"""
import sys, threading, tkinter as tk
root = tk.Tk()
root.geometry("800x600+0+0")
root.overrideredirect(True)
text = tk.Text(root, font=("Courier", 11), bg="white", fg="black", insertofftime=0, wrap="none")
text.place(x=0, y=0, width=800, height=600)
state = {"n": 0}
def add(lines):
    for _ in range(lines):
        state["n"] += 1
        n = state["n"]
        text.insert("end", f"{n:05d} line of a log that scrolls: " + "abcdefghij"[n % 10] * (n % 37) + "\n")
    text.see("end")
    root.update_idletasks()
    sys.stdout.write(f"added {state['n']}\n"); sys.stdout.flush()
def commands():
    for line in sys.stdin:
        root.after(0, add, int(line))
threading.Thread(target=commands, daemon=True).start()
root.after(200, add, 60)
root.mainloop()
"""


class SessionOverWanTest(unittest.TestCase):
    """A real host (Xvfb, mss) and viewer joined through a 60 ms / 20 Mbit/s WanLink: frames keep
    flowing, a 10-line scroll costs a fraction of the screen's pixels, the picture converges."""

    def setUp(self):
        self.xvfb, self.scene, first = scene_on_xvfb(self, 800, 600, SCROLL_SCENE, stdin=True)
        self.assertTrue(first.startswith("added"))

    def session(self):
        return session_over_link(self, self.xvfb.display, 60, 20)

    def screen(self):
        return screen(self.xvfb.display)

    def converged(self, viewer):
        return converged(viewer, self.xvfb.display)

    def test_scroll_over_a_wan_link_is_cheap_and_converges(self):
        from tagio.session import tiles
        host, viewer = self.session()
        wait_until(lambda: self.converged(viewer), 20, "the first picture")
        whole = len(tiles.encode_rect(self.screen(), 75)[1])      # the screen sent as pixels
        frames, sent = viewer.stats["frames"], host.stats["bytes"]
        self.scene.stdin.write("10\n")
        self.scene.stdin.flush()
        self.assertTrue(self.scene.stdout.readline().startswith("added"))
        wait_until(lambda: viewer.stats["frames"] > frames, 10, "frames after the scroll")
        wait_until(lambda: self.converged(viewer), 20, "the viewer's picture equal to the host's screen")
        cost = host.stats["bytes"] - sent
        # Measured: ~6 KB with Copy; 22 KB when the changed tiles are re-sent; the screen ~78 KB.
        self.assertLess(cost, whole / 6, f"a 10-line scroll cost {cost} bytes; the whole screen is {whole}")
        for _ in range(3):                  # more scrolls: frames keep flowing, the picture follows
            frames = viewer.stats["frames"]
            self.scene.stdin.write("7\n")
            self.scene.stdin.flush()
            self.assertTrue(self.scene.stdout.readline().startswith("added"))
            wait_until(lambda: viewer.stats["frames"] > frames, 10, "frames keep flowing")
        wait_until(lambda: self.converged(viewer), 20, "convergence after several scrolls")
