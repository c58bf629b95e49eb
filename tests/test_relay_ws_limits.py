"""WebSocket amplification at the relay, attacked over real sockets on 127.0.0.1.

Empty data frames are refused; every frame (pongs included) and its bytes count against the
connection's frame budget, registered or not; before a relay token is bound a frame may hold no more
than one TagIO frame; only /tagio upgrades.
"""

import socket
import unittest

from tagio.crypto.identity import Identity
from tagio.errors import RemoteProtocolError
from tagio.net.relay_client import RelayClient, WsSocket
from tagio.protocol.websocket import OP_PONG, ws_frame
from tests.relay_fixture import start_relay
from tests.test_relay_badinput import error_frames


def read_all(ws, timeout=5.0) -> bytes:
    """Everything the relay sends until it closes; socket.timeout if it never does."""
    ws.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = ws.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return bytes(data)
        data += chunk


class WebSocketLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = start_relay(max_frames_per_sec=50)  # the production budget

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()

    def upgraded(self, path="/tagio"):
        sock = socket.create_connection(self.relay.address, timeout=5)
        self.addCleanup(sock.close)
        return sock, WsSocket.upgrade(sock, "127.0.0.1", self.relay.address[1], path)

    def assert_closed_with(self, ws, code, fragment):
        errors = error_frames(read_all(ws))
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[0].code, code)
        self.assertIn(fragment, errors[0].text)

    def test_empty_data_frames_are_refused(self):
        sock, ws = self.upgraded()
        sock.sendall(ws_frame(b"", mask=True) * 1000)
        self.assert_closed_with(ws, "protocol", "empty data frame")

    def test_a_registered_client_flooding_frames_is_cut(self):
        sock, ws = self.upgraded()
        RelayClient(self.relay.address, Identity.generate())._register(ws)  # registered over WebSocket
        try:
            for _ in range(20):  # 2,000 unsolicited pongs: nothing to answer, but each costs a decode
                sock.sendall(ws_frame(b"p", mask=True, opcode=OP_PONG) * 100)
        except OSError:
            pass  # cut while still sending: what this test wants
        self.assert_closed_with(ws, "rate_limited", "slow down")

    def test_no_large_frame_is_parked_before_authentication(self):
        sock, ws = self.upgraded()
        head = ws_frame(bytes(1_000_000), mask=True)[:14]  # a 1 MB frame's header and mask key
        sock.sendall(head + bytes(60_000))  # most of it may follow; the relay must not wait for it
        self.assert_closed_with(ws, "protocol", "exceeds")

    def test_only_the_tagio_path_upgrades(self):
        with self.assertRaisesRegex(RemoteProtocolError, "400"):
            self.upgraded("/somewhere-else")
        self.upgraded("/tagio?client=1")  # a query string is fine


if __name__ == "__main__":
    unittest.main()
