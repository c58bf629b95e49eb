"""Connection establishment: race direct TCP, punched UDP and the relay; first PAKE wins.

Theory of operation (both roles run the same race, like ICE's two agents):

0. The peer's candidates are screened first (candidates.screened): only
   addresses the peer could own are dialled or punched, at most
   MAX_DIAL_TARGETS dials and punch.MAX_TARGETS punch targets, each dialled
   once and punched at most punch.PUNCHES_PER_TARGET times per race, so a
   rendezvous cannot steer us into scanning or flooding a third party
   (issue 10 item 8; the host's attempt limiter bounds the races per minute).
1. Direct TCP, at once: dial every TCP candidate of the peer (its local
   addresses, and its relay-observed public IP with those ports). A dialer
   starts with a preamble (listener.py) carrying the session id and a tag
   (candidates.tcp_preamble_tag) that binds the connection to this session
   and to the dialer's role. Our DirectListener reads the preamble (bounded
   size and time) and parks the socket under its session id until establish()
   for that session takes it ("connection reversal": whichever side is
   reachable gets dialed; both sides dial).
2. Punched UDP, at once (needs a listener: its UDP socket is the one the relay
   knows): see punch.py; the result is a reliable stream (rudp.py).
3. The relay, after `relay_delay` (or as soon as every direct attempt failed).
   A relay channel that is ready first still waits up to DIRECT_GRACE for a
   direct attempt still running (ICE prefers host/srflx pairs over relayed
   ones): on a loaded machine a punch can take longer than relay_delay, and
   a session, once on the relay, stays there.

`handshake(stream) -> SecureChannel` runs on each path that opens. Both
peers must pick the *same* path, so the viewer decides (it is the
"controlling agent"): the first channel whose handshake completes on the
viewer side wins, and the viewer sends NOMINATE as the first message on it.
The host keeps every completed channel until NOMINATE arrives on one of
them. Losing streams are closed, which ends the peer's attempts on them.
An AuthError on any path (wrong password) ends the whole race at once.

Every host handshake lets the viewer check one password guess, so the host
runs at most one per path kind (tcp-out, tcp-in, udp, relay) and session
(`_Race.claim`): a further connection of a kind already used is closed
unhandled. That also caps the host's handshake threads at four per session
(and Hosting runs at most MAX_INCOMING sessions).

LAN sessions (no relay, peers found by lan.py): `lan_viewer_peer()` and
`lan_host_peer()` build the PeerInfo both sides would have got from a relay;
the relay token is derived publicly from the session id and both IDs (the
PAKE, not the token, is what keeps strangers out).
"""

import hashlib
import hmac
import select
import socket
import threading
import time

from tagio.errors import AuthError, RemoteProtocolError, TransportError, TransportTimeout
from tagio.net.candidates import MAX_CANDIDATES, other_role, own_public_ip, screened, tcp_preamble_tag
from tagio.net.listener import DirectListener, LanRequest  # noqa: F401
from tagio.net.peer import PeerInfo
from tagio.net.stream import SocketStream
from tagio.protocol.direct import decode_preamble, encode_preamble  # noqa: F401

NOMINATE = b"\x00TagIO-nominate-path-v1"
DIAL_TIMEOUT = 3.0
MAX_PREDICTED = 2  # the peer's public IP with the ports of its local candidates (port-preserving NATs)
MAX_DIAL_TARGETS = MAX_CANDIDATES + MAX_PREDICTED  # TCP dials per race: each target once
ACCEPT_GRACE = 3.0
POLL = 0.05  # how quickly a dialing attempt notices that the race is over
JOIN_TIMEOUT = 0.5  # total, for the race's attempt threads
DIRECT_GRACE = 0.5  # how long a ready relay path waits for a direct attempt still running


def _dial_targets(peer) -> list:
    """Peer's TCP candidates (screened): announced local ones, then its public IP with the same
    ports; each one once, at most MAX_DIAL_TARGETS."""
    local = [tuple(c) for c in peer.peer_local_candidates][:MAX_CANDIDATES]
    public_ip = peer.peer_public_addr[0] if peer.peer_public_addr else None
    ports = list(dict.fromkeys(port for _ip, port in local))
    predicted = [(public_ip, port) for port in ports][:MAX_PREDICTED] if public_ip else []
    return list(dict.fromkeys(local + predicted))[:MAX_DIAL_TARGETS]


class _Race:
    """Shared state of one establish() call; see the module docstring."""

    def __init__(self, peer, handshake, timeout, listener=None):
        self.peer = peer
        self.listener = listener
        self.role = peer.role
        self.handshake = handshake
        self.deadline = time.monotonic() + timeout
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.active = 0  # attempts that may still produce a channel
        self.direct_active = 0
        self.winner = None
        self.fatal = None
        self.errors = []
        self.opened = []  # [(stream, channel or None)] to close unless they win
        self.threads = []
        self.claimed = set()  # path kinds that have had their handshake (host: one each)

    def remaining(self):
        return max(0.0, self.deadline - time.monotonic())

    def spawn(self, name, target, *args, direct=True, counted=True):
        """Run an attempt in a thread; `counted` ones keep the race alive while they run."""
        weight = 1 if counted else 0
        with self.cond:
            self.active += weight
            self.direct_active += weight if direct else 0
        args = (target, args, weight, weight if direct else 0)
        thread = threading.Thread(target=self._run, args=args, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, target, args, weight, direct_weight):
        try:
            target(*args)
        except Exception as exc:  # kept and reported by wait(); one path failing is normal
            with self.cond:
                self.errors.append(exc)
                if isinstance(exc, AuthError) and self.fatal is None:
                    self.fatal = exc
        finally:
            with self.cond:
                self.active -= weight
                self.direct_active -= direct_weight
                self.cond.notify_all()

    def claim(self, kind) -> bool:
        """May a path of `kind` run a handshake? The host runs at most one per path kind and
        session: each host handshake gives the viewer a password guess and costs a thread, so a
        guesser holding one rendezvous must not dial in (or be dialled) again and again."""
        with self.cond:
            if self.role == "host" and kind in self.claimed:
                return False
            self.claimed.add(kind)
            return True

    def try_path(self, open_stream, direct=True, kind=None):
        """Open a stream, run the handshake, offer the channel (runs in its own thread)."""
        if self.stop.is_set():
            return
        stream = open_stream()
        entry = [stream, None]
        with self.cond:
            self.opened.append(entry)
            stopped = self.stop.is_set()
        if stopped or (kind is not None and not self.claim(kind)):
            stream.close()
            return
        entry[1] = self.handshake(stream)
        if self.role == "viewer":
            self._offer_as_viewer(entry, direct)
        else:
            self._offer_as_host(entry)

    def _offer_as_viewer(self, entry, direct):
        with self.cond:
            if not direct:  # prefer a direct path that is still trying (see DIRECT_GRACE)
                self.cond.wait_for(lambda: self.winner is not None or self.stop.is_set()
                                   or self.direct_active == 0, timeout=min(DIRECT_GRACE, self.remaining()))
            if self.winner is None and not self.stop.is_set():
                entry[1].send(NOMINATE)
                self.winner = entry
                self.cond.notify_all()

    def _offer_as_host(self, entry):
        message = entry[1].recv()  # blocks until nominated or the viewer closes this path
        if message != NOMINATE:
            raise RemoteProtocolError("peer sent data before nominating a path")
        with self.cond:
            if self.winner is None and not self.stop.is_set():
                self.winner = entry
                self.cond.notify_all()

    def wait(self):
        with self.cond:
            self.cond.wait_for(self._decided, timeout=self.remaining())
            self.stop.set()
            self.cond.notify_all()  # wakes the relay attempt still waiting for its delay
            winner, fatal = self.winner, self.fatal
        if self.listener is not None:
            self.listener.wake()  # our accept loop stops waiting at once
        self._close_losers(winner)
        # Losers unblock once their streams are closed; an attempt still
        # opening (e.g. a relay bind) sees `stop` and closes what it opened.
        join_deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in list(self.threads):
            thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
        if winner is not None and fatal is None:
            return winner[1]
        raise self._failure(fatal)

    def _decided(self):
        return self.winner is not None or self.fatal is not None or self.active == 0

    def _close_losers(self, winner):
        with self.cond:
            losers = [entry for entry in self.opened if entry is not winner]
        for stream, channel in losers:
            # A UDP stream's close() waits for its FIN to be acked; a loser must not
            # delay the winner, so it is reset (abort) before the channel closes.
            closers = [getattr(stream, "abort", None), getattr(channel, "close", None), stream.close]
            for close in closers:
                try:
                    if close is not None:
                        close()
                except Exception:  # a loser failing to close must not hide the winner
                    pass

    def _failure(self, fatal):
        if fatal is not None:
            return fatal
        if self.active and self.remaining() <= 0:
            return TransportTimeout("no path to the peer opened in time")
        reasons = "; ".join(sorted({str(e) for e in self.errors})) or "no candidate paths"
        return TransportError(f"could not reach the peer: {reasons}")


def _connect(address, stop, timeout):
    """A connected TCP socket; gives up within POLL of `stop` being set (a blocking
    connect() to a filtered address could not be interrupted)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    try:
        sock.connect_ex(address)
        while True:
            _r, writable, _x = select.select([], [sock], [sock], POLL)
            if writable or _x:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise ConnectionRefusedError(error, f"cannot connect to {address[0]}:{address[1]}")
                break
            if stop.is_set() or time.monotonic() >= deadline:
                raise TransportTimeout(f"no answer from {address[0]}:{address[1]}")
    except BaseException:
        sock.close()
        raise
    sock.setblocking(True)
    return sock


def _dial_tcp(race, address):
    def opener():
        sock = _connect(address, race.stop, min(DIAL_TIMEOUT, race.remaining()))
        tag = tcp_preamble_tag(race.peer.relay_token, race.peer.session_id, race.role)
        viewer_id = race.peer.lan_viewer_id  # LAN sessions say who dials
        try:
            sock.sendall(encode_preamble(race.peer.session_id, tag, viewer_id))
        except OSError:
            sock.close()
            raise
        return SocketStream(sock, path="direct-tcp")

    race.try_path(opener, kind="tcp-out")


def _accept_tcp(race, listener):
    """Hand each parked connection for this session to its own handshake attempt.

    Counted as an attempt, so a side that can only be dialed waits for its
    peer; once every other attempt has ended it gives up after ACCEPT_GRACE.
    """
    expected = tcp_preamble_tag(race.peer.relay_token, race.peer.session_id, other_role(race.role))
    started = time.monotonic()
    while not race.stop.is_set() and race.remaining() > 0:
        if race.active == 1 and time.monotonic() - started > ACCEPT_GRACE:
            raise TransportTimeout("the peer did not dial us")
        taken = listener.take(race.peer.session_id, timeout=min(0.2, race.remaining()),
                              cancelled=race.stop.is_set)
        if taken is None:
            continue
        sock, tag = taken
        if not hmac.compare_digest(tag, expected) or not race.claim("tcp-in"):
            sock.close()  # wrong role or forged, or (host) this session had its inbound handshake
            continue
        stream = SocketStream(sock, path="direct-tcp")
        race.spawn("direct-tcp-in", race.try_path, lambda s=stream: s)


def _open_relay(race, relay, delay):
    with race.cond:
        race.cond.wait_for(lambda: race.stop.is_set() or race.direct_active == 0, timeout=delay)
    if race.stop.is_set():
        return
    race.try_path(lambda: relay.open_relay(race.peer.relay_token, timeout=max(0.1, race.remaining())),
                  direct=False, kind="relay")


def _open_udp(race, listener):
    from tagio.net import punch  # imported lazily: only a race with a listener punches

    race.try_path(lambda: punch.open_path(listener.udp, race.peer, race.stop, race.remaining()), kind="udp")


def establish(peer, relay, handshake, *, listener=None, timeout=15.0, relay_delay=0.3, udp=True):
    """Race every path to `peer` and return the SecureChannel of the one both sides chose.

    `peer` is the relay's PeerInfo (role "viewer" or "host"); `relay` a
    RelayClient or None (LAN only); `listener` our DirectListener, or None
    (then we only dial and use the relay). Only the peer's candidates it could
    own are used (candidates.screened). Raises the AuthError of a failed
    handshake (e.g. WrongPasswordError), TransportTimeout when nothing opened
    within `timeout`, or TransportError when every path failed.
    """
    peer = screened(peer, own_public_ip(relay))
    race = _Race(peer, handshake, timeout, listener)
    for address in _dial_targets(peer):
        race.spawn("direct-tcp-out", _dial_tcp, race, address)
    if listener is not None:
        race.spawn("direct-tcp-accept", _accept_tcp, race, listener, direct=False)
        if udp and (peer.peer_udp_addr or peer.peer_local_candidates):
            race.spawn("direct-udp", _open_udp, race, listener)
    if relay is not None:
        race.spawn("relay", _open_relay, race, relay, relay_delay, direct=False)
    return race.wait()


LanPeerInfo = PeerInfo  # the LAN's PeerInfo is the same class, built locally (kept name)


def lan_token(session_id: bytes, viewer_id: str, host_id: str) -> bytes:
    return hashlib.sha256(b"TagIO-LAN-token-v1" + session_id + f"{viewer_id}:{host_id}".encode()).digest()[:16]


def lan_tag_ok(preamble, host_id: str) -> bool:
    """Is a LAN preamble's tag the one a viewer of this session would send to `host_id`? The
    listener asks before a LAN dial may become an attempt, so junk costs no attempt budget (the
    key is public: this stops junk, not a determined guesser, whom the guess limits stop)."""
    token = lan_token(preamble.session_id, preamble.viewer_id, host_id)
    expected = tcp_preamble_tag(token, preamble.session_id, "viewer")
    return hmac.compare_digest(bytes(preamble.tag), expected)


def lan_viewer_peer(host_id: str, host_address: tuple, viewer_id: str, session_id: bytes) -> PeerInfo:
    """The viewer's PeerInfo for a host found on the LAN at `host_address` (its listener)."""
    token = lan_token(session_id, viewer_id, host_id)
    return PeerInfo(session_id, "viewer", host_id, peer_local_candidates=[tuple(host_address)],
                    relay_token=token, peer_udp_addr=tuple(host_address), nat_hint="lan",
                    lan_viewer_id=viewer_id)


def lan_host_peer(request: LanRequest, host_id: str) -> PeerInfo:
    """The host's PeerInfo for a LanRequest taken from DirectListener.lan_requests."""
    token = lan_token(request.session_id, request.viewer_id, host_id)
    return PeerInfo(request.session_id, "host", request.viewer_id, relay_token=token, nat_hint="lan")
