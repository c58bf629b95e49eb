"""establish() and DirectListener on loopback: direct TCP, punched UDP, relay, reversal, LAN, failures.

Real parts throughout: the relay server (tests/relay_fixture.py) on 127.0.0.1 with two real
RelayClients whose PeerInfo drives establish(), and the real SPAKE2 handshake from tagio.crypto.
Tests that need a particular set of candidates edit the PeerInfo the relay delivered.
"""

import dataclasses
import os
import select
import socket
import tempfile
import threading
import time
import unittest

from tagio.crypto import handshake as crypto_handshake
from tagio.crypto import kdf
from tagio.crypto.identity import Identity
from tagio.errors import AuthError, TransportError, WrongPasswordError
from tagio.net.connect import DirectListener, establish, lan_host_peer, lan_viewer_peer
from tagio.net import listener as listener_module
from tagio.protocol.direct import encode_preamble
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import start_relay
from tests.waiting import wait_until

PASSWORD = "abcdefgh"


def handshakes(viewer_id, host_id, session_id, password=PASSWORD):
    secret = kdf.password_secret(PASSWORD, host_id)

    def viewer(stream):
        return crypto_handshake.viewer_handshake(stream, password, viewer_id=viewer_id, host_id=host_id,
                                                 session_id=session_id, timeout=5.0)

    def host(stream):
        return crypto_handshake.host_handshake(stream, [secret], viewer_id=viewer_id, host_id=host_id,
                                               session_id=session_id, timeout=5.0)
    return viewer, host


def run_both(viewer_call, host_call):
    """Run both establish() calls concurrently; return (viewer result, host result), exceptions as values."""
    results = {}

    def call(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:
            results[name] = exc

    threads = [threading.Thread(target=call, args=("viewer", viewer_call)),
               threading.Thread(target=call, args=("host", host_call))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results["viewer"], results["host"]


def dead_address():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    closed.close()
    return address


class ListenerTest(unittest.TestCase):
    def setUp(self):
        self.listener = DirectListener(("127.0.0.1", 0))
        self.addCleanup(self.listener.close)
        self.address = self.listener.candidates()[0]

    def dial(self, data=b""):
        sock = socket.create_connection(self.address)
        self.addCleanup(sock.close)
        sock.sendall(data)
        return sock

    def test_candidates_share_the_udp_port(self):
        self.assertEqual(self.listener.udp.address(), self.address)

    def test_silent_connection_is_closed_after_the_preamble_timeout(self):
        original = listener_module.PREAMBLE_TIMEOUT
        listener_module.PREAMBLE_TIMEOUT = 0.3
        self.addCleanup(setattr, listener_module, "PREAMBLE_TIMEOUT", original)
        silent = self.dial()
        silent.settimeout(3)
        started = time.monotonic()
        self.assertEqual(silent.recv(10), b"")
        self.assertLess(time.monotonic() - started, 2.0)

    def test_trickled_preamble_is_cut_off_after_the_total_timeout(self):
        # One byte per 0.2 s never trips a per-recv timeout of 0.5 s; the whole preamble
        # must still be in within PREAMBLE_TIMEOUT, or the reader slot is held for minutes.
        original = listener_module.PREAMBLE_TIMEOUT
        listener_module.PREAMBLE_TIMEOUT = 0.5
        self.addCleanup(setattr, listener_module, "PREAMBLE_TIMEOUT", original)
        raw = encode_preamble(os.urandom(16), b"t" * 16)
        slow = self.dial()
        started = time.monotonic()
        closed_after = None
        for byte in raw[:-1]:
            if select.select([slow], [], [], 0.2)[0]:
                self.assertEqual(slow.recv(10), b"")
                closed_after = time.monotonic() - started
                break
            try:
                slow.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
        self.assertIsNotNone(closed_after, "a trickling dialer kept its reader slot")
        self.assertLess(closed_after, 4.0)

    def test_parking_is_bounded_and_take_matches_the_session(self):
        socks = [self.dial(encode_preamble(bytes([i]) * 16, b"t" * 16))
                 for i in range(listener_module.MAX_PENDING + 5)]
        wait_until(lambda: len(self.listener._pending) == listener_module.MAX_PENDING, timeout=5,
                   what="the listener to park MAX_PENDING connections")
        wait_until(lambda: len(select.select(socks, [], [], 0)[0]) == 5, timeout=5,
                   what="the readers to refuse the 5 beyond MAX_PENDING")     # closed: readable at EOF
        taken = self.listener.take(bytes([3]) * 16, timeout=3)
        self.assertIsNotNone(taken)
        taken[0].close()
        self.assertEqual(taken[1], b"t" * 16)
        self.assertIsNone(self.listener.take(os.urandom(16), timeout=0.2))
        readable, _, _ = select.select(socks, [], [], 1.0)
        closed = sum(1 for sock in readable if sock.recv(1) == b"")
        self.assertEqual(closed, 6)  # the 5 beyond MAX_PENDING and the one taken; the rest stay parked

    def test_lan_preamble_announces_a_request(self):
        session_id = os.urandom(16)
        self.dial(encode_preamble(session_id, b"t" * 16, "123456789"))
        request = self.listener.lan_requests.get(timeout=3)
        self.assertEqual((request.session_id, request.viewer_id), (session_id, "123456789"))

    def test_lan_tag_is_checked_before_a_request_is_queued(self):
        """Issue 10 item 6: junk LAN preambles must not become attempts that use the host's budget."""
        from tagio.net.candidates import tcp_preamble_tag
        from tagio.net.connect import lan_tag_ok, lan_token
        host_id = "987654321"
        self.listener.lan_check = lambda preamble: lan_tag_ok(preamble, host_id)
        junk = [self.dial(encode_preamble(os.urandom(16), os.urandom(16), "123456789")) for _ in range(30)]
        session_id = os.urandom(16)
        tag = tcp_preamble_tag(lan_token(session_id, "123456789", host_id), session_id, "viewer")
        self.dial(encode_preamble(session_id, tag, "123456789"))
        request = self.listener.lan_requests.get(timeout=3)
        self.assertEqual(request.session_id, session_id)         # the right one, not a junk one
        self.assertTrue(self.listener.lan_requests.empty())
        for sock in junk:                                         # every junk dial was closed
            sock.settimeout(3)
            self.assertEqual(sock.recv(10), b"")


class EstablishTest(unittest.TestCase):
    def setUp(self):
        self.closables = []
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.relay_server = start_relay(state_file=os.path.join(self.tmp, "relay.json"))
        self.addCleanup(self.relay_server.stop)

    def tearDown(self):
        for item in reversed(self.closables):
            item.close()

    def listener(self):
        listener = DirectListener(("127.0.0.1", 0))
        self.closables.append(listener)
        return listener

    def client(self, name, listener=None):
        identity = Identity.load_or_create(os.path.join(self.tmp, name))
        candidates = listener.candidates() if listener else []
        relay = RelayClient(self.relay_server.address, identity, local_candidates=candidates)
        relay.connect()
        if listener is not None:
            relay.discover_udp(listener.udp.discovery_socket())
        self.closables.append(relay)
        return relay, identity.id

    def rendezvous(self, viewer_listener=None, host_listener=None):
        """(viewer relay, viewer peer, host relay, host peer, viewer handshake, host handshake)."""
        viewer_relay, viewer_id = self.client("viewer", viewer_listener)
        host_relay, host_id = self.client("host", host_listener)
        session_id = os.urandom(16)
        viewer_peer = viewer_relay.request_peer(host_id, session_id)
        host_peer = host_relay.incoming.get(timeout=5)
        self.assertEqual((host_peer.session_id, host_peer.role, viewer_peer.role), (session_id, "host", "viewer"))
        return (viewer_relay, viewer_peer, host_relay, host_peer) + handshakes(viewer_id, host_id, session_id)

    def assert_talks(self, viewer_channel, host_channel):
        self.closables += [viewer_channel, host_channel]
        viewer_channel.send(b"ping from viewer")
        self.assertEqual(host_channel.recv(), b"ping from viewer")
        host_channel.send(b"pong from host")
        self.assertEqual(viewer_channel.recv(), b"pong from host")

    def test_direct_tcp_wins_when_host_reachable(self):
        listener = self.listener()
        vr, vp, hr, hp, vh, hh = self.rendezvous(host_listener=listener)
        v, h = run_both(lambda: establish(vp, vr, vh, udp=False),
                        lambda: establish(hp, hr, hh, listener=listener, udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)

    def test_full_race_agrees_on_one_direct_path(self):
        viewer_listener, host_listener = self.listener(), self.listener()
        vr, vp, hr, hp, vh, hh = self.rendezvous(viewer_listener, host_listener)
        self.assertIsNotNone(vp.peer_udp_addr)  # the relay learnt the host's UDP address
        v, h = run_both(lambda: establish(vp, vr, vh, listener=viewer_listener),
                        lambda: establish(hp, hr, hh, listener=host_listener))
        self.assertIn(v.path, ("direct-tcp", "direct-udp"), (v, h))
        self.assertEqual(v.path, h.path)
        self.assert_talks(v, h)

    def test_relay_when_no_direct_path(self):
        vr, vp, hr, hp, vh, hh = self.rendezvous()
        vp = dataclasses.replace(vp, peer_local_candidates=[dead_address()])
        started = time.monotonic()
        v, h = run_both(lambda: establish(vp, vr, vh), lambda: establish(hp, hr, hh))
        self.assertEqual((v.path, h.path), ("relay", "relay"), (v, h))
        self.assertLess(time.monotonic() - started, 5.0)
        self.assert_talks(v, h)

    def test_a_ready_relay_waits_briefly_for_a_direct_path_still_trying(self):
        listener = self.listener()
        vr, vp, hr, hp, vh, hh = self.rendezvous(host_listener=listener)

        def slow_direct(stream):        # a dial or punch slower than the relay (a loaded machine)
            if stream.path == "direct-tcp":
                time.sleep(0.25)        # the delay is the subject: a slow direct path
            return vh(stream)
        v, h = run_both(lambda: establish(vp, vr, slow_direct, udp=False, relay_delay=0),
                        lambda: establish(hp, hr, hh, listener=listener, udp=False, relay_delay=0))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)

    def test_connection_reversal_host_dials_viewer(self):
        viewer_listener = self.listener()
        _vr, vp, _hr, hp, vh, hh = self.rendezvous(viewer_listener=viewer_listener)
        self.assertEqual(vp.peer_local_candidates, [])  # the host is not reachable: it must dial
        v, h = run_both(lambda: establish(vp, None, vh, listener=viewer_listener, udp=False),
                        lambda: establish(hp, None, hh, udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)

    def test_punched_udp_when_only_udp_candidates_known(self):
        viewer_listener, host_listener = self.listener(), self.listener()
        _vr, vp, _hr, hp, vh, hh = self.rendezvous(viewer_listener, host_listener)
        vp = dataclasses.replace(vp, peer_local_candidates=[])
        hp = dataclasses.replace(hp, peer_local_candidates=[])
        v, h = run_both(lambda: establish(vp, None, vh, listener=viewer_listener),
                        lambda: establish(hp, None, hh, listener=host_listener))
        self.assertEqual((v.path, h.path), ("direct-udp", "direct-udp"), (v, h))
        self.assert_talks(v, h)
        big = os.urandom(200_000)
        v.send(big)
        self.assertEqual(h.recv(), big)

    def test_lan_session_without_relay(self):
        host_listener = self.listener()
        viewer_id, host_id, session_id = "123456789", "987654321", os.urandom(16)
        vh, hh = handshakes(viewer_id, host_id, session_id)
        viewer = lan_viewer_peer(host_id, host_listener.candidates()[0], viewer_id, session_id)
        seen = {}

        def host_call():
            seen["request"] = host_listener.lan_requests.get(timeout=5)
            return establish(lan_host_peer(seen["request"], host_id), None, hh, listener=host_listener)

        v, h = run_both(lambda: establish(viewer, None, vh, udp=False), host_call)
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assertEqual(seen["request"].viewer_id, viewer_id)
        self.assert_talks(v, h)

    def test_wrong_password_is_reported_once(self):
        listener = self.listener()
        vr, vp, hr, hp, _vh, hh = self.rendezvous(host_listener=listener)
        wrong, _ = handshakes(hp.peer_id, vp.peer_id, vp.session_id, password="wrongpass")
        v, h = run_both(lambda: establish(vp, vr, wrong, timeout=8),
                        lambda: establish(hp, hr, hh, listener=listener, timeout=8))
        self.assertIsInstance(v, WrongPasswordError)
        self.assertIsInstance(h, AuthError)

    def test_no_path_fails_with_clear_error(self):
        vh, _hh = handshakes("123456789", "987654321", os.urandom(16))
        viewer = lan_viewer_peer("987654321", dead_address(), "123456789", os.urandom(16))
        started = time.monotonic()
        with self.assertRaises(TransportError):
            establish(viewer, None, vh, timeout=2)
        self.assertLess(time.monotonic() - started, 4.0)

    def test_listener_survives_garbage_and_forged_preambles(self):
        listener = self.listener()
        _vr, vp, _hr, hp, vh, hh = self.rendezvous(host_listener=listener)
        address = listener.candidates()[0]
        junk = socket.create_connection(address)
        junk.sendall(b"\x16\x03\x01" + os.urandom(60))
        forged = socket.create_connection(address)  # right session, wrong tag
        forged.sendall(encode_preamble(hp.session_id, os.urandom(16)))
        silent = socket.create_connection(address)  # never sends: must not block anyone
        self.closables += [junk, forged, silent]
        v, h = run_both(lambda: establish(vp, None, vh, udp=False),
                        lambda: establish(hp, None, hh, listener=listener, udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)
        forged.settimeout(2)
        self.assertEqual(forged.recv(10), b"")  # the forged one was closed, not handshaken

    def test_host_runs_one_inbound_handshake_per_session(self):
        """A guesser holding one rendezvous dials the host's listener again and again with the
        right tag: only the first dial gets a handshake (one guess), the rest are closed."""
        from tagio.net.candidates import tcp_preamble_tag
        from tests.guess_attack import guess_once
        listener = self.listener()
        _vr, vp, _hr, hp, _vh, hh = self.rendezvous(host_listener=listener)
        ran = []

        def counting_host(stream):
            ran.append(stream)
            return hh(stream)
        host = threading.Thread(target=lambda: self.swallow(establish, hp, None, counting_host,
                                                            listener=listener, udp=False, timeout=6))
        host.start()
        tag = tcp_preamble_tag(vp.relay_token, vp.session_id, "viewer")
        outcomes = []
        for _ in range(8):
            sock = socket.create_connection(listener.candidates()[0], timeout=5)
            sock.sendall(encode_preamble(vp.session_id, tag))
            from tagio.net.stream import SocketStream
            outcomes.append(guess_once(SocketStream(sock), hp.peer_id, vp.peer_id, vp.session_id))
        host.join(15)
        self.assertEqual(outcomes.count("checked"), 1, outcomes)
        self.assertEqual(len(ran), 1)

    @staticmethod
    def swallow(fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:   # the guesser hung up: the host's race fails, as it should
            pass


if __name__ == "__main__":
    unittest.main()
