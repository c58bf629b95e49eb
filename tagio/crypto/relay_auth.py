"""The relay secret as a PAKE: SPAKE2 (RFC 9382) between a client and a private relay.

Theory of operation
-------------------
A private relay admits only clients that know its shared secret. Proving the
secret with a MAC over a clear nonce gives anyone who records one
registration an offline test of every candidate secret (a dictionary runs at
millions of guesses a second). Here the proof is a SPAKE2 run keyed by the
secret instead, so a recording holds nothing a candidate can be checked
against: every guess needs a live run with the relay, which counts it.

    w     = HKDF(scrypt(secret, salt = LABEL || realm), "w") mod order
    id_a  = "client" || client ID || client public key      (length-prefixed parts)
    id_b  = "relay"  || realm || the relay's challenge nonce
    aad   = LABEL

    client                                         relay (w derived once, at start-up)
                                    <-   AuthChallenge(nonce, realm)
    Register(..., pA = x*G + w*M)   ->   (ownership check and SPAKE2 on a worker thread)
                                    <-   AuthReply(pB = y*G + w*N)
    AuthConfirm(conf_a)             ->   wrong: "auth_failed", counted as a failed guess
                                    <-   AuthConfirm(conf_b), Registered

The client confirms first, so the relay learns the outcome of every guess it
answers; the client then checks conf_b, so a relay that does not know the
secret (an impostor) cannot register it either. The realm (a name the relay
advertises) salts the slow KDF, so one deployment's precomputation is worth
nothing at another; the nonce in id_b ties the run to this connection.

scrypt is the slow part (~0.1 s, 32 MiB): the relay derives w once when it
starts (RelayVerifier) and precomputes w*N and -w*M, so an attempt costs it
two scalar multiplications on a worker, never a KDF; a client derives w once
per process for each (secret, realm) it meets (`client_scalar`, a small
cache). Pure computation, no I/O. Points from the peer are validated by
tagio.crypto.spake2.decode_point (RemoteProtocolError).
"""

import hashlib
import threading
from collections import OrderedDict

from Crypto.Protocol.KDF import scrypt

from tagio.crypto import kdf
from tagio.crypto.spake2 import (
    CONF_LEN, M, N, ORDER, POINT_LEN, ROLE_A, ROLE_B, Spake2Party, Spake2Result, _G, confirmation_keys,
    decode_point, encode_point, hkdf_sha256, random_scalar, transcript,
)
from tagio.errors import LocalProtocolError, RemoteProtocolError

LABEL = b"TagIO relay secret v1"
_W_INFO = b"TagIO relay secret w v1"
MAX_REALM = 64          # characters of the realm a relay may advertise
CACHE_SIZE = 4          # (secret, realm) pairs a client keeps w for
assert (POINT_LEN, CONF_LEN) == (65, 32)

_cache = OrderedDict()
_cache_lock = threading.Lock()


def _parts(*parts: bytes) -> bytes:
    """Length-prefix each part so no two different tuples encode the same."""
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def secret_scalar(secret: str, realm: str) -> int:
    """SPAKE2's w for a relay secret: scrypt salted with the realm, then reduced without bias.

    Raises LocalProtocolError for an empty or absurdly long secret (tagio.crypto.kdf.normalize_password).
    """
    text = kdf.normalize_password(secret)
    salt = _parts(LABEL, realm.encode("utf-8"))
    stretched = scrypt(text.encode("utf-8"), salt, 32, N=kdf.SCRYPT_N, r=kdf.SCRYPT_R, p=kdf.SCRYPT_P)
    return int.from_bytes(hkdf_sha256(stretched, 48, info=_W_INFO), "big") % ORDER


def client_scalar(secret: str, realm: str) -> int:
    """secret_scalar, derived once per process for each (secret, realm); thread-safe.

    The lock is held while deriving, so two relay connections starting together pay once.
    """
    key = (secret, realm)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = secret_scalar(secret, realm)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        return _cache[key]


def identities(client_id: str, public_key: bytes, realm: str, nonce: bytes) -> tuple:
    """(id_a, id_b): the client's ID and key, the relay's realm and this connection's nonce."""
    return (_parts(b"client", client_id.encode("ascii", "replace"), bytes(public_key)),
            _parts(b"relay", realm.encode("utf-8"), bytes(nonce)))


def check_realm(realm: str) -> str:
    """The realm a relay advertised, or RemoteProtocolError if it is not a short printable name."""
    if not realm or len(realm) > MAX_REALM or not realm.isprintable():
        raise RemoteProtocolError(f"the relay advertised an unusable realm ({len(realm)} characters)")
    return realm


class ClientRun:
    """The client's side of one run (role A). Use once: message -> confirm(pB) -> relay_proved(conf_b)."""

    def __init__(self, w: int, client_id: str, public_key: bytes, realm: str, nonce: bytes):
        id_a, id_b = identities(client_id, public_key, realm, nonce)
        self._party = Spake2Party(ROLE_A, w, id_a, id_b, LABEL)
        self._result = None
        self.message = self._party.message  # pA, 65 bytes

    def confirm(self, relay_message: bytes) -> bytes:
        """conf_a for the relay's pB; raises RemoteProtocolError for an invalid point."""
        self._result = self._party.finish(relay_message)
        return self._result.my_confirmation

    def relay_proved(self, relay_confirmation: bytes) -> bool:
        """True when the relay's conf_b shows it holds the same secret."""
        if self._result is None:
            raise LocalProtocolError("relay_proved() before confirm()")
        return self._result.verify_peer(relay_confirmation)


class RelaySecret:
    """A client's relay secret, handed to the relay client (tagio.net.relay_client) as its prover.

    The net layer sits below crypto, so it is given this object instead of importing SPAKE2, as it
    is given the Ed25519 Identity. repr() never shows the secret (it may end up in a log).
    """

    def __init__(self, secret: str):
        kdf.normalize_password(secret)  # LocalProtocolError now for an empty or absurd secret
        self._secret = secret

    def start(self, realm: str, client_id: str, public_key: bytes, nonce: bytes) -> ClientRun:
        """One run against the relay that advertised `realm` (RemoteProtocolError if unusable)."""
        check_realm(realm)
        return ClientRun(client_scalar(self._secret, realm), client_id, public_key, realm, nonce)

    def __repr__(self):
        return "RelaySecret(<hidden>)"


class RelayRun:
    """The relay's side of one finished exchange: pB to send, and the two confirmations."""

    def __init__(self, message: bytes, result: Spake2Result):
        self.message = message          # pB
        self._result = result

    @property
    def confirmation(self) -> bytes:
        """conf_b: sent only after the client's conf_a verified."""
        return self._result.my_confirmation

    def client_proved(self, client_confirmation: bytes) -> bool:
        return self._result.verify_peer(client_confirmation)


class RelayVerifier:
    """The relay's secret, stretched once; `respond` runs one exchange (thread-safe, no KDF)."""

    def __init__(self, secret: str, realm: str):
        self.realm = check_realm(realm)
        self._w = secret_scalar(secret, realm)
        self._blind = N * self._w            # pB = y*G + w*N
        self._unblind = -(M * self._w)       # K = y*(pA - w*M)

    def respond(self, client_message: bytes, client_id: str, public_key: bytes, nonce: bytes) -> RelayRun:
        """RFC 9382 as party B, with the w-dependent points precomputed (Spake2Party.finish, inlined).

        Raises RemoteProtocolError for an invalid or degenerate client point.
        """
        peer = decode_point(client_message)
        y = random_scalar()
        message = encode_point(_G * y + self._blind)
        if bytes(client_message) == message:
            raise RemoteProtocolError("SPAKE2 peer echoed our own message")
        shared = (peer + self._unblind) * y
        if shared.is_point_at_infinity():
            raise RemoteProtocolError("SPAKE2 shared point is the point at infinity")
        id_a, id_b = identities(client_id, public_key, self.realm, nonce)
        tt = transcript(id_a, id_b, bytes(client_message), message, encode_point(shared), self._w)
        digest = hashlib.sha256(tt).digest()
        kc_a, kc_b = confirmation_keys(digest[16:], LABEL)
        return RelayRun(message, Spake2Result(ROLE_B, tt, digest[:16], digest[16:], kc_a, kc_b))
