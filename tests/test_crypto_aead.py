"""The record layer's keyed AEAD (crypto/aead.py): the cached AES-GCM and its raw form (pycryptodome's
C functions called directly) against pycryptodome's own GCM and the GCM spec's known answers, their
tag check before decryption, the self-tests that fall back from RawGcm to CachedGcm to pycryptodome's
GCM objects, and whole records on every path (rekeying included). The other pycryptodome backend
(ctypes without cffi) runs in a subprocess: tests/test_crypto_records_backends.py."""

import itertools
import os
import random
import types
import unittest
from unittest import mock

from Crypto.Cipher import AES, _mode_gcm

from tagio.crypto import aead, records
from tagio.crypto.kdf import next_key
from tagio.crypto.records import REC_CLOSE, REC_DATA, RecordOpener, RecordSealer
from tagio.errors import SecureChannelError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)

SIZES = (0, 1, 15, 16, 17, 4095, 65536, aead.SMALL_BODY - 1, aead.SMALL_BODY, aead.SMALL_BODY + 1,
         records.MAX_RECORD + 1)   # the last is the largest record body: type byte + MAX_RECORD
GHASH_MODULES = {"pycryptodome's choice": None, "portable": _mode_gcm._ghash_portable}
GCM_CLASSES = {"CachedGcm": aead.CachedGcm, "RawGcm": aead.RawGcm}
BOTH_CLASSES_AND_GHASH_MODULES = list(itertools.product(GCM_CLASSES.items(), GHASH_MODULES.items()))


def reference(key, nonce, aad, plain):
    """(ciphertext, tag) from pycryptodome's own GCM."""
    return AES.new(key, AES.MODE_GCM, nonce=nonce).update(aad).encrypt_and_digest(plain)


def same(got, want) -> str:
    """'' if equal, else where they part (assertEqual's diff of a 1 MiB bytes would take minutes)."""
    if got == want:
        return ""
    if isinstance(got, tuple):
        return "; ".join(filter(None, map(same, got, want))) or "different length"
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return f"{len(got)} vs {len(want)} bytes, first difference at {first}"


def seal(gcm, nonce, aad, plain):
    body = bytearray(plain)
    tag = gcm.seal(nonce, aad, memoryview(body))
    return bytes(body), tag


class CachedGcmTest(unittest.TestCase):
    """CachedGcm and RawGcm alike (RawGcm is a CachedGcm whose small records skip the wrappers)."""

    def setUp(self):
        self.assertIsNotNone(aead.CachedGcm, "the pinned pycryptodome failed aead's self-test")
        self.assertIsNotNone(aead.RawGcm, "the pinned pycryptodome failed the raw path's self-test")

    def test_known_answers_of_the_gcm_spec(self):
        """Test cases 13-16 (AES-256, 96-bit IV), checked against pycryptodome too, in one object
        per key so the second message of each key also checks that GHASH restarts."""
        for (class_name, gcm_class), (name, ghash_c) in BOTH_CLASSES_AND_GHASH_MODULES:
            gcms = {}
            for row in aead.KNOWN_ANSWERS:
                key, nonce, aad, plain, cipher, tag = map(bytes.fromhex, row)
                with self.subTest(gcm=class_name, ghash=name, plaintext=len(plain), aad=len(aad)):
                    self.assertEqual(reference(key, nonce, aad, plain), (cipher, tag))
                    gcm = gcms.setdefault(key, gcm_class(key, ghash_c=ghash_c))
                    self.assertEqual(seal(gcm, nonce, aad, plain), (cipher, tag))
                    self.assertEqual(gcm.open(nonce, aad, cipher, tag), plain)

    def test_equal_to_pycryptodome_gcm_for_random_keys_nonces_aad_and_sizes(self):
        rng = random.Random(5)
        for (class_name, gcm_class), (name, ghash_c) in BOTH_CLASSES_AND_GHASH_MODULES:
            for _ in range(3):
                key = rng.randbytes(32)
                gcm = gcm_class(key, ghash_c=ghash_c)      # one object for every message below
                for size in SIZES:
                    nonce, aad, plain = rng.randbytes(12), rng.randbytes(rng.choice((0, 1, 12, 16, 20))), \
                        rng.randbytes(size)
                    with self.subTest(gcm=class_name, ghash=name, size=size, aad=len(aad)):
                        cipher, tag = reference(key, nonce, aad, plain)
                        self.assertEqual(same(seal(gcm, nonce, aad, plain), (cipher, tag)), "")
                        self.assertEqual(same(gcm.open(nonce, aad, cipher, tag), plain), "")
                        self.assertEqual(same(gcm.open(nonce, aad, memoryview(cipher), tag), plain), "")

    def test_truncated_tag(self):
        key, nonce = os.urandom(32), os.urandom(12)
        for class_name, gcm_class in GCM_CLASSES.items():
            gcm = gcm_class(key, tag_len=12)
            cipher, tag = seal(gcm, nonce, b"head", b"payload")
            expected = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=12).update(b"head") \
                .encrypt_and_digest(b"payload")
            self.assertEqual((cipher, tag), expected, class_name)
            self.assertEqual(gcm.open(nonce, b"head", cipher, tag), b"payload", class_name)

    def test_every_bit_flip_fails_to_open(self):
        """Of the AAD, the ciphertext and the tag, on both keystream paths (for the long one, the
        bits near the ends and a sample in between)."""
        key = os.urandom(32)
        for gcm_class, size in itertools.product(GCM_CLASSES.values(), (33, aead.SMALL_BODY + 40)):
            gcm = gcm_class(key)
            nonce, aad, plain = os.urandom(12), os.urandom(12), os.urandom(size)
            cipher, tag = seal(gcm, nonce, aad, plain)
            message = aad + cipher + tag
            last = len(message) * 8
            bits = range(last) if size < 100 else [*range(40 * 8), *range(40 * 8, last, 997), *range(last - 40 * 8, last)]
            for bit in bits:
                bad = bytearray(message)
                bad[bit // 8] ^= 1 << (bit % 8)
                with self.subTest(gcm=gcm_class.__name__, size=size, bit=bit), self.assertRaises(ValueError):
                    gcm.open(nonce, bytes(bad[:12]), bytes(bad[12:-16]), bytes(bad[-16:]))
            self.assertEqual(same(gcm.open(nonce, aad, cipher, tag), plain), "")     # the object still works

    def test_open_decrypts_nothing_before_the_tag_passed(self):
        key, nonce = os.urandom(32), os.urandom(12)
        for size in (20, aead.SMALL_BODY + 1):
            gcm = aead.CachedGcm(key)
            cipher, tag = seal(gcm, nonce, b"aad", bytes(size))
            real_ctr, applied = gcm._ctr, []

            def spying_ctr(nonce, size):
                mask, apply_keystream = real_ctr(nonce, size)
                return mask, lambda data, output: applied.append(size) or apply_keystream(data, output)

            with self.subTest(size=size), mock.patch.object(gcm, "_ctr", spying_ctr):
                with self.assertRaises(ValueError):
                    gcm.open(nonce, b"aad", cipher, bytes(16))
                self.assertEqual(applied, [])
                self.assertEqual(gcm.open(nonce, b"aad", cipher, tag), bytes(size))
                self.assertEqual(applied, [size])

    def test_raw_open_decrypts_nothing_before_the_tag_passed(self):
        """RawGcm's small records: the only strxor that reads the ciphertext into the output
        buffer (the decryption) comes after the tag check."""
        key, nonce = os.urandom(32), os.urandom(12)
        gcm = aead.RawGcm(key)
        cipher, tag = seal(gcm, nonce, b"aad", bytes(20))
        real_strxor, decrypted = gcm.STRXOR, []

        def spying_strxor(one, two, output, size):
            if output is gcm._blocks and one is not aead._COUNTERS:
                decrypted.append(size)
            return real_strxor(one, two, output, size)

        with mock.patch.object(gcm, "STRXOR", spying_strxor):
            with self.assertRaises(ValueError):
                gcm.open(nonce, b"aad", cipher, bytes(16))
            self.assertEqual(decrypted, [])
            self.assertEqual(gcm.open(nonce, b"aad", cipher, tag), bytes(20))
            self.assertEqual(decrypted, [20])

    def test_raw_seal_needs_a_writable_body(self):
        gcm = aead.RawGcm(os.urandom(32))
        for body in (b"frame", memoryview(b"frame")):
            with self.subTest(body=type(body).__name__), self.assertRaises(TypeError):
                gcm.seal(bytes(12), b"", body)

    def test_nonce_must_be_96_bits(self):
        for class_name, gcm_class in GCM_CLASSES.items():
            gcm = gcm_class(os.urandom(32))
            for nonce in (bytes(8), bytes(16)):
                with self.subTest(gcm=class_name, nonce=len(nonce)), self.assertRaises(ValueError):
                    seal(gcm, nonce, b"", b"x")


class SelfTestTest(unittest.TestCase):
    """The cached form is used only if pycryptodome's private pieces are there and give the right
    answers; otherwise cached_gcm() is None and the records use a GCM object each."""

    def test_missing_pieces_mean_no_cached_form(self):
        self.assertIsNone(aead.cached_gcm(None))
        self.assertIsNone(aead.cached_gcm(types.SimpleNamespace(_ghash_clmul=None)))
        portable_only = types.SimpleNamespace(_GHASH=_mode_gcm._GHASH, _ghash_clmul=None,
                                              _ghash_portable=_mode_gcm._ghash_portable)
        self.assertIsNotNone(aead.cached_gcm(portable_only))

    def test_a_ghash_that_behaves_differently_means_no_cached_form(self):
        class RestartsEachUpdate(_mode_gcm._GHASH):     # no running value across calls
            def update(self, block_data):
                self._last_y = _mode_gcm.create_string_buffer(16)
                return super().update(block_data)

        class Raises(_mode_gcm._GHASH):                 # a changed signature
            def update(self, block_data, extra):
                raise AssertionError("unreachable")

        for ghash in (RestartsEachUpdate, Raises, lambda subkey, ghash_c: None):
            changed = types.SimpleNamespace(_GHASH=ghash, _ghash_clmul=_mode_gcm._ghash_clmul,
                                            _ghash_portable=_mode_gcm._ghash_portable)
            with self.subTest(ghash=getattr(ghash, "__name__", "none")):
                self.assertIsNone(aead.cached_gcm(changed))

    def test_known_answers_catch_a_wrong_tag(self):
        for gcm_class in GCM_CLASSES.values():
            class WrongTag(gcm_class):
                def seal(self, nonce, aad, body):
                    return bytes(16)
            self.assertTrue(aead.passes_self_test(gcm_class))
            self.assertFalse(aead.passes_self_test(WrongTag))

    def test_stale_reused_buffers_fail_the_self_test(self):
        """A raw path that kept a longer record's keystream for a shorter one (a buffer-reuse bug)
        is caught by the records of several sizes on one object."""
        class KeepsItsKeystream(aead.RawGcm):
            def _keystream(self, nonce, size):
                if self._room:
                    return
                super()._keystream(nonce, size)
        self.assertFalse(aead.passes_self_test(KeepsItsKeystream))

    def test_raw_form_falls_back_when_its_pieces_are_missing_or_wrong(self):
        """raw_gcm() is None without CachedGcm, off CPython, on a backend it does not know, with
        a C function missing, or with one that computes something else; KeyedGcm then would be
        CachedGcm (test_the_cached_path_is_in_use)."""
        from Crypto.Cipher import _mode_ecb
        from Crypto.Util import _raw_api
        self.assertIs(aead.raw_gcm(aead.CachedGcm).__mro__[2], aead.CachedGcm)
        self.assertIsNone(aead.raw_gcm(None))
        changes = {
            "not CPython": mock.patch.object(aead.sys, "implementation", types.SimpleNamespace(name="pypy")),
            "unknown backend": mock.patch.object(_raw_api, "backend", "another"),
            "no raw ECB": mock.patch.object(_mode_ecb, "raw_ecb_lib", types.SimpleNamespace()),
            "ECB that decrypts": mock.patch.object(_mode_ecb, "raw_ecb_lib", types.SimpleNamespace(
                ECB_encrypt=_mode_ecb.raw_ecb_lib.ECB_decrypt)),
        }
        for name, change in changes.items():
            with self.subTest(change=name), change:
                self.assertIsNone(aead.raw_gcm(aead.CachedGcm))


def sealed_stream(key, prefix, messages, interval=records.REKEY_INTERVAL):
    sealer = RecordSealer(key, prefix, rekey_interval=interval)
    return [bytes(sealer.seal(payload, rec_type)) for rec_type, payload in messages]


def per_record_objects():
    """Records through a pycryptodome GCM object per record, as when the self-test fails."""
    return mock.patch.dict(records.KEYED, clear=True)


def cached_objects():
    """Records through CachedGcm, as when only the raw path's self-test fails."""
    return mock.patch.dict(records.KEYED, {"aes-256-gcm": lambda key: aead.CachedGcm(key, records.TAG_LEN)})


class RecordPathsTest(unittest.TestCase):
    """Whole records: the raw, the cached and the fallback path give the same bytes."""

    def messages(self, count, seed=1):
        rng = random.Random(seed)
        sizes = (0, 1, 8, 15, 16, 17, 1000, 4095, 65536, aead.SMALL_BODY + 3)
        return [(REC_DATA, rng.randbytes(rng.choice(sizes))) for _ in range(count)] + [(REC_CLOSE, b"")]

    def test_the_cached_path_is_in_use(self):
        self.assertIs(aead.KeyedGcm, aead.RawGcm)
        self.assertIsInstance(records.keyed_aead("aes-256-gcm", bytes(32)), aead.RawGcm)
        self.assertIsInstance(records.keyed_aead("aes-256-gcm", bytes(32)), aead.CachedGcm)
        with per_record_objects():
            self.assertIsInstance(records.keyed_aead("aes-256-gcm", bytes(32)), aead.PerRecordAead)
        self.assertIsInstance(records.keyed_aead("chacha20-poly1305", bytes(32)), aead.PerRecordAead)

    def test_fallback_records_are_identical_and_open_across(self):
        key, prefix, messages = os.urandom(32), os.urandom(4), self.messages(200)
        cached = sealed_stream(key, prefix, messages)
        with per_record_objects():
            fallback = sealed_stream(key, prefix, messages)
            opened_by_fallback = RecordOpener(key, prefix).feed(b"".join(cached))
        with cached_objects():
            by_cached_gcm = sealed_stream(key, prefix, messages)
            opened_by_cached_gcm = RecordOpener(key, prefix).feed(b"".join(cached))
        self.assertEqual(same(b"".join(cached), b"".join(fallback)), "")
        self.assertEqual(same(b"".join(cached), b"".join(by_cached_gcm)), "")
        self.assertTrue(opened_by_fallback == messages)
        self.assertTrue(opened_by_cached_gcm == messages)
        self.assertTrue(RecordOpener(key, prefix).feed(b"".join(fallback)) == messages)

    def test_many_records_on_one_key_match_pycryptodome(self):
        key, prefix, messages = os.urandom(32), os.urandom(4), self.messages(1500, seed=2)
        wire = sealed_stream(key, prefix, messages)
        for seq, ((rec_type, payload), record) in enumerate(zip(messages, wire)):
            nonce = prefix + seq.to_bytes(8, "big")
            want = b"".join(reference(key, nonce, record[:12], bytes([rec_type]) + payload))
            self.assertEqual(same(record[12:], want), "", f"record {seq}")
        opener = RecordOpener(key, prefix)
        self.assertTrue([got for record in wire for got in opener.feed(record)] == messages)
        self.assertTrue(opener.closed)

    def test_rekey_boundary(self):
        """With an interval of 3, records 3-5 use next_key(key) and 6- next_key(next_key(key)),
        on both paths, and a record of the old epoch after the boundary is refused."""
        key, prefix, messages = os.urandom(32), os.urandom(4), self.messages(8, seed=3)
        wire = sealed_stream(key, prefix, messages, interval=3)
        with per_record_objects():
            self.assertEqual(same(b"".join(sealed_stream(key, prefix, messages, interval=3)), b"".join(wire)), "")
        keys = [key, next_key(key), next_key(next_key(key))]
        for seq, ((rec_type, payload), record) in enumerate(zip(messages, wire)):
            nonce = prefix + seq.to_bytes(8, "big")
            want = b"".join(reference(keys[seq // 3], nonce, record[:12], bytes([rec_type]) + payload))
            self.assertEqual(same(record[12:], want), "", f"record {seq}")
        opener = RecordOpener(key, prefix, rekey_interval=3)
        self.assertTrue(opener.feed(b"".join(wire)) == messages)
        late = RecordOpener(key, prefix, rekey_interval=3)
        late.feed(b"".join(wire[:4]))
        with self.assertRaises(SecureChannelError) as ctx:
            late.feed(wire[1])      # seq 1 belongs to epoch 0: it cannot even be authenticated now
        self.assertEqual(ctx.exception.cause, "tamper")

    def test_every_bit_flip_of_a_record_fails_to_open(self):
        """Header, body and tag: a flip is tamper, or for a length bit that grows the record, the
        opener waits for bytes that never come and the stream ends as truncated."""
        key, prefix = os.urandom(32), os.urandom(4)
        record = sealed_stream(key, prefix, [(REC_DATA, b"a frame ack")])[0]
        for bit in range(len(record) * 8):
            bad = bytearray(record)
            bad[bit // 8] ^= 1 << (bit % 8)
            opener = RecordOpener(key, prefix)
            with self.subTest(bit=bit), self.assertRaises(SecureChannelError) as ctx:
                self.assertEqual(opener.feed(bytes(bad)), [])
                opener.end_of_stream()
            self.assertIn(ctx.exception.cause, ("tamper", "truncation"))
            if bit >= 32:                       # past the length field
                self.assertEqual(ctx.exception.cause, "tamper")


if __name__ == "__main__":
    unittest.main()
