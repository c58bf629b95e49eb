"""A user-space WAN link for tests and benchmarks: a TCP proxy on 127.0.0.1 with delay, rate and loss.

    link = WanLink(target=("127.0.0.1", port), rtt_ms=60, mbit=20, loss=0.02).start()
    sock = socket.create_connection(("127.0.0.1", link.port))      # reaches `target` through the link
    ...
    link.close()

    python3 -m tests.wanlink --target 127.0.0.1:PORT --rtt-ms 60 --mbit 20 [--loss 0.02]
        prints "port N" once it listens, then forwards until stdin closes or it is killed.

Theory of operation. This kernel has no netem, so the link is a proxy. Each accepted connection opens
one to `target`, and each direction is a `Pipe`: a reader thread takes bytes off the source socket
into a bounded bottleneck queue, a writer thread hands them to the destination socket when the model
says they arrive. The model, per direction and in the order a packet meets it on a real path:

  bottleneck  a token bucket of `mbit` Mbit/s (no burst allowance beyond one SEGMENT): a segment
              leaves the bottleneck at max(its arrival, the previous departure) + its size / rate.
  queue       at most `queue_bytes` wait for the bottleneck (default 100 ms worth of rate, at least
              64 KB: a modest router buffer). When it is full the reader stops reading, so the
              sender's own TCP buffers fill and the sender sees backpressure - the proxy never
              buffers without bound. Our socket buffers are set small for the same reason.
  delay       the segment is delivered `rtt_ms / 2` after it left the bottleneck (propagation).
  loss        TCP on loopback cannot lose a segment, so a loss is modelled by its cost to an
              application on a real TCP connection: with probability 1 - (1 - loss) ** packets
              a segment is "lost", and it (and, because TCP delivers in order, everything behind
              it) reaches the receiver one extra RTT later (fast retransmit: the sender learns of the
              loss from duplicate acks one RTT after sending and resends it), and the resend uses
              the bottleneck a second time. What is NOT modelled: the sender's congestion window
              halving after a loss (the proxy's TCP never sees a loss), and retransmission timeouts
              (tail losses, ~200 ms+). So loss here is a lower bound on what a real lossy path costs.

Segments are at most SEGMENT bytes (a few MSS), so a large write is spread over time as on a real
link instead of arriving all at once. The writer sends every segment that is due in one go and then
sleeps until the next is due (>= ~0.2 ms granularity). Byte counters per direction are kept in
`stats` (bytes delivered). Every thread is joined by close(); every buffer is bounded.
"""

import argparse
import collections
import random
import socket
import sys
import threading
import time

SEGMENT = 4096          # bytes per modelled segment (about three 1448-byte packets)
PACKET = 1448           # TCP payload of one packet, for the loss probability of a segment
MIN_QUEUE = 64 * 1024
QUEUE_MS = 100          # default bottleneck buffer, in milliseconds of the link's rate
SOCK_BUFFER = 64 * 1024  # our socket buffers: small, so data waits at the sender, not in the proxy
MIN_SLEEP = 0.0002


class LinkProfile:
    """One direction's parameters: one-way delay (seconds), rate (bytes/s, None = unlimited), loss."""

    def __init__(self, rtt_ms=0.0, mbit=None, loss=0.0, queue_bytes=None, seed=None):
        self.rtt = rtt_ms / 1000.0
        self.delay = self.rtt / 2
        self.rate = mbit * 1e6 / 8 if mbit else None
        self.loss = loss
        default = max(MIN_QUEUE, int(self.rate * QUEUE_MS / 1000)) if self.rate else 4 * MIN_QUEUE
        self.queue_bytes = queue_bytes or default
        self.random = random.Random(seed)

    def segment_lost(self, size):
        if not self.loss:
            return False
        packets = (size + PACKET - 1) // PACKET
        return self.random.random() < 1 - (1 - self.loss) ** packets


class Schedule:
    """The timing model of one direction, pure: arrival time and size -> delivery time.

    Kept apart from the sockets so it can be checked with an injected clock (tests/test_wanlink.py)."""

    def __init__(self, profile):
        self.profile = profile
        self.departed = 0.0         # when the bottleneck finishes the previous segment
        self.delivered = 0.0        # delivery of the previous segment (in-order delivery)

    def deliver_at(self, arrived, size):
        p = self.profile
        serialize = size / p.rate if p.rate else 0.0
        self.departed = max(arrived, self.departed) + serialize
        due = self.departed + p.delay
        if p.segment_lost(size):
            self.departed += serialize          # the resend crosses the bottleneck again
            due += p.rtt
        self.delivered = max(due, self.delivered)
        return self.delivered


class Pipe:
    """One direction of one connection: src socket -> model -> dst socket."""

    def __init__(self, src, dst, profile, counter, stopping, clock=time.monotonic):
        self.src, self.dst = src, dst
        self.schedule = Schedule(profile)
        self.limit = profile.queue_bytes
        self.counter = counter
        self.stopping = stopping
        self.clock = clock
        self.queue = collections.deque()     # (due, bytes), in delivery order
        self.waiting = collections.deque()   # (departure, size) of segments not yet past the bottleneck
        self.queued = 0                       # their bytes (bounded by limit)
        self.eof = False
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._write, daemon=True)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def _read(self):
        try:
            while not self.stopping.is_set():
                data = self.src.recv(SEGMENT * 4)
                if not data:
                    break
                for i in range(0, len(data), SEGMENT):
                    self._enqueue(data[i:i + SEGMENT])
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _enqueue(self, segment):
        with self.cond:
            while self.queued + len(segment) > self.limit and self.queued and not self.stopping.is_set():
                # The bottleneck queue is full: stop reading (backpressure) until its head departs.
                self._release_departed(self.clock())
                if self.queued + len(segment) > self.limit and self.queued:
                    self.cond.wait(max(MIN_SLEEP, min(self.waiting[0][0] - self.clock(), 0.1)))
            now = self.clock()
            self._release_departed(now)
            due = self.schedule.deliver_at(now, len(segment))
            self.queue.append((due, segment))
            self.waiting.append((self.schedule.departed, len(segment)))
            self.queued += len(segment)
            self.cond.notify_all()

    def _write(self):
        try:
            while True:
                batch = self._due_batch()
                if batch is None:
                    break
                self.dst.sendall(batch)
                self.counter[0] += len(batch)
        except OSError:
            pass
        finally:
            _shutdown(self.dst, socket.SHUT_WR)

    def _due_batch(self):
        """Bytes of every segment due now, waiting until one is; None at the end of the stream."""
        with self.cond:
            while True:
                if self.stopping.is_set() or (self.eof and not self.queue):
                    return None
                now = self.clock()
                if self.queue and self.queue[0][0] <= now:
                    parts = []
                    while self.queue and self.queue[0][0] <= now:
                        parts.append(self.queue.popleft()[1])
                    return b"".join(parts)
                wait = self.queue[0][0] - now if self.queue else 0.1
                self.cond.wait(max(MIN_SLEEP, min(wait, 0.1)))

    def _release_departed(self, now):
        """Segments past the bottleneck no longer count against the queue limit (they are on the wire)."""
        while self.waiting and self.waiting[0][0] <= now:
            self.queued -= self.waiting.popleft()[1]


def _shutdown(sock, how):
    try:
        sock.shutdown(how)
    except OSError:
        pass


def _small_buffers(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUFFER)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class WanLink:
    """The proxy: listens on 127.0.0.1 (port 0 = any) and forwards each connection to `target`
    through two Pipes (`up` = client -> target, `down` = target -> client), each with its own
    LinkProfile built from the same rtt/mbit/loss."""

    def __init__(self, target, rtt_ms=0.0, mbit=None, loss=0.0, queue_bytes=None, seed=None, port=0):
        self.target = target
        self.profiles = (LinkProfile(rtt_ms, mbit, loss, queue_bytes, seed),
                         LinkProfile(rtt_ms, mbit, loss, queue_bytes, None if seed is None else seed + 1))
        self.stats = {"up": [0], "down": [0]}
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.pipes, self.socks = [], []
        self._lock = threading.Lock()
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self._accept.start()
        return self

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                _small_buffers(s)
            self._join(client, server)

    def _join(self, client, server):
        up = Pipe(client, server, self.profiles[0], self.stats["up"], self.stopping)
        down = Pipe(server, client, self.profiles[1], self.stats["down"], self.stopping)
        with self._lock:
            self.socks += [client, server]
            self.pipes += [up.start(), down.start()]

    def close(self):
        self.stopping.set()
        self.listener.close()
        with self._lock:
            for pipe in self.pipes:
                with pipe.cond:
                    pipe.cond.notify_all()
            for s in self.socks:
                _shutdown(s, socket.SHUT_RDWR)
        if self._accept.is_alive():
            self._accept.join(5)
        for pipe in self.pipes:
            for th in pipe.threads:
                th.join(5)
        for s in self.socks:
            s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description="user-space WAN link (TCP proxy on 127.0.0.1)")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--mbit", type=float, default=None, help="rate per direction (default: unlimited)")
    parser.add_argument("--loss", type=float, default=0.0, help="packet loss probability (modelled as delay)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    link = WanLink((host, int(port)), args.rtt_ms, args.mbit, args.loss, port=args.port).start()
    print(f"port {link.port}", flush=True)
    try:
        sys.stdin.read()            # the parent closes our stdin (or kills us) to stop the link
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
        print(f"bytes up {link.stats['up'][0]} down {link.stats['down'][0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
