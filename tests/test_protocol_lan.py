"""LAN discovery datagrams (protocol/lan.py): golden vectors, round trips, garbage refused."""

import os
import unittest

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.lan import Announcement, Query, decode, encode_announcement, encode_query
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "lan"
    SAMPLES = {
        "announcement": Announcement("123456789", 0x1234),
        "announcement_port_max": Announcement("987654321", 65535),
        "query": Query(b"abcd"),
        "query_zero": Query(bytes(4)),
    }

    def encode(self, msg):
        return msg.encode()

    def decode(self, data):
        return decode(data)


class CodecTest(unittest.TestCase):
    def test_round_trip_and_golden_bytes(self):
        datagram = encode_announcement("123456789", 0x1234)
        self.assertEqual(datagram, b"TGLA\x01123456789\x12\x34")
        self.assertEqual(decode(datagram), Announcement("123456789", 0x1234))
        self.assertEqual(decode(encode_query(b"abcd")), Query(b"abcd"))
        self.assertEqual(encode_query(b"abcd"), b"TGLQ\x01abcd")

    def test_garbage_rejected(self):
        good = encode_announcement("123456789", 80)
        for raw in (b"", good[:-1], good + b"x", b"TGLA\x02" + good[5:], b"TGLA\x01" + b"12345678x" + good[-2:],
                    good[:-2] + b"\0\0", b"TGLA\x01012345678\x00\x50", os.urandom(16)):
            with self.assertRaises(RemoteProtocolError):
                decode(raw)

    def test_refuses_to_encode_nonsense(self):
        for client_id, port in (("12345", 80), ("123456789", 0), ("123456789", 70000)):
            with self.assertRaises(LocalProtocolError):
                encode_announcement(client_id, port)


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
