"""Secure-channel record header, sans-I/O: the clear part of every encrypted record.

Theory of operation
-------------------
After the handshake every byte between viewer and host is a record (tagio.crypto.records seals and
opens them with an AEAD; this module only knows the layout):

    length (4, big-endian) | seq (8, big-endian) | ciphertext of (type (1) | payload) | tag (16)

`length` counts everything after the 12-byte header, so it is at least MIN_BODY (a type byte and a
tag) and at most MAX_BODY (a MAX_RECORD payload). The header is the AEAD's associated data and seq
names the nonce, so a forged header fails authentication later; this codec only refuses lengths
that cannot be right, before anything is buffered. The record type travels inside the ciphertext
(an attacker cannot forge a CLOSE), so RECORD_TYPES is checked after decryption.

`RecordHeader.encode()` -> 12 bytes; `decode_header(12 bytes)` raises RemoteProtocolError only;
`decode_record(data)` splits one whole record into (header, sealed body) for tests and fuzzing.
"""

import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError

HEADER = struct.Struct(">IQ")
HEADER_LEN = HEADER.size        # 12
TAG_LEN = 16
MAX_MESSAGE = 1 << 20
MAX_RECORD = MAX_MESSAGE        # plaintext payload of one record
MAX_BODY = 1 + MAX_RECORD + TAG_LEN
MIN_BODY = 1 + TAG_LEN
MAX_SEQ = (1 << 64) - 1

REC_DATA = 0
REC_CLOSE = 1
RECORD_TYPES = {REC_DATA: "data", REC_CLOSE: "close"}


@dataclass(frozen=True)
class RecordHeader:
    length: int     # bytes after the header: sealed type + payload + tag
    seq: int

    @classmethod
    def for_payload(cls, payload_len: int, seq: int) -> "RecordHeader":
        return cls(1 + payload_len + TAG_LEN, seq)

    def encode(self) -> bytes:
        """12 bytes; LocalProtocolError for a length or seq the format cannot carry."""
        if not MIN_BODY <= self.length <= MAX_BODY or not 0 <= self.seq <= MAX_SEQ:
            raise LocalProtocolError(f"record header ({self.length}, {self.seq}) out of range")
        return HEADER.pack(self.length, self.seq)


def decode_header(data: bytes) -> RecordHeader:
    """The header in the first HEADER_LEN bytes of `data`; RemoteProtocolError for a bad length."""
    if len(data) < HEADER_LEN:
        raise RemoteProtocolError(f"record header of {len(data)} bytes (need {HEADER_LEN})")
    length, seq = HEADER.unpack_from(data)
    if not MIN_BODY <= length <= MAX_BODY:
        raise RemoteProtocolError(f"record length {length} out of range")
    return RecordHeader(length, seq)


def decode_record(data: bytes) -> tuple:
    """(RecordHeader, sealed body) of exactly one whole record; RemoteProtocolError otherwise."""
    header = decode_header(data)
    if len(data) != HEADER_LEN + header.length:
        raise RemoteProtocolError(
            f"record header says {header.length} bytes follow, {len(data) - HEADER_LEN} do")
    return header, bytes(data[HEADER_LEN:])


def encode_record(header: RecordHeader, body: bytes) -> bytes:
    """Header + an already sealed body; LocalProtocolError if they disagree."""
    if len(body) != header.length:
        raise LocalProtocolError("record body length differs from its header")
    return header.encode() + bytes(body)
