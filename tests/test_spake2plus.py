"""SPAKE2+ (RFC 9383) against the RFC's P-256 vector, plus registration and peer-point validation."""

import json
import unittest
from pathlib import Path

from tagio.crypto import spake2, spake2plus
from tagio.crypto.spake2plus import Prover, Verifier
from tagio.errors import LocalProtocolError, RemoteProtocolError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

# RFC 9383 Appendix C, copied from the RFC (the file names its source).
VECTORS = Path(__file__).resolve().parent / "data" / "rfc9383_spake2plus_p256_vectors.json"


def load_vectors():
    return json.loads(VECTORS.read_text())


def vector_parties(vector):
    w0, w1 = int(vector["w0"], 16), int(vector["w1"], 16)
    ids = vector["context"].encode(), vector["idProver"].encode(), vector["idVerifier"].encode()
    prover = Prover(w0, w1, *ids, _test_scalar=int(vector["x"], 16))
    verifier = Verifier(w0, bytes.fromhex(vector["L"]), *ids, _test_scalar=int(vector["y"], 16))
    return prover, verifier


def random_parties(secret=b"s" * 32, stored=None, context=b"ctx"):
    w0, w1 = spake2plus.scalars_from_secret(secret)
    w0_bytes, L = stored or spake2plus.registration(secret)
    ids = (context, b"viewer", b"host")
    return Prover(w0, w1, *ids), Verifier(int.from_bytes(w0_bytes, "big"), L, *ids)


class RfcVectorTest(unittest.TestCase):
    def test_file_names_its_source(self):
        data = load_vectors()
        self.assertIn("RFC 9383", data["source"])
        self.assertEqual(data["suite"], "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256")
        self.assertEqual(len(data["vectors"]), 1)

    def test_m_and_n_are_the_spake2_constants(self):
        vector = load_vectors()["vectors"][0]
        for name, point in (("M", spake2.M), ("N", spake2.N)):
            compressed = bytes.fromhex(vector[name])
            self.assertEqual(int(point.x), int.from_bytes(compressed[1:], "big"), name)
            self.assertEqual(2 + (int(point.y) & 1), compressed[0], name)

    def test_L_from_w1(self):
        vector = load_vectors()["vectors"][0]
        self.assertEqual(spake2plus.verifier_L(int(vector["w1"], 16)).hex(), vector["L"])

    def test_every_field(self):
        vector = load_vectors()["vectors"][0]
        prover, verifier = vector_parties(vector)
        self.assertEqual(prover.message.hex(), vector["shareP"])
        self.assertEqual(verifier.message.hex(), vector["shareV"])
        results = {"prover": prover.finish(verifier.message), "verifier": verifier.finish(prover.message)}
        for side, party in (("prover", prover), ("verifier", verifier)):
            result = results[side]
            with self.subTest(side=side):
                self.assertEqual(party.z.hex(), vector["Z"])
                self.assertEqual(party.v.hex(), vector["V"])
                self.assertEqual(result.k_main.hex(), vector["K_main"])
                self.assertEqual(result.k_confirm_p.hex(), vector["K_confirmP"])
                self.assertEqual(result.k_confirm_v.hex(), vector["K_confirmV"])
                self.assertEqual(result.confirm_p.hex(), vector["confirmP"])
                self.assertEqual(result.confirm_v.hex(), vector["confirmV"])
                self.assertEqual(result.k_shared.hex(), vector["K_shared"])

    def test_transcript_layout(self):
        vector = load_vectors()["vectors"][0]
        prover, verifier = vector_parties(vector)
        tt = prover.finish(verifier.message).transcript
        m_uncompressed = spake2.encode_point(spake2.M)
        # len(Context) is the first field, 8-byte little endian; M enters uncompressed.
        self.assertEqual(tt[:8], len(vector["context"]).to_bytes(8, "little"))
        self.assertIn((65).to_bytes(8, "little") + m_uncompressed, tt)
        self.assertTrue(tt.endswith((32).to_bytes(8, "little") + bytes.fromhex(vector["w0"])))

    def test_confirmations_cross_verify(self):
        prover, verifier = vector_parties(load_vectors()["vectors"][0])
        rp, rv = prover.finish(verifier.message), verifier.finish(prover.message)
        self.assertTrue(rp.verify_peer(rv.my_confirmation))
        self.assertTrue(rv.verify_peer(rp.my_confirmation))
        self.assertFalse(rp.verify_peer(rp.my_confirmation))


class RegistrationTest(unittest.TestCase):
    def test_deterministic_reduced_and_distinct(self):
        w0, w1 = spake2plus.scalars_from_secret(b"a" * 32)
        self.assertEqual((w0, w1), spake2plus.scalars_from_secret(b"a" * 32))
        self.assertNotEqual((w0, w1), spake2plus.scalars_from_secret(b"b" * 32))
        self.assertNotEqual(w0, w1)
        for w in (w0, w1):
            self.assertTrue(0 < w < spake2.ORDER)

    def test_stored_values_hold_no_w1(self):
        secret = b"a" * 32
        w0_bytes, L = spake2plus.registration(secret)
        w0, w1 = spake2plus.scalars_from_secret(secret)
        self.assertEqual(int.from_bytes(w0_bytes, "big"), w0)
        self.assertEqual(len(L), 65)
        self.assertNotIn(w1.to_bytes(32, "big"), w0_bytes + L)
        self.assertNotIn(secret, w0_bytes + L)

    def test_seed_reduction(self):
        seed = bytes([0xFF]) * 80
        w0, w1 = spake2plus.scalars_from_seed(seed)
        self.assertEqual(w0, int.from_bytes(seed[:40], "big") % spake2.ORDER)
        with self.assertRaises(LocalProtocolError):
            spake2plus.scalars_from_seed(b"x" * 79)
        with self.assertRaises(LocalProtocolError):
            spake2plus.scalars_from_seed(bytes(80))     # zero scalars

    def test_bad_inputs_are_local_errors(self):
        with self.assertRaises(LocalProtocolError):
            spake2plus.scalars_from_secret(b"short")
        with self.assertRaises(LocalProtocolError):
            Prover(0, 1, b"", b"", b"")
        with self.assertRaises(LocalProtocolError):
            Verifier(1, b"\x04" + bytes(64), b"", b"", b"")    # a damaged stored L


class ExchangeTest(unittest.TestCase):
    def test_right_password_agrees(self):
        prover, verifier = random_parties()
        rp, rv = prover.finish(verifier.message), verifier.finish(prover.message)
        self.assertEqual(rp.k_shared, rv.k_shared)
        self.assertTrue(rp.verify_peer(rv.confirm_v))
        self.assertTrue(rv.verify_peer(rp.confirm_p))

    def test_wrong_password_disagrees(self):
        prover, _ = random_parties(secret=b"w" * 32)
        _, verifier = random_parties(secret=b"r" * 32)
        rp, rv = prover.finish(verifier.message), verifier.finish(prover.message)
        self.assertNotEqual(rp.k_shared, rv.k_shared)
        self.assertFalse(rp.verify_peer(rv.confirm_v))
        self.assertFalse(rv.verify_peer(rp.confirm_p))

    def test_different_context_disagrees(self):
        prover, _ = random_parties(context=b"session 1")
        _, verifier = random_parties(context=b"session 2")
        rv = verifier.finish(prover.message)
        self.assertFalse(prover.finish(verifier.message).verify_peer(rv.confirm_v))

    def test_stolen_verifier_is_not_the_password(self):
        """Whoever holds (w0, L) can play the prover only by guessing w1: using L's bytes or w0
        as w1 (or any other stand-in) does not convince the verifier."""
        secret = b"p" * 32
        w0_bytes, L = spake2plus.registration(secret)
        w0 = int.from_bytes(w0_bytes, "big")
        for fake_w1 in (w0, int.from_bytes(L[1:33], "big") % spake2.ORDER,
                        int.from_bytes(L[33:], "big") % spake2.ORDER):
            thief = Prover(w0, fake_w1, b"ctx", b"viewer", b"host")
            verifier = Verifier(w0, L, b"ctx", b"viewer", b"host")
            rv = verifier.finish(thief.message)
            self.assertFalse(rv.verify_peer(thief.finish(verifier.message).confirm_p))


class PeerPointTest(unittest.TestCase):
    def bad_points(self, good):
        off_curve = bytearray(good)
        off_curve[-1] ^= 1
        return {
            "identity": b"\x04" + bytes(64),
            "off curve": bytes(off_curve),
            "compressed": b"\x02" + good[1:33],
            "short": good[:-1],
            "empty": b"",
        }

    def test_verifier_rejects_bad_shares(self):
        prover, verifier = random_parties()
        for name, bad in self.bad_points(prover.message).items():
            with self.subTest(name), self.assertRaises(RemoteProtocolError):
                verifier.finish(bad)

    def test_prover_rejects_bad_shares(self):
        prover, verifier = random_parties()
        for name, bad in self.bad_points(verifier.message).items():
            with self.subTest(name), self.assertRaises(RemoteProtocolError):
                prover.finish(bad)

    def test_echo_is_rejected(self):
        prover, verifier = random_parties()
        with self.assertRaises(RemoteProtocolError):
            prover.finish(prover.message)
        with self.assertRaises(RemoteProtocolError):
            verifier.finish(verifier.message)

    def test_share_that_cancels_the_blinding_is_rejected(self):
        """shareV = w0*N makes Y - w0*N the identity: Z and V would be too."""
        prover, _ = random_parties()
        w0 = prover.w0
        with self.assertRaises(RemoteProtocolError):
            prover.finish(spake2.encode_point(spake2.N * w0))
        _, verifier = random_parties()
        with self.assertRaises(RemoteProtocolError):
            verifier.finish(spake2.encode_point(spake2.M * verifier.w0))


if __name__ == "__main__":
    unittest.main()
