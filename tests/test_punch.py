"""UDP hole punching: the Puncher state machine, and open_path() over real UDP sockets on 127.0.0.1."""

import os
import socket
import threading
import time
import unittest
from types import SimpleNamespace

from tagio.errors import RemoteProtocolError, TransportTimeout
from tagio.net import punch
from tagio.protocol import rudp as codec
from tagio.net.candidates import path_keys
from tagio.net.punch import Puncher, PunchState, open_path, punch_targets
from tagio.net.stream import recv_exactly
from tagio.net.udpmux import UdpMux


def peers(viewer_sees=None, host_sees=None):
    token, session_id = os.urandom(16), os.urandom(16)
    common = dict(relay_token=token, session_id=session_id, peer_public_addr=None, nat_hint="")
    viewer = SimpleNamespace(role="viewer", peer_udp_addr=viewer_sees, peer_local_candidates=[], **common)
    host = SimpleNamespace(role="host", peer_udp_addr=host_sees, peer_local_candidates=[], **common)
    return viewer, host


class PuncherTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def setUp(self):
        token, sid = os.urandom(16), os.urandom(16)
        self.mine, self.theirs = path_keys(token, sid, "viewer"), path_keys(token, sid, "host")
        self.puncher = Puncher(self.mine, [("198.18.0.9", 5000)], now=0.0)

    def from_peer(self, message):
        return codec.encode(message, self.theirs.conn_id, self.theirs.send_key)

    def test_rounds_follow_the_timer(self):
        first = self.puncher.due(0.0)
        self.assertEqual([addr for _d, addr in first], [("198.18.0.9", 5000)])
        first_gap = punch.SCHEDULE[0][1]
        self.assertEqual(self.puncher.due(first_gap / 2), [])
        self.assertEqual(len(self.puncher.due(first_gap + 0.001)), 1)
        self.assertEqual(self.puncher.due(first_gap + 0.002), [])
        late = 5.0  # long races punch at the slow interval
        self.assertEqual(len(self.puncher.due(late)), 1)
        self.assertEqual(self.puncher.due(late + punch.SCHEDULE[-1][1] / 2), [])

    def test_punch_is_answered_to_its_real_source_which_becomes_a_target(self):
        replies = self.puncher.datagram_received(self.from_peer(codec.Punch(b"n" * 8)), ("198.18.5.5", 777), 0)
        self.assertEqual(len(replies), 1)
        answer = codec.decode(replies[0][0], self.theirs.conn_id, self.mine.send_key)
        self.assertEqual((answer, replies[0][1]), (codec.PunchAck(b"n" * 8), ("198.18.5.5", 777)))
        self.assertIn(("198.18.5.5", 777), self.puncher.targets)
        self.assertIs(self.puncher.state, PunchState.PUNCHING)

    def test_ack_of_our_nonce_proves_the_path(self):
        datagram, _addr = self.puncher.due(0.0)[0]
        nonce = codec.decode(datagram, self.mine.conn_id, self.mine.send_key).nonce
        self.puncher.datagram_received(self.from_peer(codec.PunchAck(nonce)), ("198.18.7.7", 1), 0)
        self.assertEqual((self.puncher.state, self.puncher.chosen), (PunchState.CONNECTED, ("198.18.7.7", 1)))

    def test_stale_ack_and_forgeries_do_not_prove_anything(self):
        self.puncher.due(0.0)
        with self.assertRaises(RemoteProtocolError):
            self.puncher.datagram_received(self.from_peer(codec.PunchAck(b"old-none")), ("1.2.3.4", 1), 0)
        forged = codec.encode(codec.PunchAck(b"x" * 8), self.mine.conn_id, os.urandom(32))
        with self.assertRaises(RemoteProtocolError):
            self.puncher.datagram_received(forged, ("1.2.3.4", 1), 0)
        self.assertIs(self.puncher.state, PunchState.PUNCHING)
        self.assertIsNone(self.puncher.chosen)

    def test_targets_reflexive_first_and_bounded(self):
        peer = SimpleNamespace(peer_udp_addr=("198.18.0.2", 9), peer_local_candidates=[
            ("10.0.0.%d" % i, 9) for i in range(40)])
        targets = punch_targets(peer)
        self.assertEqual(targets[0], ("198.18.0.2", 9))
        self.assertEqual(len(targets), punch.MAX_TARGETS)

    def test_port_prediction_from_public_ip(self):
        peer = SimpleNamespace(peer_udp_addr=None, peer_public_addr=("198.18.1.2", 50123),
                               peer_local_candidates=[("10.1.0.2", 4000)])
        self.assertEqual(punch_targets(peer), [("10.1.0.2", 4000), ("198.18.1.2", 4000)])


class OpenPathTest(unittest.TestCase):
    def setUp(self):
        self.a, self.b = UdpMux.bind(), UdpMux.bind()
        self.closables = [self.b, self.a]

    def tearDown(self):
        for item in self.closables:
            item.close()

    def both(self, viewer, host, timeout=5.0):
        results = {}
        stop = threading.Event()

        def run(name, mux, peer):
            try:
                results[name] = open_path(mux, peer, stop, timeout)
                self.closables.insert(0, results[name])
            except Exception as exc:
                results[name] = exc

        threads = [threading.Thread(target=run, args=("v", self.a, viewer)),
                   threading.Thread(target=run, args=("h", self.b, host))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 5)
        return results["v"], results["h"]

    def exchange(self, v, h):
        v.send(b"over the punched path")
        self.assertEqual(recv_exactly(h, 21), b"over the punched path")
        h.send(b"and back")
        self.assertEqual(recv_exactly(v, 8), b"and back")

    def test_both_know_each_other(self):
        viewer, host = peers(viewer_sees=self.b.address(), host_sees=self.a.address())
        v, h = self.both(viewer, host)
        self.assertEqual((v.path, h.path), ("direct-udp", "direct-udp"))
        self.exchange(v, h)

    def test_peer_reflexive_when_only_one_side_knows_the_other(self):
        viewer, host = peers(viewer_sees=self.b.address(), host_sees=None)
        v, h = self.both(viewer, host)
        self.assertEqual(h.peer_addr, self.a.address())
        self.exchange(v, h)

    def test_no_answer_times_out_and_stranger_punches_do_not_connect(self):
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.1", 0))
        self.addCleanup(stranger.close)
        viewer, _host = peers(viewer_sees=stranger.getsockname())
        keys = path_keys(os.urandom(16), viewer.session_id, "host")  # right session, wrong key

        def spam():
            for _ in range(20):
                stranger.sendto(codec.encode(codec.PunchAck(b"x" * 8), keys.conn_id, keys.send_key),
                                self.a.address())
                time.sleep(0.02)

        threading.Thread(target=spam, daemon=True).start()
        started = time.monotonic()
        with self.assertRaises(TransportTimeout):
            open_path(self.a, viewer, threading.Event(), 0.8)
        self.assertLess(time.monotonic() - started, 2.0)
        stranger.settimeout(1)
        data, _ = stranger.recvfrom(2000)  # we did punch towards the candidate
        self.assertEqual(data[0], codec.PacketType.PUNCH)

    def test_stop_event_ends_punching(self):
        viewer, _host = peers(viewer_sees=("127.0.0.1", 9))
        stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        with self.assertRaises(TransportTimeout):
            open_path(self.a, viewer, stop, 10.0)
        self.assertLess(time.monotonic() - started, 1.0)


if __name__ == "__main__":
    unittest.main()
