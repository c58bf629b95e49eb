"""Password stretching, one-time passwords and key expansion."""

import unittest

from tagio.crypto import kdf
from tagio.crypto.spake2 import ORDER
from tagio.errors import LocalProtocolError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class PasswordSecretTest(unittest.TestCase):
    def test_deterministic_and_salted_by_host(self):
        a = kdf.password_secret("correct horse", "123456789")
        self.assertEqual(len(a), kdf.SECRET_LEN)
        self.assertEqual(a, kdf.password_secret("correct horse", "123456789"))
        self.assertNotEqual(a, kdf.password_secret("correct horse", "987654321"))
        self.assertNotEqual(a, kdf.password_secret("correct horsf", "123456789"))
        self.assertNotIn(b"correct horse", a)

    def test_normalization(self):
        self.assertEqual(kdf.password_secret("  pw\n", "123456789"), kdf.password_secret("pw", "123456789"))
        # NFC: e + combining acute == precomposed e-acute
        self.assertEqual(kdf.normalize_password("caf\u0065\u0301"), "caf\u00e9")

    def test_rejects_empty_and_huge(self):
        for bad in ("", "   ", "x" * (kdf.MAX_PASSWORD_CHARS + 1)):
            with self.assertRaises(LocalProtocolError):
                kdf.password_secret(bad, "123456789")
        with self.assertRaises(LocalProtocolError):
            kdf.password_secret(b"bytes", "123456789")

    def test_is_memory_hard_scrypt(self):
        self.assertGreaterEqual(kdf.SCRYPT_N * kdf.SCRYPT_R * 128, 16 * 1024 * 1024)


class OneTimePasswordTest(unittest.TestCase):
    def test_shape_and_alphabet(self):
        seen = set()
        for _ in range(200):
            otp = kdf.new_one_time_password()
            self.assertEqual(len(otp), 8)
            self.assertTrue(set(otp) <= set(kdf.OTP_ALPHABET), otp)
            seen.add(otp)
        self.assertGreater(len(seen), 195)   # fresh each time

    def test_no_look_alikes(self):
        for ch in "0Oo1lIi":
            self.assertNotIn(ch, kdf.OTP_ALPHABET)
        self.assertGreaterEqual(len(set(kdf.OTP_ALPHABET)), 30)


class HkdfTest(unittest.TestCase):
    def test_rfc5869_case_1(self):
        okm = kdf.hkdf_sha256(bytes.fromhex("0b" * 22), 42, salt=bytes.fromhex("000102030405060708090a0b0c"),
                              info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"))
        self.assertEqual(okm.hex(), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                                    "34007208d5b887185865")

    def test_rfc5869_case_3_empty_salt_and_info(self):
        okm = kdf.hkdf_sha256(bytes.fromhex("0b" * 22), 42)
        self.assertEqual(okm.hex(), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                                    "9d201395faa4b61a96c8")


class KeyExpansionTest(unittest.TestCase):
    def test_w_bound_to_context(self):
        secret = bytes(range(32))
        c1 = kdf.handshake_context("111111111", "222222222", b"s" * 16)
        c2 = kdf.handshake_context("111111111", "222222222", b"t" * 16)
        w1, w2 = kdf.spake2_w(secret, c1), kdf.spake2_w(secret, c2)
        self.assertNotEqual(w1, w2)
        self.assertTrue(0 <= w1 < ORDER)
        self.assertEqual(w1, kdf.spake2_w(secret, c1))

    def test_context_is_unambiguous(self):
        self.assertNotEqual(kdf.handshake_context("12", "3", b"x"), kdf.handshake_context("1", "23", b"x"))

    def test_record_keys_differ_per_direction(self):
        keys = kdf.record_keys(b"k" * 16, b"ctx", b"h" * 32)
        self.assertNotEqual(keys["v2h"][0], keys["h2v"][0])
        self.assertNotEqual(keys["v2h"][1], keys["h2v"][1])
        self.assertEqual(len(keys["v2h"][0]), 32)
        self.assertEqual(len(keys["h2v"][1]), 4)
        self.assertNotEqual(keys, kdf.record_keys(b"k" * 16, b"ctx2", b"h" * 32))

    def test_next_key_is_new(self):
        key = b"a" * 32
        self.assertNotEqual(kdf.next_key(key), key)
        self.assertEqual(kdf.next_key(key), kdf.next_key(key))


if __name__ == "__main__":
    unittest.main()
