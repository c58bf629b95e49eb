"""Direct-TCP preamble (protocol/direct.py): golden vectors, round trips, garbage refused."""

import os
import unittest

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.direct import MAX_PREAMBLE, Preamble, body_size, decode_preamble, encode_preamble
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"
SID = bytes.fromhex("00112233445566778899aabbccddeeff")
TAG = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "direct"
    SAMPLES = {
        "relayed": Preamble(SID, TAG),
        "lan": Preamble(SID, TAG, "123456789"),
    }

    def encode(self, msg):
        return msg.encode()

    def decode(self, data):
        return decode_preamble(data)


class PreambleTest(unittest.TestCase):
    def test_round_trips(self):
        sid, tag = os.urandom(16), os.urandom(16)
        self.assertEqual(decode_preamble(encode_preamble(sid, tag)), Preamble(sid, tag))
        lan = encode_preamble(sid, tag, "123456789")
        self.assertEqual(decode_preamble(lan), Preamble(sid, tag, "123456789"))
        self.assertEqual(len(encode_preamble(sid, tag)), 37)
        self.assertEqual(len(lan), 46)
        self.assertEqual(MAX_PREAMBLE, 46)
        self.assertEqual(body_size(lan[:5]), 41)

    def test_garbage_rejected(self):
        sid, tag = os.urandom(16), os.urandom(16)
        good = encode_preamble(sid, tag)
        bad = [b"", b"GET / HTTP/1.1\r\n\r\n" + b"x" * 18, b"TGDT\x02" + b"\0" * 32, good[:-1], good + b"x",
               encode_preamble(sid, tag, "12345678x")]
        for raw in bad:
            with self.assertRaises(RemoteProtocolError, msg=raw):
                decode_preamble(raw)

    def test_refuses_to_encode_nonsense(self):
        for args in ((b"short", TAG), (SID, b"short"), (SID, TAG, "1234")):
            with self.subTest(args=args), self.assertRaises(LocalProtocolError):
                encode_preamble(*args)


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
