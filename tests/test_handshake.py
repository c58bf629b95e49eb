"""The SPAKE2 handshake end to end over real socketpairs and threads, MITM included."""

import os
import socket
import threading
import time
import unittest

from tagio.crypto import handshake
from tagio.crypto.handshake import Msg, host_handshake, viewer_handshake
from tagio.crypto.kdf import password_secret
from tagio.crypto.spake2 import POINT_LEN
from tagio.errors import (
    ConnectionClosed, LocalProtocolError, RemoteProtocolError, TransportTimeout, WrongPasswordError,
)
from tagio.net.stream import SocketStream, recv_exactly

VIEWER_ID = "444555666"
HOST_ID = "111222333"
OTP = "abcd2345"
PERMANENT = "unattended pass phrase"
SECRETS = {}


def secret(password, host_id=HOST_ID):
    """password_secret is ~90 ms of scrypt: compute each one once per test run."""
    key = (password, host_id)
    if key not in SECRETS:
        SECRETS[key] = password_secret(password, host_id)
    return SECRETS[key]


def stream_pair():
    a, b = socket.socketpair()
    a.settimeout(10)    # a bug fails the test instead of hanging it
    b.settimeout(10)
    return SocketStream(a, "direct-tcp"), SocketStream(b, "direct-tcp")


class Background:
    """Run fn in a thread; .result() returns its value or re-raises its exception."""

    def __init__(self, fn, *args, **kwargs):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs):
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:   # kept and re-raised in result()
            self._error = exc

    def result(self, timeout=15):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("background call did not finish")
        if self._error is not None:
            raise self._error
        return self._value


def run_pair(password, secrets, *, session_id=None, viewer_kwargs=None, host_kwargs=None):
    """(viewer outcome, host outcome): each a channel or the exception raised."""
    session_id = session_id or os.urandom(16)
    v_stream, h_stream = stream_pair()
    host_args = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id, timeout=5)
    host_args.update(host_kwargs or {})
    host = Background(host_handshake, h_stream, secrets, **host_args)
    viewer_args = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id, timeout=5)
    viewer_args.update(viewer_kwargs or {})
    outcomes = []
    for call in (lambda: viewer_handshake(v_stream, password, **viewer_args), host.result):
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


class ExchangeTest(unittest.TestCase):
    def test_right_one_time_password(self):
        viewer, host = run_pair(OTP, [secret(OTP), secret(PERMANENT)])
        try:
            self.assertEqual(host.matched_secret, 0)
            self.assertEqual(viewer.path, "direct-tcp")
            viewer.send(b"ping")
            self.assertEqual(host.recv(), b"ping")
            host.send(b"pong")
            self.assertEqual(viewer.recv(), b"pong")
        finally:
            viewer.close()
            host.close()

    def test_right_permanent_password(self):
        viewer, host = run_pair(PERMANENT, [secret(OTP), secret(PERMANENT)])
        self.assertEqual(host.matched_secret, 1)
        viewer.send(b"x" * 100_000)
        self.assertEqual(host.recv(), b"x" * 100_000)
        viewer.close()
        host.close()

    def test_wrong_password_fails_on_both_sides(self):
        viewer, host = run_pair("wrong123", [secret(OTP), secret(PERMANENT)])
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertIsInstance(host, WrongPasswordError)
        self.assertNotIn(OTP, str(viewer) + str(host))

    def test_password_of_another_host_fails(self):
        viewer, host = run_pair(OTP, [secret(OTP, "999888777")])
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertIsInstance(host, WrongPasswordError)

    def test_session_mismatch_is_refused(self):
        v_stream, h_stream = stream_pair()
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                          host_id=HOST_ID, session_id=b"A" * 16, timeout=5)
        with self.assertRaises(RemoteProtocolError):
            viewer_handshake(v_stream, OTP, viewer_id=VIEWER_ID, host_id=HOST_ID,
                             session_id=b"B" * 16, timeout=5)
        with self.assertRaisesRegex(RemoteProtocolError, "another session"):
            host.result()

    def test_host_always_offers_two_slots(self):
        # The slot count must not reveal whether a permanent password is set.
        v_stream, h_stream = stream_pair()
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                          host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
        from tagio.crypto import kdf
        from tagio.crypto.spake2 import ROLE_A, Spake2Party
        context = kdf.handshake_context(VIEWER_ID, HOST_ID, b"s" * 16)
        party = Spake2Party(ROLE_A, 5, VIEWER_ID.encode(), HOST_ID.encode(), context)
        v_stream.send(handshake.encode_hello(handshake._ctx_tag(context), party.message))
        msg_type, length = handshake.parse_header(recv_exactly(v_stream, 3))
        payload = recv_exactly(v_stream, length)
        self.assertEqual(msg_type, Msg.REPLY)
        self.assertEqual(payload[0], handshake.REPLY_SLOTS)
        v_stream.close()
        with self.assertRaises((ConnectionClosed, RemoteProtocolError)):
            host.result()

    def test_needs_a_secret(self):
        v_stream, h_stream = stream_pair()
        with self.assertRaises(LocalProtocolError):
            host_handshake(h_stream, [], viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=b"s")
        v_stream.close()
        h_stream.close()


class BadInputTest(unittest.TestCase):
    """The host is fed raw bytes by a hand-written 'viewer'."""

    def host_with_raw_viewer(self, raw: bytes, timeout=3):
        v_stream, h_stream = stream_pair()
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                          host_id=HOST_ID, session_id=b"s" * 16, timeout=timeout)
        if raw:
            v_stream.send(raw)
        try:
            return host.result
        finally:
            self.addCleanup(v_stream.close)

    def test_point_at_infinity_in_hello(self):
        from tagio.crypto import kdf
        tag = handshake._ctx_tag(kdf.handshake_context(VIEWER_ID, HOST_ID, b"s" * 16))
        result = self.host_with_raw_viewer(handshake.encode_hello(tag, b"\x04" + bytes(64)))
        with self.assertRaisesRegex(RemoteProtocolError, "infinity"):
            result()

    def test_off_curve_point_in_hello(self):
        from tagio.crypto import kdf
        tag = handshake._ctx_tag(kdf.handshake_context(VIEWER_ID, HOST_ID, b"s" * 16))
        result = self.host_with_raw_viewer(handshake.encode_hello(tag, b"\x04" + b"\x01" * 64))
        with self.assertRaisesRegex(RemoteProtocolError, "curve"):
            result()

    def test_wrong_length_hello(self):
        raw = handshake.FRAME_HEADER.pack(Msg.HELLO, 10) + bytes(10)
        with self.assertRaisesRegex(RemoteProtocolError, "malformed HELLO"):
            self.host_with_raw_viewer(raw)()

    def test_oversized_frame(self):
        raw = handshake.FRAME_HEADER.pack(Msg.HELLO, 60000)
        with self.assertRaisesRegex(RemoteProtocolError, "exceeds"):
            self.host_with_raw_viewer(raw)()

    def test_unknown_type(self):
        with self.assertRaisesRegex(RemoteProtocolError, "unknown handshake message type"):
            self.host_with_raw_viewer(b"\x99\x00\x00")()

    def test_out_of_order_message(self):
        raw = handshake.encode_frame(Msg.CONFIRM, bytes(1 + 32))
        with self.assertRaisesRegex(RemoteProtocolError, "unexpected CONFIRM"):
            self.host_with_raw_viewer(raw)()

    def test_tls_client_hello_garbage(self):
        with self.assertRaises(RemoteProtocolError):
            self.host_with_raw_viewer(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64))()

    def test_silent_peer_times_out(self):
        started = time.monotonic()
        with self.assertRaises(TransportTimeout):
            self.host_with_raw_viewer(b"", timeout=0.5)()
        self.assertLess(time.monotonic() - started, 3)

    def test_slow_drip_is_bounded_by_total_time(self):
        v_stream, h_stream = stream_pair()
        self.addCleanup(v_stream.close)
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                          host_id=HOST_ID, session_id=b"s" * 16, timeout=0.6)
        frame = handshake.encode_hello(b"t" * 16, b"\x04" + bytes(64))
        for byte in frame[:20]:
            try:
                v_stream.send(bytes([byte]))
            except ConnectionClosed:
                break
            time.sleep(0.05)
        with self.assertRaises(TransportTimeout):
            host.result()

    def test_vanished_viewer(self):
        with self.assertRaises(ConnectionClosed):
            v_stream, h_stream = stream_pair()
            host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                              host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
            v_stream.send(b"\x01\x00")
            v_stream.close()
            host.result()


class Forwarder:
    """A 'relay' that copies bytes both ways between two sockets and records all of them."""

    def __init__(self, left: socket.socket, right: socket.socket):
        self.wire = bytearray()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(left, right), daemon=True),
                         threading.Thread(target=self._pump, args=(right, left), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self._lock:
                self.wire += data
            try:
                dst.sendall(data)
            except OSError:
                return      # the far end already left

    def join(self):
        for thread in self._threads:
            thread.join(10)


class ManInTheMiddleTest(unittest.TestCase):
    def test_substituting_relay_with_guessed_password_fails_everywhere(self):
        session_id = os.urandom(16)
        ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id, timeout=5)
        viewer_end, mitm_as_host = stream_pair()
        mitm_as_viewer, host_end = stream_pair()
        guess = "guess234"
        host = Background(host_handshake, host_end, [secret(OTP), secret(PERMANENT)], **ids)
        mitm_host_side = Background(host_handshake, mitm_as_host, [secret(guess)], **ids)
        mitm_viewer_side = Background(viewer_handshake, mitm_as_viewer, guess, **ids)
        with self.assertRaises(WrongPasswordError):
            viewer_handshake(viewer_end, OTP, **ids)
        with self.assertRaises(WrongPasswordError):
            host.result()
        for attacker in (mitm_host_side, mitm_viewer_side):
            with self.assertRaises(WrongPasswordError):
                attacker.result()

    def test_forwarding_relay_sees_no_plaintext(self):
        session_id = os.urandom(16)
        viewer_sock, relay_left = socket.socketpair()
        relay_right, host_sock = socket.socketpair()
        relay = Forwarder(relay_left, relay_right)
        ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id, timeout=5)
        host = Background(host_handshake, SocketStream(host_sock, "relay"), [secret(OTP)], **ids)
        viewer = viewer_handshake(SocketStream(viewer_sock, "relay"), OTP, **ids)
        host_channel = host.result()
        self.assertEqual(viewer.path, "relay")
        pattern = (b"TagIO known plaintext pattern 0123456789 " * 30000)[:1 << 20]
        receiver = Background(lambda: b"".join(host_channel.recv() for _ in range(16)))
        for offset in range(0, len(pattern), 65536):
            viewer.send(pattern[offset:offset + 65536])
        self.assertEqual(receiver.result(), pattern)
        host_channel.send(pattern[:65536])
        self.assertEqual(viewer.recv(), pattern[:65536])
        viewer.close()
        host_channel.close()
        relay.join()
        wire = bytes(relay.wire)
        self.assertGreater(len(wire), len(pattern) + 65536)
        self.assertNotIn(b"known plaintext", wire)
        self.assertNotIn(pattern[1000:1032], wire)
        self.assertNotIn(OTP.encode(), wire)
        self.assertNotIn(secret(OTP), wire)


if __name__ == "__main__":
    unittest.main()
