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

A permanent (unattended-access) password is run with SPAKE2+ (spake2plus.py):
the host keeps only its verifier, `permanent_verifier` = w0 || L (97 bytes),
made from the same scrypt secret, so a stolen settings file is not a password.
The viewer tells the two kinds apart by their shape: a one-time password is
exactly OTP_LENGTH characters of OTP_ALPHABET, and a permanent password may not
look like one (`is_one_time_shaped`), so a viewer checks its one password
against one kind only - one guess per connect, whoever answers.

One-time passwords are 8 characters from an alphabet without look-alikes
(no 0/O/o, 1/l/I/i), about 39.6 bits: plenty against online guessing, which
the PAKE limits to one guess per attempt and the host rate-limits.
"""

import hashlib
import secrets
import unicodedata

from Crypto.Protocol.KDF import scrypt

from tagio.crypto import spake2plus
from tagio.crypto.spake2 import ORDER, SCALAR_LEN, decode_point, hkdf_sha256
from tagio.errors import ConfigError, LocalProtocolError, RemoteProtocolError

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


def is_one_time_shaped(password: str) -> bool:
    """True when `password` (as typed) has the shape of a one-time password."""
    try:
        text = normalize_password(password)
    except LocalProtocolError:
        return False
    return len(text) == OTP_LENGTH and all(c in OTP_ALPHABET for c in text)


VERIFIER_LEN = SCALAR_LEN + 65     # w0 || L


def verifier_from_secret(secret: bytes) -> bytes:
    """The SPAKE2+ verifier (w0 || L) a host stores for a permanent password's secret."""
    w0, L = spake2plus.registration(secret)
    return w0 + L


def permanent_verifier(password: str, host_id: str) -> bytes:
    """Register a permanent password: scrypt once, keep only the verifier. Raises ConfigError when
    the password looks like a one-time password (a viewer would then try the wrong kind)."""
    if is_one_time_shaped(password):
        raise ConfigError(f"a permanent password must not look like a one-time password "
                          f"({OTP_LENGTH} lowercase letters and digits)")
    return verifier_from_secret(password_secret(password, host_id))


def split_verifier(verifier: bytes) -> tuple:
    """(w0, L) from a stored verifier; LocalProtocolError if it is damaged (it is our own data)."""
    if not isinstance(verifier, (bytes, bytearray)) or len(verifier) != VERIFIER_LEN:
        raise LocalProtocolError(f"a SPAKE2+ verifier is {VERIFIER_LEN} bytes")
    w0 = int.from_bytes(verifier[:SCALAR_LEN], "big")
    try:
        decode_point(bytes(verifier[SCALAR_LEN:]))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"the stored verifier is damaged: {exc}") from None
    if not 0 < w0 < ORDER:
        raise LocalProtocolError("the stored verifier is damaged: w0 out of range")
    return w0, bytes(verifier[SCALAR_LEN:])


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
