"""Both sides prove their IDs right after the handshake, before a name, a prompt or a picture.

Theory of operation. The PAKE proved the password; the IDs it bound are only what the relay or a
LAN dial claimed. So the first messages on a new channel are identity proofs (crypto/proof.py:
each side signs a value of this one channel, with its role, using the key its ID is derived
from; protocol/proof.py: the message):

    viewer                                      host
    PROOF(viewer)                          ->   checks it against the viewer ID it was told;
                                                a failed or missing proof: Bye(why), closed
                                           <-   PROOF(host)
    checks it against the ID it dialled
    (then the pinned key, client/pins.py)
    Introduce, Admission ... (admission.py)

The viewer speaks first, so the host gives its own proof only to a viewer that proved its ID, and
an older TagIO viewer (which sends its Introduce first and proves nothing) is answered with a Bye
whose words it shows as they are ("your partner runs a newer TagIO ...; update both sides"). A
newer viewer meeting an older host reads the host's Introduce where the proof should be and says
the same. Neither side ever treats a partner that proves nothing as proven: an older partner is
refused, not trusted.

Each side reads the partner's message within PROOF_TIMEOUT (a timer closes the channel); on any
failure the channel is closed and one TagioError is raised: IdentityProofError (the partner's
proof is wrong), PartnerRefused("identity") (the host refused ours), VersionMismatch (an older
partner), ConnectionClosed (the partner said Bye or left), TransportTimeout, RemoteProtocolError.
"""

import threading

from tagio.client.refusal import PartnerRefused
from tagio.crypto.proof import (ROLE_HOST, ROLE_VIEWER, IdentityProofError, binding, check_proof,
                                make_proof)
from tagio.errors import ConnectionClosed, RemoteProtocolError, TagioError, TransportTimeout
from tagio.protocol import proof as wire
from tagio.protocol import session as m
from tagio.protocol.version import PROOF_VERSION, VersionMismatch

PROOF_TIMEOUT = 10.0
NOT_PROVEN = "the partner could not prove your desk's ID"   # the host's Bye to a viewer it refused
OLDER = 0           # the proof "version" of a partner that sends none


def prove_to_host(channel, identity, host_id: str, timeout=PROOF_TIMEOUT) -> bytes:
    """The viewer's side: send our proof, then read and check the host's. Returns the host's
    proven key. Raises as the module docstring says; the channel is closed on failure."""
    return _guarded(channel, lambda: _viewer_steps(channel, identity, host_id, timeout))


def check_viewer(channel, identity, viewer_id: str, timeout=PROOF_TIMEOUT) -> bytes:
    """The host's side: read and check the viewer's proof, then send ours. Returns the viewer's
    proven key. A viewer whose proof fails or is missing gets a Bye saying why; raises as the
    module docstring says, and the channel is closed on failure."""
    return _guarded(channel, lambda: _host_steps(channel, identity, viewer_id, timeout))


def _viewer_steps(channel, identity, host_id, timeout) -> bytes:
    value = binding(channel)
    channel.send(make_proof(identity, ROLE_VIEWER, value).encode())
    proof = _partner_proof(_read(channel, timeout))
    return check_proof(proof, role=ROLE_HOST, expected_id=host_id, channel_binding=value)


def _host_steps(channel, identity, viewer_id, timeout) -> bytes:
    value = binding(channel)
    try:
        proof = _partner_proof(_read(channel, timeout))
        key = check_proof(proof, role=ROLE_VIEWER, expected_id=viewer_id, channel_binding=value)
    except VersionMismatch as exc:       # said from the viewer's side: its partner is newer
        _bye(channel, str(VersionMismatch(exc.what, exc.ours, exc.theirs)))
        raise
    except IdentityProofError:          # the detail stays in the host's log
        _bye(channel, NOT_PROVEN)
        raise
    channel.send(make_proof(identity, ROLE_HOST, value).encode())
    return key


def _guarded(channel, steps):
    try:
        return steps()
    except BaseException:
        channel.close()
        raise


class _Deadline:
    """Closes the channel when `timeout` passes before done(), so a blocked recv() returns; done()
    says whether it fired (then the channel is closed, whatever recv() returned)."""

    def __init__(self, channel, timeout):
        self._channel, self._lock = channel, threading.Lock()
        self._finished = self._fired = False
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self):
        with self._lock:
            if self._finished:
                return
            self._fired = True
        self._channel.close()

    def done(self) -> bool:
        with self._lock:
            self._finished = True
        self._timer.cancel()
        return self._fired


def _read(channel, timeout) -> bytes:
    """The partner's first message; TransportTimeout when it sends none within `timeout`."""
    deadline = _Deadline(channel, timeout)
    try:
        data = channel.recv()
    except TagioError:
        if deadline.done():
            raise TransportTimeout(f"the partner did not prove its ID within {timeout:g} s") from None
        raise
    if deadline.done():
        raise TransportTimeout(f"the partner did not prove its ID within {timeout:g} s")
    return data


def _partner_proof(data: bytes) -> wire.IdentityProof:
    """The proof in the partner's first message. A session message there: a Bye is the partner's
    goodbye (or, from a host, its refusal of our proof), an Introduce is an older TagIO."""
    if wire.is_proof(data):
        return wire.decode(data)
    msg = m.decode(data)
    if isinstance(msg, m.Bye):
        if msg.text.startswith(NOT_PROVEN):
            raise PartnerRefused("identity", msg.text)
        raise ConnectionClosed(msg.text or "the partner ended the connection")
    if isinstance(msg, m.Introduce):
        raise VersionMismatch("identity proof", OLDER, PROOF_VERSION)
    raise RemoteProtocolError(f"{type(msg).__name__} before the partner's identity proof")


def _bye(channel, text: str) -> None:
    try:
        channel.send(m.encode(m.Bye(text[:m.MAX_TEXT])))
    except TagioError:
        pass
