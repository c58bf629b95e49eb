"""Fuzz targets: one per parser, each with its seeds, its decoder and its round-trip check.

A target's `parse(data)` runs the real decoder on untrusted bytes and returns what it decoded
(a list, maybe empty); it may raise only the errors in `allowed` (ProtocolError, plus the error a
layer documents for itself: SecureChannelError for the record opener, ConfigError for the address
parser, which reads settings, not wire bytes). `round_trip(item)` encodes a decoded item again
and checks that decoding that gives the same thing (and that encoding is stable); it raises
RoundTripError otherwise. Seeds are the golden vectors in tests/data/.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from tagio.crypto.records import RecordOpener, RecordSealer
from tagio.crypto.relay_auth import check_realm
from tagio.crypto.spake2 import _G, decode_point, encode_point
from tagio.errors import ConfigError, ProtocolError, SecureChannelError
from tagio.protocol import address as addr
from tagio.protocol import direct, framing, handshake, lan, proof, records, rudp, session
from tagio.protocol import relay as relay_msgs
from tagio.protocol import websocket as ws

DATA = Path(__file__).resolve().parent.parent / "data"
RECORD_KEY, RECORD_PREFIX = bytes(range(32)), bytes.fromhex("a0a1a2a3")    # as in test_protocol_records
RUDP_CONN, RUDP_KEY = bytes.fromhex("01020304"), bytes(range(32))          # as in test_protocol_rudp


class RoundTripError(AssertionError):
    """decode(encode(x)) did not give x back."""


def _vectors(fmt: str) -> list:
    return [bytes.fromhex(h) for h in json.loads((DATA / f"{fmt}_golden_vectors.json").read_text()).values()]


def _same(encode, decode, item):
    """Encode item, decode it, encode again: the message and the bytes must both come back."""
    first = encode(item)
    again = decode(first)
    # repr, not ==, for messages with a float NaN inside (a NaN is not equal to itself)
    if encode(again) != first or (again != item and repr(again) != repr(item)):
        raise RoundTripError(f"{item!r} came back as {again!r}")


@dataclass
class Target:
    name: str
    seeds: object           # () -> list of bytes
    parse: object           # bytes -> list of decoded items
    round_trip: object      # item -> None, raises RoundTripError
    allowed: tuple = (ProtocolError,)


# ---- relay: frames on a stream, one frame per datagram, messages by type table ------------------

def _relay_parse(data):
    decoder = framing.FrameDecoder()
    frames = decoder.feed(data)
    decoder.eof()
    items = [relay_msgs.decode_message(f) for f in frames]
    if data[framing.HEADER_LEN - 1:framing.HEADER_LEN]:     # and the same bytes as one datagram
        items.append(relay_msgs.decode_message(framing.decode_datagram(data)))
    return items


def _relay_decode(raw):
    frame, = framing.FrameDecoder().feed(raw)
    return relay_msgs.decode_message(frame)


# ---- relay secret: the auth messages, then the SPAKE2 point and realm checks behind them ---------------

def _relay_auth_seeds():
    point = encode_point(_G * 0x2B3C4D5E6F)     # a real point, so the curve check is reached and passed
    return [m.encode() for m in (relay_msgs.AuthReply(point), relay_msgs.AuthChallenge(bytes(32), "tagio-relay-1"),
                                 relay_msgs.Register("123456789", bytes(32), bytes(64), point),
                                 relay_msgs.AuthConfirm(bytes(range(32))))]


def _relay_auth_parse(data):
    items = _relay_parse(data)
    for item in items:
        if isinstance(item, relay_msgs.AuthReply):
            decode_point(item.point)
        elif isinstance(item, relay_msgs.Register) and item.auth_point:
            decode_point(item.auth_point)
        elif isinstance(item, relay_msgs.AuthChallenge):
            check_realm(item.realm)
    return items


# ---- records: the header codec, then the real opener with the vectors' key ------------------------

def _records_parse(data):
    if len(data) >= records.HEADER_LEN:
        header = records.decode_header(data)
        if header.encode() != bytes(data[:records.HEADER_LEN]):
            raise RoundTripError("record header did not re-encode to its bytes")
    opener = RecordOpener(RECORD_KEY, RECORD_PREFIX)
    opened = [(t, bytes(p)) for t, p in opener.feed(data)]
    if opened:      # what authenticated must be exactly what a sealer with the same key makes
        sealer = RecordSealer(RECORD_KEY, RECORD_PREFIX)
        sealed = b"".join(bytes(sealer.seal(p, t)) for t, p in opened)
        if sealed != bytes(data[:len(sealed)]):
            raise RoundTripError("opened records do not re-seal to the input")
    opener.end_of_stream()
    return []


# ---- reliable UDP: half the inputs get a valid MAC so the body parsers are reached ----------------

def _rudp_parse(data):
    if len(data) > rudp.MAC_LEN and data[0] & 1:
        data = data[:-rudp.MAC_LEN] + rudp._mac(RUDP_KEY, data[:-rudp.MAC_LEN])
    items = [rudp.decode(data, RUDP_CONN, RUDP_KEY)]
    if isinstance(items[0], rudp.Data):
        seq, ts, flags, payload = rudp.decode_data(data, RUDP_CONN, RUDP_KEY)
        if rudp.Data(seq, ts, flags, bytes(payload)) != items[0]:
            raise RoundTripError("decode_data and decode disagree")
    return items


# ---- WebSocket: both directions; data and ping payloads re-framed --------------------------------

def _ws_parse(data):
    masked = len(data) > 1 and bool(data[1] & 0x80)
    return WsDecoderItems(ws.WsDecoder(expect_masked=masked).feed(data))


def WsDecoderItems(events):
    return [(kind, payload) for kind, payload in events if kind in ("data", "ping")]


def _ws_round_trip(item):
    kind, payload = item
    opcode = ws.OP_BINARY if kind == "data" else ws.OP_PING
    for mask in (False, True):
        back = ws.WsDecoder(expect_masked=mask).feed(ws.ws_frame(payload, mask, opcode))
        if back != [(kind, payload)]:
            raise RoundTripError(f"{kind} frame of {len(payload)} bytes came back as {back!r}")


# ---- addresses: settings text, not wire bytes --------------------------------------------------------

_SCHEME_OF = {flags: scheme for scheme, flags in addr.SCHEMES.items() if scheme != "tagio"}


def _address_seeds():
    return [text.encode("utf-8") for text in json.loads((DATA / "address_vectors.json").read_text())]


def _address_parse(data):
    return [addr.parse_relay(data.decode("utf-8", "replace"))]


def _address_round_trip(target):
    scheme = _SCHEME_OF.get((target.tls, target.websocket), "tagio")
    text = f"{scheme}://{addr.format_address(target.address)}{target.ws_path}"
    bare = addr.format_address(target.address)
    if len(text) > addr.MAX_ADDRESS_TEXT:       # near the length limit: a form that fits, if any
        text = bare if scheme == "tagio" and target.ws_path == ws.WS_PATH else ""
    if len(text) > addr.MAX_ADDRESS_TEXT or not text:
        return
    again = addr.parse_relay(text)
    if again != target or addr.parse_address(bare) != target.address:
        raise RoundTripError(f"{target!r} -> {text!r} -> {again!r}")


TARGETS = [
    Target("relay", lambda: _vectors("relay"), _relay_parse,
           lambda msg: _same(lambda m: m.encode(), _relay_decode, msg)),
    Target("relay_auth", _relay_auth_seeds, _relay_auth_parse,
           lambda msg: _same(lambda m: m.encode(), _relay_decode, msg)),
    Target("handshake", lambda: _vectors("handshake"), lambda d: [handshake.decode(d)],
           lambda msg: _same(handshake.encode, handshake.decode, msg)),
    Target("records", lambda: _vectors("records"), _records_parse, lambda item: None,
           (ProtocolError, SecureChannelError)),
    Target("session", lambda: _vectors("session"), lambda d: [session.decode(d)],
           lambda msg: _same(session.encode, session.decode, msg)),
    Target("rudp", lambda: _vectors("rudp"), _rudp_parse,
           lambda msg: _same(lambda m: rudp.encode(m, RUDP_CONN, RUDP_KEY),
                             lambda d: rudp.decode(d, RUDP_CONN, RUDP_KEY), msg)),
    Target("websocket", lambda: _vectors("websocket"), _ws_parse, _ws_round_trip),
    Target("lan", lambda: _vectors("lan"), lambda d: [lan.decode(d)],
           lambda msg: _same(lambda m: m.encode(), lan.decode, msg)),
    Target("direct", lambda: _vectors("direct"), lambda d: [direct.decode_preamble(d)],
           lambda msg: _same(lambda m: m.encode(), direct.decode_preamble, msg)),
    Target("proof", lambda: _vectors("proof"), lambda d: [proof.decode(d)],
           lambda msg: _same(lambda m: m.encode(), proof.decode, msg)),
    Target("address", _address_seeds, _address_parse, _address_round_trip, (ConfigError,)),
]
TARGETS_BY_NAME = {t.name: t for t in TARGETS}
