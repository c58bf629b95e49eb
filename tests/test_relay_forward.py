"""tagio.relay.forward: the forwarder's pair limit and its shutdown, on real socket pairs."""

import socket
import unittest

from tagio.relay.forward import Forwarder, Pair
from tests.relay_fixture import wait_for



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


if __name__ == "__main__":
    unittest.main()
