"""Password and key derivation for the secure channel.

Theory of operation. A password never leaves the machine it is typed on and
is never stored. `password_secret` stretches it with scrypt (memory-hard, so
each offline guess costs ~32 MiB and tens of milliseconds), salted with the
host's ID: that 32-byte secret is what the host keeps for a permanent
password and what both sides feed to the PAKE. `spake2_w` then binds the
secret to this run's identities (viewer ID, host ID, session id) and reduces
it to the SPAKE2 scalar w, with 16 extra bytes so the reduction is unbiased.
`record_keys` expands the PAKE's Ke into one key and one nonce prefix per
direction, so the two directions never share a (key, nonce) pair.

One-time passwords are 8 characters from an alphabet without look-alikes
(no 0/O/o, 1/l/I/i), about 39.6 bits: plenty against online guessing, which
the PAKE limits to one guess per attempt and the host rate-limits.
"""

import hashlib
import secrets
import unicodedata

from Crypto.Protocol.KDF import scrypt

from tagio.crypto.spake2 import ORDER, hkdf_sha256
from tagio.errors import LocalProtocolError

SECRET_LEN = 32
# scrypt cost: N=2**15, r=8 -> 32 MiB and ~90 ms per guess on a small server core.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_PASSWORD_CHARS = 256

OTP_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"   # no 0 o 1 l i
OTP_LENGTH = 8

KEY_LEN = 32
NONCE_PREFIX_LEN = 4

_SALT_DOMAIN = b"TagIO password v1|"
_W_DOMAIN = b"TagIO SPAKE2 w v1|"
_RECORD_DOMAIN = b"TagIO record keys v1|"
_REKEY_DOMAIN = b"TagIO rekey v1"


def _encode_parts(*parts: bytes) -> bytes:
    """Length-prefix each part so no two different tuples encode the same."""
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def normalize_password(password: str) -> str:
    """NFC-normalise and strip surrounding whitespace (copy-paste often adds some)."""
    if not isinstance(password, str):
        raise LocalProtocolError("password must be a str")
    text = unicodedata.normalize("NFC", password).strip()
    if not text:
        raise LocalProtocolError("password is empty")
    if len(text) > MAX_PASSWORD_CHARS:
        raise LocalProtocolError(f"password longer than {MAX_PASSWORD_CHARS} characters")
    return text


def password_secret(password: str, host_id: str) -> bytes:
    """scrypt(password, salt = domain || host ID) -> 32 bytes.

    This is what a permanent password is stored as, and what the host holds
    for its current one-time password. Raises LocalProtocolError for an empty
    or absurdly long password.
    """
    text = normalize_password(password)
    salt = _SALT_DOMAIN + str(host_id).encode()
    return scrypt(text.encode("utf-8"), salt, SECRET_LEN, N=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)


def new_one_time_password() -> str:
    """A fresh 8-character one-time password without look-alike characters."""
    return "".join(secrets.choice(OTP_ALPHABET) for _ in range(OTP_LENGTH))


def handshake_context(viewer_id: str, host_id: str, session_id: bytes) -> bytes:
    """The bytes that tie a run to its two IDs and its session."""
    return _encode_parts(str(viewer_id).encode(), str(host_id).encode(), bytes(session_id))


def spake2_w(secret: bytes, context: bytes) -> int:
    """SPAKE2 scalar w from a password secret, bound to the run's context."""
    wide = hkdf_sha256(bytes(secret), 48, info=_W_DOMAIN + context)
    return int.from_bytes(wide, "big") % ORDER


def record_keys(ke: bytes, context: bytes, transcript_hash: bytes) -> dict:
    """Expand Ke into per-direction keys and nonce prefixes.

    Returns {"v2h": (key, prefix), "h2v": (key, prefix)} (viewer-to-host and
    host-to-viewer).
    """
    block = KEY_LEN + NONCE_PREFIX_LEN
    okm = hkdf_sha256(ke, 2 * block, salt=transcript_hash, info=_RECORD_DOMAIN + context)
    v2h, h2v = okm[:block], okm[block:]
    return {"v2h": (v2h[:KEY_LEN], v2h[KEY_LEN:]), "h2v": (h2v[:KEY_LEN], h2v[KEY_LEN:])}


def next_key(key: bytes) -> bytes:
    """The key that replaces `key` after a rekey interval (one-way)."""
    return hkdf_sha256(key, KEY_LEN, info=_REKEY_DOMAIN)


def transcript_hash(tt: bytes) -> bytes:
    return hashlib.sha256(tt).digest()
