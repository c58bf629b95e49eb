"""Reliable, ordered byte stream over authenticated UDP datagrams: the sans-I/O core.

Theory of operation. `RudpConnection` never touches a socket or a clock: the
driver (udpstream.RudpStream) feeds it datagrams with `datagram_received`,
calls `on_timer` at `next_deadline()`, and sends whatever
`datagrams_to_send()` returns. The application side is `write()` / `read()`.

- Segments: the byte stream is cut into DATA segments of <= MAX_PAYLOAD bytes,
  numbered 0, 1, 2, ... ; FIN is the flag on the last one, so close is ordered.
- Acks: the receiver answers with a cumulative ack (next expected segment),
  up to MAX_SACK_BLOCKS selective-ack ranges above it, its free window (in
  segments) and the timestamp of the newest DATA it got (echoed, as TCP
  timestamps, so every ack gives an unambiguous RTT sample). It acks at once
  on a hole, a duplicate, FIN, PING, a window update, or a segment flagged
  ACK_NOW; other in-order segments are acked every ACK_EVERY or ACK_DELAY
  after the first. The sender flags the last segment of every burst (it will
  wait for an ack next) and about four per window, so a lost ack costs no
  timeout; in bulk transfer that is one ack per 16 segments, not one each
  (every datagram costs both ends a syscall and a MAC in Python).
- Loss: as QUIC (RFC 9002): every transmission gets a number; a segment is
  lost once 3 later transmissions were delivered, or a later one was and it
  is older than 9/8 RTT. Transmissions are queued in order, so detection
  walks only the oldest ones (a window of 2048 is never scanned per ack), and
  SACK ranges are kept as RangeSets, so an ack costs only what it newly
  reports. A tail loss probe (resend the newest segment after a PTO of
  max(2 SRTT, SRTT + 4 RTTVAR + ACK_DELAY, MIN_TLP) without acks, even
  through a full window, then at doubling intervals) uncovers lost tails; the
  RTO (SRTT/RTTVAR as RFC 6298, min 200 ms, doubled per expiry) is the last
  resort.
- Congestion: NewReno-like window in segments: slow start, additive increase,
  cut to 0.7x once per window on loss (recovery until the send point at the
  time of the loss is acked), one segment after an RTO.
- Liveness: PING when idle for KEEPALIVE seconds (the peer acks it; also keeps
  NAT mappings alive); the connection fails after DEAD_TIMEOUT without any
  valid datagram or MAX_BACKOFFS RTO expiries in a row.
- Bounds: send buffer SEND_BUFFER bytes (write() accepts less when full),
  receive window RECV_WINDOW segments (readable + out of order); anything
  beyond the advertised window is dropped. Invalid datagrams (bad MAC, other
  connection, malformed) are counted in `dropped` and have no other effect.
"""

from collections import deque
from enum import Enum

from tagio.errors import ConnectionClosed, RemoteProtocolError, TransportTimeout
from tagio.protocol import rudp as codec
from tagio.net.rudp_ranges import RangeSet
from tagio.protocol.rudp import FLAG_ACK_NOW, FLAG_FIN, MAX_PAYLOAD, Ack, Data, Ping, Punch, PunchAck, Reset

SEND_BUFFER = 4 * 1024 * 1024
RECV_WINDOW = 2048  # segments, about 2.4 MB
INITIAL_CWND = 16.0
MAX_CWND = 2048.0
INITIAL_RTO = 1.0
MIN_RTO = 0.2
MIN_TLP = 0.005  # tail loss probe after max(2 SRTT, SRTT + 4 RTTVAR + ACK_DELAY, this) without an ack
PACKET_THRESHOLD = 3  # RFC 9002 kPacketThreshold
TIME_THRESHOLD = 9 / 8  # RFC 9002 kTimeThreshold
LOSS_BETA = 0.7  # window kept on loss (CUBIC's beta): random loss is common on Wi-Fi
MAX_RTO = 4.0
MAX_BACKOFFS = 8
KEEPALIVE = 5.0  # <= 15 s: Linux conntrack forgets unanswered UDP after 30 s
DEAD_TIMEOUT = 20.0
ZERO_WINDOW_PROBE = 0.2
ACK_EVERY = 16  # in-order segments per ack: each ack costs both ends a datagram's worth of work
ACK_DELAY = 0.002  # ... or this long after the first unacked one (well below MIN_TLP)
MAX_SEQ = 0xFFFFFFFF
_DATA_CODE = int(codec.PacketType.DATA)
_ACK_AT_ONCE = FLAG_FIN | FLAG_ACK_NOW


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"  # our FIN is queued or in flight
    CLOSED = "closed"  # both FINs delivered and acked
    FAILED = "failed"  # reset, dead peer or timeout; `error` says why


TRANSITIONS = {
    (State.OPEN, "close"): State.CLOSING,
    (State.OPEN, "fail"): State.FAILED,
    (State.CLOSING, "fin_acked"): State.CLOSED,
    (State.CLOSING, "fail"): State.FAILED,
    (State.CLOSING, "close"): State.CLOSING,
    (State.CLOSED, "close"): State.CLOSED,
    (State.CLOSED, "fail"): State.CLOSED,
    (State.FAILED, "close"): State.FAILED,
    (State.FAILED, "fail"): State.FAILED,
}


def micros(now: float) -> int:
    return int(now * 1_000_000) & 0xFFFFFFFF


class _Segment:
    __slots__ = ("seq", "payload", "flags", "sent_at", "tx", "sacked")

    def __init__(self, seq, payload, flags):
        self.seq, self.payload, self.flags = seq, payload, flags
        self.sent_at = None
        self.tx = -1  # number of its latest transmission (QUIC's packet number)
        self.sacked = False


class RudpConnection:
    def __init__(self, keys, now: float):
        self.keys = keys
        self.state = State.OPEN
        self.error = None
        self.dropped = 0
        self.retransmits = 0
        # sender
        self._unsent = bytearray()
        self._fin_queued = False
        self._fin_seq = None
        self._segments = {}  # seq -> _Segment, snd_una <= seq < snd_nxt
        self.snd_una = 0
        self.snd_nxt = 0
        self.cwnd = INITIAL_CWND
        self.ssthresh = MAX_CWND
        self.peer_window = RECV_WINDOW
        self._recovery_until = -1
        self._tx_next = 0
        self._largest_delivered_tx = -1
        self._lost = {}  # seq -> _Segment awaiting retransmission
        self._retx_queue = deque()  # seqs of _lost in the order to resend them (stale ones skipped)
        self._flight = deque()  # (tx, segment) in transmission order; stale entries skipped
        self._sacked = 0  # segments in _segments already selectively acked
        self._peer_sacks = RangeSet()
        self._tlp_deadline = None
        self._tlp_probes = 0
        self._probe_credit = 0  # segments allowed beyond the window: the tail probe
        self.srtt = None
        self.rttvar = None
        self.min_rtt = None
        self.rto = INITIAL_RTO
        self._rto_deadline = None
        self._backoffs = 0
        # receiver
        self.rcv_nxt = 0
        self._ooo = {}  # seq -> (payload, flags)
        self._ooo_ranges = RangeSet()  # the seqs in _ooo, as SACK blocks
        self._readable = bytearray()
        self.peer_fin = False
        self._ack_now = False  # out of order, duplicate, FIN, ping or window update: ack at once
        self._unacked = 0  # in-order DATA received since our last ack
        self._ack_deadline = None  # the oldest of those must be acked by then
        self._ts_echo = 0
        # liveness
        self._last_received = now
        self._last_sent = now
        self._control = []  # ready datagrams: punch acks, pings

    # ---- application side -------------------------------------------------------------

    def write(self, data) -> int:
        """Queue up to the free send buffer; returns how many bytes were taken."""
        if self.state is not State.OPEN:
            raise self._closed_error()
        taken = max(0, min(self.send_room, len(data)))
        self._unsent += data[:taken]
        return taken

    def read(self, max_bytes: int) -> bytes:
        before = self._window()
        chunk = bytes(self._readable[:max_bytes])
        del self._readable[:max_bytes]
        if before < RECV_WINDOW // 4 and self._window() >= RECV_WINDOW // 2:
            self._ack_now = True  # window update: a sender stalled on our window may go on
        return chunk

    @property
    def send_room(self) -> int:
        """Bytes write() would take now."""
        return SEND_BUFFER - len(self._unsent) - len(self._segments) * MAX_PAYLOAD

    @property
    def readable(self) -> bool:
        return bool(self._readable)

    @property
    def at_eof(self) -> bool:
        return self.peer_fin and not self._readable

    @property
    def send_idle(self) -> bool:
        """Everything written has been acknowledged."""
        return not self._unsent and not self._segments

    def close(self):
        """Queue FIN after the data already written."""
        if self.state is State.OPEN:
            self._fin_queued = True
        self._transition("close")

    def abort(self, reason=0):
        """Tell the peer to give up now (RESET) and fail locally."""
        if self.state in (State.OPEN, State.CLOSING):
            self._control.append(codec.encode(Reset(reason), self.keys.conn_id, self.keys.send_key))
        self._fail(ConnectionClosed("connection aborted locally"))

    def _transition(self, event):
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise RuntimeError(f"no transition from {self.state} on {event}") from None

    def _fail(self, error):
        if self.state not in (State.CLOSED, State.FAILED):
            self.error = error
        self._transition("fail")

    def _closed_error(self):
        return self.error or ConnectionClosed("stream is closed")

    # ---- network side: input ----------------------------------------------------------

    def datagram_received(self, datagram: bytes, now: float):
        """Process one datagram; returns True, or None if it was dropped."""
        keys = self.keys
        try:
            if datagram[0] == _DATA_CODE:  # the hot path: no message object
                fields = codec.decode_data(datagram, keys.conn_id, keys.recv_key)
                if self.state is not State.FAILED:
                    self._last_received = now
                    self._data(*fields, now)
                return True
            message = codec.decode(datagram, keys.conn_id, keys.recv_key)
        except (RemoteProtocolError, IndexError):
            self.dropped += 1
            return None
        if self.state is not State.FAILED:
            self._last_received = now
            self._HANDLERS[type(message)](self, message, now)
        return True

    def _on_data(self, data: Data, _now):
        self._data(data.seq, data.ts, data.flags, data.payload, _now)

    def _data(self, seq, ts, flags, payload, now):
        if flags & FLAG_ACK_NOW and (self._ack_now or self._unacked):
            # Several requests in one read batch get an ack each, as they would one by one:
            # with a small window one ack per batch is one ack per window, and losing it
            # would stall the sender until its probe timeout.
            self._control.append(self._encode_ack(now))
            self._ack_now, self._unacked, self._ack_deadline = False, 0, None
        self._ts_echo = ts
        if seq != self.rcv_nxt or flags & _ACK_AT_ONCE or self._ooo:
            self._ack_now = True  # a hole, a duplicate, the end, or the sender waits for us
        else:
            self._unacked += 1  # in order: acked in bunches (see datagrams_to_send)
            if self._ack_deadline is None:
                self._ack_deadline = now + ACK_DELAY
        if seq < self.rcv_nxt or seq in self._ooo:
            return  # duplicate: the ack we owe tells the peer
        if seq >= self.rcv_nxt + self._window():
            self.dropped += 1  # beyond what we advertised
            return
        if seq != self.rcv_nxt:
            self._ooo[seq] = (payload, flags)
            self._ooo_ranges.add(seq, seq + 1)
            return
        self._deliver(payload, flags)
        while self._ooo and self.rcv_nxt in self._ooo:
            self._deliver(*self._ooo.pop(self.rcv_nxt))
        if self._ooo_ranges:
            self._ooo_ranges.discard_below(self.rcv_nxt)

    def _deliver(self, payload, flags):
        self._readable += payload
        self.rcv_nxt += 1
        if flags & FLAG_FIN:
            self.peer_fin = True

    def _window(self) -> int:
        buffered = len(self._ooo) + (len(self._readable) + MAX_PAYLOAD - 1) // MAX_PAYLOAD
        return max(0, RECV_WINDOW - buffered)

    def _on_ack(self, ack: Ack, now):
        if ack.cum > self.snd_nxt or any(end > self.snd_nxt for _s, end in ack.blocks):
            self.dropped += 1  # acks data we never sent
            return
        self.peer_window = ack.window
        newly = self._take_acked(ack)
        if newly:
            self._rtt_sample(now, ack.ts_echo)
            self._grow(newly)
            self._backoffs = 0
            self._arm_timers(now) if self._segments else self._disarm_timers()
        if ack.blocks:  # without holes at the receiver there is nothing to call lost yet
            self._detect_losses(now)
        self._check_fin_acked()

    def _arm_timers(self, now):
        self._tlp_probes = 0
        self._rto_deadline = now + self.rto
        self._tlp_deadline = now + self._probe_timeout() if self.srtt is not None else None

    def _probe_timeout(self):
        """RFC 9002's PTO (srtt + 4 rttvar + the peer's ack delay), at least 2 SRTT as a TLP."""
        srtt = self.srtt or 0.0
        return max(2 * srtt, srtt + 4 * (self.rttvar or 0.0) + ACK_DELAY, MIN_TLP)

    def _disarm_timers(self):
        self._rto_deadline = self._tlp_deadline = None

    def _take_acked(self, ack) -> int:
        newly = 0
        while self.snd_una < ack.cum:
            segment = self._segments.pop(self.snd_una)
            self._lost.pop(self.snd_una, None)
            if segment.sacked:
                self._sacked -= 1
            else:
                newly += 1
                self._note_delivered(segment)
            self.snd_una += 1
        if self._peer_sacks:
            self._peer_sacks.discard_below(self.snd_una)
        for start, end in ack.blocks:
            if end <= self.snd_una:
                continue  # an old ack, overtaken by a newer one
            for first, stop in self._peer_sacks.add(max(start, self.snd_una), end):
                for seq in range(first, stop):  # only what this ack newly reports
                    newly += self._sack(seq)
        self._trim_flight()
        return newly

    def _sack(self, seq) -> int:
        segment = self._segments.get(seq)
        if segment is None or segment.sacked:
            return 0
        segment.sacked = True
        self._sacked += 1
        self._lost.pop(seq, None)
        self._note_delivered(segment)
        return 1

    def _in_flight(self, tx, segment) -> bool:
        """Is this (tx, segment) entry of _flight still an unacknowledged transmission?"""
        return (segment.tx == tx and not segment.sacked and segment.seq >= self.snd_una
                and segment.seq not in self._lost)

    def _trim_flight(self):
        flight = self._flight
        while flight and not self._in_flight(*flight[0]):
            flight.popleft()
        if len(flight) > 4 * len(self._segments) + 64:  # stale entries behind a long-lived hole
            self._flight = deque(entry for entry in flight if self._in_flight(*entry))

    def _mark_lost(self, segment):
        self._lost[segment.seq] = segment
        self._retx_queue.append(segment.seq)

    def _note_delivered(self, segment):
        if segment.tx > self._largest_delivered_tx:
            self._largest_delivered_tx = segment.tx

    def _rtt_sample(self, now, echo):
        rtt = ((micros(now) - echo) & 0xFFFFFFFF) / 1_000_000
        if rtt > 60.0:
            return  # echo of a packet from long ago or garbage: no sample
        self.min_rtt = rtt if self.min_rtt is None else min(self.min_rtt, rtt)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))

    def _grow(self, newly):
        if self.snd_una <= self._recovery_until:
            return  # no growth while recovering from a loss
        if self.cwnd < self.ssthresh:
            self.cwnd = min(MAX_CWND, self.cwnd + newly)
        else:
            self.cwnd = min(MAX_CWND, self.cwnd + newly / self.cwnd)

    def _detect_losses(self, now):
        """QUIC-style (RFC 9002 6.1): lost once PACKET_THRESHOLD later transmissions were
        delivered, or a later one was and this one is older than 9/8 of the RTT."""
        newest = self._largest_delivered_tx
        by_count = newest - PACKET_THRESHOLD
        by_time = now - TIME_THRESHOLD * max(self.srtt or 0.0, self.min_rtt or 0.0)
        lost_any = False
        flight = self._flight
        # Oldest transmission first: once one is not lost, no later one is (higher tx, later
        # sent_at), so this costs O(losses found), not a walk over the whole window.
        while flight:
            tx, segment = flight[0]
            if not self._in_flight(tx, segment):
                flight.popleft()
                continue
            if tx >= newest or (tx > by_count and segment.sent_at > by_time):
                break
            flight.popleft()
            self._mark_lost(segment)
            lost_any = True
        if lost_any and self.snd_una > self._recovery_until:
            self.ssthresh = max(self.cwnd * LOSS_BETA, 2.0)
            self.cwnd = self.ssthresh
            self._recovery_until = self.snd_nxt

    def _check_fin_acked(self):
        if self.state is State.CLOSING and self._fin_seq is not None and not self._segments:
            self._transition("fin_acked")

    def _on_ping(self, _ping, _now):
        self._ack_now = True

    def _on_punch(self, punch: Punch, _now):
        reply = PunchAck(punch.nonce)
        self._control.append(codec.encode(reply, self.keys.conn_id, self.keys.send_key))

    def _on_punch_ack(self, _ack, _now):
        pass  # a late answer to a punch: the path already works

    def _on_reset(self, _reset, _now):
        self._fail(ConnectionClosed("the peer reset the connection"))

    _HANDLERS = {Data: _on_data, Ack: _on_ack, Ping: _on_ping, Punch: _on_punch,
                 PunchAck: _on_punch_ack, Reset: _on_reset}

    # ---- network side: output and timers -----------------------------------------------

    def datagrams_to_send(self, now: float) -> list:
        out, self._control = self._control, []
        if self.state is State.FAILED:
            return out
        in_flight = len(self._segments) - self._sacked - len(self._lost)
        limit = max(min(self.cwnd, self.peer_window), in_flight + self._probe_credit)
        self._probe_credit = 0
        burst = []
        queue = self._retx_queue
        while self._lost and queue and in_flight < limit:
            segment = self._lost.pop(queue.popleft(), None)
            if segment is None:
                continue  # acknowledged since it was called lost
            self.retransmits += 1
            burst.append(segment)
            in_flight += 1
        if not self._lost:
            queue.clear()
        while in_flight < limit and self._has_new_segment():
            burst.append(self._new_segment())
            in_flight += 1
        if burst:
            out += self._send_burst(burst, now)
        if self._ack_now or self._unacked >= ACK_EVERY or (self._unacked and now >= self._ack_deadline):
            out.append(self._encode_ack(now))
            self._ack_now, self._unacked, self._ack_deadline = False, 0, None
        if out:
            self._last_sent = now
        return out

    def _send_burst(self, burst, now):
        """Encode `burst`, asking for an immediate ack on its last segment (the burst ends
        because the window is full or nothing else is queued: either way the next step
        waits for an ack) and on every ack_every-th one, so that about four acks come
        back per window: one lost ack then costs no timeout."""
        ack_every = max(2, min(ACK_EVERY, int(self.cwnd) // 4))
        last = len(burst) - 1
        out = []
        for i, segment in enumerate(burst):
            wants_ack = i == last or (self._tx_next + 1) % ack_every == 0
            out.append(self._send_segment(segment, now, FLAG_ACK_NOW if wants_ack else 0))
        return out

    def _has_new_segment(self):
        return bool(self._unsent) or (self._fin_queued and self._fin_seq is None)

    def _new_segment(self):
        if self.snd_nxt >= MAX_SEQ:
            raise ConnectionClosed("stream exhausted its sequence space")
        payload = bytes(self._unsent[:MAX_PAYLOAD])
        del self._unsent[:MAX_PAYLOAD]
        flags = 0
        if self._fin_queued and not self._unsent:
            flags = FLAG_FIN
            self._fin_seq = self.snd_nxt
        segment = _Segment(self.snd_nxt, payload, flags)
        self._segments[self.snd_nxt] = segment
        self.snd_nxt += 1
        return segment

    def _send_segment(self, segment, now, extra_flags):
        segment.sent_at = now
        segment.tx = self._tx_next
        self._tx_next += 1
        self._flight.append((segment.tx, segment))
        if self._rto_deadline is None:
            self._arm_timers(now)
        return codec.encode_data(segment.seq, micros(now), segment.flags | extra_flags, segment.payload,
                                 self.keys.conn_id, self.keys.send_key)

    def _encode_ack(self, now):
        blocks = self._ooo_ranges.first(codec.MAX_SACK_BLOCKS)
        ack = Ack(self.rcv_nxt, self._ts_echo, min(0xFFFF, self._window()), blocks)
        return codec.encode(ack, self.keys.conn_id, self.keys.send_key)

    def next_deadline(self):
        """Monotonic time at which on_timer() must run next (None: no timer)."""
        if self.state is State.FAILED:
            return None
        candidates = [self._last_received + DEAD_TIMEOUT, self._last_sent + self._keepalive_interval()]
        candidates += [t for t in (self._rto_deadline, self._tlp_deadline, self._ack_deadline) if t is not None]
        return min(candidates)

    def _keepalive_interval(self):
        waiting = self.peer_window == 0 and (self._unsent or self._fin_queued)
        return ZERO_WINDOW_PROBE if waiting else KEEPALIVE

    def on_timer(self, now: float):
        if self.state is State.FAILED:
            return
        if now - self._last_received >= DEAD_TIMEOUT:
            self._fail(TransportTimeout(f"no answer from the peer for {DEAD_TIMEOUT:.0f} s"))
            return
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._on_rto(now)
        elif self._tlp_deadline is not None and now >= self._tlp_deadline:
            self._on_tail_probe(now)
        if now - self._last_sent >= self._keepalive_interval():
            self._control.append(codec.encode(Ping(micros(now)), self.keys.conn_id, self.keys.send_key))

    def _on_tail_probe(self, now):
        """No ack for 2 RTTs: resend the newest outstanding segment once, so its ack
        (with SACK blocks) reveals a lost tail without waiting for the RTO."""
        self._tlp_probes += 1
        self._tlp_deadline = now + self._probe_timeout() * (2 ** self._tlp_probes)
        self._detect_losses(now)
        for seq in reversed(self._segments):
            segment = self._segments[seq]
            if not segment.sacked and seq not in self._lost:
                self._mark_lost(segment)
                self._probe_credit = 1  # a probe goes out even if the window is full (RFC 9002)
                return

    def _on_rto(self, now):
        if not self._segments:
            self._disarm_timers()
            return
        self._backoffs += 1
        if self._backoffs > MAX_BACKOFFS:
            self._fail(TransportTimeout("the peer stopped acknowledging data"))
            return
        self._lost = {seq: seg for seq, seg in self._segments.items() if not seg.sacked}
        self._retx_queue = deque(self._lost)
        self._flight.clear()  # everything is lost or SACKed now
        self.ssthresh = max(self.cwnd * LOSS_BETA, 2.0)
        self.cwnd = 1.0
        self._recovery_until = self.snd_nxt
        self.rto = min(MAX_RTO, self.rto * 2)
        self._rto_deadline = now + self.rto
        self._tlp_deadline = None
