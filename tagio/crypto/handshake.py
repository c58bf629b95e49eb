"""The TagIO handshake: SPAKE2 or SPAKE2+ with explicit key confirmation, then a SecureChannel.

Theory of operation. A = the viewer (viewer ID), B = the host (host ID); the session id, both IDs
and a protocol label form the context that goes into the PAKE (as SPAKE2's w binding and AAD, or
SPAKE2+'s Context), the confirmation keys and the record keys, so a transcript from one session
verifies in no other.

Three kinds of password, one run each:

    one-time   SPAKE2 (RFC 9382, spake2.py), keyed by the one-time password's scrypt secret
    permanent  SPAKE2+ (RFC 9383, spake2plus.py): the host holds only the verifier (w0, L), so a
               stolen settings file does not let anyone in
    resume     SPAKE2 keyed by a broken session's resumption secret (client/resume.py; already
               high-entropy, so it goes straight to spake2_w like the one-time scrypt output); the
               host holds one per viewer ID, and none for any other viewer

The viewer knows which kind it typed by its shape (kdf.is_one_time_shaped; a permanent password
may not look like a one-time one) and says so only through the HELLO's tag (one tag per kind), so
it checks its one password against one host secret - exactly one guess per connect:

    viewer                                   host (one-time secret, permanent verifier, resume
                                                   secret; any may be unset)
    HELLO(version, tag(kind, ctx), share)  ->
                                             guesses.start()  (the guess counts from here on)
                                           <-  REPLY([(share', confirmation')])   exactly one slot
    CONFIRM(0, confirmation)               ->
                                             guesses.succeeded()
                                           <-  FINISHED(mac) | ABORT(wrong password)

The host answers every kind, set or not (an unset one is a random secret or verifier), so the wire
never shows which passwords it has. Its REPLY carries a confirmation MAC a guesser can check
locally and hang up on, so the host counts the guess (the `guesses` object, client/guesses.py)
BEFORE it sends the REPLY, and only mutual success takes it back; `guesses.start()` may refuse
(GuessLimitError: the host sends ABORT(GUESS_LIMIT) instead of a REPLY) or raise another TagioError
(e.g. another path of the session has the guess: the stream is closed, no REPLY). On the viewer, every
failure once a REPLY has arrived is a WrongPasswordError, which ends the whole connect; a OneGuess
shared by all the paths of one connect lets at most one REPLY be checked in vain, whoever answers.

Every message is a frame `type (1) || length (2) || payload` (tagio.protocol.handshake); the whole
handshake must end within `timeout` seconds (a watchdog closes the stream otherwise). On any
failure the stream is closed and one TagioError is raised: WrongPasswordError, GuessLimitError,
RemoteProtocolError (malformed message or point), TransportTimeout, ConnectionClosed.
"""

import enum
import hashlib
import hmac
import threading
from dataclasses import dataclass

from tagio.crypto import kdf
from tagio.crypto.channel import SecureChannel
from tagio.crypto.spake2 import CONF_LEN, POINT_LEN, ROLE_A, ROLE_B, Spake2Party, random_scalar
from tagio.crypto.spake2plus import Prover, Spake2PlusResult, Verifier, scalars_from_secret, verifier_L
from tagio.errors import (
    AuthError, LocalProtocolError, RemoteProtocolError, TagioError, TransportTimeout,
    WrongPasswordError,
)
from tagio.net.stream import recv_exactly
from tagio.protocol import handshake as wire
from tagio.protocol.version import check_peer_version
from tagio.protocol.handshake import (  # noqa: F401  (the wire names callers and tests use)
    CTX_TAG_LEN, FRAME_HEADER, HANDSHAKE_VERSION, MAX_PAYLOAD, MAX_SLOTS, VERSION, Abort, AbortMsg,
    ConfirmMsg, FinishedMsg, Msg, ReplyMsg, decode_reply, encode, encode_frame, encode_hello,
    encode_reply, parse_header,
)

REPLY_SLOTS = 1          # one slot: the viewer checks its one password against one host secret
_FINISHED_LABEL = b"TagIO handshake finished v1"
_SPAKE2PLUS_CONTEXT = b"TagIO SPAKE2+ v1|"
assert (wire.POINT_LEN, wire.CONF_LEN) == (POINT_LEN, CONF_LEN), "the codec's sizes follow SPAKE2's"


class GuessLimitError(AuthError):
    """The host takes no password guess now (too many wrong ones); it checked nothing."""


class Kind(enum.Enum):
    """Which password a run is keyed by; the value goes into the HELLO's tag."""
    ONE_TIME = b"one-time"
    PERMANENT = b"permanent"
    RESUME = b"resume"


def password_kind(password: str) -> Kind:
    return Kind.ONE_TIME if kdf.is_one_time_shaped(password) else Kind.PERMANENT


# channel.matched_secret, as the caller's list
MATCHED = {Kind.ONE_TIME: 0, Kind.PERMANENT: 1, Kind.RESUME: 2}


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
    Abort.GUESS_LIMIT: (GuessLimitError, "the partner takes no password now (too many wrong "
                                         "passwords were tried); try again later"),
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
    _ke, key = _session_keys(result)
    return hmac.new(key, _FINISHED_LABEL + result.transcript, hashlib.sha256).digest()


def _channel(stream, result, context, role) -> SecureChannel:
    ke, _key = _session_keys(result)
    keys = kdf.record_keys(ke, context, kdf.transcript_hash(result.transcript))
    mine, theirs = ("v2h", "h2v") if role == ROLE_A else ("h2v", "v2h")
    return SecureChannel(stream, send_key=keys[mine][0], send_prefix=keys[mine][1],
                         recv_key=keys[theirs][0], recv_prefix=keys[theirs][1])


def _context(viewer_id, host_id, session_id) -> bytes:
    if not isinstance(session_id, (bytes, bytearray)) or not 1 <= len(session_id) <= 64:
        raise LocalProtocolError("session_id must be 1..64 bytes")
    return kdf.handshake_context(viewer_id, host_id, bytes(session_id))


def _ctx_tag(context: bytes, kind=Kind.ONE_TIME) -> bytes:
    """Binds a HELLO to its session and says which kind of password the viewer typed."""
    return hashlib.sha256(b"TagIO ctx tag|" + kind.value + b"|" + context).digest()[:CTX_TAG_LEN]


# ---- what each side holds ------------------------------------------------------------------

@dataclass(frozen=True)
class HostKeys:
    """The host's passwords: the one-time password's scrypt secret and the permanent password's
    SPAKE2+ verifier (kdf.permanent_verifier, w0 || L); either may be None, not both. `resume`:
    the resumption secret of this viewer's broken session (client/resume.py), or None. `lone`: one
    shared password that answers whichever kind the viewer's password has (see from_list)."""
    one_time: bytes | None = None
    permanent: bytes | None = None
    lone: bool = False
    resume: bytes | None = None

    @classmethod
    def from_list(cls, secrets) -> "HostKeys":
        """From the list callers pass: [one-time secret or None, permanent], where a permanent
        entry may be a verifier or (tests, benchmarks) a 32-byte password secret, made into its
        verifier here; or [secret] alone: one password both sides know, whatever its shape."""
        if isinstance(secrets, HostKeys):
            return secrets
        items = list(secrets)
        if not 1 <= len(items) <= 2 or not any(items):
            raise LocalProtocolError("host_handshake needs a one-time secret and/or one permanent one")
        if len(items) == 1:
            return cls(items[0], kdf.verifier_from_secret(items[0]), lone=True)
        permanent = items[1]
        if permanent is not None and len(permanent) == kdf.SECRET_LEN:
            permanent = kdf.verifier_from_secret(permanent)
        return cls(items[0] or None, permanent or None)

    def matched(self, kind) -> int:
        """channel.matched_secret: the index into the caller's list of what matched."""
        return 0 if self.lone and kind is not Kind.RESUME else MATCHED[kind]

    def holds(self, kind) -> bool:
        """Is the password of `kind` set (else its slot is padding that matches nothing)?"""
        return bool({Kind.ONE_TIME: self.one_time, Kind.PERMANENT: self.permanent,
                     Kind.RESUME: self.resume}[kind])


# The SPAKE2 kinds and the host's secret for each (a resumption secret is used as the one-time
# password's scrypt output is: both are 32 uniformly random bytes).
_SPAKE2_SECRETS = {Kind.ONE_TIME: lambda keys: keys.one_time, Kind.RESUME: lambda keys: keys.resume}


def _spake2plus_context(context: bytes) -> bytes:
    return _SPAKE2PLUS_CONTEXT + context


def _viewer_party(kind, secret, viewer_id, host_id, context):
    ids = (str(viewer_id).encode(), str(host_id).encode())
    if kind in _SPAKE2_SECRETS:
        return Spake2Party(ROLE_A, kdf.spake2_w(bytes(secret), context), *ids, context)
    w0, w1 = scalars_from_secret(bytes(secret))
    return Prover(w0, w1, _spake2plus_context(context), *ids)


def _host_party(kind, keys: HostKeys, viewer_id, host_id, context):
    """The host's side for `kind`; an unset password is answered with a random one (padding)."""
    ids = (str(viewer_id).encode(), str(host_id).encode())
    if kind in _SPAKE2_SECRETS:
        secret = (_SPAKE2_SECRETS[kind](keys)
                  or kdf.hkdf_sha256(random_scalar().to_bytes(32, "big"), kdf.SECRET_LEN))
        return Spake2Party(ROLE_B, kdf.spake2_w(secret, context), *ids, context)
    if keys.permanent:
        w0, L = kdf.split_verifier(keys.permanent)
    else:
        w0, L = random_scalar(), verifier_L(random_scalar())
    return Verifier(w0, L, _spake2plus_context(context), *ids)


def _session_keys(result) -> tuple:
    """(Ke for the record keys, the key of the FINISHED MAC) of either PAKE's result."""
    if isinstance(result, Spake2PlusResult):
        return result.k_shared, result.k_confirm_v
    return result.ke, result.kc_b


class OneGuess:
    """One password guess per connect: shared by every path of one connect, it lets REPLYs be
    checked one at a time and, once one failed, none more (a spoofer, a squatter or a malicious
    relay answering on many paths still learns about one password only)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.spent = False

    def check(self, verify):
        """verify() -> result or raise WrongPasswordError; after one failure every call raises."""
        with self._lock:
            if self.spent:
                raise WrongPasswordError("wrong password")
            try:
                return verify()
            except WrongPasswordError:
                self.spent = True
                raise


# ---- the two roles ---------------------------------------------------------------------

def viewer_handshake(stream, password: str, *, viewer_id: str, host_id: str, session_id: bytes,
                     timeout=10.0, once=None) -> SecureChannel:
    """Prove knowledge of the host's password and return the SecureChannel.

    Raises WrongPasswordError, GuessLimitError, RemoteProtocolError, TransportTimeout,
    ConnectionClosed. The slow password KDF runs before the timeout starts.
    """
    secret = kdf.password_secret(password, host_id)
    return viewer_handshake_secret(stream, secret, kind=password_kind(password), viewer_id=viewer_id,
                                   host_id=host_id, session_id=session_id, timeout=timeout, once=once)


def viewer_handshake_secret(stream, secret: bytes, *, viewer_id: str, host_id: str,
                            session_id: bytes, timeout=10.0, kind=Kind.ONE_TIME,
                            once=None) -> SecureChannel:
    """viewer_handshake with an already derived kdf.password_secret and its password's Kind.
    `once`: the OneGuess of this connect (shared by its paths); a fresh one when None."""
    context = _context(viewer_id, host_id, session_id)
    party = _viewer_party(kind, secret, viewer_id, host_id, context)
    once = once if once is not None else OneGuess()

    def body():
        stream.send(encode_hello(_ctx_tag(context, kind), party.message))
        reply = _read(stream, Step.VIEWER_AWAITS_REPLY)
        # From here on the host has answered a guess: whatever fails is "wrong password".
        try:
            result = once.check(lambda: _check_reply(party, reply))
        except WrongPasswordError:
            _abort(stream, Abort.WRONG_PASSWORD)
            raise
        try:
            stream.send(encode(ConfirmMsg(0, result.my_confirmation)))
            finished = _read(stream, Step.VIEWER_AWAITS_FINISHED)
        except WrongPasswordError:
            raise
        except TagioError as exc:
            raise WrongPasswordError(f"the partner did not finish the handshake: {exc}") from exc
        if not hmac.compare_digest(finished.mac, _finished_mac(result)):
            raise WrongPasswordError("the partner's FINISHED message failed authentication")
        return _channel(stream, result, context, ROLE_A)

    return _run(stream, timeout, body)


def _check_reply(party, reply):
    """The one slot's result if its confirmation verifies; else WrongPasswordError."""
    try:
        if len(reply.slots) != REPLY_SLOTS:
            raise RemoteProtocolError(f"REPLY with {len(reply.slots)} slots")
        share, confirmation = reply.slots[0]
        result = party.finish(share)
        if result.verify_peer(confirmation):
            return result
    except RemoteProtocolError as exc:
        raise WrongPasswordError(f"wrong password (the reply was unusable: {exc})") from exc
    raise WrongPasswordError("wrong password")


def host_handshake(stream, secrets, *, viewer_id, host_id, session_id, timeout=10.0,
                   guesses=None) -> SecureChannel:
    """Answer a viewer; return the SecureChannel if it knew one of the host's passwords.

    `secrets`: a HostKeys, or [one-time secret or None, permanent] (HostKeys.from_list). The
    channel has `matched_secret` (0 one-time, 1 permanent, 2 resume) and `password_kind`. `guesses`: an
    object with start() (may raise GuessLimitError) and succeeded(), told of the one guess this
    run gives the viewer (`start(one_time=...)`: which password it is at). Raises as
    viewer_handshake does.
    """
    keys = HostKeys.from_list(secrets)
    context = _context(viewer_id, host_id, session_id)

    def body():
        hello = _read(stream, Step.HOST_AWAITS_HELLO)
        kind = _check_hello(hello, context)
        party = _host_party(kind, keys, viewer_id, host_id, context)
        result = party.finish(hello.p_a)       # a bad point ends the run before any guess
        if guesses is not None:
            _start_guess(stream, guesses, kind)  # BEFORE the REPLY: it lets the viewer check a guess
        stream.send(encode_reply([(party.message, result.my_confirmation)]))
        confirm = _read(stream, Step.HOST_AWAITS_CONFIRM)
        if confirm.index != 0 or not keys.holds(kind) or not result.verify_peer(confirm.conf_a):
            _abort(stream, Abort.WRONG_PASSWORD)
            raise WrongPasswordError("wrong password")
        if guesses is not None:
            guesses.succeeded()
        stream.send(encode(FinishedMsg(_finished_mac(result))))
        channel = _channel(stream, result, context, ROLE_B)
        channel.matched_secret, channel.password_kind = keys.matched(kind), kind
        return channel

    return _run(stream, timeout, body)


def _start_guess(stream, guesses, kind) -> None:
    try:
        guesses.start(one_time=kind is Kind.ONE_TIME)
    except GuessLimitError:
        _abort(stream, Abort.GUESS_LIMIT)
        raise


def _check_hello(hello, context: bytes) -> Kind:
    """The Kind this HELLO's tag names; RemoteProtocolError for another version or session."""
    check_peer_version("handshake", hello.version, VERSION)   # VersionMismatch says what to do
    for kind in Kind:
        if hmac.compare_digest(hello.ctx_tag, _ctx_tag(context, kind)):
            return kind
    raise RemoteProtocolError("handshake is for another session or ID")
