"""Handshake messages (SPAKE2 with key confirmation), sans-I/O: the byte layout only.

Theory of operation
-------------------
The state machine that runs these messages lives in tagio.crypto.handshake; this module only says
what each message looks like on the wire. Every message is one frame

    type (1) | length (2, big-endian, <= MAX_PAYLOAD) | payload

and each type has an exact payload size (REPLY: a slot count, then that many slots):

    HELLO     version (1) | ctx_tag (16) | pA (65)            viewer -> host
    REPLY     count (1, 1..MAX_SLOTS) | count * (pB (65) | B_conf (32))   host -> viewer
    CONFIRM   slot index (1) | A_conf (32)                     viewer -> host
    FINISHED  mac (32)                                         host -> viewer
    ABORT     code (1)                                         either way

MESSAGE_TYPES maps type code -> class, as the relay codec does. `parse_header` checks a 3-byte
header as soon as it arrives (a reader then knows exactly how many bytes to read), and
`decode_payload(type, payload)` turns the payload into a message; both raise only
RemoteProtocolError. `encode()` raises LocalProtocolError for values we must never send. Whether a
point is on the curve is the crypto layer's question, not the codec's: here a point is 65 bytes.
"""

import enum
import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.version import HANDSHAKE_VERSION

VERSION = HANDSHAKE_VERSION
FRAME_HEADER = struct.Struct(">BH")
MAX_PAYLOAD = 512
CTX_TAG_LEN = 16
POINT_LEN = 65      # uncompressed SEC1 P-256 point (crypto.spake2.POINT_LEN)
CONF_LEN = 32       # HMAC-SHA256 (crypto.spake2.CONF_LEN)
SLOT_LEN = POINT_LEN + CONF_LEN
MAX_SLOTS = 4


class Msg(enum.IntEnum):
    HELLO = 1
    REPLY = 2
    CONFIRM = 3
    FINISHED = 4
    ABORT = 5


class Abort(enum.IntEnum):
    """ABORT codes. An unknown code still decodes (the state machine says what it means)."""
    WRONG_PASSWORD = 1
    PROTOCOL = 2
    GUESS_LIMIT = 3     # the host takes no password guess now (too many wrong ones)


def _need(cond, why):
    if not cond:
        raise RemoteProtocolError(why)


def _local(cond, why):
    if not cond:
        raise LocalProtocolError(why)


def _is_bytes(value, size) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == size


def _is_u8(value) -> bool:
    return isinstance(value, int) and 0 <= value <= 255


@dataclass
class HelloMsg:
    TYPE = Msg.HELLO
    SIZE = 1 + CTX_TAG_LEN + POINT_LEN
    version: int
    ctx_tag: bytes
    p_a: bytes

    def payload(self) -> bytes:
        _local(_is_u8(self.version) and _is_bytes(self.ctx_tag, CTX_TAG_LEN) and _is_bytes(self.p_a, POINT_LEN),
               "HELLO needs a version byte, a 16-byte tag and a 65-byte point")
        return bytes([self.version]) + bytes(self.ctx_tag) + bytes(self.p_a)

    @classmethod
    def parse(cls, payload: bytes):
        return cls(payload[0], payload[1:1 + CTX_TAG_LEN], payload[1 + CTX_TAG_LEN:])


@dataclass
class ReplyMsg:
    TYPE = Msg.REPLY
    slots: list         # [(pB_i, B_conf_i), ...]

    def payload(self) -> bytes:
        _local(1 <= len(self.slots) <= MAX_SLOTS, f"REPLY carries 1..{MAX_SLOTS} slots")
        _local(all(_is_bytes(p, POINT_LEN) and _is_bytes(c, CONF_LEN) for p, c in self.slots),
               "a REPLY slot is a 65-byte point and a 32-byte confirmation")
        return bytes([len(self.slots)]) + b"".join(bytes(p) + bytes(c) for p, c in self.slots)

    @staticmethod
    def size_ok(payload: bytes) -> bool:
        return len(payload) >= 1 and 1 <= payload[0] <= MAX_SLOTS and len(payload) == 1 + payload[0] * SLOT_LEN

    @classmethod
    def parse(cls, payload: bytes):
        starts = [1 + i * SLOT_LEN for i in range(payload[0])]
        return cls([(payload[at:at + POINT_LEN], payload[at + POINT_LEN:at + SLOT_LEN]) for at in starts])


@dataclass
class ConfirmMsg:
    TYPE = Msg.CONFIRM
    SIZE = 1 + CONF_LEN
    index: int
    conf_a: bytes

    def payload(self) -> bytes:
        _local(_is_u8(self.index) and _is_bytes(self.conf_a, CONF_LEN), "CONFIRM needs a slot byte and 32 bytes")
        return bytes([self.index]) + bytes(self.conf_a)

    @classmethod
    def parse(cls, payload: bytes):
        return cls(payload[0], payload[1:])


@dataclass
class FinishedMsg:
    TYPE = Msg.FINISHED
    SIZE = CONF_LEN
    mac: bytes

    def payload(self) -> bytes:
        _local(_is_bytes(self.mac, CONF_LEN), "FINISHED carries a 32-byte MAC")
        return bytes(self.mac)

    @classmethod
    def parse(cls, payload: bytes):
        return cls(payload)


@dataclass
class AbortMsg:
    TYPE = Msg.ABORT
    SIZE = 1
    code: int

    def payload(self) -> bytes:
        _local(_is_u8(self.code), "ABORT carries one code byte")
        return bytes([self.code])

    @classmethod
    def parse(cls, payload: bytes):
        return cls(payload[0])


MESSAGE_TYPES = {cls.TYPE: cls for cls in (HelloMsg, ReplyMsg, ConfirmMsg, FinishedMsg, AbortMsg)}
_MSG_VALUES = frozenset(int(code) for code in MESSAGE_TYPES)


def encode_frame(msg_type: Msg, payload: bytes) -> bytes:
    """One frame around a raw payload; LocalProtocolError if it is too large."""
    _local(len(payload) <= MAX_PAYLOAD, "handshake payload too large")
    return FRAME_HEADER.pack(msg_type, len(payload)) + payload


def encode(msg) -> bytes:
    """The frame for one handshake message; raises LocalProtocolError."""
    _local(type(msg) in MESSAGE_TYPES.values(), f"not a handshake message: {type(msg).__name__}")
    return encode_frame(msg.TYPE, msg.payload())


def parse_header(header: bytes) -> tuple:
    """(type, length) from a 3-byte frame header; RemoteProtocolError if impossible."""
    _need(len(header) == FRAME_HEADER.size, f"handshake header of {len(header)} bytes")
    raw_type, length = FRAME_HEADER.unpack(header)
    _need(raw_type in _MSG_VALUES, f"unknown handshake message type {raw_type}")
    _need(length <= MAX_PAYLOAD, f"handshake message of {length} bytes exceeds {MAX_PAYLOAD}")
    return Msg(raw_type), length


def _size_ok(cls, payload: bytes) -> bool:
    if cls is ReplyMsg:
        return ReplyMsg.size_ok(payload)
    return len(payload) == cls.SIZE


def decode_payload(msg_type: Msg, payload: bytes):
    """The message of type `msg_type` in `payload`; RemoteProtocolError if the size is wrong."""
    cls = MESSAGE_TYPES[msg_type]
    _need(_size_ok(cls, payload), f"malformed {Msg(msg_type).name} message ({len(payload)} bytes)")
    return cls.parse(bytes(payload))


def decode(data: bytes):
    """One whole frame (header + payload, nothing more) -> message. Raises RemoteProtocolError."""
    msg_type, length = parse_header(bytes(data[:FRAME_HEADER.size]))
    _need(len(data) == FRAME_HEADER.size + length,
          f"handshake frame says {length} payload bytes, carries {len(data) - FRAME_HEADER.size}")
    return decode_payload(msg_type, data[FRAME_HEADER.size:])


# ---- the shorthands the state machine and its tests use ---------------------------------

def encode_hello(ctx_tag: bytes, p_a: bytes) -> bytes:
    return encode(HelloMsg(HANDSHAKE_VERSION, ctx_tag, p_a))


def encode_reply(slots) -> bytes:
    return encode(ReplyMsg(list(slots)))


def decode_reply(payload: bytes) -> list:
    """[(pB_i, B_conf_i), ...] from a REPLY payload; RemoteProtocolError if malformed."""
    return decode_payload(Msg.REPLY, payload).slots
