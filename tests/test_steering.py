"""Issue 10 item 8: nobody can steer a host into punching or dialling addresses that are not the viewer's.

Real processes: a relay (`tagio_relay_server.py`) and a host (`tagio-gui.py --cli host` on a
private Xvfb). The "viewer" is a script in this process: a real RelayClient that registers with a
candidate list it made up, naming a victim on 127.0.0.2 (UDP sockets that count datagrams, a TCP
listener that counts dials) and one sink on 127.0.0.1, the address the relay observes for the
viewer itself (so a candidate there is one the viewer may own). It asks the relay for rendezvous
with the host, then binds each relay token and hangs up, so the host's race ends as soon as its
direct attempts have (no password is ever tried).

The host must send nothing at all to the victim, and at most MAX_PER_CANDIDATE datagrams to the
sink for one request; a flood of requests from one viewer ID still gives at most what the host's
attempt limit lets through. The figures (datagrams and dials at the victim and the sink) are
printed, for the issue's before/after note.
"""

import os
import select
import socket
import sys
import tempfile
import threading
import unittest
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import TagioError
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import run_relay_process
from tests.test_e2e import GUI, Proc
from tests.waiting import wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb

VICTIM_IP = "127.0.0.2"
VICTIM_UDP_PORTS = 6
MAX_PER_CANDIDATE = 25     # SECURITY.md: punches to one candidate per request
FLOOD = 12                 # rendezvous asked for at once by one viewer ID
PER_PEER_ATTEMPTS = 5      # the host's attempt limit per partner ID and minute (client/ratelimit.py)


class Counter:
    """UDP sockets and a TCP listener on loopback that count what reaches them (a reader thread)."""

    def __init__(self, ip, udp_ports, tcp=True):
        self.udp = [self._bound(socket.SOCK_DGRAM, ip) for _ in range(udp_ports)]
        self.tcp = self._bound(socket.SOCK_STREAM, ip) if tcp else None
        if self.tcp is not None:
            self.tcp.listen(64)
        self.datagrams = self.dials = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, name="victim", daemon=True)
        self._thread.start()

    @staticmethod
    def _bound(kind, ip):
        sock = socket.socket(socket.AF_INET, kind)
        sock.bind((ip, 0))
        return sock

    def candidates(self):
        socks = self.udp + ([self.tcp] if self.tcp is not None else [])
        return [sock.getsockname() for sock in socks]

    def _count(self):
        socks = self.udp + ([self.tcp] if self.tcp is not None else [])
        while not self._stop.is_set():
            for sock in select.select(socks, [], [], 0.05)[0]:
                if sock is self.tcp:
                    conn, _addr = sock.accept()
                    conn.close()
                    with self._lock:
                        self.dials += 1
                else:
                    sock.recvfrom(2048)
                    with self._lock:
                        self.datagrams += 1

    def totals(self):
        with self._lock:
            return self.datagrams, self.dials

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for sock in self.udp + ([self.tcp] if self.tcp is not None else []):
            sock.close()


@skip_unless_xvfb
class SteeringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.xvfb = Xvfb(width=320, height=240).start()
        cls.relay, address = run_relay_process("--bind", "127.0.0.1:0")
        cls.relay_address = address
        env = cls.xvfb.env()
        env.update(PYTHONPATH=str(Path(GUI).parent), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR"):
            env.pop(name, None)
        cls.host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", "%s:%d" % address,
                         "--config-dir", str(cls.tmp / "host")], env)
        cls.host_id = cls.host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")["id"]

    @classmethod
    def tearDownClass(cls):
        cls.host.stop()
        cls.relay.kill()
        cls.relay.wait(10)
        cls.xvfb.stop()
        cls._tmp.cleanup()

    def setUp(self):
        self.victim = Counter(VICTIM_IP, VICTIM_UDP_PORTS)
        self.addCleanup(self.victim.close)
        self.sink = Counter("127.0.0.1", 1, tcp=False)      # at the viewer's own observed address
        self.addCleanup(self.sink.close)

    def steering_viewer(self, name):
        """A registered RelayClient whose announced candidates are the sink, then the victim."""
        candidates = self.sink.candidates() + self.victim.candidates()
        viewer = RelayClient(self.relay_address, Identity.load_or_create(self.tmp / name),
                             local_candidates=candidates)
        viewer.connect()
        self.addCleanup(viewer.close)
        return viewer

    def ask(self, viewer, count):
        """`count` rendezvous with the host at once; returns how many the relay granted. Each granted
        one has its relay token bound and closed at once (in a thread of its own)."""
        granted, threads = [], []
        for _ in range(count):
            try:
                peer = viewer.request_peer(self.host_id, os.urandom(16), timeout=10)
            except TagioError:            # the relay's own limits
                continue
            granted.append(peer)
            thread = threading.Thread(target=hang_up, args=(viewer, peer.relay_token), daemon=True)
            thread.start()
            threads.append(thread)
        self.addCleanup(lambda: [thread.join(15) for thread in threads])
        return len(granted)

    def handled(self, viewer_id):
        """Requests from `viewer_id` the host has finished with (refused, or its race ended)."""
        return sum(1 for e in self.host.lines if e.get("peer") == viewer_id
                   and e.get("event") in ("refused", "attempt_failed", "auth_failed"))

    def test_one_request_reaches_only_the_viewers_own_address(self):
        viewer = self.steering_viewer("viewer-one")
        self.assertEqual(self.ask(viewer, 1), 1)
        wait_until(lambda: self.handled(viewer.identity.id) >= 1, 40, "the host to finish the attempt")
        victim, dials = self.victim.totals()
        sink, _ = self.sink.totals()
        print(f"\n  steering, one request: victim {victim} datagrams, {dials} TCP dials; "
              f"viewer's own address {sink} datagrams", file=sys.stderr)
        self.assertEqual((victim, dials), (0, 0))
        self.assertGreater(sink, 0)                 # the viewer's own candidate is still tried
        self.assertLessEqual(sink, MAX_PER_CANDIDATE)

    def test_a_flood_of_requests_is_bounded(self):
        viewer = self.steering_viewer("viewer-flood")
        granted = self.ask(viewer, FLOOD)
        wait_until(lambda: self.handled(viewer.identity.id) >= granted, 60, "the host to finish every attempt")
        victim, dials = self.victim.totals()
        sink, _ = self.sink.totals()
        print(f"\n  steering, {FLOOD} requests ({granted} through the relay): victim {victim} datagrams, "
              f"{dials} TCP dials; viewer's own address {sink} datagrams", file=sys.stderr)
        self.assertEqual((victim, dials), (0, 0))
        self.assertLessEqual(sink, PER_PEER_ATTEMPTS * MAX_PER_CANDIDATE)


def hang_up(viewer, token):
    """Bind the relay token and close at once: the host's relay attempt ends without a guess."""
    try:
        viewer.open_relay(token, timeout=10).close()
    except TagioError:
        pass


if __name__ == "__main__":
    unittest.main()
