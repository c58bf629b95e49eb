"""The relay protocol inside WebSocket (for HTTPS-only front ends): codec, and end to end on 127.0.0.1."""

import hashlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
import unittest
from pathlib import Path

from tagio.crypto.identity import Identity
from tagio.errors import RemoteProtocolError, TransportError
from tagio.net.relay_client import RelayClient, WsSocket
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.protocol.websocket import (OP_CLOSE, OP_PING, OP_PONG, WsDecoder, accept_key, apply_mask, data_of,
                                      ws_frame)
from tagio.relay.cli import make_tls_context
from tests.relay_fixture import relayed_streams, start_relay, wait_for
from tests.test_relay_badinput import read_until_eof


class CodecTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_rfc6455_accept_key(self):
        self.assertEqual(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_round_trip_all_length_forms_in_pieces(self):
        for n in (0, 1, 125, 126, 65535, 65536, 300_000):
            for mask in (True, False):
                data = os.urandom(n)
                frame = ws_frame(data, mask=mask)
                dec, events = WsDecoder(expect_masked=mask), []
                for i in range(0, len(frame), 4099):
                    events += dec.feed(frame[i:i + 4099])
                with self.subTest(n=n, mask=mask):
                    self.assertEqual(data_of(events)[0], data)

    def test_known_masked_frame(self):
        # RFC 6455 section 5.7: a masked "Hello" from a client
        frame = bytes.fromhex("818537fa213d7f9f4d5158")
        self.assertEqual(WsDecoder(expect_masked=True).feed(frame), [("data", b"Hello")])
        self.assertEqual(apply_mask(apply_mask(b"abcdef", b"1234"), b"1234"), b"abcdef")

    def test_control_frames(self):
        dec = WsDecoder(expect_masked=False)
        events = dec.feed(ws_frame(b"hi", False, OP_PING) + ws_frame(b"", False, OP_PONG)
                          + ws_frame(b"x", False) + ws_frame(b"", False, OP_CLOSE))
        self.assertEqual(data_of(events), (b"x", [b"hi"], True))

    def test_bad_frames(self):
        cases = {"masking is wrong": (WsDecoder(expect_masked=True), ws_frame(b"x", mask=False)),
                 "reserved bits": (WsDecoder(expect_masked=False), b"\xc2\x01x"),
                 "exceeds": (WsDecoder(expect_masked=False, max_payload=10), ws_frame(bytes(11), mask=False)),
                 "unknown opcode": (WsDecoder(expect_masked=False), b"\x83\x00")}
        for fragment, (dec, data) in cases.items():
            with self.subTest(fragment), self.assertRaisesRegex(RemoteProtocolError, fragment):
                dec.feed(data)

    def test_control_frames_must_be_short_and_whole(self):
        long_ping = ws_frame(bytes(126), mask=False, opcode=OP_PING)
        fragmented_ping = bytes([OP_PING, 1]) + b"x"  # FIN bit clear
        for data in (long_ping, fragmented_ping):
            with self.assertRaisesRegex(RemoteProtocolError, "control frame"):
                WsDecoder(expect_masked=False).feed(data)
        self.assertEqual(WsDecoder(expect_masked=False).feed(ws_frame(bytes(125), False, OP_PING)),
                         [("ping", bytes(125))])

    def test_non_ascii_key_is_a_protocol_error(self):
        with self.assertRaisesRegex(RemoteProtocolError, "Sec-WebSocket-Key"):
            accept_key("d\xe9j\xe0 vu")

    def test_huge_declared_length_refused_early(self):
        with self.assertRaisesRegex(RemoteProtocolError, "exceeds"):
            WsDecoder(expect_masked=True).feed(b"\x82\xff" + (1 << 40).to_bytes(8, "big"))


class WebSocketRelayTest(unittest.TestCase):
    ssl_context = None

    def setUp(self):
        self.relay = start_relay(ssl_context=self.ssl_context)
        self.addCleanup(self.relay.stop)

    def client(self, websocket):
        c = RelayClient(self.relay.address, Identity.generate(), websocket=websocket,
                        ssl_context=self.client_context(), server_hostname="127.0.0.1")
        self.addCleanup(c.close)
        return c

    def client_context(self):
        return None

    def relay_both_ways(self, viewer_ws, host_ws, size=2 * 1024 * 1024):
        viewer, host = self.client(viewer_ws), self.client(host_ws)
        self.assertEqual(viewer.connect().observed_addr[0], "127.0.0.1")
        host.connect()
        v, h = relayed_streams(self, viewer, host)
        for sender, receiver in ((v, h), (h, v)):
            data = os.urandom(size)
            t = threading.Thread(target=sender.send, args=(data,))
            t.start()
            digest, got = hashlib.sha256(), 0
            while got < size:
                chunk = receiver.recv(1 << 20)
                self.assertTrue(chunk, "stream ended early")
                digest.update(chunk)
                got += len(chunk)
            t.join(30)
            self.assertEqual(digest.digest(), hashlib.sha256(data).digest())
        v.close()
        h.settimeout(5)
        self.assertEqual(h.recv(10), b"")  # the close crosses the relay as EOF
        self.assertEqual(self.relay.server.forwarder.pairs_failed, 0)

    def test_websocket_to_websocket(self):
        self.relay_both_ways(True, True)
        self.assertGreaterEqual(self.relay.server.counters["websocket_upgrades_total"], 4)

    def test_websocket_to_raw_tcp(self):
        self.relay_both_ways(True, False)

    def raw_websocket(self):
        sock = socket.create_connection(self.relay.address, timeout=5)
        self.addCleanup(sock.close)
        if self.client_context():
            sock = self.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        return sock, WsSocket.upgrade(sock, "127.0.0.1", self.relay.address[1], "/tagio")

    def test_ping_is_answered_with_pong(self):
        sock, _ws = self.raw_websocket()
        sock.sendall(ws_frame(b"are you there", mask=True, opcode=OP_PING))
        answer = sock.recv(100)
        self.assertEqual(answer, ws_frame(b"are you there", mask=False, opcode=OP_PONG))
        viewer = self.client(True)
        viewer.connect()
        self.assertTrue(viewer.online)

    def test_garbage_inside_websocket_gets_error_frame(self):
        _sock, ws = self.raw_websocket()
        ws.sendall(b"NOT A TAGIO FRAME")
        received = read_until_eof(ws)
        errors = [m.decode_message(f) for f in framing.FrameDecoder().feed(received)]
        self.assertEqual([(e.code, "bad magic" in e.text) for e in errors], [("protocol", True)])
        self.client(True).connect()  # still serving

    def test_plain_http_server_refuses_upgrade(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)

        def http_404():
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            conn.close()
        threading.Thread(target=http_404, daemon=True).start()
        c = RelayClient(listener.getsockname(), Identity.generate(), websocket=True, timeout=5)
        with self.assertRaisesRegex(TransportError, "WebSocket upgrade refused"):
            c.connect()


class WebSocketAbuseTest(unittest.TestCase):
    def setUp(self):
        self.relay = start_relay(out_buffer=4096)
        self.addCleanup(self.relay.stop)

    def test_non_ascii_key_gets_400_not_an_internal_error(self):
        sock = socket.create_connection(self.relay.address, timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /tagio HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: \xe9\xe9\xe9\r\nSec-WebSocket-Version: 13\r\n\r\n")
        answer = read_until_eof(sock)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:60])
        self.assertEqual(self.relay.server.counters["internal_errors_total"], 0)

    def test_ping_flood_from_a_client_that_never_reads_is_dropped(self):
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.settimeout(5)
        sock.connect(self.relay.address)
        WsSocket.upgrade(sock, "127.0.0.1", self.relay.address[1], "/tagio")
        server = self.relay.server
        self.assertTrue(wait_for(lambda: len(server.conns) == 1))
        conn = list(server.conns.values())[0]
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel fills up soon
        burst = ws_frame(bytes(125), mask=True, opcode=OP_PING) * 200
        try:
            for _ in range(200):  # up to 5 MB of pings, 5 MB of pongs that nobody reads
                sock.sendall(burst)
        except OSError:
            pass  # the relay dropped us: what this test wants
        self.assertTrue(wait_for(lambda: conn.closed), "queued pongs grew past Limits.out_buffer")
        self.assertLessEqual(len(conn.out), 4096)
        self.assertEqual(server.counters["internal_errors_total"], 0)



@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command to make a test certificate")
class WebSocketOverTlsTest(WebSocketRelayTest):
    """wss:// as a client meets it behind an HTTPS-only front end."""

    @classmethod
    def setUpClass(cls):
        from tests.test_relay_tls import make_certificate
        cls.tmp = Path(tempfile.mkdtemp(prefix="tagio-wss-"))
        cls.cert, cls.key = make_certificate(cls.tmp)
        cls.ssl_context = make_tls_context(str(cls.cert), str(cls.key))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client_context(self):
        return ssl.create_default_context(cafile=str(self.cert))

    def test_plain_http_server_refuses_upgrade(self):
        self.skipTest("covered without TLS")



class RelayUrlTest(unittest.TestCase):
    def test_parse_relay_url(self):
        from tagio.errors import ConfigError
        from tagio.net.relay_client import parse_relay_url
        self.assertEqual(parse_relay_url("relay.example.org"), (("relay.example.org", 443), False, False, "/tagio"))
        self.assertEqual(parse_relay_url("127.0.0.1:7000"), (("127.0.0.1", 7000), False, False, "/tagio"))
        self.assertEqual(parse_relay_url("tls://r.example:8443"), (("r.example", 8443), True, False, "/tagio"))
        self.assertEqual(parse_relay_url("wss://tagio-server.onrender.com"),
                         (("tagio-server.onrender.com", 443), True, True, "/tagio"))
        self.assertEqual(parse_relay_url("ws://[::1]:9000/relay"), (("::1", 9000), False, True, "/relay"))
        for bad in ("ftp://x", "host:port"):
            with self.subTest(bad), self.assertRaises(ConfigError):
                parse_relay_url(bad)


if __name__ == "__main__":
    unittest.main()
