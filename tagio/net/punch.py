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

Budgets (issue 10 item 8: a rendezvous must not turn us into a packet
cannon). The targets are the screened candidates (candidates.screened), at
most MAX_TARGETS, plus at most LEARNED_TARGETS peer-reflexive ones; each
target gets at most PUNCHES_PER_TARGET punches (about 2.5 s of the
schedule: a cone NAT opens in the first rounds, and a late peer is still
answered, since we keep listening); PUNCH_ACKs answer authenticated punches
only, one for one, at most ACKS_PER_TARGET per address and MAX_ACKS in all.
So one race sends at most MAX_DATAGRAMS. Once every target had its punches
and the peer has been silent for QUIET seconds, punching gives up (the race
goes on with TCP and the relay).

`Puncher` is the sans-I/O state machine; `open_path()` drives it on a UdpMux.
"""

import collections
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
MAX_TARGETS = 6            # reflexive + the screened local candidates + predictions
LEARNED_TARGETS = 2        # peer-reflexive targets added on top (a punch's real source)
PUNCHES_PER_TARGET = 25    # 4 rounds in the first 0.1 s, 19 until 2 s, then 2 slow ones
ACKS_PER_TARGET = 25       # answers to one address's authenticated punches
MAX_ACKS = 50              # answers in all, per race
MAX_DATAGRAMS = (MAX_TARGETS + LEARNED_TARGETS) * PUNCHES_PER_TARGET + MAX_ACKS
QUIET = 3.0                # seconds of silence after the last punch before giving up
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
        self.targets = list(dict.fromkeys(tuple(t) for t in targets))[:MAX_TARGETS]
        self._max_targets = len(self.targets) + LEARNED_TARGETS
        self.state = PunchState.PUNCHING
        self.chosen = None  # the peer address that proved to work
        self.started = now
        self._next_round = now
        self._last_activity = now      # our last punch, or the peer's last authenticated datagram
        self._nonces = []
        self._punches = collections.Counter()   # target -> punches sent
        self._acks = collections.Counter()      # address -> answers sent

    def _encode(self, message):
        return codec.encode(message, self.keys.conn_id, self.keys.send_key)

    def due(self, now) -> list:
        """[(datagram, addr)] to send now: a punch round when its timer expired, to each target
        that has punches left."""
        if self.state is not PunchState.PUNCHING or now < self._next_round:
            return []
        interval = next(step for until, step in SCHEDULE if now - self.started < until)
        self._next_round = now + interval
        out = []
        for target in self.targets:
            if self._punches[target] >= PUNCHES_PER_TARGET:
                continue
            self._punches[target] += 1
            nonce = os.urandom(8)
            self._nonces = (self._nonces + [nonce])[-MAX_NONCES:]
            out.append((self._encode(codec.Punch(nonce)), target))
        if out:
            self._last_activity = now
        return out

    def spent(self, now) -> bool:
        """Give up? Every target had its punches and the peer has been silent for QUIET since."""
        if any(self._punches[target] < PUNCHES_PER_TARGET for target in self.targets):
            return False
        return now - self._last_activity >= QUIET

    def next_deadline(self):
        return self._next_round if self.state is PunchState.PUNCHING else None

    def datagram_received(self, datagram, addr, now) -> list:
        """Replies [(datagram, addr)]; raises RemoteProtocolError for datagrams to ignore."""
        message = codec.decode(datagram, self.keys.conn_id, self.keys.recv_key)
        addr = tuple(addr)
        self._last_activity = max(self._last_activity, now)
        if isinstance(message, codec.PunchAck):
            if message.nonce not in self._nonces:
                raise RemoteProtocolError("punch answer echoes no nonce of ours")
            self._proved(addr)
            return []
        if isinstance(message, codec.Punch):
            return self._answer(message, addr)
        self._proved(addr)  # a stream datagram: the peer already uses this path
        return []

    def _answer(self, punch, addr) -> list:
        """PUNCH_ACK to where an authenticated punch really came from, within the budgets; that
        address becomes a target too (peer-reflexive), LEARNED_TARGETS at most."""
        if addr not in self.targets and len(self.targets) < self._max_targets:
            self.targets.append(addr)
        if self._acks[addr] >= ACKS_PER_TARGET or sum(self._acks.values()) >= MAX_ACKS:
            return []
        self._acks[addr] += 1
        return [(self._encode(codec.PunchAck(punch.nonce)), addr)]

    def _proved(self, addr):
        if self.chosen is None:
            self.chosen = addr
        self.state = TRANSITIONS[(self.state, "got_proof")]


def open_path(mux, peer, stop, timeout: float) -> RudpStream:
    """Punch to `peer` over `mux` and return the RudpStream (path "direct-udp").

    Raises TransportTimeout if no address pair worked within `timeout`, `stop`
    was set, or every punch was spent and the peer stayed silent (Puncher.spent).
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
        if stop.is_set() or now >= deadline or puncher.spent(now):
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
