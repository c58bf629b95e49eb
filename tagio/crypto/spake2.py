"""SPAKE2 (RFC 9382), suite P256-SHA256-HKDF-HMAC, on pycryptodome's P-256.

Theory of operation. Both sides share a scalar `w` derived from the password.
A (the viewer) sends pA = x*G + w*M, B (the host) sends pB = y*G + w*N, where
M and N are fixed points nobody knows the discrete log of. Each side removes
the password blinding from the other's point and multiplies by its own
secret scalar, so both reach K = x*y*G only when they used the same w. The
transcript TT (identities, both messages, K and w, each with an 8-byte
little-endian length) is hashed; its halves are Ke (the shared secret) and Ka
(which keys the two confirmation MACs). An active attacker who guesses the
password wrong learns only "wrong" - one online guess per run - and a passive
one learns nothing usable offline.

This module is pure computation (no I/O). `Spake2Party` is one side of one
run; its ephemeral scalar is injectable (`_test_scalar`) only so the RFC's
test vectors can be checked.
Points from the peer are validated: wrong length, not uncompressed SEC1,
off the curve, or the point at infinity are all rejected with
RemoteProtocolError.
"""

import hashlib
import hmac
import secrets

from Crypto.PublicKey import ECC

from tagio.errors import LocalProtocolError, RemoteProtocolError

CURVE = "P-256"
POINT_LEN = 65              # uncompressed SEC1: 0x04 || X || Y
SCALAR_LEN = 32
CONF_LEN = 32               # HMAC-SHA256
ORDER = int(ECC._curves[CURVE].order)  # the group order ("p" in RFC 9382)
_G = ECC._curves[CURVE].G

# RFC 9382 section 6, P-256 constants (compressed SEC1).
_M_HEX = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
_N_HEX = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"
M = ECC.import_key(bytes.fromhex(_M_HEX), curve_name=CURVE).pointQ
N = ECC.import_key(bytes.fromhex(_N_HEX), curve_name=CURVE).pointQ

ROLE_A = "A"
ROLE_B = "B"


def encode_point(point) -> bytes:
    """Uncompressed SEC1 encoding of a finite point."""
    if point.is_point_at_infinity():
        raise LocalProtocolError("cannot encode the point at infinity")
    return b"\x04" + int(point.x).to_bytes(32, "big") + int(point.y).to_bytes(32, "big")


def decode_point(data: bytes):
    """Decode and validate a peer's point; raise RemoteProtocolError if unusable."""
    if len(data) != POINT_LEN or data[0] != 4:
        raise RemoteProtocolError(f"SPAKE2 point must be {POINT_LEN} bytes of uncompressed SEC1")
    try:
        point = ECC.import_key(bytes(data), curve_name=CURVE).pointQ
    except (ValueError, TypeError, IndexError) as exc:
        raise RemoteProtocolError("SPAKE2 point is not on the P-256 curve") from exc
    # pycryptodome decodes 04||0...0 to the identity without complaint.
    if point.is_point_at_infinity():
        raise RemoteProtocolError("SPAKE2 point is the point at infinity")
    return point


def _len_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def transcript(id_a: bytes, id_b: bytes, p_a: bytes, p_b: bytes, k: bytes, w: int) -> bytes:
    """TT as RFC 9382 section 4 defines it."""
    w_bytes = w.to_bytes(SCALAR_LEN, "big")
    return b"".join(_len_prefixed(part) for part in (id_a, id_b, p_a, p_b, k, w_bytes))


def confirmation_keys(ka: bytes, aad: bytes = b"") -> tuple:
    """KcA, KcB = HKDF(salt=nil, ikm=Ka, info='ConfirmationKeys' || AAD, L=32)."""
    okm = hkdf_sha256(ka, 32, info=b"ConfirmationKeys" + aad)
    return okm[:16], okm[16:]


def hkdf_sha256(ikm: bytes, length: int, salt: bytes = b"", info: bytes = b"") -> bytes:
    """RFC 5869 HKDF-SHA256; an empty salt means HashLen zero bytes ("nil" in RFC 9382).

    Built on the standard library's C HMAC: pycryptodome's HKDF is ~10x slower
    per call and a handshake makes a dozen calls.
    """
    if not 0 < length <= 255 * 32:
        raise LocalProtocolError("bad HKDF output length")
    prk = hmac.digest(salt or bytes(32), ikm, "sha256")
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        okm += block
        counter += 1
    return okm[:length]


def random_scalar() -> int:
    return secrets.randbelow(ORDER - 1) + 1


class Spake2Result:
    """Everything a finished run yields. Keys are bytes; compare MACs with verify_peer."""

    def __init__(self, role, tt, ke, ka, kc_a, kc_b):
        self.role = role
        self.transcript = tt
        self.ke = ke
        self.ka = ka
        self.kc_a = kc_a
        self.kc_b = kc_b
        self.conf_a = hmac.new(kc_a, tt, hashlib.sha256).digest()
        self.conf_b = hmac.new(kc_b, tt, hashlib.sha256).digest()

    @property
    def my_confirmation(self) -> bytes:
        return self.conf_a if self.role == ROLE_A else self.conf_b

    def verify_peer(self, confirmation: bytes) -> bool:
        expected = self.conf_b if self.role == ROLE_A else self.conf_a
        return hmac.compare_digest(expected, bytes(confirmation))


class Spake2Party:
    """One side (ROLE_A or ROLE_B) of one SPAKE2 run. Use once."""

    def __init__(self, role: str, w: int, id_a: bytes, id_b: bytes, aad: bytes = b"",
                 *, _test_scalar: int | None = None):
        if role not in (ROLE_A, ROLE_B):
            raise LocalProtocolError(f"unknown SPAKE2 role {role!r}")
        if not 0 <= w < ORDER:
            raise LocalProtocolError("SPAKE2 w must be reduced modulo the group order")
        self.role, self.w, self.id_a, self.id_b, self.aad = role, w, id_a, id_b, aad
        # A fixed scalar exists only so tests can replay the RFC vectors; real runs never pass one.
        self._scalar = _test_scalar if _test_scalar is not None else random_scalar()
        mine, self._theirs = (M, N) if role == ROLE_A else (N, M)
        self.message = encode_point(_G * self._scalar + mine * w)
        self._unblind = -(self._theirs * w)   # computed once: the viewer may finish() per slot

    def finish(self, peer_message: bytes) -> Spake2Result:
        """Combine with the peer's point; raise RemoteProtocolError if it is invalid."""
        peer = decode_point(peer_message)
        if bytes(peer_message) == self.message:
            raise RemoteProtocolError("SPAKE2 peer echoed our own message")
        shared = (peer + self._unblind) * self._scalar
        if shared.is_point_at_infinity():
            raise RemoteProtocolError("SPAKE2 shared point is the point at infinity")
        k = encode_point(shared)
        p_a, p_b = (self.message, bytes(peer_message)) if self.role == ROLE_A \
            else (bytes(peer_message), self.message)
        tt = transcript(self.id_a, self.id_b, p_a, p_b, k, self.w)
        digest = hashlib.sha256(tt).digest()
        ke, ka = digest[:16], digest[16:]
        kc_a, kc_b = confirmation_keys(ka, self.aad)
        return Spake2Result(self.role, tt, ke, ka, kc_a, kc_b)
