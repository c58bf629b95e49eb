"""Telling a viewer at once why the host will not take it: busy, too many attempts, declined.

Theory of operation. A host that refuses an attempt before any handshake (all its incoming slots
are taken, or the attempt limiter says no) used to stay silent, and the viewer raced its paths for
the whole connect timeout before it read "could not reach the peer". Now the host answers on the
relay path, the one path both sides always open:

    host  binds the rendezvous' relay token, reads (and drops) the viewer's handshake HELLO, and
          writes REFUSAL_MAGIC + one code byte instead of a handshake REPLY, then closes;
    viewer  runs its handshake on a `RefusalAware` stream: when the first byte the host sends is
          0x00 (no handshake message starts so, crypto/handshake.py's types are 1..5), the rest
          is read as a refusal and PartnerRefused (an AuthError, so the path race stops at once)
          carries the code.

No password is involved and nothing is checked: a refusal is as unauthenticated as the relay's own
"offline", and a party that could forge it could as well drop the connection. The host sends at
most MAX_REFUSING refusals at once (threads are counted, junk must cost the sender); beyond that
a refused viewer waits for its timeout as before.

A refusal after the handshake ("declined" by the host's user) needs none of this: the host says
Bye inside the secure channel, and the viewer's admission step (admission.py) raises the same
PartnerRefused("declined").

The other way round: a viewer that will not go on before any handshake (the relay named a key for
the host that is not the one pinned, "key_changed") tells the host the same way (`tell_host`): it
binds the relay token and writes the refusal where its HELLO would be. The host reads its relay
path through `RefusalAware` too, so its attempt ends at once instead of waiting out its handshake
timeout with no partner.
"""

import logging
import threading

from tagio.errors import AuthError, RemoteProtocolError, TagioError

log = logging.getLogger("tagio.client")

REFUSAL_MAGIC = b"\x00TagIO-refused-v1"
CODES = {1: "busy", 2: "rate_limited", 3: "declined", 4: "key_changed"}
CODE_BYTES = {name: code for code, name in CODES.items()}
MAX_REFUSING = 2            # refusals in flight at once; more are silent
REFUSE_TIMEOUT = 3.0        # the viewer's relay path opens 0.3 s after its rendezvous
TELL_HOST_TIMEOUT = 2.0     # how long a refusing viewer waits for the host on the relay path
HELLO_WAIT = 1.0            # how long the host waits for the viewer's HELLO before answering


class PartnerRefused(AuthError):
    """The partner's desk would not take this connection; `code` is one of CODES' names."""

    def __init__(self, code, text=None):
        super().__init__(text or f"the partner refused the connection ({code})")
        self.code = code


def encode_refusal(code: str) -> bytes:
    return REFUSAL_MAGIC + bytes([CODE_BYTES[code]])


def decode_refusal(data: bytes) -> str:
    """The code of a refusal; RemoteProtocolError for anything else starting with 0x00."""
    if len(data) != len(REFUSAL_MAGIC) + 1 or not data.startswith(REFUSAL_MAGIC):
        raise RemoteProtocolError("the partner sent neither a handshake message nor a refusal")
    code = CODES.get(data[-1])
    if code is None:
        raise RemoteProtocolError(f"unknown refusal code {data[-1]}")
    return code


class RefusalAware:
    """A viewer-side Stream wrapper: the first byte from the host tells a refusal from a REPLY.
    Everything else is passed through (attributes too)."""

    def __init__(self, stream):
        self._stream = stream
        self._first = True

    def recv(self, max_bytes=65536):
        data = self._stream.recv(max_bytes)
        if self._first and data:
            self._first = False
            if data[0] == 0:
                raise PartnerRefused(decode_refusal(self._read_rest(data)))
        return data

    def _read_rest(self, data):
        need = len(REFUSAL_MAGIC) + 1
        while len(data) < need:
            more = self._stream.recv(need - len(data))
            if not more:
                break
            data += more
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Refuser:
    """The host side: answer refused rendezvous on their relay path, a few at a time."""

    def __init__(self):
        self._slots = threading.BoundedSemaphore(MAX_REFUSING)
        self._threads = []
        self._lock = threading.Lock()

    def refuse(self, relay, peer, code):
        """Start telling the viewer of `peer` (a relay PeerInfo) why not; returns at once."""
        if relay is None or not peer.relay_token or not self._slots.acquire(False):
            return
        thread = threading.Thread(target=self._refuse, args=(relay, peer, code), daemon=True,
                                  name="refuse")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _refuse(self, relay, peer, code):
        try:
            send_refusal(relay.open_relay(peer.relay_token, timeout=REFUSE_TIMEOUT), code)
        except (TagioError, OSError) as exc:     # the viewer left, the relay went away: it was a courtesy
            log.debug("could not tell %s why it was refused: %s", peer.peer_id, exc)
        finally:
            self._slots.release()

    def join(self, timeout):
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


def tell_host(relay, peer, code, timeout=TELL_HOST_TIMEOUT):
    """The viewer side: tell the host of `peer` (a relay PeerInfo) on the relay path that we will
    not go on, and why, so its attempt ends now. A courtesy: a host that never binds (an older
    one, a relay gone) costs at most `timeout` seconds."""
    if relay is None or not peer.relay_token:
        return
    try:
        stream = relay.open_relay(peer.relay_token, timeout=timeout)
    except (TagioError, OSError) as exc:
        log.debug("could not tell %s why we stopped: %s", peer.peer_id, exc)
        return
    try:
        stream.send(encode_refusal(code))
    except (TagioError, OSError) as exc:
        log.debug("could not tell %s why we stopped: %s", peer.peer_id, exc)
    finally:
        stream.close()


def send_refusal(stream, code):
    """Read the viewer's HELLO (so closing does not reset the connection under our answer), answer
    with the refusal, close."""
    try:
        settimeout = getattr(stream, "settimeout", None)
        if settimeout is not None:
            settimeout(HELLO_WAIT)
        try:
            stream.recv(1024)
        except (TagioError, OSError):
            pass                        # no HELLO in time: answer anyway
        stream.send(encode_refusal(code))
    finally:
        stream.close()
