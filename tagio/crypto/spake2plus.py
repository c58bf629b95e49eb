"""SPAKE2+ (RFC 9383), suite P256-SHA256-HKDF-SHA256-HMAC-SHA256: the augmented PAKE for
unattended access.

Theory of operation. SPAKE2 (spake2.py) needs the same secret on both sides, so a host that keeps
a permanent password keeps something that works as the password. SPAKE2+ splits it: registration
turns the password into two scalars (w0, w1); the prover (the viewer, who types the password)
keeps both, the verifier (the host) keeps only w0 and L = w1*P. Stealing (w0, L) lets nobody in:
the prover's V = w1*(Y - w0*N) needs w1, and getting w1 from L is a discrete logarithm.

    prover (w0, w1)                              verifier (w0, L)
    shareP = X = x*P + w0*M          ->
                                     <-          shareV = Y = y*P + w0*N, confirmV
    Z = x*(Y - w0*N), V = w1*(Y - w0*N)          Z = y*(X - w0*M), V = y*L
    confirmP                         ->

TT is Context, idProver, idVerifier, M, N, shareP, shareV, Z, V, w0, each with an 8-byte
little-endian length; K_main = SHA256(TT); HKDF(K_main, "ConfirmationKeys") gives K_confirmP ||
K_confirmV; confirmP = HMAC(K_confirmP, shareV), confirmV = HMAC(K_confirmV, shareP);
K_shared = HKDF(K_main, "SharedKey"). P-256's cofactor is 1, so h drops out. A wrong guess
costs one online run, as in SPAKE2: X commits the prover to one w0.

Registration: w0s || w1s (40 bytes each, 64 bits more than the order, so the reduction is
unbiased) come from the scrypt password secret (kdf.password_secret, salted with the host's ID),
expanded with HKDF under a TagIO label; the slow scrypt runs once per password, not per run.

Pure computation, no I/O, as spake2.py (whose point checks and HKDF this reuses). Points from the
peer are validated (uncompressed SEC1, on the curve, not the identity) and raise
RemoteProtocolError; `_test_scalar` exists only to replay the RFC's vector.
"""

import hashlib
import hmac

from tagio.crypto.spake2 import (
    CONF_LEN, M, N, ORDER, SCALAR_LEN, _G, decode_point, encode_point, hkdf_sha256, random_scalar,
)
from tagio.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["CONF_LEN", "Prover", "Verifier", "registration", "scalars_from_secret", "verifier_L"]

SEED_LEN = 40                 # bytes of each of w0s, w1s: ceil(256 / 8) + 8 (RFC 9383 section 3.2)
_REGISTRATION_LABEL = b"TagIO SPAKE2+ registration v1"
_M_BYTES = encode_point(M)    # M and N enter TT uncompressed, as every other point
_N_BYTES = encode_point(N)


# ---- registration ---------------------------------------------------------------------

def scalars_from_seed(seed: bytes) -> tuple:
    """(w0, w1) from w0s || w1s (each SEED_LEN bytes), each reduced modulo the group order."""
    if len(seed) != 2 * SEED_LEN:
        raise LocalProtocolError(f"SPAKE2+ seed must be {2 * SEED_LEN} bytes")
    w0 = int.from_bytes(seed[:SEED_LEN], "big") % ORDER
    w1 = int.from_bytes(seed[SEED_LEN:], "big") % ORDER
    if not w0 or not w1:      # probability ~2^-256; a zero scalar would make L the identity
        raise LocalProtocolError("SPAKE2+ registration produced a zero scalar")
    return w0, w1


def scalars_from_secret(secret: bytes) -> tuple:
    """(w0, w1) from a kdf.password_secret (32 bytes of scrypt output)."""
    if len(secret) != 32:
        raise LocalProtocolError("SPAKE2+ needs a 32-byte password secret")
    return scalars_from_seed(hkdf_sha256(bytes(secret), 2 * SEED_LEN, info=_REGISTRATION_LABEL))


def verifier_L(w1: int) -> bytes:
    """L = w1*P, uncompressed SEC1."""
    _check_scalar(w1, "w1")
    return encode_point(_G * w1)


def registration(secret: bytes) -> tuple:
    """What a verifier stores for a password secret: (w0 as 32 bytes, L as 65 bytes)."""
    w0, w1 = scalars_from_secret(secret)
    return w0.to_bytes(SCALAR_LEN, "big"), verifier_L(w1)


def _check_scalar(value: int, name: str) -> None:
    if not isinstance(value, int) or not 0 < value < ORDER:
        raise LocalProtocolError(f"SPAKE2+ {name} must be in 1..order-1")


# ---- one run ----------------------------------------------------------------------------

def _len_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def transcript(context: bytes, id_prover: bytes, id_verifier: bytes, share_p: bytes,
               share_v: bytes, z: bytes, v: bytes, w0: int) -> bytes:
    """TT as RFC 9383 section 3.3 defines it."""
    parts = (context, id_prover, id_verifier, _M_BYTES, _N_BYTES, share_p, share_v, z, v,
             w0.to_bytes(SCALAR_LEN, "big"))
    return b"".join(_len_prefixed(part) for part in parts)


class Spake2PlusResult:
    """Everything a finished run yields; compare the peer's MAC with verify_peer."""

    def __init__(self, is_prover: bool, tt: bytes, share_p: bytes, share_v: bytes):
        self.is_prover = is_prover
        self.transcript = tt
        self.k_main = hashlib.sha256(tt).digest()
        keys = hkdf_sha256(self.k_main, 64, info=b"ConfirmationKeys")
        self.k_confirm_p, self.k_confirm_v = keys[:32], keys[32:]
        self.k_shared = hkdf_sha256(self.k_main, 32, info=b"SharedKey")
        self.confirm_p = hmac.new(self.k_confirm_p, share_v, hashlib.sha256).digest()
        self.confirm_v = hmac.new(self.k_confirm_v, share_p, hashlib.sha256).digest()

    @property
    def my_confirmation(self) -> bytes:
        return self.confirm_p if self.is_prover else self.confirm_v

    def verify_peer(self, confirmation: bytes) -> bool:
        expected = self.confirm_v if self.is_prover else self.confirm_p
        return hmac.compare_digest(expected, bytes(confirmation))


class _Party:
    def __init__(self, w0, context, id_prover, id_verifier, test_scalar):
        _check_scalar(w0, "w0")
        self.w0, self.context = w0, bytes(context)
        self.id_prover, self.id_verifier = bytes(id_prover), bytes(id_verifier)
        # A fixed scalar exists only so tests can replay the RFC vector; real runs never pass one.
        self._scalar = test_scalar if test_scalar is not None else random_scalar()

    def _peer_point(self, share: bytes):
        if bytes(share) == self.message:
            raise RemoteProtocolError("SPAKE2+ peer echoed our own share")
        return decode_point(share)

    def _result(self, share_p, share_v, z_point, v_point, is_prover):
        if z_point.is_point_at_infinity() or v_point.is_point_at_infinity():
            raise RemoteProtocolError("SPAKE2+ shared point is the point at infinity")
        self.z, self.v = encode_point(z_point), encode_point(v_point)
        tt = transcript(self.context, self.id_prover, self.id_verifier, share_p, share_v,
                        self.z, self.v, self.w0)
        return Spake2PlusResult(is_prover, tt, share_p, share_v)


class Prover(_Party):
    """The viewer's side of one run: knows (w0, w1). Use once."""

    def __init__(self, w0: int, w1: int, context: bytes, id_prover: bytes, id_verifier: bytes,
                 *, _test_scalar: int | None = None):
        super().__init__(w0, context, id_prover, id_verifier, _test_scalar)
        _check_scalar(w1, "w1")
        self._w1 = w1
        self.message = encode_point(_G * self._scalar + M * w0)          # shareP
        self._unblind = -(N * w0)   # computed once: the viewer may finish() against several slots

    def finish(self, share_v: bytes) -> Spake2PlusResult:
        """Combine with the verifier's shareV; raise RemoteProtocolError if it is invalid."""
        base = self._peer_point(share_v) + self._unblind
        if base.is_point_at_infinity():
            raise RemoteProtocolError("SPAKE2+ shareV minus w0*N is the point at infinity")
        return self._result(self.message, bytes(share_v), base * self._scalar, base * self._w1,
                            is_prover=True)


class Verifier(_Party):
    """The host's side of one run: knows only (w0, L). Use once."""

    def __init__(self, w0: int, L: bytes, context: bytes, id_prover: bytes, id_verifier: bytes,
                 *, _test_scalar: int | None = None):
        super().__init__(w0, context, id_prover, id_verifier, _test_scalar)
        try:
            self._L = decode_point(L)
        except RemoteProtocolError as exc:    # our own stored value: a local fault, not the peer's
            raise LocalProtocolError(f"stored SPAKE2+ verifier is unusable: {exc}") from None
        self.message = encode_point(_G * self._scalar + N * w0)          # shareV

    def finish(self, share_p: bytes) -> Spake2PlusResult:
        """Combine with the prover's shareP; raise RemoteProtocolError if it is invalid."""
        base = self._peer_point(share_p) + -(M * self.w0)
        if base.is_point_at_infinity():
            raise RemoteProtocolError("SPAKE2+ shareP minus w0*M is the point at infinity")
        return self._result(bytes(share_p), self.message, base * self._scalar,
                            self._L * self._scalar, is_prover=False)
