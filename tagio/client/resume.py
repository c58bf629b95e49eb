"""Reconnect: a session whose path broke comes back without a new password and without a new Accept.

Theory of operation. When a session's channel is made, both ends derive the same resumption secret
from it (`resume_secret`: the channel's key exporter, crypto.channel, with a label that names both
IDs). Nobody else can: it comes from the PAKE's keys. It is kept in memory only, never on disk, never
in a log or an event.

    host     `ResumeTickets` keeps one ticket per viewer ID: the secret and the rights (HostSession
             options) of the session it came from. While that session runs the ticket is "live";
             when the session ends by a broken path it stays for RESUME_TTL (60 s), when it ends any
             other way (a Bye from either side, the host's Disconnect) it is dropped at once. Each
             incoming attempt from that viewer ID gives the ticket's secret to the host handshake
             as its "resume" key (`secret_for`; the viewer's HELLO names that kind); a channel of
             that kind was the ticket (`take`: single use, removed on the spot). A live ticket may be taken too: the
             viewer saw the path break before we did, and the old session is then ended here.
             Disconnect (`refuse_all`) and the setting "allow automatic reconnect" off refuse it.
    viewer   `reconnect` tries `attempt()` (a connect with the resumption secret instead of a
             password) with short backoff for up to RESUME_TTL, as long as the failures are about
             the path or the relay (a relay that restarts, a partner not yet registered again).
             A refusal (the host no longer holds the ticket: WrongPasswordError) ends it at once,
             so a refused resume costs exactly one guess under the host's attempt limits.

A failed resume is a failed guess like any other: hosting.py counts it against the same limits
(GuessLimiter), and a host with no ticket answers the same padded slot, so the wire tells nothing. `lost_path(exc)` is the one rule for "the path broke" (the
partner did not say goodbye): transport errors and a cut secure channel, never a protocol error.
"""

import threading
import time
from dataclasses import dataclass, field

from tagio.client.refusal import PartnerRefused
from tagio.errors import (
    AuthError, ConfigError, ConnectionClosed, RelayError, RemoteProtocolError, SecureChannelError, TagioError,
    TransportError,
)

RESUME_LABEL = b"TagIO-resume-v1"
RESUME_TTL = 60.0           # seconds a secret stays usable after its session's path broke
SECRET_LEN = 32
MAX_TICKETS = 16            # the host keeps at most this many (oldest dropped first)
BACKOFF = (0.25, 0.5, 1.0)  # seconds between viewer attempts; then 1 s each (5 s goal after the path is back)
ATTEMPT_TIMEOUT = 8.0       # one attempt's connect timeout (the relay may be half up)
PEER_CLOSED = "the peer closed the secure channel"     # crypto.channel's words for a CLOSE record
# Relay refusals that no retry can change. Not "unknown_id": a relay that restarted without its
# state (an ephemeral disk) does not know the partner until the partner registers again, and
# that race was lost now and then (the viewer gave up 3 s after the relay came back).
FINAL_CODES = ("self", "identity", "auth_failed", "auth_required", "tls_required")


def resume_secret(channel, viewer_id, host_id) -> bytes:
    """The resumption secret of `channel`, bound to both IDs (alike on both ends)."""
    label = b"|".join((RESUME_LABEL, str(viewer_id).encode(), str(host_id).encode()))
    return channel.export(label, SECRET_LEN)


def lost_path(exc) -> bool:
    """Did `exc` end a session because the path broke (not a goodbye, not a broken protocol)?
    The partner's authenticated CLOSE record (crypto.channel: "the peer closed the secure channel",
    sent by a partner that ended the session but could not get its Bye out first) is a goodbye."""
    if isinstance(exc, RemoteProtocolError):
        return False
    if isinstance(exc, ConnectionClosed) and str(exc).startswith(PEER_CLOSED):
        return False
    return isinstance(exc, (TransportError, SecureChannelError))


# ---------------------------------------------------------------------------- host side


@dataclass(eq=False)
class Ticket:
    viewer_id: str
    secret: bytes = field(repr=False)
    options: dict
    session: object = None          # the HostSession while it runs
    expires: float | None = None    # None while live; then the clock time it stops being offered


class ResumeTickets:
    """The host's resumption tickets, one per viewer ID (pure: an injected clock, no I/O).

    `allowed()` is read at every use: the setting "allow automatic reconnect"."""

    def __init__(self, clock=time.monotonic, ttl=RESUME_TTL, allowed=lambda: True):
        self._clock = clock
        self._ttl = ttl
        self._allowed = allowed
        self._lock = threading.Lock()
        self._tickets = {}          # viewer ID -> Ticket (insertion order = age)

    def issue(self, viewer_id, secret, options, session=None) -> Ticket:
        """A session with `viewer_id` started: its ticket, live (replaces an older one)."""
        ticket = Ticket(str(viewer_id), bytes(secret), dict(options), session)
        with self._lock:
            self._tickets.pop(ticket.viewer_id, None)
            self._tickets[ticket.viewer_id] = ticket
            while len(self._tickets) > MAX_TICKETS:
                self._tickets.pop(next(iter(self._tickets)))
        return ticket

    def ended(self, ticket, lost: bool) -> None:
        """Its session ended: kept for the TTL when the path broke (and reconnect is allowed),
        else dropped. A ticket already taken or replaced is left alone."""
        with self._lock:
            if self._tickets.get(ticket.viewer_id) is not ticket:
                return
            ticket.session = None
            if lost and self._allowed():
                ticket.expires = self._clock() + self._ttl
            else:
                del self._tickets[ticket.viewer_id]

    def secret_for(self, viewer_id):
        """The secret to offer this viewer's next handshake, or None."""
        with self._lock:
            ticket = self._valid(str(viewer_id))
            return None if ticket is None else ticket.secret

    def take(self, viewer_id, secret):
        """The ticket whose secret just matched, removed (single use); None if it is gone."""
        with self._lock:
            ticket = self._valid(str(viewer_id))
            if ticket is None or ticket.secret != bytes(secret):
                return None
            del self._tickets[ticket.viewer_id]
            return ticket

    def refuse_all(self) -> None:
        """The host's user pressed Disconnect: nobody comes back without asking again."""
        with self._lock:
            self._tickets.clear()

    def __len__(self):
        with self._lock:
            return len(self._tickets)

    def _valid(self, viewer_id):
        ticket = self._tickets.get(viewer_id)
        if ticket is None:
            return None
        expired = ticket.expires is not None and self._clock() >= ticket.expires
        if expired or not self._allowed():
            del self._tickets[viewer_id]
            return None
        return ticket


# ---------------------------------------------------------------------------- viewer side


def reconnect(attempt, *, stop, deadline, clock=time.monotonic, on_retry=None):
    """Call `attempt(timeout)` until it returns (its value is returned), `stop` is set, or the
    clock passes `deadline`. Failures of the path or the relay are retried after BACKOFF; a
    refusal (wrong secret, the ID unknown, a ConfigError) is raised at once. Raises the last
    error when time runs out, ConnectCancelled-like errors from `attempt` as they come."""
    delays = iter(BACKOFF)
    last = None
    while not stop.is_set():
        left = deadline - clock()
        if left <= 0:
            break
        try:
            return attempt(min(ATTEMPT_TIMEOUT, max(left, 1.0)))
        except TagioError as exc:
            if not retryable(exc):
                raise
            last = exc
            if on_retry is not None:
                on_retry(exc)
        stop.wait(min(next(delays, BACKOFF[-1]), max(deadline - clock(), 0)))
    raise last or TransportError("the connection was lost")


def come_back(client, connection, *, stop, deadline=None, clock=time.monotonic):
    """Viewer: `connection`'s partner again, with its resumption secret, for up to RESUME_TTL (or
    until `deadline`); the new ViewerConnection. Raises as reconnect() does."""
    until = clock() + RESUME_TTL if deadline is None else min(clock() + RESUME_TTL, deadline)
    return reconnect(lambda timeout: client.resume(connection.peer_id, connection.resume_secret,
                                                   timeout=timeout, cancelled=stop),
                     stop=stop, deadline=until, clock=clock)


def session_end_cause(session, timeout=5.0):
    """Stop a viewer session that ended (or must end) and return the error that ended it, or None
    (a goodbye, or stopped here). Blocks up to `timeout`: not for the Tk thread."""
    session.stop()
    try:
        session.join(timeout)
    except TagioError as exc:
        return exc
    return None


def retryable(exc) -> bool:
    """Worth another try while the path may come back: the path, the channel or the relay failed
    (a relay that restarts, a partner not registered again yet); not a refusal."""
    if isinstance(exc, PartnerRefused) and exc.code == "busy":
        return True         # the old session may still hold the host's last slot for a moment
    if isinstance(exc, (AuthError, ConfigError, RemoteProtocolError)):
        return False
    if isinstance(exc, RelayError):
        return exc.code not in FINAL_CODES
    return isinstance(exc, (TransportError, SecureChannelError))
