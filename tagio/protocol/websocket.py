"""WebSocket framing (RFC 6455), sans-I/O: the relay protocol through HTTPS-only front ends.

Theory of operation
-------------------
Some hosts (Render web services, many PaaS and corporate proxies) pass only
HTTP(S) to an application, but do pass WebSocket upgrades. A client may
therefore open `GET /tagio` with `Upgrade: websocket`; after `101 Switching
Protocols` the same TagIO byte stream (frames, then raw relayed bytes) travels
inside binary WebSocket frames. Message boundaries mean nothing here: both
sides treat the payloads as one ordered byte stream.

`ws_frame(data, mask)` builds one final binary frame (clients must mask,
servers must not). `WsDecoder(expect_masked).feed(bytes)` returns a list of
events: ("data", bytes), ("ping", bytes), ("close", b""); it is bounded
(MAX_WS_PAYLOAD per frame) and raises only RemoteProtocolError.
`accept_key(key)` is the handshake's Sec-WebSocket-Accept value.
"""

import base64
import hashlib
import os
import struct

from tagio.errors import RemoteProtocolError

WS_PATH = "/tagio"
MAX_WS_PAYLOAD = 1 << 20
MAX_CONTROL_PAYLOAD = 125
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_EVENTS = {OP_CONT: "data", OP_TEXT: "data", OP_BINARY: "data", OP_CLOSE: "close", OP_PING: "ping",
           OP_PONG: None}


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's key; RemoteProtocolError for a key that is not ASCII."""
    if not key.isascii():
        raise RemoteProtocolError("WebSocket: Sec-WebSocket-Key is not ASCII")
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def new_client_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key, repeated (masking and unmasking are the same)."""
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def ws_frame(data: bytes, mask: bool, opcode: int = OP_BINARY, key: bytes = None) -> bytes:
    """One final frame; a masked one uses a fresh random `key` unless one is given (tests)."""
    n = len(data)
    first = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = first + bytes([mask_bit | n])
    elif n < 1 << 16:
        head = first + bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = first + bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + bytes(data)
    key = os.urandom(4) if key is None else bytes(key)
    return head + key + apply_mask(bytes(data), key)


class WsDecoder:
    def __init__(self, expect_masked: bool, max_payload: int = MAX_WS_PAYLOAD):
        self.expect_masked = expect_masked
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        self._buf += data
        events = []
        while True:
            frame = self._next()
            if frame is None:
                return events
            opcode, payload = frame
            kind = _EVENTS.get(opcode)
            if kind is None and opcode != OP_PONG:
                raise RemoteProtocolError(f"WebSocket: unknown opcode {opcode}")
            if kind:
                events.append((kind, payload))

    def _next(self):
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode, masked, n = buf[0] & 0x0F, bool(buf[1] & 0x80), buf[1] & 0x7F
        if buf[0] & 0x70:
            raise RemoteProtocolError("WebSocket: reserved bits set (no extensions were agreed)")
        if masked != self.expect_masked:
            raise RemoteProtocolError("WebSocket: frame masking is wrong for this direction")
        pos = 2
        if n >= 126:
            size = 2 if n == 126 else 8
            if len(buf) < pos + size:
                return None
            n = int.from_bytes(buf[pos:pos + size], "big")
            pos += size
        if n > self.max_payload:
            raise RemoteProtocolError(f"WebSocket: frame of {n} bytes exceeds {self.max_payload}")
        if opcode >= OP_CLOSE and (n > MAX_CONTROL_PAYLOAD or not buf[0] & 0x80):
            # RFC 6455 5.5: control frames are short and never fragmented (each ping costs us a pong)
            raise RemoteProtocolError("WebSocket: control frame too long or fragmented")
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        return opcode, apply_mask(payload, key) if masked else payload

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def data_of(events) -> tuple:
    """(payload bytes, pings, closed) from a list of decoder events."""
    data = b"".join(p for kind, p in events if kind == "data")
    pings = [p for kind, p in events if kind == "ping"]
    closed = any(kind == "close" for kind, _ in events)
    return data, pings, closed
