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
    ConnectionClosed, LocalProtocolError, RemoteProtocolError, SecureChannelError, TransportTimeout,
    WrongPasswordError,
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
    if "secret" in viewer_args:   # a stand-in for the password's secret (stolen values)
        viewer = lambda: handshake.viewer_handshake_secret(v_stream, **viewer_args)  # noqa: E731
    else:
        viewer = lambda: viewer_handshake(v_stream, password, **viewer_args)  # noqa: E731
    for call in (viewer, host.result):
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

    def test_over_real_tcp_on_loopback(self):
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
        server.settimeout(10)
        ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=os.urandom(16), timeout=5)
        host = Background(host_handshake, SocketStream(server, "direct-tcp"), [secret(OTP)], **ids)
        viewer = viewer_handshake(SocketStream(client, "direct-tcp"), OTP, **ids)
        host_channel = host.result()
        payload = os.urandom(300_000)
        sender = Background(viewer.send, payload)
        self.assertEqual(host_channel.recv(), payload)
        sender.result()
        viewer.close()
        with self.assertRaises(ConnectionClosed):
            host_channel.recv()
        host_channel.close()

    def test_right_permanent_password(self):
        viewer, host = run_pair(PERMANENT, [secret(OTP), secret(PERMANENT)])
        self.assertEqual(host.matched_secret, 1)
        viewer.send(b"x" * 100_000)
        self.assertEqual(host.recv(), b"x" * 100_000)
        viewer.close()
        host.close()

    def test_matched_secret_indexes_the_callers_list_even_with_an_empty_entry(self):
        viewer, host = run_pair(PERMANENT, [None, secret(PERMANENT)])
        self.assertEqual(host.matched_secret, 1)  # not 0: that would claim the one-time password
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

    def test_host_answers_every_kind_with_one_slot_set_or_not(self):
        # The reply must not reveal whether a one-time or a permanent password is set.
        from tagio.crypto.handshake import Kind
        for keys in ([secret(OTP)], [None, secret(PERMANENT)]):
            for kind in Kind:
                with self.subTest(keys=len(keys), kind=kind):
                    v_stream, h_stream = stream_pair()
                    host = Background(host_handshake, h_stream, keys, viewer_id=VIEWER_ID,
                                      host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
                    party = handshake._viewer_party(kind, secret("guess234"), VIEWER_ID, HOST_ID,
                                                    handshake._context(VIEWER_ID, HOST_ID, b"s" * 16))
                    tag = handshake._ctx_tag(handshake._context(VIEWER_ID, HOST_ID, b"s" * 16), kind)
                    v_stream.send(handshake.encode_hello(tag, party.message))
                    msg_type, length = handshake.parse_header(recv_exactly(v_stream, 3))
                    payload = recv_exactly(v_stream, length)
                    self.assertEqual((msg_type, payload[0], length), (Msg.REPLY, 1, 1 + POINT_LEN + 32))
                    with self.assertRaises(WrongPasswordError):   # a guess, and a wrong one
                        handshake._check_reply(party, handshake.ReplyMsg.parse(payload))
                    v_stream.send(handshake.encode_frame(Msg.ABORT, bytes([handshake.Abort.WRONG_PASSWORD])))
                    with self.assertRaises(WrongPasswordError):
                        host.result()
                    v_stream.close()

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

    def test_hello_of_the_version_before_spake2plus_is_refused_in_words(self):
        from tagio.protocol.version import VersionMismatch
        tag = handshake._ctx_tag(handshake._context(VIEWER_ID, HOST_ID, b"s" * 16))
        raw = handshake.encode(handshake.wire.HelloMsg(1, tag, b"\x04" + bytes(64)))
        with self.assertRaisesRegex(VersionMismatch, "older TagIO .*handshake protocol version 1"):
            self.host_with_raw_viewer(raw)()

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

    def test_abort_from_viewer(self):
        raw = handshake.encode_frame(Msg.ABORT, bytes([handshake.Abort.WRONG_PASSWORD]))
        with self.assertRaisesRegex(WrongPasswordError, "refused by the peer"):
            self.host_with_raw_viewer(raw)()

    def test_unknown_abort_code(self):
        with self.assertRaisesRegex(RemoteProtocolError, "abort code 9"):
            self.host_with_raw_viewer(handshake.encode_frame(Msg.ABORT, b"\x09"))()

    def test_every_step_expects_one_message(self):
        self.assertEqual(set(handshake.EXPECTED), set(handshake.Step))
        self.assertEqual(set(handshake.EXPECTED.values()) | {Msg.ABORT}, set(Msg))

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

    def test_deadline_passing_as_the_handshake_finishes_is_a_timeout(self):
        v_stream, h_stream = stream_pair()
        self.addCleanup(v_stream.close)

        def finishes_late():
            time.sleep(0.5)  # the 0.05 s watchdog closes the stream meanwhile; nothing blocks on it
            return "channel on a closed stream"
        with self.assertRaises(TransportTimeout):
            handshake._run(h_stream, 0.05, finishes_late)

    def test_vanished_viewer(self):
        with self.assertRaises(ConnectionClosed):
            v_stream, h_stream = stream_pair()
            host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                              host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
            v_stream.send(b"\x01\x00")
            v_stream.close()
            host.result()


class Forwarder:
    """A 'relay' that copies bytes both ways between two sockets and records all of them.

    `flip_right_to_left` = offsets of bytes (counted in the right->left direction) to corrupt.
    """

    def __init__(self, left: socket.socket, right: socket.socket, flip_right_to_left=None):
        self.wire = bytearray()
        self._lock = threading.Lock()
        self._flip = () if flip_right_to_left is None else tuple(flip_right_to_left)
        self._threads = [threading.Thread(target=self._pump, args=(left, right), daemon=True),
                         threading.Thread(target=self._pump, args=(right, left, True), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _corrupt(self, data, seen):
        offsets = [o - seen for o in self._flip if seen <= o < seen + len(data)]
        if offsets:
            data = bytearray(data)
            for offset in offsets:
                data[offset] ^= 0x01
        return bytes(data)

    def _pump(self, src, dst, right_to_left=False):
        seen = 0
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
            if right_to_left:
                data, seen = self._corrupt(data, seen), seen + len(data)
            with self._lock:
                self.wire += data
            try:
                dst.sendall(data)
            except OSError:
                return      # the far end already left

    def join(self):
        for thread in self._threads:
            thread.join(10)


def relayed_pair(*flip_host_to_viewer):
    """Viewer and host streams joined by a Forwarder that corrupts the given host->viewer bytes."""
    viewer_sock, relay_left = socket.socketpair()
    relay_right, host_sock = socket.socketpair()
    for sock in (viewer_sock, host_sock):
        sock.settimeout(10)
    relay = Forwarder(relay_left, relay_right, flip_right_to_left=flip_host_to_viewer)
    return SocketStream(viewer_sock, "relay"), SocketStream(host_sock, "relay"), relay


class TamperedHandshakeTest(unittest.TestCase):
    REPLY_LEN = 3 + 1 + handshake.REPLY_SLOTS * (POINT_LEN + 32)

    def run_tampered(self, *offsets):
        v_stream, h_stream, relay = relayed_pair(*offsets)
        ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=os.urandom(16), timeout=5)
        host = Background(host_handshake, h_stream, [secret(OTP)], **ids)
        outcomes = []
        for call in (lambda: viewer_handshake(v_stream, OTP, **ids), host.result):
            try:
                outcomes.append(call())
            except Exception as exc:
                outcomes.append(exc)
        for item in outcomes:
            if hasattr(item, "close"):
                item.close()
        v_stream.close()
        h_stream.close()
        relay.join()
        return outcomes

    def test_flipped_confirmations_fail_both_sides(self):
        slot = POINT_LEN + 32
        viewer, host = self.run_tampered(*(4 + i * slot + POINT_LEN + 5 for i in range(handshake.REPLY_SLOTS)))
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertIsInstance(host, WrongPasswordError)

    def test_flipped_point_fails_both_sides(self):
        slot = POINT_LEN + 32
        viewer, host = self.run_tampered(*(4 + i * slot + 40 for i in range(handshake.REPLY_SLOTS)))
        self.assertIsInstance(viewer, (WrongPasswordError, RemoteProtocolError))
        self.assertIsInstance(host, (WrongPasswordError, RemoteProtocolError))

    def test_flipped_finished_fails_the_viewer(self):
        # Any failure once the REPLY arrived is "wrong password" and ends the connect (issue 10 item 2).
        viewer, host = self.run_tampered(self.REPLY_LEN + 3 + 7)
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertIn("FINISHED", str(viewer))
        self.assertNotIsInstance(host, Exception)    # the host finished; its channel then sees the viewer leave

    def test_flipped_record_after_handshake_is_tamper(self):
        v_stream, h_stream, relay = relayed_pair(self.REPLY_LEN + 3 + 32 + 20)
        ids = dict(viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=os.urandom(16), timeout=5)
        host = Background(host_handshake, h_stream, [secret(OTP)], **ids)
        viewer = viewer_handshake(v_stream, OTP, **ids)
        host_channel = host.result()
        host_channel.send(b"first record from the host")
        with self.assertRaises(SecureChannelError) as ctx:
            viewer.recv()
        self.assertEqual(ctx.exception.cause, "tamper")
        viewer.close()
        host_channel.close()
        relay.join()


class OfflineGuessTest(unittest.TestCase):
    def test_a_recorded_reply_verifies_no_password_offline(self):
        """A malicious viewer commits to one guess in pA; afterwards even the right password
        cannot make the host's confirmation verify: there is nothing to test guesses against."""
        from tagio.crypto import kdf
        from tagio.crypto.spake2 import ROLE_A, Spake2Party
        session_id = os.urandom(16)
        context = kdf.handshake_context(VIEWER_ID, HOST_ID, session_id)
        v_stream, h_stream = stream_pair()
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID, host_id=HOST_ID,
                          session_id=session_id, timeout=3)
        scalar = 123456789
        guess = Spake2Party(ROLE_A, kdf.spake2_w(secret("guess234"), context), VIEWER_ID.encode(),
                            HOST_ID.encode(), context, _test_scalar=scalar)
        v_stream.send(handshake.encode_hello(handshake._ctx_tag(context), guess.message))
        _, length = handshake.parse_header(recv_exactly(v_stream, 3))
        slots = handshake.decode_reply(recv_exactly(v_stream, length))
        right = Spake2Party(ROLE_A, kdf.spake2_w(secret(OTP), context), VIEWER_ID.encode(),
                            HOST_ID.encode(), context, _test_scalar=scalar)
        for p_b, conf_b in slots:
            self.assertFalse(guess.finish(p_b).verify_peer(conf_b))
            self.assertFalse(right.finish(p_b).verify_peer(conf_b))
        # The honest control: a party that *sent* the right pA does verify one slot.
        v_stream.send(handshake.encode_frame(Msg.ABORT, bytes([handshake.Abort.WRONG_PASSWORD])))
        with self.assertRaises(WrongPasswordError):
            host.result()
        viewer, host_channel = run_pair(OTP, [secret(OTP)])
        self.assertEqual(host_channel.matched_secret, 0)
        viewer.close()
        host_channel.close()

    def test_confirm_for_padding_or_bad_index_is_refused(self):
        for index in (0, 1, 7):
            with self.subTest(index=index):
                v_stream, h_stream = stream_pair()
                host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID,
                                  host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
                from tagio.crypto import kdf
                from tagio.crypto.spake2 import ROLE_A, Spake2Party
                context = kdf.handshake_context(VIEWER_ID, HOST_ID, b"s" * 16)
                party = Spake2Party(ROLE_A, 42, VIEWER_ID.encode(), HOST_ID.encode(), context)
                v_stream.send(handshake.encode_hello(handshake._ctx_tag(context), party.message))
                _, length = handshake.parse_header(recv_exactly(v_stream, 3))
                recv_exactly(v_stream, length)
                v_stream.send(handshake.encode_frame(Msg.CONFIRM, bytes([index]) + bytes(32)))
                with self.assertRaises(WrongPasswordError):
                    host.result()
                v_stream.close()


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


class RecordingGuesses:
    """The `guesses` object of host_handshake: records what the handshake told it, in order."""

    def __init__(self, refuse=False):
        self.calls, self.refuse = [], refuse

    def start(self, one_time):
        self.calls.append("start" if one_time else "start permanent")
        if self.refuse:
            raise handshake.GuessLimitError("too many wrong passwords")

    def succeeded(self):
        self.calls.append("succeeded")


def raw_viewer(host_keys, kind, password, guesses=None, session_id=b"s" * 16):
    """A hand-driven viewer: (its stream, its party, the Background host) after HELLO was sent."""
    v_stream, h_stream = stream_pair()
    host = Background(host_handshake, h_stream, host_keys, viewer_id=VIEWER_ID, host_id=HOST_ID,
                      session_id=session_id, timeout=3, guesses=guesses)
    context = handshake._context(VIEWER_ID, HOST_ID, session_id)
    party = handshake._viewer_party(kind, secret(password), VIEWER_ID, HOST_ID, context)
    v_stream.send(handshake.encode_hello(handshake._ctx_tag(context, kind), party.message))
    return v_stream, party, host


class EveryGuessCountsTest(unittest.TestCase):
    def test_guess_is_counted_before_the_reply_and_a_hang_up_keeps_it(self):
        """A guesser checks the host's MAC locally and hangs up: the guess was counted first."""
        from tagio.crypto.handshake import Kind
        guesses = RecordingGuesses()
        v_stream, party, host = raw_viewer([secret(OTP)], Kind.ONE_TIME, OTP, guesses)
        _, length = handshake.parse_header(recv_exactly(v_stream, 3))
        self.assertEqual(guesses.calls, ["start"])           # recorded before we could read the REPLY
        reply = handshake.ReplyMsg.parse(recv_exactly(v_stream, length))
        self.assertTrue(party.finish(reply.slots[0][0]).verify_peer(reply.slots[0][1]))  # checked locally
        v_stream.close()                                     # ... and gone
        with self.assertRaises(ConnectionClosed):
            host.result()
        self.assertEqual(guesses.calls, ["start"])           # never taken back

    def test_mutual_success_takes_it_back(self):
        guesses = RecordingGuesses()
        viewer, host = run_pair(OTP, [secret(OTP)], host_kwargs={"guesses": guesses})
        self.assertEqual(guesses.calls, ["start", "succeeded"])
        viewer.close()
        host.close()

    def test_wrong_password_is_not_taken_back(self):
        guesses = RecordingGuesses()
        viewer, host = run_pair("wrong-password", [secret(OTP), secret(PERMANENT)],
                                host_kwargs={"guesses": guesses})
        self.assertIsInstance(viewer, WrongPasswordError)
        self.assertEqual(guesses.calls, ["start permanent"])     # its shape made it a permanent guess

    def test_refused_guess_sends_no_reply(self):
        guesses = RecordingGuesses(refuse=True)
        viewer, host = run_pair(OTP, [secret(OTP)], host_kwargs={"guesses": guesses})
        self.assertIsInstance(viewer, handshake.GuessLimitError)
        self.assertIn("try again later", str(viewer))
        self.assertIsInstance(host, handshake.GuessLimitError)

    def test_invalid_point_counts_no_guess(self):
        """A HELLO whose point is unusable lets nobody check anything: no guess is spent."""
        guesses = RecordingGuesses()
        v_stream, h_stream = stream_pair()
        self.addCleanup(v_stream.close)
        host = Background(host_handshake, h_stream, [secret(OTP)], viewer_id=VIEWER_ID, host_id=HOST_ID,
                          session_id=b"s" * 16, timeout=3, guesses=guesses)
        tag = handshake._ctx_tag(handshake._context(VIEWER_ID, HOST_ID, b"s" * 16))
        v_stream.send(handshake.encode_hello(tag, b"\x04" + bytes(64)))
        with self.assertRaises(RemoteProtocolError):
            host.result()
        self.assertEqual(guesses.calls, [])


class UnattendedAccessTest(unittest.TestCase):
    """SPAKE2+: the host keeps only the verifier, and the verifier is not a password."""

    def test_permanent_password_against_a_stored_verifier(self):
        from tagio.crypto import kdf
        verifier = kdf.verifier_from_secret(secret(PERMANENT))
        viewer, host = run_pair(PERMANENT, handshake.HostKeys(permanent=verifier))
        self.assertEqual((host.matched_secret, host.password_kind), (1, handshake.Kind.PERMANENT))
        viewer.send(b"over SPAKE2+")
        self.assertEqual(host.recv(), b"over SPAKE2+")
        viewer.close()
        host.close()

    def test_a_stolen_settings_file_lets_nobody_in(self):
        """Everything the host stores, fed to a viewer handshake in every way it could be: refused."""
        from tagio.crypto import kdf
        from tagio.crypto.handshake import Kind, viewer_handshake_secret
        verifier = kdf.verifier_from_secret(secret(PERMANENT))
        keys = handshake.HostKeys(one_time=secret(OTP), permanent=verifier)
        w0, L = verifier[:32], verifier[32:]
        stand_ins = [(w0, kind) for kind in Kind] + [(L[1:33], kind) for kind in Kind] + \
                    [(L[33:], kind) for kind in Kind]
        for stolen, kind in stand_ins:
            with self.subTest(part=stolen[:4].hex(), kind=kind):
                viewer, host = run_pair(None, keys, viewer_kwargs={"kind": kind, "secret": stolen})
                self.assertIsInstance(viewer, WrongPasswordError)
                self.assertIsInstance(host, WrongPasswordError)
        for typed in (verifier.hex(), w0.hex(), L.hex()):           # pasted as the password
            viewer, host = run_pair(typed, keys)
            self.assertIsInstance(viewer, WrongPasswordError)
            self.assertIsInstance(host, WrongPasswordError)
        self.assertTrue(callable(viewer_handshake_secret))

    def test_one_time_password_still_works_beside_a_verifier(self):
        from tagio.crypto import kdf
        keys = handshake.HostKeys(one_time=secret(OTP), permanent=kdf.verifier_from_secret(secret(PERMANENT)))
        viewer, host = run_pair(OTP, keys)
        self.assertEqual(host.matched_secret, 0)
        viewer.close()
        host.close()

    def test_kinds_do_not_cross(self):
        """A permanent password equal in value to nothing on the one-time side fails, and the
        one-time password sent as the permanent kind fails: each kind checks one secret."""
        from tagio.crypto.handshake import Kind
        keys = [secret(OTP), secret(PERMANENT)]
        viewer, host = run_pair(None, keys, viewer_kwargs={"kind": Kind.PERMANENT, "secret": secret(OTP)})
        self.assertIsInstance(viewer, WrongPasswordError)
        viewer, host = run_pair(None, keys, viewer_kwargs={"kind": Kind.ONE_TIME, "secret": secret(PERMANENT)})
        self.assertIsInstance(viewer, WrongPasswordError)


class OneGuessPerConnectTest(unittest.TestCase):
    """Whoever answers the viewer (a LAN spoofer, an ID squatter, a malicious relay) learns about
    one password per connect."""

    def fake_host(self, reply_slots):
        """A stream pair whose host end reads HELLO and answers `reply_slots(party_message)`."""
        v_stream, h_stream = stream_pair()
        self.addCleanup(h_stream.close)

        def answer():
            _, length = handshake.parse_header(recv_exactly(h_stream, 3))
            recv_exactly(h_stream, length)
            h_stream.send(handshake.encode_reply(reply_slots))
            try:
                return recv_exactly(h_stream, 3)   # the viewer's CONFIRM or ABORT header
            except ConnectionClosed:
                return b""
        return v_stream, Background(answer)

    def viewer(self, v_stream, once=None):
        from tagio.crypto.handshake import OneGuess
        return viewer_handshake(v_stream, OTP, viewer_id=VIEWER_ID, host_id=HOST_ID,
                                session_id=b"s" * 16, timeout=3, once=once or OneGuess())

    def test_more_slots_than_needed_is_a_wrong_password(self):
        slot = (b"\x04" + bytes(64), bytes(32))
        for count in (2, 4):
            v_stream, fake = self.fake_host([slot] * count)
            with self.assertRaises(WrongPasswordError):
                self.viewer(v_stream)
            self.assertEqual(fake.result()[0], Msg.ABORT)

    def test_invalid_point_after_the_reply_is_a_wrong_password(self):
        for point in (b"\x04" + bytes(64), b"\x04" + b"\x01" * 64):
            v_stream, fake = self.fake_host([(point, bytes(32))])
            with self.assertRaises(WrongPasswordError):
                self.viewer(v_stream)
            fake.result()

    def test_a_spent_guess_ends_every_other_path(self):
        """After one REPLY failed, the real host on another path is not even checked."""
        from tagio.crypto import kdf
        from tagio.crypto.handshake import OneGuess
        from tagio.crypto.spake2 import ROLE_B, Spake2Party
        once = OneGuess()
        context = handshake._context(VIEWER_ID, HOST_ID, b"s" * 16)
        wrong = Spake2Party(ROLE_B, kdf.spake2_w(secret("guess234"), context), VIEWER_ID.encode(),
                            HOST_ID.encode(), context)
        v_stream, fake = self.fake_host([(wrong.message, bytes(32))])
        with self.assertRaises(WrongPasswordError):
            self.viewer(v_stream, once)
        fake.result()
        self.assertTrue(once.spent)
        real_v, real_h = stream_pair()
        host = Background(host_handshake, real_h, [secret(OTP)], viewer_id=VIEWER_ID, host_id=HOST_ID,
                          session_id=b"s" * 16, timeout=3)
        with self.assertRaises(WrongPasswordError):
            self.viewer(real_v, once)                    # the right password, but the guess is spent
        with self.assertRaises(WrongPasswordError):
            host.result()

    def test_a_right_reply_does_not_spend_the_guess(self):
        from tagio.crypto.handshake import OneGuess
        once = OneGuess()
        for _path in range(2):
            real_v, real_h = stream_pair()
            host = Background(host_handshake, real_h, [secret(OTP)], viewer_id=VIEWER_ID,
                              host_id=HOST_ID, session_id=b"s" * 16, timeout=3)
            channel = self.viewer(real_v, once)
            host.result().close()
            channel.close()
        self.assertFalse(once.spent)
