"""establish() and DirectListener on loopback: direct TCP, relay, reversal, failures.

The relay here is a minimal token-pairing forwarder on 127.0.0.1 (the real
relay's RelayBind pairing reduced to "first 16 bytes are the token"); the
handshake is the real SPAKE2 handshake from tagio.crypto.
"""

import os
import socket
import threading
import time
import unittest
from types import SimpleNamespace

from tagio.errors import AuthError, RemoteProtocolError, TransportError, WrongPasswordError
from tagio.net.connect import DirectListener, establish, lan_host_peer, lan_viewer_peer
from tagio.net.listener import Preamble, decode_preamble, encode_preamble
from tagio.net.stream import SocketStream

try:
    from tagio.crypto import handshake as crypto_handshake
    from tagio.crypto import kdf
except ImportError as exc:  # the crypto module lands in parallel
    crypto_handshake = None
    CRYPTO_MISSING = f"tagio.crypto not importable: {exc}"
else:
    CRYPTO_MISSING = ""

VIEWER_ID, HOST_ID, PASSWORD = "111111111", "222222222", "abcdefgh"


class PairingRelay:
    """Loopback forwarder pairing two connections that send the same 16-byte token."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.waiting = {}
        self.socks = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            conn.settimeout(None)
            self.socks.append(conn)
            token = conn.recv(16)
            other = self.waiting.pop(token, None)
            if other is None:
                self.waiting[token] = conn
                continue
            for a, b in ((conn, other), (other, conn)):
                a.sendall(b"R")
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open_relay(self, token, timeout=10.0):
        sock = socket.create_connection(self.server.getsockname(), timeout=timeout)
        sock.sendall(token)
        if sock.recv(1) != b"R":
            raise TransportError("relay pairing failed")
        sock.settimeout(None)
        return SocketStream(sock, path="relay")

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()
        for s in self.socks:
            s.close()


def make_peers(viewer_candidates=(), host_candidates=()):
    session_id, token = os.urandom(16), os.urandom(16)
    common = dict(session_id=session_id, relay_token=token, peer_public_addr=None,
                  peer_udp_addr=None, peer_public_key=b"", nat_hint="")
    viewer = SimpleNamespace(role="viewer", peer_id=HOST_ID, peer_local_candidates=list(host_candidates),
                             **common)
    host = SimpleNamespace(role="host", peer_id=VIEWER_ID, peer_local_candidates=list(viewer_candidates),
                           **common)
    return viewer, host


def viewer_side(peer, password=PASSWORD):
    def run(stream):
        return crypto_handshake.viewer_handshake(stream, password, viewer_id=VIEWER_ID, host_id=HOST_ID,
                                                 session_id=peer.session_id, timeout=5.0)
    return run


def host_side(peer):
    secret = kdf.password_secret(PASSWORD, HOST_ID)

    def run(stream):
        return crypto_handshake.host_handshake(stream, [secret], viewer_id=VIEWER_ID, host_id=HOST_ID,
                                               session_id=peer.session_id, timeout=5.0)
    return run


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


class PreambleTest(unittest.TestCase):
    def test_round_trips(self):
        sid, tag = os.urandom(16), os.urandom(16)
        self.assertEqual(decode_preamble(encode_preamble(sid, tag)), Preamble(sid, tag))
        lan = encode_preamble(sid, tag, "123456789")
        self.assertEqual(decode_preamble(lan), Preamble(sid, tag, "123456789"))
        self.assertEqual(len(encode_preamble(sid, tag)), 37)
        self.assertEqual(len(lan), 46)

    def test_garbage_rejected(self):
        sid, tag = os.urandom(16), os.urandom(16)
        good = encode_preamble(sid, tag)
        bad = [b"", b"GET / HTTP/1.1\r\n\r\n" + b"x" * 18, b"TGDT\x02" + b"\0" * 32, good[:-1], good + b"x",
               encode_preamble(sid, tag, "12345678x")]
        for raw in bad:
            with self.assertRaises(RemoteProtocolError, msg=raw):
                decode_preamble(raw)


@unittest.skipIf(crypto_handshake is None, CRYPTO_MISSING)
class EstablishTest(unittest.TestCase):
    def setUp(self):
        self.relay = PairingRelay()
        self.closables = [self.relay]

    def tearDown(self):
        for item in reversed(self.closables):
            item.close()

    def listener(self):
        listener = DirectListener(("127.0.0.1", 0))
        self.closables.append(listener)
        return listener

    def assert_talks(self, viewer_channel, host_channel):
        self.closables += [viewer_channel, host_channel]
        viewer_channel.send(b"ping from viewer")
        self.assertEqual(host_channel.recv(), b"ping from viewer")
        host_channel.send(b"pong from host")
        self.assertEqual(viewer_channel.recv(), b"pong from host")

    def test_direct_tcp_wins_when_host_reachable(self):
        listener = self.listener()
        viewer, host = make_peers(host_candidates=listener.candidates())
        v, h = run_both(lambda: establish(viewer, self.relay, viewer_side(viewer), udp=False),
                        lambda: establish(host, self.relay, host_side(host), listener=listener, udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)

    def test_relay_when_no_direct_path(self):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
        closed.close()
        viewer, host = make_peers(host_candidates=[("127.0.0.1", dead_port)])
        started = time.monotonic()
        v, h = run_both(lambda: establish(viewer, self.relay, viewer_side(viewer)),
                        lambda: establish(host, self.relay, host_side(host)))
        self.assertEqual((v.path, h.path), ("relay", "relay"), (v, h))
        self.assertLess(time.monotonic() - started, 5.0)
        self.assert_talks(v, h)

    def test_connection_reversal_host_dials_viewer(self):
        viewer_listener = self.listener()
        viewer, host = make_peers(viewer_candidates=viewer_listener.candidates())
        v, h = run_both(
            lambda: establish(viewer, None, viewer_side(viewer), listener=viewer_listener, udp=False),
            lambda: establish(host, None, host_side(host), udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)

    def test_punched_udp_when_only_udp_candidates_known(self):
        viewer_listener, host_listener = self.listener(), self.listener()
        viewer, host = make_peers()
        viewer.peer_udp_addr = host_listener.udp.address()
        host.peer_udp_addr = viewer_listener.udp.address()
        v, h = run_both(lambda: establish(viewer, None, viewer_side(viewer), listener=viewer_listener),
                        lambda: establish(host, None, host_side(host), listener=host_listener))
        self.assertEqual((v.path, h.path), ("direct-udp", "direct-udp"), (v, h))
        self.assert_talks(v, h)
        big = os.urandom(200_000)
        v.send(big)
        self.assertEqual(h.recv(), big)

    def test_lan_session_without_relay(self):
        host_listener = self.listener()
        session_id = os.urandom(16)
        viewer = lan_viewer_peer(HOST_ID, host_listener.candidates()[0], VIEWER_ID, session_id)
        host_result = {}

        def host_call():
            request = host_listener.lan_requests.get(timeout=5)
            host_result["request"] = request
            peer = lan_host_peer(request, HOST_ID)
            return establish(peer, None, host_side(peer), listener=host_listener)

        v, h = run_both(lambda: establish(viewer, None, viewer_side(viewer), udp=False), host_call)
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assertEqual(host_result["request"].viewer_id, VIEWER_ID)
        self.assert_talks(v, h)

    def test_wrong_password_is_reported_not_retried_elsewhere(self):
        listener = self.listener()
        viewer, host = make_peers(host_candidates=listener.candidates())
        v, h = run_both(lambda: establish(viewer, self.relay, viewer_side(viewer, "wrongpass"), timeout=8),
                        lambda: establish(host, self.relay, host_side(host), listener=listener, timeout=8))
        self.assertIsInstance(v, WrongPasswordError)
        self.assertIsInstance(h, AuthError)

    def test_no_path_fails_with_clear_error(self):
        viewer, _host = make_peers()
        with self.assertRaises(TransportError):
            establish(viewer, None, viewer_side(viewer), timeout=2)

    def test_listener_survives_garbage_and_forged_preambles(self):
        listener = self.listener()
        viewer, host = make_peers(host_candidates=listener.candidates())
        junk = socket.create_connection(listener.candidates()[0])
        junk.sendall(b"\x16\x03\x01" + os.urandom(60))
        forged = socket.create_connection(listener.candidates()[0])  # right session, wrong tag
        forged.sendall(encode_preamble(host.session_id, os.urandom(16)))
        silent = socket.create_connection(listener.candidates()[0])  # never sends: must not block
        self.closables += [junk, forged, silent]
        v, h = run_both(lambda: establish(viewer, None, viewer_side(viewer), udp=False),
                        lambda: establish(host, None, host_side(host), listener=listener, udp=False))
        self.assertEqual((v.path, h.path), ("direct-tcp", "direct-tcp"), (v, h))
        self.assert_talks(v, h)
        forged.settimeout(2)
        self.assertEqual(forged.recv(10), b"")  # the forged one was closed, not handshaken


if __name__ == "__main__":
    unittest.main()
