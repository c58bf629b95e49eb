"""The TagIO handshake: SPAKE2 with explicit key confirmation, then a SecureChannel.

Theory of operation. A = the viewer (viewer ID), B = the host (host ID); the
session id, both IDs and a protocol label form the context that goes into w
(kdf.spake2_w), into the confirmation keys (as RFC 9382's AAD) and into the
record keys, so a transcript from one session verifies in no other.

    viewer                                   host (secrets s_1..s_k, k <= 2 in practice)
    HELLO(version, ctx_tag, pA)      ->
                                     <-      REPLY([(pB_i, B_conf_i) for each slot])
    (find the slot whose B_conf verifies; none -> ABORT + WrongPasswordError)
    CONFIRM(i, A_conf_i)             ->
                                     <-      FINISHED(mac) | ABORT(wrong password)

The host runs one independent SPAKE2 (fresh y_i) per secret, so an attacker
still gets exactly one guess per secret per attempt: its pA commits it to one
w, and B_conf_i only tells it whether that w equals w_i. The host always
fills REPLY_SLOTS slots (random secrets pad it) in a random order, so the
wire shows neither whether a permanent password is set nor which one
matched. FINISHED is a MAC only the real host can make; it tells the viewer
the host accepted, so both sides return a channel only on mutual success.

Every message is a frame `type (1) || length (2) || payload` with exact,
per-type payload sizes (at most MAX_PAYLOAD), encoded and decoded by
tagio.protocol.handshake (the byte layout lives there); the whole handshake must end
within `timeout` seconds (a watchdog closes the stream otherwise). On any
failure the stream is closed and one TagioError is raised:
WrongPasswordError, RemoteProtocolError (malformed message or point),
SecureChannelError (bad FINISHED), TransportTimeout, ConnectionClosed.
"""

import enum
import hashlib
import hmac
import random
import secrets as _secrets
import threading

from tagio.crypto import kdf
from tagio.crypto.channel import SecureChannel
from tagio.crypto.spake2 import CONF_LEN, POINT_LEN, ROLE_A, ROLE_B, Spake2Party
from tagio.errors import (
    LocalProtocolError, RemoteProtocolError, SecureChannelError, TagioError, TransportTimeout,
    WrongPasswordError,
)
from tagio.net.stream import recv_exactly
from tagio.protocol import handshake as wire
from tagio.protocol.handshake import (  # noqa: F401  (the wire names callers and tests use)
    CTX_TAG_LEN, FRAME_HEADER, HANDSHAKE_VERSION, MAX_PAYLOAD, MAX_SLOTS, VERSION, Abort, AbortMsg,
    ConfirmMsg, FinishedMsg, Msg, decode_reply, encode, encode_frame, encode_hello, encode_reply,
    parse_header,
)

REPLY_SLOTS = 2
_FINISHED_LABEL = b"TagIO handshake finished v1"
assert (wire.POINT_LEN, wire.CONF_LEN) == (POINT_LEN, CONF_LEN), "the codec's sizes follow SPAKE2's"


class Step(enum.Enum):
    """Where each side waits for the peer, in protocol order."""
    HOST_AWAITS_HELLO = "host awaits HELLO"
    VIEWER_AWAITS_REPLY = "viewer awaits REPLY"
    HOST_AWAITS_CONFIRM = "host awaits CONFIRM"
    VIEWER_AWAITS_FINISHED = "viewer awaits FINISHED"


# The transition table: the one message each step accepts (ABORT is accepted everywhere and
# becomes its error). Anything else is a RemoteProtocolError.
EXPECTED = {
    Step.HOST_AWAITS_HELLO: Msg.HELLO,
    Step.VIEWER_AWAITS_REPLY: Msg.REPLY,
    Step.HOST_AWAITS_CONFIRM: Msg.CONFIRM,
    Step.VIEWER_AWAITS_FINISHED: Msg.FINISHED,
}

ABORT_ERRORS = {
    Abort.WRONG_PASSWORD: (WrongPasswordError, "wrong password"),
    Abort.PROTOCOL: (RemoteProtocolError, "the peer rejected our handshake message"),
}


# ---- I/O helpers ---------------------------------------------------------------------

class _Watchdog:
    """Closes the stream when the deadline passes, so any blocked recv returns."""

    def __init__(self, stream, timeout):
        self._stream = stream
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        with self._lock:
            if not self._done:
                self.fired = True
                self._stream.close()

    def stop(self):
        with self._lock:
            self._done = True
        self._timer.cancel()
        if self._timer is not threading.current_thread():
            self._timer.join()


def _read(stream, step: Step):
    """Read the one message `step` expects and return it; ABORT becomes its error."""
    msg_type, length = parse_header(recv_exactly(stream, FRAME_HEADER.size))
    msg = wire.decode_payload(msg_type, recv_exactly(stream, length) if length else b"")
    if msg_type == Msg.ABORT:
        error, text = ABORT_ERRORS.get(msg.code, (RemoteProtocolError, f"abort code {msg.code}"))
        raise error(f"handshake refused by the peer: {text}")
    if msg_type != EXPECTED[step]:
        raise RemoteProtocolError(f"unexpected {msg_type.name} during the handshake ({step.value})")
    return msg


def _abort(stream, code: Abort) -> None:
    try:
        stream.send(encode(AbortMsg(code)))
    except TagioError:
        pass


def _run(stream, timeout, body):
    """Run body() under a watchdog; on failure close the stream and raise one clear error."""
    dog = _Watchdog(stream, timeout)
    try:
        channel = body()
    except TagioError as exc:
        if isinstance(exc, RemoteProtocolError):
            _abort(stream, Abort.PROTOCOL)
        stream.close()
        if dog.fired:
            raise TransportTimeout(f"handshake did not finish within {timeout:g} s") from None
        raise
    except BaseException:
        stream.close()  # a bug or an interrupt: the stream is unusable mid-handshake
        raise
    finally:
        dog.stop()
    if dog.fired:  # it fired as body() returned: the channel's stream is already closed
        raise TransportTimeout(f"handshake did not finish within {timeout:g} s")
    return channel


def _finished_mac(result) -> bytes:
    return hmac.new(result.kc_b, _FINISHED_LABEL + result.transcript, hashlib.sha256).digest()


def _channel(stream, result, context, role) -> SecureChannel:
    keys = kdf.record_keys(result.ke, context, kdf.transcript_hash(result.transcript))
    mine, theirs = ("v2h", "h2v") if role == ROLE_A else ("h2v", "v2h")
    return SecureChannel(stream, send_key=keys[mine][0], send_prefix=keys[mine][1],
                         recv_key=keys[theirs][0], recv_prefix=keys[theirs][1])


def _context(viewer_id, host_id, session_id) -> bytes:
    if not isinstance(session_id, (bytes, bytearray)) or not 1 <= len(session_id) <= 64:
        raise LocalProtocolError("session_id must be 1..64 bytes")
    return kdf.handshake_context(viewer_id, host_id, bytes(session_id))


def _ctx_tag(context: bytes) -> bytes:
    return hashlib.sha256(b"TagIO ctx tag|" + context).digest()[:CTX_TAG_LEN]


# ---- the two roles ---------------------------------------------------------------------

def viewer_handshake(stream, password: str, *, viewer_id: str, host_id: str, session_id: bytes,
                     timeout=10.0) -> SecureChannel:
    """Prove knowledge of the host's password and return the SecureChannel.

    Raises WrongPasswordError, RemoteProtocolError, SecureChannelError, TransportTimeout,
    ConnectionClosed. The slow password KDF runs before the timeout starts.
    """
    secret = kdf.password_secret(password, host_id)
    return viewer_handshake_secret(stream, secret, viewer_id=viewer_id, host_id=host_id,
                                   session_id=session_id, timeout=timeout)


def viewer_handshake_secret(stream, secret: bytes, *, viewer_id: str, host_id: str,
                            session_id: bytes, timeout=10.0) -> SecureChannel:
    """viewer_handshake with an already derived kdf.password_secret (e.g. a saved one)."""
    context = _context(viewer_id, host_id, session_id)
    w = kdf.spake2_w(bytes(secret), context)
    party = Spake2Party(ROLE_A, w, str(viewer_id).encode(), str(host_id).encode(), context)

    def body():
        stream.send(encode_hello(_ctx_tag(context), party.message))
        reply = _read(stream, Step.VIEWER_AWAITS_REPLY)
        index, result = _pick_slot(party, reply.slots)
        if result is None:
            _abort(stream, Abort.WRONG_PASSWORD)
            raise WrongPasswordError("wrong password")
        stream.send(encode(ConfirmMsg(index, result.my_confirmation)))
        finished = _read(stream, Step.VIEWER_AWAITS_FINISHED)
        if not hmac.compare_digest(finished.mac, _finished_mac(result)):
            raise SecureChannelError("handshake FINISHED message failed authentication")
        return _channel(stream, result, context, ROLE_A)

    return _run(stream, timeout, body)


def _pick_slot(party, slots):
    for index, (p_b, conf_b) in enumerate(slots):
        result = party.finish(p_b)
        if result.verify_peer(conf_b):
            return index, result
    return None, None


def host_handshake(stream, secrets: list, *, viewer_id, host_id, session_id,
                   timeout=10.0) -> SecureChannel:
    """Answer a viewer; return the SecureChannel if it knew one of `secrets`.

    `secrets` are kdf.password_secret() values (one-time first, then permanent).
    The returned channel has `matched_secret` = the index into `secrets` that
    matched. Raises as viewer_handshake does.
    """
    # (index into `secrets`, secret): an empty entry (no one-time password) is skipped but keeps
    # the numbering, so matched_secret always indexes the caller's list.
    real = [(i, bytes(s)) for i, s in enumerate(secrets) if s]
    if not 1 <= len(real) <= MAX_SLOTS:
        raise LocalProtocolError(f"host_handshake needs 1..{MAX_SLOTS} secrets")
    context = _context(viewer_id, host_id, session_id)

    def body():
        hello = _read(stream, Step.HOST_AWAITS_HELLO)
        _check_hello(hello, context)
        slots = _host_slots(real, hello.p_a, viewer_id, host_id, context)
        stream.send(encode_reply([(party.message, result.conf_b) for party, result, _ in slots]))
        confirm = _read(stream, Step.HOST_AWAITS_CONFIRM)
        index, conf_a = confirm.index, confirm.conf_a
        if index >= len(slots) or slots[index][2] is None or not slots[index][1].verify_peer(conf_a):
            _abort(stream, Abort.WRONG_PASSWORD)
            raise WrongPasswordError("wrong password")
        _, result, matched = slots[index]
        stream.send(encode(FinishedMsg(_finished_mac(result))))
        channel = _channel(stream, result, context, ROLE_B)
        channel.matched_secret = matched
        return channel

    return _run(stream, timeout, body)


def _check_hello(hello, context: bytes) -> None:
    if hello.version != VERSION:
        raise RemoteProtocolError(f"unsupported handshake version {hello.version} (we speak {VERSION})")
    if not hmac.compare_digest(hello.ctx_tag, _ctx_tag(context)):
        raise RemoteProtocolError("handshake is for another session or ID")


def _host_slots(real, p_a, viewer_id, host_id, context) -> list:
    """[(party, result, index into the caller's secrets or None for padding)], shuffled."""
    entries = list(real) + [(None, _secrets.token_bytes(32))
                                       for _ in range(max(0, REPLY_SLOTS - len(real)))]
    random.SystemRandom().shuffle(entries)
    slots = []
    for matched, secret in entries:
        party = Spake2Party(ROLE_B, kdf.spake2_w(secret, context), str(viewer_id).encode(),
                            str(host_id).encode(), context)
        slots.append((party, party.finish(p_a), matched))
    return slots
