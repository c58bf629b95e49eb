"""UDP hole punching: find a working address pair, then hand it to a RudpStream.

Theory of operation. Both peers got each other's candidates from the relay
(PeerInfo.peer_udp_addr, the reflexive address the relay saw for the peer's
UDP socket, and peer_local_candidates, its interface addresses). Each side,
at once and then on a short timer, sends an authenticated PUNCH (random
nonce) from its one shared UDP socket to every candidate. Outgoing punches
open our own NAT's mapping/filter for the peer; the peer's punches get in
once that happened. A valid PUNCH is answered with PUNCH_ACK to *the address
it really came from* and that address becomes a candidate too (peer-
reflexive: this is what makes a public host reach a symmetric NAT). The
path works as soon as a valid PUNCH_ACK echoing one of our nonces arrives
(a round trip through both NATs), or any valid stream datagram arrives (the
peer finished first and already talks). Forged, foreign or malformed
datagrams fail the MAC check in protocol.rudp.decode and are ignored.

`Puncher` is the sans-I/O state machine; `open_path()` drives it on a UdpMux.
"""

import os
import queue
import time
from enum import Enum

from tagio.errors import RemoteProtocolError, TransportTimeout
from tagio.protocol import rudp as codec
from tagio.net.candidates import path_keys
from tagio.net.udpmux import Inbox
from tagio.net.udpstream import INBOX, RudpStream

# Seconds between punch rounds: quick at first (the peer's first punches are usually
# dropped by our own router until we punched out, so the second round is the one
# that gets through), then politer on long races. (elapsed below, interval)
SCHEDULE = ((0.1, 0.025), (2.0, 0.1), (float("inf"), 0.25))
MAX_TARGETS = 12
MAX_NONCES = 64
STOP_POLL = 0.05  # how quickly punching notices `stop`


class PunchState(Enum):
    PUNCHING = "punching"
    CONNECTED = "connected"


TRANSITIONS = {
    (PunchState.PUNCHING, "got_proof"): PunchState.CONNECTED,
    (PunchState.CONNECTED, "got_proof"): PunchState.CONNECTED,
}


def punch_targets(peer) -> list:
    """The peer's UDP candidates: reflexive first, then its local addresses, then its
    public IP with its local ports (cheap port prediction: most home NATs, Linux
    `masquerade` included, keep the source port when they can)."""
    locals_ = [tuple(c) for c in peer.peer_local_candidates]
    targets = [tuple(peer.peer_udp_addr)] if peer.peer_udp_addr else []
    public_ip = peer.peer_public_addr[0] if getattr(peer, "peer_public_addr", None) else None
    predicted = [(public_ip, port) for _ip, port in locals_] if public_ip else []
    for candidate in locals_ + predicted:
        if candidate not in targets:
            targets.append(candidate)
    return targets[:MAX_TARGETS]


class Puncher:
    def __init__(self, keys, targets, now: float):
        self.keys = keys
        self.targets = list(targets)
        self.state = PunchState.PUNCHING
        self.chosen = None  # the peer address that proved to work
        self.started = now
        self._next_round = now
        self._nonces = []

    def _encode(self, message):
        return codec.encode(message, self.keys.conn_id, self.keys.send_key)

    def due(self, now) -> list:
        """[(datagram, addr)] to send now: a punch round when its timer expired."""
        if self.state is not PunchState.PUNCHING or now < self._next_round:
            return []
        interval = next(step for until, step in SCHEDULE if now - self.started < until)
        self._next_round = now + interval
        out = []
        for target in self.targets:
            nonce = os.urandom(8)
            self._nonces = (self._nonces + [nonce])[-MAX_NONCES:]
            out.append((self._encode(codec.Punch(nonce)), target))
        return out

    def next_deadline(self):
        return self._next_round if self.state is PunchState.PUNCHING else None

    def datagram_received(self, datagram, addr, _now) -> list:
        """Replies [(datagram, addr)]; raises RemoteProtocolError for datagrams to ignore."""
        message = codec.decode(datagram, self.keys.conn_id, self.keys.recv_key)
        addr = tuple(addr)
        if isinstance(message, codec.PunchAck):
            if message.nonce not in self._nonces:
                raise RemoteProtocolError("punch answer echoes no nonce of ours")
            self._proved(addr)
            return []
        if isinstance(message, codec.Punch):
            if addr not in self.targets and len(self.targets) < MAX_TARGETS:
                self.targets.append(addr)  # peer-reflexive candidate
            return [(self._encode(codec.PunchAck(message.nonce)), addr)]
        self._proved(addr)  # a stream datagram: the peer already uses this path
        return []

    def _proved(self, addr):
        if self.chosen is None:
            self.chosen = addr
        self.state = TRANSITIONS[(self.state, "got_proof")]


def open_path(mux, peer, stop, timeout: float) -> RudpStream:
    """Punch to `peer` over `mux` and return the RudpStream (path "direct-udp").

    Raises TransportTimeout if no address pair worked within `timeout` or
    `stop` was set.
    """
    keys = path_keys(peer.relay_token, peer.session_id, peer.role)
    inbox = Inbox(INBOX)
    mux.register(keys.conn_id, inbox)
    try:
        puncher, early = _punch(mux, Puncher(keys, punch_targets(peer), time.monotonic()),
                                inbox, stop, time.monotonic() + timeout)
    except BaseException:
        mux.unregister(keys.conn_id, inbox)
        raise
    for item in early:  # stream datagrams that arrived while punching: the stream wants them
        try:
            inbox.put_nowait(item)
        except queue.Full:
            break
    return RudpStream(mux, puncher.chosen, keys, inbox=inbox)


def _punch(mux, puncher, inbox, stop, deadline):
    early = []
    while puncher.state is PunchState.PUNCHING:
        now = time.monotonic()
        if stop.is_set() or now >= deadline:
            raise TransportTimeout("UDP hole punching found no working path")
        for datagram, addr in puncher.due(now):
            mux.sendto(datagram, addr)
        wait = min(puncher.next_deadline(), deadline, time.monotonic() + STOP_POLL) - time.monotonic()
        try:
            item = inbox.get(timeout=max(0.0, wait))
        except queue.Empty:
            continue
        if item is None:
            continue
        try:
            replies = puncher.datagram_received(item[0], item[1], time.monotonic())
        except RemoteProtocolError:
            continue
        for datagram, addr in replies:
            mux.sendto(datagram, addr)
        if item[0][0] not in (codec.PacketType.PUNCH, codec.PacketType.PUNCH_ACK):
            early.append(item)
    return puncher, early
