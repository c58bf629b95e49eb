"""SPAKE2 (RFC 9382) against the RFC's own vectors, plus peer-point validation."""

import json
import unittest
from pathlib import Path

from tagio.crypto import spake2
from tagio.crypto.spake2 import ROLE_A, ROLE_B, Spake2Party
from tagio.errors import LocalProtocolError, RemoteProtocolError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

VECTORS = Path(__file__).resolve().parent / "data" / "rfc9382_spake2_p256_vectors.json"


def load_vectors():
    return json.loads(VECTORS.read_text())


def parties(vector):
    w = int(vector["w"], 16)
    ids = vector["A"].encode(), vector["B"].encode()
    a = Spake2Party(ROLE_A, w, *ids, _test_scalar=int(vector["x"], 16))
    b = Spake2Party(ROLE_B, w, *ids, _test_scalar=int(vector["y"], 16))
    return a, b


class RfcVectorTest(unittest.TestCase):
    def test_file_names_its_source(self):
        data = load_vectors()
        self.assertIn("RFC 9382", data["source"])
        self.assertEqual(data["suite"], "SPAKE2-P256-SHA256-HKDF-HMAC")

    def test_m_and_n_constants(self):
        data = load_vectors()
        for name, point in (("M", spake2.M), ("N", spake2.N)):
            compressed = bytes.fromhex(data[name])
            self.assertEqual(int(point.x), int.from_bytes(compressed[1:], "big"), name)
            self.assertEqual(int(point.y) & 1, compressed[0] & 1, name)

    def test_every_field_of_every_vector(self):
        vectors = load_vectors()["vectors"]
        self.assertEqual(len(vectors), 3)
        for number, vector in enumerate(vectors):
            with self.subTest(vector=number):
                a, b = parties(vector)
                self.assertEqual(a.message.hex(), vector["pA"])
                self.assertEqual(b.message.hex(), vector["pB"])
                for result in (a.finish(b.message), b.finish(a.message)):
                    self.assertEqual(result.transcript.hex(), vector["TT"])
                    self.assertEqual((result.ke + result.ka).hex(), vector["Hash_TT"])
                    self.assertEqual(result.ke.hex(), vector["Ke"])
                    self.assertEqual(result.ka.hex(), vector["Ka"])
                    self.assertEqual(result.kc_a.hex(), vector["KcA"])
                    self.assertEqual(result.kc_b.hex(), vector["KcB"])
                    self.assertEqual(result.conf_a.hex(), vector["A_conf"])
                    self.assertEqual(result.conf_b.hex(), vector["B_conf"])
                # K is inside TT; check it explicitly too.
                self.assertIn(bytes.fromhex(vector["K"]), a.finish(b.message).transcript)

    def test_confirmations_cross_verify(self):
        a, b = parties(load_vectors()["vectors"][0])
        ra, rb = a.finish(b.message), b.finish(a.message)
        self.assertTrue(ra.verify_peer(rb.my_confirmation))
        self.assertTrue(rb.verify_peer(ra.my_confirmation))
        self.assertFalse(ra.verify_peer(ra.my_confirmation))  # A's own MAC is not B's


class ExchangeTest(unittest.TestCase):
    def test_random_scalars_agree(self):
        a = Spake2Party(ROLE_A, 12345, b"viewer", b"host", b"aad")
        b = Spake2Party(ROLE_B, 12345, b"viewer", b"host", b"aad")
        ra, rb = a.finish(b.message), b.finish(a.message)
        self.assertEqual(ra.ke, rb.ke)
        self.assertTrue(ra.verify_peer(rb.conf_b))

    def test_different_w_disagrees(self):
        a = Spake2Party(ROLE_A, 12345, b"viewer", b"host")
        b = Spake2Party(ROLE_B, 12346, b"viewer", b"host")
        ra, rb = a.finish(b.message), b.finish(a.message)
        self.assertNotEqual(ra.ke, rb.ke)
        self.assertFalse(ra.verify_peer(rb.conf_b))
        self.assertFalse(rb.verify_peer(ra.conf_a))

    def test_different_aad_disagrees(self):
        a = Spake2Party(ROLE_A, 7, b"viewer", b"host", b"session-1")
        b = Spake2Party(ROLE_B, 7, b"viewer", b"host", b"session-2")
        self.assertFalse(a.finish(b.message).verify_peer(b.finish(a.message).conf_b))

    def test_w_must_be_reduced(self):
        with self.assertRaises(LocalProtocolError):
            Spake2Party(ROLE_A, spake2.ORDER, b"a", b"b")


class PointValidationTest(unittest.TestCase):
    def setUp(self):
        self.party = Spake2Party(ROLE_A, 99, b"viewer", b"host")
        self.good = Spake2Party(ROLE_B, 99, b"viewer", b"host").message

    def assert_rejected(self, data):
        with self.assertRaises(RemoteProtocolError):
            self.party.finish(data)

    def test_point_at_infinity(self):
        self.assert_rejected(b"\x04" + bytes(64))

    def test_off_curve(self):
        bad = bytearray(self.good)
        bad[-1] ^= 1
        self.assert_rejected(bytes(bad))

    def test_wrong_lengths(self):
        for data in (b"", self.good[:-1], self.good + b"\x00", b"\x04" * 200):
            with self.subTest(length=len(data)):
                self.assert_rejected(data)

    def test_compressed_and_bad_prefix(self):
        x = self.good[1:33]
        self.assert_rejected(b"\x02" + x + bytes(32))
        self.assert_rejected(b"\x05" + self.good[1:])

    def test_coordinates_beyond_field(self):
        self.assert_rejected(b"\x04" + b"\xff" * 64)

    def test_echo_of_own_message(self):
        self.assert_rejected(self.party.message)

    def test_good_point_accepted(self):
        self.assertEqual(len(self.party.finish(self.good).ke), 16)


if __name__ == "__main__":
    unittest.main()
