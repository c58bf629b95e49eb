"""Ed25519 signature check for registrations, about 25% cheaper than pycryptodome's verify.

Theory of operation
-------------------
RFC 8032 verification of (R, s) over message M by key A accepts when

    [8][s]B == [8]R + [8][k]A,   k = SHA-512(R || A || M) mod L,  s < L.

pycryptodome's `eddsa.verify` evaluates the equation as written: three
variable-base scalar multiplications ([8]R alone is a full ladder) plus
building a key object and a signer object per call, ~0.36 ms here. The same
cofactored equation is P = [s]B - [k]A - R; accept iff [8]P is the identity.
That needs one fixed-base multiplication ([s]B, table-driven, ~40 us), one
variable-base one ([k]A, ~185 us, in C with the GIL released), three point
doublings and two point decodings: ~0.25 ms, with the same accept/reject
decisions as the library (the tests cross-check it against pycryptodome,
including tampered, non-canonical and small-order inputs).

Only pycryptodome's group arithmetic is used (the EccPoint of its Ed25519
C module, and that module's public-scalar multiplication called directly);
hashing is hashlib. These are private parts of pycryptodome (pinned in
requirements.txt); if a future version lacks them, `verify` falls back to the
library's own verify (tagio.crypto.identity.verify_signature): slower, never
wrong. A version that changed their meaning would fail tests/test_relay_verify.

`is_small_order(key)` refuses the keys whose point P has [8]P = identity
(the 8 points of the torsion subgroup, in any encoding): with such a key the
signature (R = identity, s = 0) verifies for every message, so anyone could
register the 8 IDs derived from them.

Decoded keys are not cached per ID: a decode costs ~12 us of the ~270, and a
cache would cost memory on every registered client (the relay's budget is
3 KB each).
"""

import hashlib

from tagio.crypto.identity import PUBLIC_KEY_LEN, SIGNATURE_LEN, verify_signature

try:
    from Crypto.PublicKey._point import EccPoint, _curves
    from Crypto.Util._raw_api import c_size_t, c_uint8_ptr
    _decode = EccPoint._decode_eddsa
    _BASE = _curves["ed25519"].G  # B; the C module multiplies it from a precomputed table
    _scalar_public = _curves["ed25519"].rawlib.scalar_public
except (ImportError, AttributeError, KeyError):  # an unknown pycryptodome: use its verify
    _decode = None

ORDER = 2 ** 252 + 27742317777372353535851937790883648493  # L, the prime order of B


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 (RFC 8032, cofactored) signature of `message`."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    if _decode is None:
        return verify_signature(public_key, message, signature)
    r_bytes = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= ORDER:  # malleability: only the canonical s is accepted
        return False
    try:
        a = _decode(public_key, "Ed25519")
        neg_r = -_decode(r_bytes, "Ed25519")
    except ValueError:
        return False
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % ORDER
    # -[k]A as [L-k]A: they differ by [L]A, a small-order point that the final [8] removes.
    point = _times(_BASE.copy(), s)
    point += _times(a, ORDER - k)
    point += neg_r
    return point.double().double().double().is_point_at_infinity()


def is_small_order(public_key: bytes) -> bool:
    """True for an Ed25519 key of small order; a key that does not decode is left to verify()."""
    if len(public_key) != PUBLIC_KEY_LEN:
        return False
    if _decode is None:
        return public_key in _SMALL_ORDER or (public_key[:31] + bytes([public_key[31] & 0x7F])) in _SMALL_ORDER
    try:
        point = _decode(public_key, "Ed25519")
    except ValueError:
        return False
    return point.double().double().double().is_point_at_infinity()


# The torsion points' canonical y encodings (sign bit cleared), for an unknown pycryptodome:
# y = 1, y = -1, y = 0, and the two order-8 y values; plus y = p and y = p + 1 (non-canonical 0 and 1).
_SMALL_ORDER = {bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")}


def _times(point, n: int):
    """point *= n in place. n is public, so the variable-time C routine is right, and it is called
    directly: EccPoint.__mul__ spends ~15 us of Python per call wrapping n in an Integer."""
    scalar = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    if _scalar_public(point._point.get(), c_uint8_ptr(scalar), c_size_t(len(scalar))):
        raise ValueError("Ed25519 scalar multiplication failed")
    return point
