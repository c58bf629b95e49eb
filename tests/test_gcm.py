"""SmallGcm (tagio/crypto/gcm.py): standard AES-256-GCM, byte for byte pycryptodome's, and the
record layer's use of it for short records."""

import os
import random
import unittest
from unittest import mock

from Crypto.Cipher import AES, ChaCha20_Poly1305

from tagio.crypto import records
from tagio.crypto.gcm import MAX_SMALL, SmallGcm
from tagio.crypto.records import RecordOpener, RecordSealer
from tagio.errors import SecureChannelError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

# McGrew and Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, 96-bit IV).
NIST_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
NIST_IV = bytes.fromhex("cafebabefacedbaddecaf888")
NIST_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
NIST_PLAIN = bytes.fromhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                           "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
NIST_SEALED = bytes.fromhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                            "76fc6ece0f4e1768cddf8853bb2d551b")


def pycryptodome_seal(key, nonce, aad, plain):
    aead = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16)
    aead.update(aad)
    cipher, tag = aead.encrypt_and_digest(plain)
    return cipher + tag


class SmallGcmTest(unittest.TestCase):
    def test_nist_vector(self):
        gcm = SmallGcm(NIST_KEY)
        self.assertEqual(gcm.seal(NIST_IV, NIST_AAD, NIST_PLAIN), NIST_SEALED)
        self.assertEqual(gcm.open(NIST_IV, NIST_AAD, NIST_SEALED), NIST_PLAIN)

    def test_same_bytes_as_pycryptodome_for_every_length(self):
        rng = random.Random(14)
        key = rng.randbytes(32)
        gcm = SmallGcm(key)
        for size in range(MAX_SMALL + 1):
            nonce, aad, plain = rng.randbytes(12), rng.randbytes(rng.choice((0, 12, 17, 40))), rng.randbytes(size)
            with self.subTest(size=size, aad=len(aad)):
                sealed = gcm.seal(nonce, aad, plain)
                self.assertEqual(sealed, pycryptodome_seal(key, nonce, aad, plain))
                self.assertEqual(gcm.open(nonce, aad, memoryview(sealed)), plain)

    def test_any_flipped_bit_fails(self):
        gcm, nonce, aad = SmallGcm(os.urandom(32)), os.urandom(12), os.urandom(12)
        sealed = gcm.seal(nonce, aad, b"frame ack")
        for position in range(len(sealed)):
            bad = bytearray(sealed)
            bad[position] ^= 0x80
            with self.subTest(position=position), self.assertRaises(ValueError):
                gcm.open(nonce, aad, bytes(bad))
        for other_nonce, other_aad in ((nonce[:-1] + b"\0", aad), (nonce, aad[:-1] + b"\0")):
            with self.assertRaises(ValueError):
                gcm.open(other_nonce, other_aad, sealed)

    def test_refuses_what_it_is_not_for(self):
        gcm = SmallGcm(os.urandom(32))
        with self.assertRaises(ValueError):
            gcm.seal(os.urandom(12), b"", bytes(MAX_SMALL + 1))
        with self.assertRaises(ValueError):
            gcm.seal(os.urandom(8), b"", b"x")


class RecordsUseItTest(unittest.TestCase):
    """Short AES-GCM records go through SmallGcm; the wire is what pycryptodome alone makes."""

    def seal_all(self, payloads, small, interval=records.REKEY_INTERVAL):
        without = {} if small else {name: None for name in records.SMALL_CIPHERS}
        with mock.patch.dict(records.SMALL_CIPHERS, without):
            sealer = RecordSealer(bytes(range(32)), b"\xa0\xa1\xa2\xa3", rekey_interval=interval)
            return [bytes(sealer.seal(p)) for p in payloads]

    def test_records_are_the_same_either_way_across_the_threshold_and_rekeys(self):
        payloads = [bytes([n % 251]) * n for n in (0, 1, 20, MAX_SMALL - 2, MAX_SMALL - 1, MAX_SMALL, 3000, 5)]
        with mock.patch.object(SmallGcm, "seal", autospec=True, side_effect=SmallGcm.seal) as used:
            fast = self.seal_all(payloads, small=True, interval=3)
        self.assertEqual(used.call_count, 6)        # all but the two payloads over MAX_SMALL - 1
        self.assertEqual(fast, self.seal_all(payloads, small=False, interval=3))
        opener = RecordOpener(bytes(range(32)), b"\xa0\xa1\xa2\xa3", rekey_interval=3)
        self.assertEqual([p for _t, p in opener.feed(b"".join(fast))], payloads)

    def test_records_are_standard_aead_of_type_and_payload(self):
        """Both paths and both ciphers: header || AEAD_K(prefix || seq)(aad=header, type || payload)."""
        key, prefix = bytes(range(32)), b"\xa0\xa1\xa2\xa3"
        aeads = {"aes-256-gcm": lambda nonce: AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16),
                 "chacha20-poly1305": lambda nonce: ChaCha20_Poly1305.new(key=key, nonce=nonce)}
        for cipher, new in aeads.items():
            sealer = RecordSealer(key, prefix, cipher=cipher)
            for seq, size in enumerate((0, 30, MAX_SMALL - 1, MAX_SMALL, 70000)):
                payload = bytes([seq + 1]) * size
                with self.subTest(cipher=cipher, size=size):
                    record = bytes(sealer.seal(payload, records.REC_CLOSE if size == 30 else records.REC_DATA))
                    header, aead = record[:12], new(prefix + seq.to_bytes(8, "big"))
                    aead.update(header)
                    plain = aead.decrypt_and_verify(record[12:-16], record[-16:])
                    self.assertEqual(plain, bytes([int(size == 30)]) + payload)
                    self.assertEqual(header, records.HEADER.pack(len(record) - 12, seq))

    def test_a_forged_short_record_is_tamper(self):
        sealer = RecordSealer(bytes(32), bytes(4))
        record = bytearray(sealer.seal(b"ack"))
        record[-1] ^= 1
        with self.assertRaises(SecureChannelError) as caught:
            RecordOpener(bytes(32), bytes(4)).feed(bytes(record))
        self.assertEqual(caught.exception.cause, "tamper")

    def test_chacha_never_takes_it(self):
        with mock.patch.object(SmallGcm, "seal", autospec=True) as used:
            sealer = RecordSealer(bytes(32), bytes(4), cipher="chacha20-poly1305")
            record = sealer.seal(b"ack")
        used.assert_not_called()
        opener = RecordOpener(bytes(32), bytes(4), cipher="chacha20-poly1305")
        self.assertEqual(opener.feed(bytes(record)), [(records.REC_DATA, b"ack")])


if __name__ == "__main__":
    unittest.main()
