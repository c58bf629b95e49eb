"""Handshake messages (protocol/handshake.py): golden vectors, round trips, malformed input refused.

The state machine that runs them is tested in test_handshake.py."""

import unittest

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import handshake as h
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"
TAG = bytes(range(16))
POINT = b"\x04" + bytes(range(1, 65))
CONF = bytes(range(100, 132))


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "handshake"
    SAMPLES = {
        "hello": h.HelloMsg(h.HANDSHAKE_VERSION, TAG, POINT),
        "reply_two_slots": h.ReplyMsg([(POINT, CONF), (b"\x04" + bytes(64), bytes(32))]),
        "reply_max_slots": h.ReplyMsg([(POINT, CONF)] * h.MAX_SLOTS),
        "confirm": h.ConfirmMsg(1, CONF),
        "finished": h.FinishedMsg(CONF),
        "abort_wrong_password": h.AbortMsg(h.Abort.WRONG_PASSWORD),
        "abort_protocol": h.AbortMsg(h.Abort.PROTOCOL),
    }

    def encode(self, msg):
        return h.encode(msg)

    def decode(self, data):
        return h.decode(data)

    def test_layout(self):
        self.assertEqual(h.encode(self.SAMPLES["confirm"]), b"\x03\x00\x21\x01" + CONF)
        self.assertEqual(h.encode_hello(TAG, POINT), h.encode(self.SAMPLES["hello"]))
        self.assertEqual(h.encode_reply([(POINT, CONF)]), h.encode(h.ReplyMsg([(POINT, CONF)])))


class MalformedTest(unittest.TestCase):
    def test_header_checks(self):
        with self.assertRaisesRegex(RemoteProtocolError, "unknown handshake message type 9"):
            h.parse_header(b"\x09\x00\x01")
        with self.assertRaisesRegex(RemoteProtocolError, "exceeds"):
            h.parse_header(b"\x01\xff\xff")

    def test_payload_sizes(self):
        for msg_type, payload in ((h.Msg.HELLO, bytes(10)), (h.Msg.REPLY, b"\x00"), (h.Msg.REPLY, b"\x05"),
                                  (h.Msg.REPLY, b"\x01" + bytes(96)), (h.Msg.CONFIRM, bytes(32)),
                                  (h.Msg.FINISHED, bytes(33)), (h.Msg.ABORT, b"")):
            with self.subTest(msg_type=msg_type, size=len(payload)):
                with self.assertRaisesRegex(RemoteProtocolError, f"malformed {msg_type.name}"):
                    h.decode_payload(msg_type, payload)

    def test_whole_frame_length_must_match(self):
        good = h.encode(h.FinishedMsg(CONF))
        for bad in (good[:-1], good + b"x", good[:2]):
            with self.assertRaises(RemoteProtocolError):
                h.decode(bad)

    def test_unknown_abort_code_still_decodes(self):
        self.assertEqual(h.decode(h.encode_frame(h.Msg.ABORT, b"\x09")), h.AbortMsg(9))

    def test_refuses_to_encode_nonsense(self):
        for msg in (h.HelloMsg(1, b"short", POINT), h.ReplyMsg([]), h.ReplyMsg([(POINT, CONF)] * 5),
                    h.ConfirmMsg(256, CONF), h.FinishedMsg(b""), h.AbortMsg(-1), "not a message"):
            with self.subTest(msg=msg), self.assertRaises(LocalProtocolError):
                h.encode(msg)


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
