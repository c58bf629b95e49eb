"""Session message codec: round trips, bounds, and malformed input -> RemoteProtocolError only."""

import random
import struct
import unittest

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import files
from tagio.protocol import session as m
from tests.golden import GoldenVectors, regenerate_if_asked


LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

SAMPLES = [
    m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 1920, 1080, 1, 0x3F),     # the six bits of its time
    m.Frame(7, m.FINAL, 123.5, 42, [m.Rect(0, 0, 64, 64, m.ENC_FILL, b"\x01\x02\x03"),
                                    m.Rect(64, 0, 10, 5, m.ENC_PNG, b"png-bytes")]),
    m.Frame(8, 0, 0.0, 0, []),
    m.FrameAck(7),
    m.Cursor(-3, 40),
    m.Cursor(5, 6, 1, 1, 2, 2, 2, bytes(range(16))),
    m.Mouse(m.MOUSE_CLICK, 1, 100, 200, 2),
    m.Key("Control_L", True),
    m.Key("é", False),
    m.Scroll(-1, 3),
    m.Text("héllo wörld ✓"),
    m.Clipboard.of_text("copied"),
    m.SetQuality(60, 30),
    m.SelectMonitor(2),
    m.MonitorList(1, [(0, 0, 1920, 1080), (1920, 0, 1280, 1024)]),
    m.Bye("host quit"),
    m.Clipboard(m.CLIP_PNG, bytes.fromhex(            # a 1x1 PNG, as a clipboard image travels
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
        "0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082")),
    m.Clipboard(m.CLIP_TEXT, b"", 300_000),           # "your partner copied 300 KB": too big to share
    m.Files(files.End(3)),
    m.Chat("hello ✓"),
    m.Ping(7),
    m.Pong(0xFFFFFFFF),
    m.Admission(m.ADMISSION_PENDING),
    m.Introduce("Anna's laptop ✓"),
    m.Introduce(""),
    m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 1920, 1080, 1, 0x7F),     # offers scaled rectangles
    m.ViewerCapabilities(0x7F),
    m.Frame(9, m.FINAL, 2.0, 30, [m.scaled_rect(0, 64, 640, 360, 320, 180, b"\xff\xd8jpeg")]),
    m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 1920, 1080, 1, 0xFF),     # offers cumulative acks
    m.ViewerCapabilities(0xFF),
]


class GoldenTest(GoldenVectors, unittest.TestCase):
    FORMAT = "session"
    SAMPLES = {f"{i:02d}_{type(msg).__name__.lower()}": msg for i, msg in enumerate(SAMPLES)}

    def encode(self, msg):
        return m.encode(msg)

    def decode(self, data):
        return m.decode(data)


class RoundTrip(unittest.TestCase):
    def test_every_type_round_trips(self):
        seen = set()
        for msg in SAMPLES:
            with self.subTest(msg=type(msg).__name__):
                data = m.encode(msg)
                self.assertLessEqual(len(data), m.MAX_MESSAGE)
                self.assertEqual(m.decode(data), msg)
                seen.add(type(msg))
        self.assertEqual(seen, set(m.MESSAGE_TYPES.values()))

    def test_golden_heartbeat_and_admission(self):
        self.assertEqual(m.encode(m.Ping(258)), b"\x40\x00\x00\x01\x02")
        self.assertEqual(m.encode(m.Pong(1)), b"\x41\x00\x00\x00\x01")
        self.assertEqual(m.encode(m.Admission(m.ADMISSION_ADMITTED)), b"\x42\x02")

    def test_golden_introduce(self):
        self.assertEqual(m.encode(m.Introduce("Desk")), b"\x43Desk")
        self.assertEqual(m.encode(m.Introduce("")), b"\x43")

    def test_introduce_is_bounded(self):
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Introduce("x" * (m.MAX_DESK_NAME + 1)))
        with self.assertRaises(RemoteProtocolError):
            m.decode(b"\x43" + b"x" * (m.MAX_DESK_NAME + 1))
        with self.assertRaises(RemoteProtocolError):
            m.decode(b"\x43\xff")

    def test_clean_name_strips_control_and_bidi_characters(self):
        self.assertEqual(m.clean_name("Anna\n\x1b[31m  laptop\u202e\x00"), "Anna [31m laptop")
        self.assertEqual(m.clean_name("\t\r\n"), "")
        self.assertEqual(m.clean_name("é" * 40), "é" * 32)       # 64 bytes, cut on a character

    def test_unknown_admission_state_is_the_peers_fault(self):
        with self.assertRaises(RemoteProtocolError):
            m.decode(b"\x42\x07")
        with self.assertRaises(RemoteProtocolError):
            m.decode(b"\x40\x00\x01")      # a Ping of 2 bytes

    def test_golden_frame_ack_and_fill_rect(self):
        self.assertEqual(m.encode(m.FrameAck(258)), b"\x03\x00\x00\x01\x02")
        frame = m.Frame(1, m.FINAL, 0.0, 5, [m.Rect(1, 2, 3, 4, m.ENC_FILL, b"\xff\x00\x10")])
        expected = (b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 5, 1)
                    + struct.pack("!HHHHBI", 1, 2, 3, 4, 0, 3) + b"\xff\x00\x10")
        self.assertEqual(m.encode(frame), expected)
        self.assertEqual(m.encode_frame(1, m.FINAL, 0.0, 5, frame.rects), expected)    # the host's way

    def test_encode_frame_writes_what_encode_of_a_frame_writes(self):
        rects = [m.Rect(1, 2, 3, 4, m.ENC_PNG, b"png"), m.Rect(5, 6, 7, 8, m.ENC_FILL, b"\x01\x02\x03"),
                 m.copy_rect(0, 9, 0, 0, 10, 10)]
        for count in range(len(rects) + 1):     # no rectangle, one (its own path), several
            for flags, latency in ((0, 12), (m.FINAL, 70000)):    # latency is capped at 65535 either way
                frame = m.Frame(77, flags, 1.25, latency, rects[:count])
                self.assertEqual(m.encode_frame(77, flags, 1.25, latency, rects[:count]), m.encode(frame))


class Malformed(unittest.TestCase):
    def assertRemote(self, data, fragment):
        with self.assertRaises(RemoteProtocolError) as ctx:
            m.decode(data)
        self.assertIn(fragment, str(ctx.exception))

    def test_empty_and_unknown_type(self):
        self.assertRemote(b"", "0 bytes")
        self.assertRemote(b"\xee\x00", "unknown session message type 238")

    def test_oversized_message(self):
        self.assertRemote(b"\x08" + b"a" * m.MAX_MESSAGE, "bytes")

    def test_truncated_and_trailing(self):
        good = m.encode(SAMPLES[1])
        self.assertRemote(good[:-1], "truncated")
        self.assertRemote(good + b"x", "trailing")
        self.assertRemote(m.encode(m.FrameAck(1)) + b"\x00", "must be 4 bytes")

    def test_rect_count_and_size_bounds(self):
        head = b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 0, m.MAX_RECTS + 1)
        self.assertRemote(head, "rectangles")
        rect = struct.pack("!HHHHBI", 0, 0, 0, 10, m.ENC_PNG, 0)
        self.assertRemote(b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 0, 1) + rect, "bad rectangle size")
        rect = struct.pack("!HHHHBI", 0, 0, 4, 4, 9, 0)
        self.assertRemote(b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 0, 1) + rect, "unknown rectangle encoding")
        rect = struct.pack("!HHHHBI", 0, 0, 4, 4, m.ENC_FILL, 2) + b"ab"
        self.assertRemote(b"\x02" + struct.pack("!IBdHH", 1, 1, 0.0, 0, 1) + rect, "3 bytes")

    def test_field_ranges(self):
        self.assertRemote(b"\x01" + struct.pack("!BIHHBI", 99, 0, 10, 10, 1, 0), "version 99")
        self.assertRemote(b"\x01" + struct.pack("!BIHHBI", m.SESSION_VERSION, 0, 0, 10, 1, 0), "bad screen size")
        self.assertRemote(b"\x01" + struct.pack("!BIHHBI", m.SESSION_VERSION, 0, 16000, 16000, 1, 0),
                          "bad screen size")
        self.assertRemote(b"\x05" + struct.pack("!BBiiB", 9, 1, 0, 0, 1), "mouse action")
        self.assertRemote(b"\x05" + struct.pack("!BBiiB", 1, 7, 0, 0, 1), "mouse button")
        self.assertRemote(b"\x0a" + bytes([0, 30]), "quality 0")
        self.assertRemote(b"\x0a" + bytes([50, 200]), "fps cap")
        self.assertRemote(b"\x0b\x11", "monitor 17")       # 0 is "all monitors"
        self.assertRemote(b"\x07" + struct.pack("!hh", 0, 5000), "scroll")
        self.assertRemote(b"\x06\x02a", "pressed flag")
        self.assertRemote(b"\x06\x01" + b"k" * 40, "Key length")
        self.assertRemote(b"\x0c\x01\x20", "monitors")
        self.assertRemote(b"\x04" + struct.pack("!iiBHHHH", 0, 0, 1, 0, 0, 500, 500), "too big")

    def test_bad_utf8_and_long_text(self):
        self.assertRemote(b"\x08\xff\xfe", "UTF-8")
        self.assertRemote(b"\x08" + b"a" * (m.MAX_TEXT + 1), "text over")

    def test_random_mutations_raise_only_protocol_errors(self):
        rng = random.Random(4)
        blobs = [m.encode(s) for s in SAMPLES]
        for _ in range(3000):
            data = bytearray(rng.choice(blobs))
            for _ in range(rng.randint(1, 4)):
                op = rng.randint(0, 2)
                pos = rng.randrange(len(data)) if data else 0
                if op == 0 and data:
                    data[pos] = rng.randrange(256)
                elif op == 1:
                    del data[pos:pos + rng.randint(1, 8)]
                else:
                    data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            try:    # re-armed: the decoder no longer relabels its own errors, so a bug fails here
                m.decode(bytes(data))
            except RemoteProtocolError:
                pass


class EncodeLimits(unittest.TestCase):
    def test_refuses_what_it_must_not_send(self):
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Text("x" * (m.MAX_TEXT + 1)))
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Key("", True))
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Frame(1, m.FINAL, 0.0, 0, [m.Rect(0, 0, 1, 1, 9, b"")]))
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Frame(1, m.FINAL, 0.0, 0, [m.Rect(0, 0, 1, 1, m.ENC_PNG, b"x" * m.MAX_MESSAGE)]))
        for rects in ([m.Rect(0, 0, 1, 1, 9, b"")], [m.Rect(0, 0, 1, 1, m.ENC_PNG, b"x" * m.MAX_MESSAGE)],
                      [m.Rect(0, 0, 1, 1, m.ENC_FILL, b"abc"), m.Rect(0, 0, 1, 1, 9, b"")]):
            with self.assertRaises(LocalProtocolError):
                m.encode_frame(1, m.FINAL, 0.0, 0, rects)
        with self.assertRaises(LocalProtocolError):
            m.encode(m.FrameAck(-1))
        with self.assertRaises(LocalProtocolError):
            m.encode("not a message")


if __name__ == "__main__":
    regenerate_if_asked(GoldenTest)
    unittest.main()
