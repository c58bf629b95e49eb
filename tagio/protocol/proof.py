"""Identity proofs, sans-I/O: the first message each side sends inside a new secure channel.

Theory of operation
-------------------
The PAKE proves that both sides know the host's password; it says nothing about who holds which
ID (the IDs it binds are the ones the relay or a LAN dial claimed). So right after the handshake
each side proves its ID: it signs, with the Ed25519 key its ID is derived from, a value both ends
of this one channel derive alike (crypto/proof.py says what is signed and how it is checked;
client/proving.py runs the exchange). This module is only the byte layout of that one message,
one channel record:

    PROOF  "\\0TGIP" (5) | version (1) | role (1) | public key (32) | signature (64)    103 bytes

The magic starts with a zero byte, which is no session message type (protocol/session.py), so a
reader tells a proof from a session message by its first bytes (`is_proof`): a partner that sends
an Introduce first runs an older TagIO that proves nothing. `role` says which side signed
(ROLE_VIEWER or ROLE_HOST); the signed statement names the role too, so a proof cannot be sent
back to the side that made it. `decode` checks the magic, then the version (VersionMismatch, with
words a person can act on), then the exact length and the role, and raises only
RemoteProtocolError; `encode()` raises LocalProtocolError for values we must never send.
"""

import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.ids import PUBLIC_KEY_LEN
from tagio.protocol.version import PROOF_VERSION, check_peer_version

VERSION = PROOF_VERSION
MAGIC = b"\x00TGIP"
SIGNATURE_LEN = 64
LAYOUT = struct.Struct(f"!{len(MAGIC)}sBB{PUBLIC_KEY_LEN}s{SIGNATURE_LEN}s")
SIZE = LAYOUT.size          # 103
ROLE_VIEWER, ROLE_HOST = 1, 2
ROLES = {ROLE_VIEWER: "viewer", ROLE_HOST: "host"}


@dataclass(frozen=True)
class IdentityProof:
    """One side's proof: `role` (ROLE_VIEWER / ROLE_HOST), its raw Ed25519 key, its signature."""
    role: int
    public_key: bytes
    signature: bytes

    def encode(self) -> bytes:
        if self.role not in ROLES or not _sized(self.public_key, PUBLIC_KEY_LEN) \
                or not _sized(self.signature, SIGNATURE_LEN):
            raise LocalProtocolError("a proof needs a known role, a 32-byte key and a 64-byte signature")
        return LAYOUT.pack(MAGIC, PROOF_VERSION, self.role, bytes(self.public_key), bytes(self.signature))


MESSAGE_TYPES = {MAGIC: IdentityProof}


def _sized(value, size) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == size


def is_proof(data: bytes) -> bool:
    """Does this channel message claim to be a proof (its magic), whatever else is in it?"""
    return bytes(data[:len(MAGIC)]) == MAGIC


def decode(data: bytes) -> IdentityProof:
    """The IdentityProof in one channel message. Raises RemoteProtocolError (VersionMismatch for
    another version of this format)."""
    if not is_proof(data) or len(data) <= len(MAGIC):
        raise RemoteProtocolError("not an identity proof")
    check_peer_version("identity proof", data[len(MAGIC)], PROOF_VERSION)
    if len(data) != SIZE:
        raise RemoteProtocolError(f"identity proof of {len(data)} bytes (expected {SIZE})")
    _magic, _version, role, key, signature = LAYOUT.unpack(bytes(data))
    if role not in ROLES:
        raise RemoteProtocolError(f"identity proof for an unknown role {role}")
    return IdentityProof(role, key, signature)
