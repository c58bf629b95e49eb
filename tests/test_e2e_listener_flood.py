"""The host's direct listener under a flood of idle dials, with few file descriptors left.

A real `tagio-gui.py --cli host` (LAN only: its relay address has nobody behind it, so a viewer can
reach it only through its direct listener) runs on a private Xvfb display. The test lowers the
host's RLIMIT_NOFILE (prlimit on the running process) to a few descriptors above what it uses, then
dials it idly from eight loopback addresses, more dials than it has descriptors left: its accept()
fails with EMFILE. Before the fix the accept loop returned on that error and the listener never came
back; now it backs off, sheds the silent dials and keeps serving, so a real viewer still connects
while the flood's sockets are still open on the attacker's side.
"""

import os
import resource
import socket
import sys
import unittest
from pathlib import Path

from tests.desk import scratch_and_xvfb
from tests import waiting
from tests.test_e2e import GUI, Proc, free_port
from tests.xvfb import skip_unless_xvfb

HEADROOM = 10                 # descriptors the host may open beyond those it uses when idle
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
DIALS_PER_SOURCE = 3          # 24 idle dials: more than the headroom and the reader slots together


def open_fds(pid) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def idle_dial(source, port):
    """A connection that never says anything (non-blocking connect: a full backlog must not stall
    the test)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    return sock


@skip_unless_xvfb
@unittest.skipUnless(sys.platform.startswith("linux"), "prlimit and /proc are Linux's")
class ListenerFloodTest(unittest.TestCase):
    def setUp(self):
        self.tmp, self.xvfb = scratch_and_xvfb(self)
        self.nowhere = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"           # no relay there
        self.lan = ["--lan", "--lan-target", "127.255.255.255", "--lan-interval", "0.2",
                    "--lan-port", str(free_port(socket.SOCK_DGRAM))]

    def env(self, display=True):
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(Path(GUI).parent), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR") + (() if display else ("DISPLAY",)):
            env.pop(name, None)           # the viewer is headless
        return env

    def start(self, argv, display=True):
        proc = Proc([sys.executable, GUI, "--cli", *argv, "--json", "--relay", self.nowhere, *self.lan],
                    self.env(display))
        self.addCleanup(proc.stop)
        return proc

    def test_listener_survives_emfile_and_a_viewer_still_connects(self):
        port = free_port(socket.SOCK_STREAM)
        host = self.start(["host", "--verbose", "--config-dir", str(self.tmp / "host"),
                           "--direct-bind", f"127.0.0.1:{port}"])
        ready = host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        pid = host.popen.pid
        idle = open_fds(pid)
        limit = idle + HEADROOM
        _soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))

        flood = [idle_dial(source, port) for source in SOURCES for _ in range(DIALS_PER_SOURCE)]
        self.addCleanup(lambda: [sock.close() for sock in flood])
        waiting.wait_until(lambda: open_fds(pid) >= limit, timeout=10, interval=0.002,
                           what=f"the host to run out of descriptors ({limit})")
        # The flood's sockets stay open on our side; the host sheds its ends (silent for too long).
        waiting.wait_until(lambda: open_fds(pid) <= idle + 2, timeout=30, interval=0.05,
                           what="the host to shed the idle dials")

        viewer = self.start(["connect", ready["id"], "--password", ready["password"], "--duration", "1",
                             "--config-dir", str(self.tmp / "viewer"), "--direct-bind", "127.0.0.1"],
                            display=False)
        self.assertEqual(viewer.finish(60), 0, viewer.stderr)
        self.assertEqual(len(viewer.events("connected")), 1, viewer.lines)
        host.stop()
        said = [line for line in host.stderr.splitlines() if "cannot accept connections" in line]
        self.assertGreaterEqual(len(said), 1, host.stderr)      # it did run out, and said so
        self.assertLessEqual(len(said), 3, host.stderr)          # once per burst, not per failure


if __name__ == "__main__":
    unittest.main()
