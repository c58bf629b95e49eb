"""Field codecs for message payloads, sans-I/O.

A message declares its fields as (name, kind) pairs; each kind is an entry in
CODECS, a table of (encode, decode) functions. Every decoder is bounded (each
length is checked against the bytes actually present and against a fixed
maximum) and raises only RemoteProtocolError; encoders raise
LocalProtocolError for values that cannot be sent.

Kinds
    u8 u16 u32 u64   unsigned big-endian integers
    b16 b32 b64      fixed-size byte strings (tokens, nonces, keys, signatures)
    bytes            u16 length + bytes (<= MAX_BYTES)
    str              u16 length + UTF-8 (<= MAX_STR bytes)
    addr             family (4 or 6) + IP + u16 port  -> (ip, port)
    addr?            the same, or family 0 for None
    addrs            u8 count (<= MAX_ADDRS) + that many addr
"""

import ipaddress
import struct

from tagio.errors import LocalProtocolError, RemoteProtocolError

MAX_BYTES = 1024
MAX_STR = 1024
MAX_ADDRS = 16

_INTS = {"u8": struct.Struct(">B"), "u16": struct.Struct(">H"),
         "u32": struct.Struct(">I"), "u64": struct.Struct(">Q")}
_FIXED = {"b16": 16, "b32": 32, "b64": 64}
_FAMILY_LEN = {4: 4, 6: 16}


class Reader:
    """A cursor over one payload; every take is bounds-checked."""

    def __init__(self, data: bytes, what: str):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise RemoteProtocolError(
                f"{self.what}: field {field!r} needs {n} bytes, only {len(self.data) - self.pos} left")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise RemoteProtocolError(f"{self.what}: {len(self.data) - self.pos} unexpected trailing bytes")


def _int_codec(kind):
    st = _INTS[kind]
    limit = 1 << (8 * st.size)

    def enc(value, field):
        if not isinstance(value, int) or not 0 <= value < limit:
            raise LocalProtocolError(f"field {field!r} must be an integer in [0, {limit})")
        return st.pack(value)

    def dec(reader, field):
        return st.unpack(reader.take(st.size, field))[0]
    return enc, dec


def _fixed_codec(size):
    def enc(value, field):
        if not isinstance(value, (bytes, bytearray)) or len(value) != size:
            raise LocalProtocolError(f"field {field!r} must be exactly {size} bytes")
        return bytes(value)

    def dec(reader, field):
        return reader.take(size, field)
    return enc, dec


def _enc_bytes(value, field):
    if not isinstance(value, (bytes, bytearray)) or len(value) > MAX_BYTES:
        raise LocalProtocolError(f"field {field!r} must be bytes of at most {MAX_BYTES}")
    return struct.pack(">H", len(value)) + bytes(value)


def _dec_bytes(reader, field):
    n = struct.unpack(">H", reader.take(2, field))[0]
    if n > MAX_BYTES:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} length {n} exceeds {MAX_BYTES}")
    return reader.take(n, field)


def _enc_str(value, field):
    if not isinstance(value, str):
        raise LocalProtocolError(f"field {field!r} must be a str")
    raw = value.encode("utf-8")
    if len(raw) > MAX_STR:
        raise LocalProtocolError(f"field {field!r} is longer than {MAX_STR} bytes")
    return struct.pack(">H", len(raw)) + raw


def _dec_str(reader, field):
    n = struct.unpack(">H", reader.take(2, field))[0]
    if n > MAX_STR:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} length {n} exceeds {MAX_STR}")
    try:
        return reader.take(n, field).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} is not valid UTF-8") from exc


def _enc_opt_addr(value, field):
    if value is None:
        return b"\x00"
    try:
        ip, port = value
        packed = ipaddress.ip_address(ip).packed
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"field {field!r} must be an (ip, port) pair, got {value!r}") from exc
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise LocalProtocolError(f"field {field!r} has a bad port {port!r}")
    family = 4 if len(packed) == 4 else 6
    return bytes([family]) + packed + struct.pack(">H", port)


def _dec_opt_addr(reader, field):
    family = reader.take(1, field)[0]
    if family == 0:
        return None
    if family not in _FAMILY_LEN:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} has unknown address family {family}")
    packed = reader.take(_FAMILY_LEN[family], field)
    port = struct.unpack(">H", reader.take(2, field))[0]
    return (str(ipaddress.ip_address(packed)), port)


def _enc_addr(value, field):
    if value is None:
        raise LocalProtocolError(f"field {field!r} must be an address, not None")
    return _enc_opt_addr(value, field)


def _dec_addr(reader, field):
    value = _dec_opt_addr(reader, field)
    if value is None:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} must be an address, got none")
    return value


def _enc_addrs(value, field):
    items = list(value)
    if len(items) > MAX_ADDRS:
        raise LocalProtocolError(f"field {field!r} holds more than {MAX_ADDRS} addresses")
    return bytes([len(items)]) + b"".join(_enc_addr(tuple(a), field) for a in items)


def _dec_addrs(reader, field):
    count = reader.take(1, field)[0]
    if count > MAX_ADDRS:
        raise RemoteProtocolError(f"{reader.what}: field {field!r} count {count} exceeds {MAX_ADDRS}")
    return [_dec_addr(reader, field) for _ in range(count)]


CODECS = {
    **{kind: _int_codec(kind) for kind in _INTS},
    **{kind: _fixed_codec(size) for kind, size in _FIXED.items()},
    "bytes": (_enc_bytes, _dec_bytes),
    "str": (_enc_str, _dec_str),
    "addr": (_enc_addr, _dec_addr),
    "addr?": (_enc_opt_addr, _dec_opt_addr),
    "addrs": (_enc_addrs, _dec_addrs),
}
