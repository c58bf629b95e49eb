"""Relay control messages: one dataclass per message, one table of type codes.

Theory of operation
-------------------
A TCP conversation with the relay goes:

    client                                   relay
    Hello(software)                 ->
                                    <-       Challenge(nonce, auth_required)
    Register(id, key, signature,    ->       (signature over REGISTER_CONTEXT + nonce + id + key;
             auth_proof, ...)                 auth_proof = HMAC(secret, AUTH_CONTEXT + nonce + id))
                                    <-       Registered(observed addr, time, heartbeat, udp token)
    Heartbeat                       <->      Heartbeat (echo, so both sides see liveness)
    Lookup(target, ref)             ->       is that ID online? (asked before the password)
                                    <-       LookupResult(ref, "online" | "offline" | "unknown")
    ConnectRequest(target, sid)     ->
                                    <-       PeerInfo(role "viewer") ... and the target gets role "host"
    Update(candidates, udp token?)  ->       re-announce local candidates
    Bye / Error                     <->

A relay connection opens with RelayBind(token) as its first frame; the relay
answers RelayReady when the second side arrives, and from then on the
connection carries raw bytes. UDP datagrams to the same port carry one frame:
UdpDiscover(udp_token, txid) -> UdpObserved(txid, observed addr).

The relay auth secret never crosses the wire: only an HMAC over the server's
fresh nonce does.

Each class lists FIELDS as (name, kind) with kinds from tagio.protocol.fields;
MESSAGE_TYPES maps type code -> class and drives both encoding and decoding.
decode_message raises only RemoteProtocolError.
"""

import hashlib
import hmac
from dataclasses import dataclass, field, fields as dc_fields

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol.fields import CODECS, Reader
from tagio.protocol.framing import Frame, encode_frame

REGISTER_CONTEXT = b"TagIO-register-v1"
AUTH_CONTEXT = b"TagIO-relay-auth-v1"
SOFTWARE = "tagio/1"


def registration_message(nonce: bytes, client_id: str, public_key: bytes) -> bytes:
    """What a client signs with its Ed25519 key to prove it owns `client_id`."""
    return REGISTER_CONTEXT + nonce + client_id.encode("ascii", "replace") + public_key


def auth_proof(secret: str, nonce: bytes, client_id: str) -> bytes:
    """HMAC-SHA256 proof of the relay secret bound to this challenge (the secret stays local)."""
    msg = AUTH_CONTEXT + nonce + client_id.encode("ascii", "replace")
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).digest()


class Message:
    TYPE = 0
    FIELDS = ()

    def encode_payload(self) -> bytes:
        name = type(self).__name__
        parts = []
        for fname, kind in self.FIELDS:
            enc, _dec = CODECS[kind]
            parts.append(enc(getattr(self, fname), f"{name}.{fname}"))
        return b"".join(parts)

    def encode(self) -> bytes:
        """The whole frame; raises LocalProtocolError for values the protocol cannot carry."""
        return encode_frame(self.TYPE, self.encode_payload())

    @classmethod
    def decode_payload(cls, payload: bytes):
        reader = Reader(payload, cls.__name__)
        values = {}
        for fname, kind in cls.FIELDS:
            _enc, dec = CODECS[kind]
            values[fname] = dec(reader, fname)
        reader.finish()
        return cls(**values)


@dataclass
class Hello(Message):
    TYPE = 1
    FIELDS = (("software", "str"),)
    software: str = SOFTWARE


@dataclass
class Challenge(Message):
    TYPE = 2
    FIELDS = (("nonce", "b32"), ("auth_required", "u8"), ("software", "str"))
    nonce: bytes
    auth_required: int = 0
    software: str = SOFTWARE


@dataclass
class Register(Message):
    TYPE = 3
    FIELDS = (("client_id", "str"), ("public_key", "b32"), ("signature", "b64"),
              ("auth_proof", "bytes"), ("local_candidates", "addrs"), ("nat_hint", "str"))
    client_id: str
    public_key: bytes
    signature: bytes
    auth_proof: bytes = b""
    local_candidates: list = field(default_factory=list)
    nat_hint: str = ""


@dataclass
class Registered(Message):
    TYPE = 4
    FIELDS = (("observed_addr", "addr"), ("server_time_ms", "u64"),
              ("heartbeat_interval_ms", "u32"), ("udp_token", "b16"))
    observed_addr: tuple
    server_time_ms: int
    heartbeat_interval_ms: int
    udp_token: bytes

    @property
    def server_time(self) -> float:
        """Relay wall-clock time at registration, seconds since the epoch."""
        return self.server_time_ms / 1000.0

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats the relay expects."""
        return self.heartbeat_interval_ms / 1000.0


@dataclass
class Heartbeat(Message):
    TYPE = 5
    FIELDS = (("seq", "u32"),)
    seq: int = 0


@dataclass
class ConnectRequest(Message):
    TYPE = 6
    FIELDS = (("target_id", "str"), ("session_id", "b16"))
    target_id: str
    session_id: bytes


@dataclass
class PeerInfoMsg(Message):
    TYPE = 7
    FIELDS = (("session_id", "b16"), ("role", "str"), ("peer_id", "str"), ("peer_public_key", "b32"),
              ("peer_public_addr", "addr"), ("peer_udp_addr", "addr?"),
              ("peer_local_candidates", "addrs"), ("relay_token", "b16"), ("nat_hint", "str"))
    session_id: bytes
    role: str
    peer_id: str
    peer_public_key: bytes
    peer_public_addr: tuple
    peer_udp_addr: object
    peer_local_candidates: list
    relay_token: bytes
    nat_hint: str = ""


@dataclass
class RelayBind(Message):
    TYPE = 8
    FIELDS = (("token", "b16"),)
    token: bytes


@dataclass
class RelayReady(Message):
    TYPE = 9
    FIELDS = ()


@dataclass
class Error(Message):
    TYPE = 10
    FIELDS = (("code", "str"), ("text", "str"), ("ref", "bytes"))
    code: str
    text: str
    ref: bytes = b""  # the session id of the request it answers, if any


@dataclass
class Bye(Message):
    TYPE = 11
    FIELDS = (("reason", "str"),)
    reason: str = ""


@dataclass
class Update(Message):
    TYPE = 12
    FIELDS = (("local_candidates", "addrs"), ("nat_hint", "str"))
    local_candidates: list = field(default_factory=list)
    nat_hint: str = ""


@dataclass
class Lookup(Message):
    """Is `target_id` known to the relay and online? Reveals nothing else; rate limited like
    ConnectRequest (the answer to a limited one is Error("rate_limited", ref))."""
    TYPE = 32
    FIELDS = (("target_id", "str"), ("ref", "b16"))
    target_id: str
    ref: bytes


LOOKUP_STATES = ("online", "offline", "unknown")


@dataclass
class LookupResult(Message):
    TYPE = 33
    FIELDS = (("ref", "b16"), ("state", "str"))
    ref: bytes
    state: str      # one of LOOKUP_STATES

    @classmethod
    def decode_payload(cls, payload: bytes):
        msg = super().decode_payload(payload)
        if msg.state not in LOOKUP_STATES:
            raise RemoteProtocolError(f"unknown lookup state {msg.state!r}")
        return msg


# With this much padding the smallest query (55 bytes) outweighs the largest answer (47, IPv6):
# a spoofed query gains nothing. The relay ignores queries with less.
UDP_PADDING = 24


@dataclass
class UdpDiscover(Message):
    TYPE = 13
    FIELDS = (("udp_token", "bytes"), ("txid", "b16"), ("padding", "bytes"))
    udp_token: bytes
    txid: bytes
    padding: bytes = bytes(UDP_PADDING)


@dataclass
class UdpObserved(Message):
    TYPE = 14
    FIELDS = (("txid", "b16"), ("observed_addr", "addr"), ("recorded", "u8"))
    txid: bytes
    observed_addr: tuple
    recorded: int = 0  # 1 when the relay matched udp_token to a registration


MESSAGE_TYPES = {cls.TYPE: cls for cls in (
    Hello, Challenge, Register, Registered, Heartbeat, ConnectRequest, PeerInfoMsg,
    RelayBind, RelayReady, Error, Bye, Update, UdpDiscover, UdpObserved, Lookup, LookupResult)}
assert len(MESSAGE_TYPES) == 16, "duplicate type code"


def decode_message(frame: Frame) -> Message:
    """Frame -> message; raises RemoteProtocolError for unknown types or bad payloads."""
    cls = MESSAGE_TYPES.get(frame.type_code)
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {frame.type_code}")
    return cls.decode_payload(frame.payload)


def encode_message(message: Message) -> bytes:
    if type(message).TYPE not in MESSAGE_TYPES:
        raise LocalProtocolError(f"{type(message).__name__} is not a relay message")
    return message.encode()


def message_fields(message: Message) -> dict:
    return {f.name: getattr(message, f.name) for f in dc_fields(message)}
