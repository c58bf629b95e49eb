"""Versions and capabilities: one policy for every wire format.

Theory of operation
-------------------
Each wire format has its own version number, because each can change on its own; the names say
which one is meant:

    RELAY_VERSION      relay frames (protocol/framing.py, byte 4 of every frame)
    HANDSHAKE_VERSION  the SPAKE2 handshake's HELLO (protocol/handshake.py)
    SESSION_VERSION    session messages inside the secure channel (protocol/session.py, Hello)
    RUDP_VERSION       reliable-UDP datagrams (protocol/rudp.py)
    LAN_VERSION        LAN announcements and queries (protocol/lan.py)
    DIRECT_VERSION     the direct-TCP preamble (protocol/direct.py)
    PROOF_VERSION      the identity proofs inside the secure channel (protocol/proof.py); a partner
                       that sends none speaks "version 0" of it and is refused as older

The policy: a version mismatch is never guessed around. The side that notices refuses with words
a person can act on (`check_peer_version` raises VersionMismatch, a RemoteProtocolError), for
example "your partner runs an older TagIO (session protocol version 1, this side speaks 2);
update both sides". Within one version, optional features are capability bits: the host's
session Hello carries its bits, and `agree()` gives the set both sides support (the viewer uses
nothing outside it). A bit this build does not know is ignored, so a newer partner can offer
more without a version bump; removing or changing a feature needs a new version.
"""

from tagio.errors import RemoteProtocolError

RELAY_VERSION = 1
HANDSHAKE_VERSION = 2   # 2: a HELLO tag per password kind, SPAKE2+ for permanent passwords, one slot
SESSION_VERSION = 2     # 2: the session Hello carries capability bits
RUDP_VERSION = 1
LAN_VERSION = 1
DIRECT_VERSION = 1
PROOF_VERSION = 1

# Session capability bits (the session Hello's `capabilities` field, u32).
CAP_CLIPBOARD_TEXT = 1 << 0
CAP_CLIPBOARD_IMAGE = 1 << 1
CAP_COPY_RECT = 1 << 2
CAP_FILES = 1 << 3
CAP_CHAT = 1 << 4
CAP_HEARTBEAT = 1 << 5
CAP_SCALED_RECT = 1 << 6    # moving regions at a reduced resolution; the host sends them only after
                            # the viewer's ViewerCapabilities says it takes them (protocol/session.py)
CAP_ACK_UPTO = 1 << 7       # a FrameAck for frame N acknowledges N and every earlier frame still
                            # unacknowledged; the host reads acks so only after the viewer's
                            # ViewerCapabilities names it (an older viewer may ack out of order)
CAPABILITY_NAMES = {
    CAP_CLIPBOARD_TEXT: "clipboard text",
    CAP_CLIPBOARD_IMAGE: "clipboard images",
    CAP_COPY_RECT: "copy rectangles",
    CAP_FILES: "file transfer",
    CAP_CHAT: "chat",
    CAP_HEARTBEAT: "heartbeat",
    CAP_SCALED_RECT: "scaled rectangles",
    CAP_ACK_UPTO: "cumulative frame acknowledgements",
}
ALL_CAPABILITIES = sum(CAPABILITY_NAMES)
# What this build implements; a feature's bit goes in here with the code that does it.
SESSION_CAPABILITIES = (CAP_CLIPBOARD_TEXT | CAP_CLIPBOARD_IMAGE | CAP_COPY_RECT | CAP_FILES | CAP_CHAT
                        | CAP_HEARTBEAT | CAP_SCALED_RECT | CAP_ACK_UPTO)
CLIPBOARD = CAP_CLIPBOARD_TEXT | CAP_CLIPBOARD_IMAGE


class VersionMismatch(RemoteProtocolError):
    """The partner speaks another version of a wire format; str() says what to do about it."""

    def __init__(self, what: str, theirs: int, ours: int):
        age = "an older" if theirs < ours else "a newer"
        super().__init__(f"your partner runs {age} TagIO ({what} protocol version {theirs}, "
                         f"this side speaks {ours}); update both sides")
        self.what, self.theirs, self.ours = what, theirs, ours


def check_peer_version(what: str, theirs: int, ours: int) -> None:
    """Raise VersionMismatch unless the partner's version of `what` is ours."""
    if theirs != ours:
        raise VersionMismatch(what, theirs, ours)


def agree(peer_version: int, peer_capabilities: int, *, our_version: int = SESSION_VERSION,
          our_capabilities: int = SESSION_CAPABILITIES) -> int:
    """The capability bits both sides support; VersionMismatch if the session versions differ."""
    check_peer_version("session", peer_version, our_version)
    return peer_capabilities & our_capabilities & ALL_CAPABILITIES


def describe(capabilities: int) -> list:
    """Names of the known bits in `capabilities`, in bit order (for logs and status lines)."""
    return [name for bit, name in sorted(CAPABILITY_NAMES.items()) if capabilities & bit]
