"""Relay wire framing, sans-I/O.

Theory of operation
-------------------
Every control message between a client and the relay travels in one frame:

    offset  size  field
    0       4     magic  b"TGIO"
    4       1     protocol version (PROTOCOL_VERSION)
    5       1     message type code (see tagio.protocol.relay.MESSAGE_TYPES)
    6       1     flags (reserved, must be 0 today; unknown bits are ignored)
    7       4     payload length, unsigned big-endian, <= MAX_PAYLOAD
    11      n     payload

The header is checked field by field as soon as its bytes arrive, so garbage
is rejected after at most HEADER_LEN bytes and a huge length (say 4 GiB) is
refused before anything is buffered: the decoder never holds more than
HEADER_LEN + MAX_PAYLOAD bytes. `FrameDecoder.feed(data)` returns the list of
whole frames now available (possibly empty); any violation raises
RemoteProtocolError with a precise reason, after which the decoder is dead
(a byte stream cannot be resynchronised safely).

UDP datagrams carry exactly one frame each (`decode_datagram`).
"""

import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.version import RELAY_VERSION

MAGIC = b"TGIO"
PROTOCOL_VERSION = RELAY_VERSION  # the older name, kept for callers that still use it
HEADER = struct.Struct(">4sBBBI")
HEADER_LEN = HEADER.size  # 11
MAX_PAYLOAD = 64 * 1024  # control messages are small; relayed data is raw, not framed


@dataclass(frozen=True)
class Frame:
    type_code: int
    flags: int
    payload: bytes


def encode_frame(type_code: int, payload: bytes, flags: int = 0) -> bytes:
    """Header + payload; raises LocalProtocolError for an oversize payload or bad field."""
    if len(payload) > MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte maximum")
    if not (0 <= type_code <= 255 and 0 <= flags <= 255):
        raise LocalProtocolError("type code and flags must fit in one byte")
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, type_code, flags, len(payload)) + payload


def check_prefix(data: bytes) -> None:
    """Validate whatever part of a header `data` holds; raise RemoteProtocolError early.

    Checking a prefix lets a server reject wrong magic or version after a few
    bytes instead of waiting (bounded, but pointlessly) for a whole header.
    """
    head = data[:4]
    if head != MAGIC[: len(head)]:
        raise RemoteProtocolError(f"bad magic {bytes(head)!r}: not a TagIO frame (expected {MAGIC!r})")
    if len(data) > 4 and data[4] != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"unsupported protocol version {data[4]} (this side speaks version {PROTOCOL_VERSION})")
    if len(data) >= HEADER_LEN:
        length = int.from_bytes(data[7:11], "big")
        if length > MAX_PAYLOAD:
            raise RemoteProtocolError(f"frame length {length} exceeds the {MAX_PAYLOAD}-byte maximum")


class FrameDecoder:
    """Feed bytes, get whole frames. Holds at most one frame's worth of bytes."""

    def __init__(self):
        self._buf = bytearray()
        self._dead = None

    def feed(self, data: bytes, max_frames: int = None) -> list:
        """Append `data`; return the frames now complete (at most `max_frames`).

        Frames beyond `max_frames` stay buffered for the next call, so a caller
        can stop parsing where the stream switches to raw bytes.
        Raises RemoteProtocolError.
        """
        if self._dead:
            raise RemoteProtocolError(self._dead)
        self._buf += data
        frames = []
        try:
            while max_frames is None or len(frames) < max_frames:
                frame = self._next_frame()
                if frame is None:
                    return frames
                frames.append(frame)
            return frames
        except RemoteProtocolError as exc:
            self._dead = str(exc)
            self._buf.clear()
            raise

    def _next_frame(self):
        check_prefix(self._buf[:HEADER_LEN])
        if len(self._buf) < HEADER_LEN:
            return None
        _magic, _version, type_code, flags, length = HEADER.unpack_from(self._buf)
        end = HEADER_LEN + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[HEADER_LEN:end])
        del self._buf[:end]
        return Frame(type_code, flags, payload)

    def take_rest(self) -> bytes:
        """Remove and return buffered bytes that are not (yet) a frame.

        Used when a connection switches from frames to raw relayed bytes.
        """
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def eof(self) -> None:
        """The stream ended: raise RemoteProtocolError if a frame was cut short."""
        if self._buf:
            have = len(self._buf)
            if have < HEADER_LEN:
                raise RemoteProtocolError(f"stream ended inside a frame header ({have} of {HEADER_LEN} bytes)")
            need = HEADER_LEN + int.from_bytes(self._buf[7:11], "big")
            raise RemoteProtocolError(f"stream ended inside a frame ({have} of {need} bytes)")

    def at_boundary(self) -> bool:
        """True when no partial frame is pending (a clean place for EOF)."""
        return not self._buf


def decode_datagram(data: bytes) -> Frame:
    """Exactly one frame in one datagram; raises RemoteProtocolError otherwise."""
    check_prefix(data[:HEADER_LEN])
    if len(data) < HEADER_LEN:
        raise RemoteProtocolError(f"datagram of {len(data)} bytes is shorter than a frame header")
    _magic, _version, type_code, flags, length = HEADER.unpack_from(data)
    if len(data) != HEADER_LEN + length:
        raise RemoteProtocolError(
            f"datagram holds {len(data) - HEADER_LEN} payload bytes but its header says {length}")
    return Frame(type_code, flags, bytes(data[HEADER_LEN:]))
