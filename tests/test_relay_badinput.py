"""Bad input at the relay: each case checks what the client sees AND that the relay still serves others."""

import os
import socket
import ssl
import time
import unittest

from tagio.crypto.identity import Identity
from tagio.errors import TagioError, TransportError
from tagio.net.relay_client import RelayClient
from tagio.protocol import framing
from tagio.protocol import relay as m
from tests.relay_fixture import start_relay


def read_until_eof(sock, timeout=5.0) -> bytes:
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def error_frames(data: bytes) -> list:
    return [msg for msg in (m.decode_message(f) for f in framing.FrameDecoder().feed(data))
            if isinstance(msg, m.Error)]


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = start_relay(handshake_timeout=1.0, max_conns_per_ip=64)

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()

    def raw(self, source_ip="127.0.0.1"):
        sock = socket.create_connection(self.relay.address, timeout=5, source_address=(source_ip, 0))
        self.addCleanup(sock.close)
        return sock

    def assert_error(self, payload, code, fragment, source_ip="127.0.0.1"):
        sock = self.raw(source_ip)
        if payload:
            sock.sendall(payload)
        errors = error_frames(read_until_eof(sock))
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[0].code, code)
        self.assertIn(fragment, errors[0].text)
        self.assert_still_serving()

    def assert_still_serving(self):
        viewer = RelayClient(self.relay.address, Identity.generate(), source_ip="127.0.0.9")
        host = RelayClient(self.relay.address, Identity.generate(), source_ip="127.0.0.9")
        try:
            viewer.connect()
            host.connect()
            info = viewer.request_peer(host.identity.id, os.urandom(16))
            self.assertEqual(info.peer_id, host.identity.id)
        finally:
            viewer.close()
            host.close()

    def test_random_bytes(self):
        self.assert_error(b"\x00" + os.urandom(200), "protocol", "bad magic")

    def test_wrong_magic(self):
        self.assert_error(b"TGIX" + bytes(20), "protocol", "bad magic")

    def test_wrong_version(self):
        self.assert_error(framing.HEADER.pack(b"TGIO", 9, 1, 0, 0), "protocol", "unsupported protocol version 9")

    def test_length_of_4_gib(self):
        self.assert_error(framing.HEADER.pack(b"TGIO", 1, 1, 0, 0xFFFFFFFF), "protocol", "exceeds")

    def test_oversize_frame(self):
        self.assert_error(framing.HEADER.pack(b"TGIO", 1, 1, 0, framing.MAX_PAYLOAD + 1), "protocol", "exceeds")

    def test_unknown_message_type(self):
        self.assert_error(framing.encode_frame(250, b""), "protocol", "unknown message type 250")

    def test_bad_payload(self):
        self.assert_error(framing.encode_frame(m.Hello.TYPE, b"\x00\x09abc"), "protocol", "Hello")

    def test_out_of_order_message(self):
        self.assert_error(m.ConnectRequest("123456789", bytes(16)).encode(), "protocol", "unexpected ConnectRequest")

    def test_frame_cut_in_half_then_silence(self):
        started = time.monotonic()
        self.assert_error(m.Hello().encode()[:7], "timeout", "handshake not completed")
        self.assertLess(time.monotonic() - started, 4.0)

    def test_silent_connection(self):
        self.assert_error(b"", "timeout", "handshake not completed")

    def test_unknown_relay_token(self):
        self.assert_error(m.RelayBind(os.urandom(16)).encode(), "unknown_token", "unknown or expired")

    def test_tls_hello_on_plain_port(self):
        ctx = ssl.create_default_context()
        with self.assertRaises(ssl.SSLError) as caught:
            ctx.wrap_socket(self.raw(), server_hostname="localhost")
        self.assertIn("HANDSHAKE_FAILURE", str(caught.exception))
        client = RelayClient(self.relay.address, Identity.generate(), ssl_context=ctx, source_ip="127.0.0.8")
        with self.assertRaisesRegex(TransportError, "TLS handshake with relay .* failed"):
            client.connect()
        self.assert_still_serving()

    def test_oversize_http_head(self):
        sock = self.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nX-Filler: " + b"a" * 10000)
        answer = read_until_eof(sock)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:40])
        self.assertIn(b"larger than 8192", answer)
        self.assert_still_serving()

    def test_flood_of_1000_connections_from_one_address(self):
        flood = []
        try:
            for _ in range(1000):
                s = socket.socket()
                s.bind(("127.0.0.5", 0))
                s.connect(self.relay.address)
                flood.append(s)
            refused = 0
            for s in flood[64:]:
                errors = error_frames(read_until_eof(s))
                if errors and errors[0].code == "too_many_connections":
                    refused += 1
            self.assertEqual(refused, 1000 - 64)
            self.assert_still_serving()  # from another address, while 64 flood sockets are still open
        finally:
            for s in flood:
                s.close()



class MessageFloodTest(unittest.TestCase):
    def test_heartbeat_flood_is_cut_off(self):
        with start_relay(max_frames_per_sec=20) as relay:
            flooder = RelayClient(relay.address, Identity.generate())
            flooder.connect()
            self.addCleanup(flooder.close)
            try:
                for seq in range(200):
                    flooder._send(m.Heartbeat(seq))
            except TagioError:
                pass  # the relay may already have closed us
            deadline = time.monotonic() + 5
            while flooder.online and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(flooder.online)
            self.assertEqual(flooder.last_error_code, "rate_limited")
            polite = RelayClient(relay.address, Identity.generate())
            polite.connect()
            self.assertTrue(polite.online)
            polite.close()


if __name__ == "__main__":
    unittest.main()
