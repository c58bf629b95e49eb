"""Client identity: a persistent Ed25519 key pair and the 9-digit ID derived from it.

The ID is a hash of the public key, so the relay can bind ID -> key on first
use and later demand a signature over a fresh challenge: nobody can take over
an ID without its private key. Regenerating the key (a deliberate user action)
gives a new ID. What an ID looks like, and how it is derived from the key, is
tagio.protocol.ids (re-exported here).
"""

import base64
import hashlib
import os
from pathlib import Path

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from tagio.errors import ConfigError
from tagio.platform import atomic_write
from tagio.protocol.ids import (  # noqa: F401  (the ID rules live in protocol/ids.py)
    ID_DIGITS, PUBLIC_KEY_LEN, format_id, id_from_public_key, normalize_id,
)

KEY_FILE = "identity.pem"
SIGNATURE_LEN = 64


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        key = eddsa.import_public_key(public_key)
        eddsa.new(key, "rfc8032").verify(message, signature)
        return True
    except ValueError:
        return False


def is_small_order(public_key: bytes) -> bool:
    """True for an Ed25519 key of small order ([8]A is the identity): with such a key the signature
    (R = identity, s = 0) verifies for every message, so it proves nothing. A key that does not
    decode is left to verify_signature (it fails there). relay/verify.py has a faster check of its
    own for registrations."""
    if len(public_key) != PUBLIC_KEY_LEN:
        return False
    try:
        point = eddsa.import_public_key(bytes(public_key)).pointQ.copy()
    except ValueError:
        return False
    return point.double().double().double().is_point_at_infinity()


def fingerprint(public_key: bytes) -> str:
    """How a key is shown to people and in logs, as OpenSSH does: "SHA256:" + unpadded base64."""
    digest = hashlib.sha256(bytes(public_key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _tighten_permissions(path: Path) -> None:
    """A key file others can read (copied, restored from a backup) is made owner-only again."""
    if os.name != "posix":
        return      # Windows: %APPDATA% is per-user; there are no mode bits to fix
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


class Identity:
    """An Ed25519 key pair with its TagIO ID."""

    def __init__(self, private_key: ECC.EccKey):
        self._key = private_key
        self.public_key = private_key.public_key().export_key(format="raw")
        self.id = id_from_public_key(self.public_key)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(ECC.generate(curve="ed25519"))

    @classmethod
    def load_or_create(cls, config_dir) -> "Identity":
        """Load the key from config_dir, creating it (owner-only file) on first run."""
        path = Path(config_dir) / KEY_FILE
        if path.exists():
            try:
                identity = cls(ECC.import_key(path.read_text()))
            except (ValueError, OSError) as exc:
                raise ConfigError(f"cannot read identity key {path}: {exc}") from exc
            _tighten_permissions(path)
            return identity
        identity = cls.generate()
        identity.save(path)
        return identity

    @classmethod
    def regenerate(cls, config_dir) -> "Identity":
        """Replace the key in config_dir with a new one (a new ID). A deliberate user action.

        The new key is written to a temporary file and renamed over the old
        one, so a crash leaves either the old or the new key, never neither.
        """
        path = Path(config_dir) / KEY_FILE
        identity = cls.generate()
        try:
            identity.save(path)
        except OSError as exc:
            raise ConfigError(f"cannot replace identity key {path}: {exc}") from exc
        return identity

    def save(self, path) -> None:
        atomic_write(path, self._key.export_key(format="PEM").encode("ascii"), 0o600)

    def sign(self, message: bytes) -> bytes:
        return eddsa.new(self._key, "rfc8032").sign(message)
