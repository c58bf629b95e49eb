"""Reliable-UDP datagrams (protocol/rudp.py): golden vectors byte for byte, MAC included.

The sans-I/O stream core and its driver are tested in test_rudp.py."""

import unittest

from tagio.errors import RemoteProtocolError
from tagio.protocol import rudp as u
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"
CONN = bytes.fromhex("01020304")
KEY = bytes(range(32))


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "rudp"
    SAMPLES = {
        "punch": u.Punch(bytes(range(8))),
        "punch_ack": u.PunchAck(bytes(range(8, 16))),
        "data": u.Data(7, 123456, u.FLAG_ACK_NOW, b"payload"),
        "data_fin_empty": u.Data(8, 0, u.FLAG_FIN, b""),
        "data_max": u.Data(0xFFFFFFFF, 0xFFFFFFFF, 0, bytes(u.MAX_PAYLOAD)),
        "ack": u.Ack(10, 99, 64, ((12, 14), (20, 21))),
        "ack_plain": u.Ack(0, 0, 0),
        "ping": u.Ping(42),
        "reset": u.Reset(2),
    }

    def encode(self, msg):
        return u.encode(msg, CONN, KEY)

    def decode(self, data):
        msg = u.decode(data, CONN, KEY)
        if isinstance(msg, u.Data):     # the hot path must agree with the message path
            self.assertEqual(u.decode_data(data, CONN, KEY), (msg.seq, msg.ts, msg.flags, msg.payload))
            self.assertEqual(u.encode_data(msg.seq, msg.ts, msg.flags, msg.payload, CONN, KEY), data)
        return msg

    def test_mac_and_connection_checked_first(self):
        data = self.encode(self.SAMPLES["ping"])
        with self.assertRaisesRegex(RemoteProtocolError, "authentication"):
            u.decode(data[:-1] + bytes([data[-1] ^ 1]), CONN, KEY)
        with self.assertRaisesRegex(RemoteProtocolError, "another connection"):
            u.decode(data, b"\x00\x00\x00\x00", KEY)


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
