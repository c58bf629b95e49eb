"""tagio.relay.verify: the relay's Ed25519 check decides exactly as pycryptodome's verify does."""

import os
import unittest

from Crypto.PublicKey._point import EccPoint

from tagio.crypto.identity import Identity, verify_signature
from tagio.relay import verify as fast

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

P = 2 ** 255 - 19
# Points of small order (torsion), as RFC 8032 encodings: order 1, 2, 4 (both signs), 8 (two of them).
SMALL_ORDER = [bytes([1]) + bytes(31), (P - 1).to_bytes(32, "little"), bytes(32), bytes(31) + b"\x80",
               bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
               bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")]


def encode(point) -> bytes:
    x, y = (int(c) for c in point.xy)
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode(data: bytes):
    return EccPoint._decode_eddsa(data, "Ed25519")


class SameDecisionTest(unittest.TestCase):
    def assertSame(self, key, msg, sig, expect=None):
        want = verify_signature(key, msg, sig)
        self.assertEqual(fast.verify(key, msg, sig), want, f"key={key.hex()} sig={sig.hex()}")
        if expect is not None:
            self.assertEqual(want, expect)

    def test_valid_signatures_accepted(self):
        for _ in range(20):
            ident = Identity.generate()
            msg = os.urandom(int.from_bytes(os.urandom(1), "big"))
            self.assertSame(ident.public_key, msg, ident.sign(msg), expect=True)

    def test_tampering_rejected(self):
        ident, other = Identity.generate(), Identity.generate()
        msg = b"TagIO-register-v1" + os.urandom(32)
        sig = ident.sign(msg)
        flip = (lambda b, i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:])
        self.assertSame(ident.public_key, msg + b"x", sig, expect=False)
        self.assertSame(ident.public_key, flip(msg, 3), sig, expect=False)
        self.assertSame(other.public_key, msg, sig, expect=False)
        for i in (0, 17, 31, 32, 50, 63):
            self.assertSame(ident.public_key, msg, flip(sig, i), expect=False)
        self.assertSame(ident.public_key, msg, sig[:63], expect=False)
        self.assertSame(ident.public_key[:31], msg, sig, expect=False)

    def test_non_canonical_s_rejected(self):
        ident = Identity.generate()
        msg = b"hello"
        sig = ident.sign(msg)
        s = int.from_bytes(sig[32:], "little") + fast.ORDER  # same point equation, malleated encoding
        self.assertSame(ident.public_key, msg, sig[:32] + s.to_bytes(32, "little"), expect=False)

    def test_undecodable_points_rejected(self):
        ident = Identity.generate()
        sig = ident.sign(b"m")
        not_on_curve = (2).to_bytes(32, "little")  # y = 2 has no x on Ed25519
        self.assertIsNone(_decodes(not_on_curve))
        self.assertSame(not_on_curve, b"m", sig, expect=False)
        self.assertSame(ident.public_key, b"m", not_on_curve + sig[32:], expect=False)
        self.assertSame(ident.public_key, b"m", b"\xff" * 32 + sig[32:], expect=False)

    def test_small_order_components_decide_like_the_library(self):
        ident = Identity.generate()
        msg = b"torsion"
        sig = ident.sign(msg)
        r = decode(sig[:32])
        for torsion in SMALL_ORDER:
            t = decode(torsion)
            mixed_r = encode(r + t)  # cofactored verification accepts R + T
            self.assertSame(ident.public_key, msg, mixed_r + sig[32:])
            self.assertSame(torsion, msg, sig)  # a small-order key with someone else's signature
            # A small-order key "signs" anything with R = [s]B (cofactored check): both accept it.
            s = int.from_bytes(os.urandom(32), "little") % fast.ORDER
            forged_r = encode(fast._BASE * s)
            self.assertSame(torsion, msg, forged_r + s.to_bytes(32, "little"), expect=True)

    def test_non_canonical_point_encodings_decide_like_the_library(self):
        ident = Identity.generate()
        sig = ident.sign(b"m")
        # y >= p (19 values, both signs of x) and x = 0 with the sign bit set: for A and for R.
        encodings = [(y | (sign << 255)).to_bytes(32, "little") for y in range(P, 2 ** 255) for sign in (0, 1)]
        encodings += [(y | (1 << 255)).to_bytes(32, "little") for y in (1, P - 1)]
        for enc in encodings:
            self.assertSame(enc, b"m", sig, expect=False)
            self.assertSame(ident.public_key, b"m", enc + sig[32:], expect=False)

    def test_random_garbage_never_accepted(self):
        for _ in range(50):
            self.assertSame(os.urandom(32), os.urandom(40), os.urandom(64), expect=False)

    def test_falls_back_to_the_library_without_the_point_decoder(self):
        ident = Identity.generate()
        sig = ident.sign(b"m")
        saved = fast._decode
        fast._decode = None
        try:
            self.assertTrue(fast.verify(ident.public_key, b"m", sig))
            self.assertFalse(fast.verify(ident.public_key, b"n", sig))
        finally:
            fast._decode = saved


class SmallOrderTest(unittest.TestCase):
    """is_small_order: exactly the keys P with [8]P = identity, with or without the point decoder."""

    def torsion_encodings(self):
        found = set()
        for value in fast._SMALL_ORDER:
            for sign in (0, 0x80):
                data = value[:31] + bytes([value[31] | sign])
                point = _decodes(data)
                if point is not None and point.double().double().double().is_point_at_infinity():
                    found.add(data)
        return found

    def test_torsion_points_are_small_and_real_keys_are_not(self):
        torsion = self.torsion_encodings()
        self.assertGreaterEqual(len(torsion), 8)  # all 8 points of the torsion subgroup, some in two encodings
        for data in torsion:
            self.assertTrue(fast.is_small_order(data), data.hex())
        for _ in range(20):
            self.assertFalse(fast.is_small_order(Identity.generate().public_key))

    def test_the_fallback_list_agrees(self):
        saved = fast._decode
        fast._decode = None
        try:
            for data in self.torsion_encodings():
                self.assertTrue(fast.is_small_order(data), data.hex())
            self.assertFalse(fast.is_small_order(Identity.generate().public_key))
        finally:
            fast._decode = saved


def _decodes(data):
    try:
        return decode(data)
    except ValueError:
        return None


if __name__ == "__main__":
    unittest.main()
