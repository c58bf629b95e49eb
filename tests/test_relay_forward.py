"""tagio.relay.forward: the forwarder's pair limit and its shutdown, on real socket pairs; and the
kernel memory a stalled relayed pair may hold, through a real relay on 127.0.0.1."""

import fcntl
import socket
import termios
import time
import unittest

from tagio.crypto.identity import Identity
from tagio.net.relay_client import RelayClient

from tagio.relay.forward import Forwarder, Pair
from tests.relay_fixture import relayed_streams, start_relay, wait_for

SIOCOUTQ = termios.TIOCOUTQ  # bytes not yet acknowledged by the peer, on a TCP socket (Linux)



class ForwarderLimitTest(unittest.TestCase):
    def setUp(self):
        self.sockets = []

    def tearDown(self):
        for s in self.sockets:
            s.close()

    def pair(self):
        """A Pair between two relay-side sockets, and the two client ends."""
        a_client, a_relay = socket.socketpair()
        b_client, b_relay = socket.socketpair()
        for s in (a_relay, b_relay):
            s.setblocking(False)
        self.sockets += [a_client, b_client]
        for s in (a_client, b_client):
            s.settimeout(10)
        return Pair(a_relay, b_relay, 65536), a_client, b_client

    def test_active_pairs_are_bounded_not_only_queued_ones(self):
        fwd = Forwarder(max_pairs=2, idle_timeout=60)
        try:
            first, a1, b1 = self.pair()
            fwd.add(first)
            self.assertTrue(wait_for(lambda: fwd.active == 1))
            second, _a2, _b2 = self.pair()
            fwd.add(second)
            self.assertTrue(wait_for(lambda: fwd.active == 2))
            third, _a3, _b3 = self.pair()
            fwd.add(third)  # the queue is empty again, but two pairs are active: refused
            self.assertTrue(third.closed)
            self.assertFalse(first.closed)
            a1.sendall(b"still relaying")
            self.assertEqual(b1.recv(100), b"still relaying")
            a1.close()
            b1.close()
            self.assertTrue(wait_for(lambda: fwd.active == 1))  # a finished pair frees its slot
            fourth, a4, b4 = self.pair()
            fwd.add(fourth)
            self.assertFalse(fourth.closed)
            b4.sendall(b"back")
            self.assertEqual(a4.recv(100), b"back")
        finally:
            fwd.close()
        self.assertTrue(second.closed and fourth.closed)

    def test_close_also_closes_pairs_still_queued(self):
        fwd = Forwarder(max_pairs=4, idle_timeout=60)
        fwd._stop.set()  # the loop ends before it takes the pair from the queue
        fwd._wake()
        fwd._thread.join(5)
        queued, _a, _b = self.pair()
        fwd.add(queued)
        fwd.close()
        self.assertTrue(queued.closed)



def queued(sock, request) -> int:
    return int.from_bytes(fcntl.ioctl(sock.fileno(), request, bytes(4)), "little")


class StalledPairMemoryTest(unittest.TestCase):
    """A receiver that stops reading: the relay's sockets hold a bounded amount, not what autotuning allows."""

    def test_a_stalled_pair_holds_bounded_kernel_buffers(self):
        with start_relay() as relay:
            viewer, host = (RelayClient(relay.address, Identity.generate()) for _ in range(2))
            for c in (viewer, host):
                c.connect()
                self.addCleanup(c.close)
            v, _h = relayed_streams(self, viewer, host)  # the host never reads
            self.assertTrue(wait_for(lambda: relay.server.forwarder.active == 1))
            pair = next(iter(relay.server.forwarder._pairs))
            v.sock.setblocking(False)
            chunk, stuck_since = bytes(1 << 16), None
            while stuck_since is None or time.monotonic() - stuck_since < 1.0:  # until nothing moves for 1 s
                try:
                    v.sock.send(chunk)
                    stuck_since = None
                except BlockingIOError:
                    stuck_since = stuck_since or time.monotonic()
                    time.sleep(0.01)
            src, dst = (pair.a, pair.b) if pair.a.getpeername() == v.sock.getsockname() else (pair.b, pair.a)
            held = queued(src, termios.FIONREAD) + queued(dst, SIOCOUTQ)  # viewer -> relay -> host
            self.assertLessEqual(held, 2 * 1024 * 1024, f"the relay's sockets hold {held} bytes of one stalled pair")


if __name__ == "__main__":
    unittest.main()
