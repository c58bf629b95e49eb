"""Relay wire protocol: framing, field codecs, every message, golden vectors (no sockets).

Regenerate tests/data/relay_golden_vectors.json only on a deliberate wire change:
    python -m tests.test_protocol --regenerate > tests/data/relay_golden_vectors.json
"""

import json
import os
import random
import re
import sys
import unittest
from pathlib import Path

from tagio.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from tagio.protocol import framing
from tagio.protocol import relay as m
from tagio.protocol.framing import FrameDecoder, decode_datagram, encode_frame

VECTORS = Path(__file__).resolve().parent / "data" / "relay_golden_vectors.json"

import json

from tagio.protocol import relay as m

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

KEY = bytes(range(32))
SIG = bytes(range(64))
SID = bytes.fromhex("00112233445566778899aabbccddeeff")
TOKEN = bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f")

SAMPLES = {
    "hello": m.Hello("tagio/1"),
    "challenge": m.Challenge(bytes(range(100, 132)), 1, "tagio-relay/1.0.0"),
    "register": m.Register("123456789", KEY, SIG, bytes(32), [("192.168.1.5", 5000), ("fe80::1", 5001)], "cone"),
    "register_minimal": m.Register("987654321", KEY, SIG),
    "registered": m.Registered(("203.0.113.7", 40001), 1_764_000_000_123, 20_000, TOKEN),
    "heartbeat": m.Heartbeat(7),
    "connect_request": m.ConnectRequest("123456789", SID),
    "peer_info": m.PeerInfoMsg(SID, "viewer", "123456789", KEY, ("198.51.100.2", 443), ("198.51.100.2", 50000),
                               [("10.0.0.2", 6000)], TOKEN, "cone"),
    "peer_info_no_udp": m.PeerInfoMsg(SID, "host", "987654321", KEY, ("2001:db8::5", 1234), None, [], TOKEN),
    "relay_bind": m.RelayBind(TOKEN),
    "relay_ready": m.RelayReady(),
    "error": m.Error("offline", "ID 123456789 is offline", SID),
    "bye": m.Bye("client closing"),
    "update": m.Update([("192.168.1.5", 5000)], "symmetric"),
    "udp_discover": m.UdpDiscover(TOKEN, SID),
    "udp_observed": m.UdpObserved(SID, ("203.0.113.7", 61000), 1),
    "lookup": m.Lookup("123456789", SID),
    "lookup_result": m.LookupResult(SID, "offline"),
}



def header(magic=b"TGIO", version=1, type_code=1, flags=0, length=0):
    return framing.HEADER.pack(magic, version, type_code, flags, length)


class GoldenVectorTest(unittest.TestCase):
    def setUp(self):
        self.vectors = json.loads(VECTORS.read_text())

    def test_every_message_type_has_a_vector(self):
        covered = {type(msg).TYPE for msg in SAMPLES.values()}
        self.assertEqual(covered, set(m.MESSAGE_TYPES))
        self.assertEqual(set(self.vectors), set(SAMPLES))

    def test_encode_matches_vector(self):
        for name, msg in SAMPLES.items():
            with self.subTest(name):
                self.assertEqual(msg.encode().hex(), self.vectors[name])

    def test_decode_vector_gives_message(self):
        for name, hexdata in self.vectors.items():
            with self.subTest(name):
                frames = FrameDecoder().feed(bytes.fromhex(hexdata))
                self.assertEqual(len(frames), 1)
                self.assertEqual(m.decode_message(frames[0]), SAMPLES[name])

    def test_vector_header_layout(self):
        raw = bytes.fromhex(self.vectors["heartbeat"])
        self.assertEqual(raw[:4], b"TGIO")
        self.assertEqual(raw[4], framing.PROTOCOL_VERSION)
        self.assertEqual(raw[5], m.Heartbeat.TYPE)
        self.assertEqual(int.from_bytes(raw[7:11], "big"), 4)
        self.assertEqual(raw[11:], (7).to_bytes(4, "big"))


class FrameDecoderTest(unittest.TestCase):
    def test_byte_by_byte_and_batched(self):
        stream = b"".join(msg.encode() for msg in SAMPLES.values())
        dec = FrameDecoder()
        frames = []
        for i in range(len(stream)):
            frames += dec.feed(stream[i:i + 1])
        self.assertEqual([m.decode_message(f) for f in frames], list(SAMPLES.values()))
        self.assertEqual(len(FrameDecoder().feed(stream)), len(SAMPLES))

    def test_partial_frame_waits(self):
        raw = m.Heartbeat(3).encode()
        dec = FrameDecoder()
        self.assertEqual(dec.feed(raw[:-1]), [])
        self.assertFalse(dec.at_boundary())
        self.assertEqual(m.decode_message(dec.feed(raw[-1:])[0]), m.Heartbeat(3))
        self.assertTrue(dec.at_boundary())

    def test_truncated_stream(self):
        raw = m.Heartbeat(3).encode()
        for cut, fragment in ((5, "inside a frame header (5 of 11"), (13, "inside a frame (13 of 15")):
            dec = FrameDecoder()
            dec.feed(raw[:cut])
            with self.subTest(cut=cut), self.assertRaisesRegex(RemoteProtocolError, re.escape(fragment)):
                dec.eof()
        dec = FrameDecoder()
        dec.feed(raw)
        dec.eof()  # a clean end

    def test_max_frames_keeps_the_rest(self):
        dec = FrameDecoder()
        raw = m.RelayBind(TOKEN).encode() + b"raw relayed bytes"
        self.assertEqual(len(dec.feed(raw, max_frames=1)), 1)
        self.assertEqual(dec.take_rest(), b"raw relayed bytes")

    def assertRejected(self, data, fragment):
        with self.assertRaises(RemoteProtocolError) as ctx:
            FrameDecoder().feed(data)
        self.assertIn(fragment, str(ctx.exception))

    def test_wrong_magic_rejected_after_first_bad_byte(self):
        self.assertRejected(b"X", "bad magic")
        self.assertRejected(b"TGIX", "bad magic")
        self.assertRejected(b"GET / HTTP/1.1\r\n", "bad magic")

    def test_wrong_version(self):
        self.assertRejected(header(version=9), "unsupported protocol version 9")

    def test_oversize_length_rejected_before_buffering(self):
        self.assertRejected(header(length=0xFFFFFFFF), "exceeds")
        self.assertRejected(header(length=framing.MAX_PAYLOAD + 1), "exceeds")

    def test_largest_frame_accepted(self):
        frames = FrameDecoder().feed(header(type_code=200, length=framing.MAX_PAYLOAD) + bytes(framing.MAX_PAYLOAD))
        self.assertEqual(len(frames[0].payload), framing.MAX_PAYLOAD)

    def test_decoder_stays_dead_after_error(self):
        dec = FrameDecoder()
        with self.assertRaises(RemoteProtocolError):
            dec.feed(b"XXXX")
        with self.assertRaises(RemoteProtocolError):
            dec.feed(m.Heartbeat().encode())

    def test_encode_refuses_oversize(self):
        with self.assertRaises(LocalProtocolError):
            encode_frame(1, bytes(framing.MAX_PAYLOAD + 1))

    def test_random_bytes_raise_only_protocol_errors(self):
        rng = random.Random(1234)
        rejected = 0
        for _ in range(2000):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            if rng.random() < 0.5:
                data = b"TGIO\x01" + data
            try:  # anything but a ProtocolError escaping here is a decoder bug and fails the test
                for frame in FrameDecoder().feed(data):
                    m.decode_message(frame)
            except ProtocolError:
                rejected += 1
        self.assertGreater(rejected, 1000)


class MessageDecodeTest(unittest.TestCase):
    def test_unknown_type(self):
        with self.assertRaisesRegex(RemoteProtocolError, "unknown message type 99"):
            m.decode_message(framing.Frame(99, 0, b""))

    def test_truncated_payloads(self):
        for name, msg in SAMPLES.items():
            payload = msg.encode_payload()
            for cut in range(len(payload)):
                with self.subTest(name=name, cut=cut):
                    with self.assertRaises(RemoteProtocolError):
                        m.decode_message(framing.Frame(msg.TYPE, 0, payload[:cut]))

    def test_trailing_bytes(self):
        payload = m.Heartbeat(1).encode_payload() + b"x"
        with self.assertRaisesRegex(RemoteProtocolError, "trailing"):
            m.decode_message(framing.Frame(m.Heartbeat.TYPE, 0, payload))

    def test_bad_utf8_and_family(self):
        with self.assertRaisesRegex(RemoteProtocolError, "UTF-8"):
            m.decode_message(framing.Frame(m.Bye.TYPE, 0, b"\x00\x02\xff\xfe"))
        bad_addr = m.UdpObserved(SID, ("1.2.3.4", 1)).encode_payload()
        bad_addr = bad_addr[:16] + b"\x05" + bad_addr[17:]
        with self.assertRaisesRegex(RemoteProtocolError, "address family"):
            m.decode_message(framing.Frame(m.UdpObserved.TYPE, 0, bad_addr))

    def test_length_field_over_bound(self):
        with self.assertRaisesRegex(RemoteProtocolError, "exceeds"):
            m.decode_message(framing.Frame(m.Bye.TYPE, 0, b"\xff\xff" + bytes(10)))

    def test_too_many_addresses(self):
        payload = bytes([200]) + b"\x00\x00"
        with self.assertRaisesRegex(RemoteProtocolError, "count 200"):
            m.decode_message(framing.Frame(m.Update.TYPE, 0, payload))

    def test_encode_rejects_bad_values(self):
        for bad in (m.RelayBind(b"short"), m.Heartbeat(-1), m.Update([("not-an-ip", 1)]),
                    m.Update([("1.2.3.4", 70000)]), m.Bye("x" * 5000)):
            with self.subTest(bad=bad), self.assertRaises(LocalProtocolError):
                bad.encode()

    def test_datagram(self):
        raw = SAMPLES["udp_discover"].encode()
        self.assertEqual(m.decode_message(decode_datagram(raw)), SAMPLES["udp_discover"])
        with self.assertRaisesRegex(RemoteProtocolError, "header says"):
            decode_datagram(raw + b"x")
        with self.assertRaises(RemoteProtocolError):
            decode_datagram(raw[:5])

    def test_udp_query_not_smaller_than_answer(self):
        query = m.UdpDiscover(b"", os.urandom(16)).encode()
        answer = m.UdpObserved(os.urandom(16), ("ffff::1", 65535), 1).encode()
        self.assertGreaterEqual(len(query), len(answer))

    def test_registered_seconds(self):
        reg = SAMPLES["registered"]
        self.assertEqual(reg.heartbeat_interval, 20.0)
        self.assertAlmostEqual(reg.server_time, 1_764_000_000.123)

    def test_auth_proof_depends_on_secret_and_nonce(self):
        a = m.auth_proof("s3cret", bytes(32), "123456789")
        self.assertEqual(len(a), 32)
        self.assertNotEqual(a, m.auth_proof("s3cret", bytes([1]) * 32, "123456789"))
        self.assertNotEqual(a, m.auth_proof("other", bytes(32), "123456789"))
        self.assertNotIn(b"s3cret", a)


if __name__ == "__main__":
    if "--regenerate" in sys.argv:
        print(json.dumps({name: msg.encode().hex() for name, msg in SAMPLES.items()}, indent=1))
    else:
        unittest.main()
