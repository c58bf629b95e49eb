"""WebSocket framing (protocol/websocket.py): golden vectors from RFC 6455 section 5.7 and ours."""

import unittest

from tagio.protocol.websocket import (OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, WsDecoder, accept_key,
                                      ws_frame)
from tests.golden import GoldenVectors, regenerate_if_asked

LAYER = "unit"
RFC_KEY = bytes.fromhex("37fa213d")      # the masking key of RFC 6455's examples


class GoldenTest(GoldenVectors, unittest.TestCase):
    """A sample is (opcode, payload, masking key or None); it decodes to the decoder's events."""
    FORMAT = "websocket"
    SAMPLES = {
        "rfc_text_unmasked": (OP_TEXT, b"Hello", None),
        "rfc_text_masked": (OP_TEXT, b"Hello", RFC_KEY),
        "rfc_ping_unmasked": (OP_PING, b"Hello", None),
        "rfc_binary_256": (OP_BINARY, bytes(range(256)), None),
        "binary_masked_300": (OP_BINARY, bytes(range(256)) + b"tagio" * 8 + b"!!!!", RFC_KEY),
        "binary_64k": (OP_BINARY, bytes(i % 251 for i in range(65536)), None),
        "close_masked": (OP_CLOSE, b"", bytes.fromhex("01020304")),
        "empty_binary": (OP_BINARY, b"", None),
    }
    EVENTS = {OP_TEXT: "data", OP_BINARY: "data", OP_PING: "ping", OP_CLOSE: "close"}

    def encode(self, sample):
        opcode, payload, key = sample
        return ws_frame(payload, mask=key is not None, opcode=opcode, key=key)

    def decode(self, data):
        masked = bool(data[1] & 0x80)
        (kind, payload), = WsDecoder(expect_masked=masked).feed(data)
        opcode = data[0] & 0x0F
        self.assertEqual(kind, self.EVENTS[opcode])
        at = {126: 4, 127: 10}.get(data[1] & 0x7F, 2)     # where the masking key starts
        return (opcode, payload, data[at:at + 4] if masked else None)

    def test_rfc_6455_bytes(self):
        vectors = {name: self.encode(sample).hex() for name, sample in self.SAMPLES.items()}
        self.assertEqual(vectors["rfc_text_unmasked"], "810548656c6c6f")
        self.assertEqual(vectors["rfc_text_masked"], "818537fa213d7f9f4d5158")
        self.assertEqual(vectors["rfc_ping_unmasked"], "890548656c6c6f")
        self.assertTrue(vectors["rfc_binary_256"].startswith("827e0100"))
        self.assertTrue(vectors["binary_64k"].startswith("827f0000000000010000"))

    def test_rfc_accept_key(self):
        self.assertEqual(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
