"""Wire format of direct UDP datagrams (punches and the reliable stream), sans-I/O.

Every datagram is

    type (1) | version (1) | conn_id (4) | body ... | mac (8)

`conn_id` lets one UDP socket carry many sessions (see udpmux); `mac` is the
first 8 bytes of HMAC-SHA256 over everything before it, keyed with the
sender's direction key (candidates.path_keys). `decode()` checks length, type,
version, connection id and MAC before it parses anything, and raises only
RemoteProtocolError: a forged, foreign or truncated datagram is rejected before
it can touch any state. Bodies are fixed structs looked up in a table by type.
DATA has a hot path (`encode_data` / `decode_data`) that skips the message
object; it checks exactly what `decode()` checks. The MAC keeps HMAC-SHA256
(RFC 2104) but with the padded key hashed once per key (`_pads`).
"""

import functools
import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.version import RUDP_VERSION

VERSION = RUDP_VERSION
MAC_LEN = 8
MAX_PAYLOAD = 1200  # keeps every datagram below common path MTUs (1280 for IPv6)
MAX_SACK_BLOCKS = 16
HEADER = struct.Struct("!BB4s")
MAX_DATAGRAM = HEADER.size + 16 + MAX_SACK_BLOCKS * 8 + MAX_PAYLOAD + MAC_LEN
FLAG_FIN = 0x01
FLAG_ACK_NOW = 0x02  # the sender waits for an ack: do not delay it (receivers may ignore it)


class PacketType(IntEnum):
    PUNCH = 0xD1
    PUNCH_ACK = 0xD2
    DATA = 0xD3
    ACK = 0xD4
    PING = 0xD5
    RESET = 0xD6


def is_tagio_datagram(data: bytes) -> bool:
    """Cheap routing test: could this be one of ours (before authentication)?"""
    return len(data) >= HEADER.size + MAC_LEN and data[1] == VERSION and data[0] in _TYPE_CODES


def conn_id_of(data: bytes) -> bytes:
    return data[2:6]


@dataclass(frozen=True)
class Punch:
    nonce: bytes  # 8 random bytes; echoed in the PunchAck
    FIXED = struct.Struct("!8s")

    def body(self):
        return self.FIXED.pack(self.nonce)

    @classmethod
    def parse(cls, raw):
        return cls(*_exact(cls.FIXED, raw))


@dataclass(frozen=True)
class PunchAck(Punch):
    pass


@dataclass(frozen=True)
class Data:
    seq: int
    ts: int  # sender's clock in microseconds mod 2**32, echoed for RTT
    flags: int
    payload: bytes
    FIXED = struct.Struct("!IIB")

    def body(self):
        if len(self.payload) > MAX_PAYLOAD:
            raise LocalProtocolError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        return self.FIXED.pack(self.seq, self.ts, self.flags) + self.payload

    @classmethod
    def parse(cls, raw):
        if len(raw) < cls.FIXED.size or len(raw) - cls.FIXED.size > MAX_PAYLOAD:
            raise RemoteProtocolError("DATA datagram has a bad length")
        seq, ts, flags = cls.FIXED.unpack_from(raw)
        return cls(seq, ts, flags, bytes(raw[cls.FIXED.size:]))


@dataclass(frozen=True)
class Ack:
    cum: int  # next in-order sequence number the receiver expects
    ts_echo: int
    window: int  # free receive slots, in segments
    blocks: tuple = ()  # ((start, end_exclusive), ...) received above `cum`
    FIXED = struct.Struct("!IIHB")
    BLOCK = struct.Struct("!II")

    def body(self):
        if len(self.blocks) > MAX_SACK_BLOCKS:
            raise LocalProtocolError("too many SACK blocks")
        head = self.FIXED.pack(self.cum, self.ts_echo, self.window, len(self.blocks))
        return head + b"".join(self.BLOCK.pack(s, e) for s, e in self.blocks)

    @classmethod
    def parse(cls, raw):
        if len(raw) < cls.FIXED.size:
            raise RemoteProtocolError("ACK datagram too short")
        cum, echo, window, count = cls.FIXED.unpack_from(raw)
        if count > MAX_SACK_BLOCKS or len(raw) != cls.FIXED.size + count * cls.BLOCK.size:
            raise RemoteProtocolError("ACK datagram has a bad SACK block count")
        blocks = tuple(cls.BLOCK.unpack_from(raw, cls.FIXED.size + i * 8) for i in range(count))
        if any(not (cum < s < e) for s, e in blocks):
            raise RemoteProtocolError("ACK datagram has an impossible SACK block")
        return cls(cum, echo, window, blocks)


@dataclass(frozen=True)
class Ping:
    ts: int
    FIXED = struct.Struct("!I")

    def body(self):
        return self.FIXED.pack(self.ts)

    @classmethod
    def parse(cls, raw):
        return cls(*_exact(cls.FIXED, raw))


@dataclass(frozen=True)
class Reset:
    reason: int  # 0 = closed by application, 1 = protocol error, 2 = timeout
    FIXED = struct.Struct("!B")

    def body(self):
        return self.FIXED.pack(self.reason)

    @classmethod
    def parse(cls, raw):
        return cls(*_exact(cls.FIXED, raw))


TYPES = {
    PacketType.PUNCH: Punch,
    PacketType.PUNCH_ACK: PunchAck,
    PacketType.DATA: Data,
    PacketType.ACK: Ack,
    PacketType.PING: Ping,
    PacketType.RESET: Reset,
}
CODES = {cls: code for code, cls in TYPES.items()}
_TYPE_CODES = frozenset(int(code) for code in TYPES)
_TYPES_BY_CODE = {int(code): cls for code, cls in TYPES.items()}  # no Enum call per datagram
DATA_HEAD = struct.Struct("!BB4sIIB")  # HEADER + Data.FIXED, packed in one go
_DATA_MIN, _DATA_MAX = DATA_HEAD.size + MAC_LEN, DATA_HEAD.size + MAX_PAYLOAD + MAC_LEN
_SHA256_BLOCK = 64
_DATA = int(PacketType.DATA)


def _exact(fixed: struct.Struct, raw) -> tuple:
    if len(raw) != fixed.size:
        raise RemoteProtocolError("datagram body has the wrong length")
    return fixed.unpack(raw)


@functools.lru_cache(maxsize=256)
def _pads(key: bytes):
    """The HMAC-SHA256 inner and outer hashes with the padded key already absorbed
    (RFC 2104). copy() per datagram skips two compression rounds and stays in C;
    unlike hmac.digest() it does not release the GIL for small inputs, and on a
    busy stream every GIL release is a chance for a thread hand-off."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _mac(key: bytes, signed) -> bytes:
    inner, outer = _pads(key)
    inner = inner.copy()
    inner.update(signed)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()[:MAC_LEN]


def encode(message, conn_id: bytes, key: bytes) -> bytes:
    """The authenticated datagram for `message`."""
    signed = HEADER.pack(CODES[type(message)], VERSION, conn_id) + message.body()
    return signed + _mac(key, signed)


def encode_data(seq: int, ts: int, flags: int, payload, conn_id: bytes, key: bytes) -> bytes:
    """encode(Data(seq, ts, flags, payload), ...) without the message object: the hot path."""
    if len(payload) > MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = DATA_HEAD.pack(_DATA, VERSION, conn_id, seq, ts, flags)
    inner, outer = _pads(key)
    inner = inner.copy()
    inner.update(head)
    inner.update(payload)  # MAC the parts: the payload is copied once, into the datagram
    outer = outer.copy()
    outer.update(inner.digest())
    return b"".join((head, payload, outer.digest()[:MAC_LEN]))


def _open(datagram, conn_id: bytes, key: bytes) -> int:
    """Check length, type, version, connection and MAC; the type code if all is well."""
    if len(datagram) < HEADER.size + MAC_LEN or len(datagram) > MAX_DATAGRAM:
        raise RemoteProtocolError("datagram has an impossible length")
    code, version, their_conn = HEADER.unpack_from(datagram)
    if version != VERSION or code not in _TYPE_CODES:
        raise RemoteProtocolError("datagram has an unknown type or version")
    if their_conn != conn_id:
        raise RemoteProtocolError("datagram belongs to another connection")
    if not hmac.compare_digest(_mac(key, memoryview(datagram)[:-MAC_LEN]), datagram[-MAC_LEN:]):
        raise RemoteProtocolError("datagram failed authentication")
    return code


def decode(datagram: bytes, conn_id: bytes, key: bytes):
    """The message in `datagram`; RemoteProtocolError if it is not a valid one for us."""
    code = _open(datagram, conn_id, key)
    return _TYPES_BY_CODE[code].parse(memoryview(datagram)[HEADER.size:-MAC_LEN])


def decode_data(datagram: bytes, conn_id: bytes, key: bytes) -> tuple:
    """(seq, ts, flags, payload) of a DATA datagram, checked as decode() checks it: the
    hot path, without the message object. RemoteProtocolError for anything else."""
    code = _open(datagram, conn_id, key)
    if code != PacketType.DATA or not _DATA_MIN <= len(datagram) <= _DATA_MAX:
        raise RemoteProtocolError("not a well-formed DATA datagram")
    seq, ts, flags = Data.FIXED.unpack_from(datagram, HEADER.size)
    return seq, ts, flags, datagram[DATA_HEAD.size:-MAC_LEN]
