"""Client identity: key file, ID derivation and display, signatures, regeneration."""

import os
import stat
import sys
import tempfile
import unittest
from pathlib import Path

from tagio.crypto.identity import (
    KEY_FILE, Identity, format_id, id_from_public_key, normalize_id, verify_signature,
)
from tagio.errors import ConfigError, IdentityError

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class IdentityFileTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.config = Path(self._tmp.name) / "tagio"

    def test_created_once_then_reloaded(self):
        first = Identity.load_or_create(self.config)
        self.assertTrue((self.config / KEY_FILE).exists())
        second = Identity.load_or_create(self.config)
        self.assertEqual(first.id, second.id)
        self.assertEqual(first.public_key, second.public_key)

    @unittest.skipIf(sys.platform == "win32", "POSIX permissions")
    def test_key_file_readable_by_owner_only(self):
        Identity.load_or_create(self.config)
        mode = stat.S_IMODE(os.stat(self.config / KEY_FILE).st_mode)
        self.assertEqual(mode, 0o600)

    @unittest.skipIf(sys.platform == "win32", "POSIX permissions")
    def test_loose_permissions_are_tightened_on_load(self):
        Identity.load_or_create(self.config)
        os.chmod(self.config / KEY_FILE, 0o644)
        Identity.load_or_create(self.config)
        self.assertEqual(stat.S_IMODE(os.stat(self.config / KEY_FILE).st_mode), 0o600)

    def test_file_holds_a_private_key_not_the_id(self):
        identity = Identity.load_or_create(self.config)
        text = (self.config / KEY_FILE).read_text()
        self.assertIn("PRIVATE KEY", text)
        self.assertNotIn(identity.id, text)

    def test_corrupt_key_file_is_a_config_error(self):
        self.config.mkdir(parents=True)
        (self.config / KEY_FILE).write_text("not a key")
        with self.assertRaisesRegex(ConfigError, "identity key"):
            Identity.load_or_create(self.config)

    def test_regenerate_gives_a_new_id_and_persists_it(self):
        old = Identity.load_or_create(self.config)
        new = Identity.regenerate(self.config)
        self.assertNotEqual(old.id, new.id)
        self.assertEqual(Identity.load_or_create(self.config).id, new.id)
        self.assertEqual(sorted(p.name for p in self.config.iterdir()), [KEY_FILE])
        if sys.platform != "win32":
            self.assertEqual(stat.S_IMODE(os.stat(self.config / KEY_FILE).st_mode), 0o600)


class IdTest(unittest.TestCase):
    def test_id_is_nine_digits_derived_from_key(self):
        identity = Identity.generate()
        self.assertRegex(identity.id, r"^[1-9][0-9]{8}$")
        self.assertEqual(identity.id, id_from_public_key(identity.public_key))
        self.assertNotEqual(identity.id, Identity.generate().id)

    def test_wrong_key_length(self):
        with self.assertRaises(IdentityError):
            id_from_public_key(b"x" * 31)

    def test_format_and_normalize(self):
        self.assertEqual(format_id("123456789"), "123 456 789")
        for text in ("123 456 789", "123-456-789", " 123456789 "):
            self.assertEqual(normalize_id(text), "123456789")
        for bad in ("12345678", "1234567890", "012345678", "12345678a", ""):
            with self.subTest(bad=bad), self.assertRaises(ConfigError):
                normalize_id(bad)


class SignatureTest(unittest.TestCase):
    def test_sign_and_verify(self):
        identity = Identity.generate()
        challenge = os.urandom(32)
        signature = identity.sign(challenge)
        self.assertEqual(len(signature), 64)
        self.assertTrue(verify_signature(identity.public_key, challenge, signature))

    def test_rejects_wrong_message_key_or_signature(self):
        identity, other = Identity.generate(), Identity.generate()
        signature = identity.sign(b"challenge")
        self.assertFalse(verify_signature(identity.public_key, b"challengf", signature))
        self.assertFalse(verify_signature(other.public_key, b"challenge", signature))
        bad = bytearray(signature)
        bad[10] ^= 1
        self.assertFalse(verify_signature(identity.public_key, b"challenge", bytes(bad)))
        self.assertFalse(verify_signature(identity.public_key, b"challenge", signature[:63]))
        self.assertFalse(verify_signature(b"\x00" * 31, b"challenge", signature))


if __name__ == "__main__":
    unittest.main()
