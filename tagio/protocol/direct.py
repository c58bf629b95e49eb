"""Direct-TCP preamble, sans-I/O: the first bytes a peer sends when it dials us directly.

Theory of operation
-------------------
A direct TCP connection (net/listener.py accepts it, net/connect.py dials it) starts with one
preamble that says which session it is for, so the listener can park the socket until the
session's race takes it. Two kinds, told apart by their magic (MESSAGE_TYPES maps magic -> class):

    TGDT | version (1) | session_id (16) | tag (16)                    relay-brokered session
    TGDL | version (1) | session_id (16) | viewer_id (9) | tag (16)    LAN session, no relay

The tag (net.candidates.tcp_preamble_tag) binds the connection to the session and the dialer's
role; checking it is the session's job, not the codec's. A reader first takes the 5-byte header,
asks `body_size(header)` how many bytes follow (RemoteProtocolError for anything that is not a
preamble), then `decode_preamble(header + body)`. Both raise only RemoteProtocolError;
`encode()` raises LocalProtocolError for values we must never send.
"""

import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.ids import ID_DIGITS
from tagio.protocol.version import DIRECT_VERSION

VERSION = DIRECT_VERSION
HEADER = struct.Struct("!4sB")
HEADER_LEN = HEADER.size    # 5
SESSION_ID_LEN = 16
TAG_LEN = 16
RELAYED_MAGIC, LAN_MAGIC = b"TGDT", b"TGDL"
BODIES = {  # magic -> body layout after the header
    RELAYED_MAGIC: struct.Struct("!16s16s"),
    LAN_MAGIC: struct.Struct("!16s9s16s"),
}
MAX_PREAMBLE = HEADER_LEN + max(body.size for body in BODIES.values())


@dataclass(frozen=True)
class Preamble:
    session_id: bytes
    tag: bytes
    viewer_id: str | None = None  # set for LAN sessions

    @property
    def magic(self) -> bytes:
        return RELAYED_MAGIC if self.viewer_id is None else LAN_MAGIC

    def encode(self) -> bytes:
        """Header + body; LocalProtocolError for a wrong-sized session id, tag or viewer ID."""
        if not (_sized(self.session_id, SESSION_ID_LEN) and _sized(self.tag, TAG_LEN)):
            raise LocalProtocolError("a preamble carries a 16-byte session id and a 16-byte tag")
        head = HEADER.pack(self.magic, DIRECT_VERSION)
        if self.viewer_id is None:
            return head + BODIES[RELAYED_MAGIC].pack(self.session_id, self.tag)
        # Only the size is checked: tests craft malformed IDs with this encoder to see them refused.
        if not (isinstance(self.viewer_id, str) and len(self.viewer_id) == ID_DIGITS and self.viewer_id.isascii()):
            raise LocalProtocolError(f"a LAN preamble needs a 9-character viewer ID, got {self.viewer_id!r}")
        return head + BODIES[LAN_MAGIC].pack(self.session_id, self.viewer_id.encode("ascii"), self.tag)


MESSAGE_TYPES = {RELAYED_MAGIC: Preamble, LAN_MAGIC: Preamble}


def _sized(value, size) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == size


def encode_preamble(session_id: bytes, tag: bytes, viewer_id: str | None = None) -> bytes:
    return Preamble(session_id, tag, viewer_id).encode()


def body_size(header: bytes) -> int:
    """Bytes that follow a preamble header; RemoteProtocolError if it is not one."""
    if len(header) != HEADER_LEN:
        raise RemoteProtocolError("direct connection preamble is truncated")
    magic, version = HEADER.unpack(header)
    if magic not in BODIES or version != DIRECT_VERSION:
        raise RemoteProtocolError("direct connection did not start with a TagIO preamble")
    return BODIES[magic].size


def decode_preamble(raw: bytes) -> Preamble:
    """The Preamble in `raw` (header + body, exactly); RemoteProtocolError otherwise."""
    size = body_size(bytes(raw[:HEADER_LEN]))
    if len(raw) != HEADER_LEN + size:
        raise RemoteProtocolError("direct connection preamble has the wrong length")
    fields = BODIES[bytes(raw[:4])].unpack(raw[HEADER_LEN:])
    if len(fields) == 2:
        return Preamble(fields[0], fields[1])
    session_id, raw_id, tag = fields
    if not raw_id.isdigit():
        raise RemoteProtocolError("LAN preamble carries a malformed ID")
    return Preamble(session_id, tag, raw_id.decode("ascii"))


decode = decode_preamble
