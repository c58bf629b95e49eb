"""Proof of identity inside a secure channel: each side signs this channel with its ID's key.

Theory of operation. An ID is derived from an Ed25519 key (protocol/ids.py); the relay binds the
two, but the relay is not trusted, and a LAN dial names any ID it likes. The PAKE binds both IDs
as each side was told them, so it cannot tell a real ID from a claimed one. After the handshake,
therefore, each side signs

    "TagIO identity proof v1|" || role || "|" || its ID || "|" || binding

where `binding` = channel.export(EXPORT_LABEL): 32 bytes both ends of this one channel derive
alike and nobody else can (crypto/channel.py), so a proof is good for this channel only and
cannot be replayed into another session. The role ("viewer" or "host") is in the statement and
the checker demands the other side's role, so a proof sent back to the side that made it (a
reflection) fails. The checker also demands that the key derives the ID it expected (the one it
dialled, or the one the viewer claimed) and refuses small-order keys, for which any signature
verifies.

Pure functions, no I/O: client/proving.py sends and reads the messages (protocol/proof.py) and
decides what a failure means for the person in front of each side.
"""

from tagio.crypto.identity import (fingerprint, format_id, id_from_public_key, is_small_order,
                                   verify_signature)
from tagio.errors import IdentityError
from tagio.protocol.proof import ROLE_HOST, ROLE_VIEWER, ROLES, IdentityProof

__all__ = ["EXPORT_LABEL", "IdentityProofError", "ROLE_HOST", "ROLE_VIEWER", "binding",
           "check_proof", "make_proof", "statement"]

EXPORT_LABEL = b"TagIO identity proof v1"
_DOMAIN = b"TagIO identity proof v1|"


class IdentityProofError(IdentityError):
    """The partner's proof of its ID failed; str() says how (for the log and the partner's Bye)."""


def binding(channel) -> bytes:
    """The channel's value that both proofs sign (the same bytes on both ends)."""
    return channel.export(EXPORT_LABEL, 32)


def statement(role: int, claimed_id: str, channel_binding: bytes) -> bytes:
    """What the side in `role` signs to prove `claimed_id` on the channel with this binding."""
    return b"|".join((_DOMAIN + ROLES[role].encode("ascii"), str(claimed_id).encode("ascii"),
                      bytes(channel_binding)))


def make_proof(identity, role: int, channel_binding: bytes) -> IdentityProof:
    """Our proof in `role` (an Identity: .id, .public_key, .sign)."""
    signature = identity.sign(statement(role, identity.id, channel_binding))
    return IdentityProof(role, identity.public_key, signature)


def check_proof(proof: IdentityProof, *, role: int, expected_id: str, channel_binding: bytes) -> bytes:
    """The partner's key if `proof` proves `expected_id` in `role` on this channel; else raises
    IdentityProofError saying why."""
    if proof.role != role:
        raise IdentityProofError(f"the partner sent a {ROLES.get(proof.role, '?')}'s proof where the "
                                 f"{ROLES[role]} must prove itself (a proof sent back)")
    key = bytes(proof.public_key)
    if is_small_order(key):
        raise IdentityProofError("the partner's key is a weak (small-order) key that proves nothing")
    proven = id_from_public_key(key)
    if proven != expected_id:
        raise IdentityProofError(f"the partner's key belongs to ID {format_id(proven)}, not to "
                                 f"{format_id(expected_id)} (key {fingerprint(key)})")
    if not verify_signature(key, statement(role, expected_id, channel_binding), proof.signature):
        raise IdentityProofError(f"the partner's signature for ID {format_id(expected_id)} does not "
                                 f"verify on this connection (key {fingerprint(key)})")
    return key
