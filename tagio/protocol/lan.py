"""LAN discovery datagrams, sans-I/O: announcements and queries on the local network.

Theory of operation
-------------------
Two datagrams, told apart by their 4-byte magic (the table MESSAGE_TYPES maps magic -> class):

    ANNOUNCE  "TGLA" | version (1) | 9-digit ID (9, ASCII) | port (2)     16 bytes
    QUERY     "TGLQ" | version (1) | nonce (4)                             9 bytes

An announcement says "this ID listens on this port" (the address is the datagram's source); a
query asks every listener to announce now, and its random nonce lets a browser ignore the echo
of its own broadcast. Nothing here is secret: an ID and a port are what the relay hands out
anyway, and any connection still needs the PAKE. The socket side (net/lan.py) sends and
receives; this module only encodes (`msg.encode()`, LocalProtocolError for values we must never
send) and decodes (`decode(datagram)`, exact lengths, RemoteProtocolError only).
"""

import struct
from dataclasses import dataclass

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.ids import is_valid_id
from tagio.protocol.version import LAN_VERSION

VERSION = LAN_VERSION
ANNOUNCE = struct.Struct("!4sB9sH")
QUERY = struct.Struct("!4sB4s")
ANNOUNCE_MAGIC, QUERY_MAGIC = b"TGLA", b"TGLQ"
NONCE_LEN = 4


@dataclass(frozen=True)
class Announcement:
    id: str
    port: int
    MAGIC = ANNOUNCE_MAGIC
    LAYOUT = ANNOUNCE

    def encode(self) -> bytes:
        if not isinstance(self.id, str) or not is_valid_id(self.id) or not (
                isinstance(self.port, int) and 0 < self.port < 65536):
            raise LocalProtocolError("an announcement needs a 9-digit ID and a port")
        return ANNOUNCE.pack(ANNOUNCE_MAGIC, LAN_VERSION, self.id.encode("ascii"), self.port)

    @classmethod
    def parse(cls, fields: tuple):
        _magic, _version, raw_id, port = fields
        if not (raw_id.isdigit() and raw_id[:1] != b"0" and port):
            raise RemoteProtocolError("LAN announcement carries a malformed ID or port 0")
        return cls(raw_id.decode("ascii"), port)


@dataclass(frozen=True)
class Query:
    nonce: bytes  # 4 random bytes: a browser ignores the echo of its own broadcast query
    MAGIC = QUERY_MAGIC
    LAYOUT = QUERY

    def encode(self) -> bytes:
        if not isinstance(self.nonce, (bytes, bytearray)) or len(self.nonce) != NONCE_LEN:
            raise LocalProtocolError("a LAN query carries a 4-byte nonce")
        return QUERY.pack(QUERY_MAGIC, LAN_VERSION, bytes(self.nonce))

    @classmethod
    def parse(cls, fields: tuple):
        return cls(fields[2])


MESSAGE_TYPES = {cls.MAGIC: cls for cls in (Announcement, Query)}


def encode_announcement(client_id: str, port: int) -> bytes:
    return Announcement(client_id, port).encode()


def encode_query(nonce: bytes = b"\0\0\0\0") -> bytes:
    return Query(nonce).encode()


def decode(datagram: bytes):
    """Announcement or Query; RemoteProtocolError for anything else."""
    cls = MESSAGE_TYPES.get(bytes(datagram[:4]))
    if cls is None or len(datagram) != cls.LAYOUT.size or datagram[4] != LAN_VERSION:
        raise RemoteProtocolError("not a TagIO LAN datagram")
    return cls.parse(cls.LAYOUT.unpack(datagram))
