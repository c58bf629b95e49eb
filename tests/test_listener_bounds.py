"""Junk dials cost the dialer, not the host: the direct listener's bounds per source, on real sockets.

Loopback has many addresses (127.0.0.2, 127.0.0.3, ...), so one test plays an attacker and a viewer
from different sources against a real DirectListener.
"""

import os
import select
import socket
import unittest

from tagio.net import listener as listener_module
from tagio.net.listener import DirectListener, encode_preamble
from tests.waiting import wait_until

ATTACKER, VIEWER = "127.0.0.2", "127.0.0.3"


class ListenerBoundsTest(unittest.TestCase):
    def setUp(self):
        self.listener = DirectListener(("127.0.0.1", 0))
        self.addCleanup(self.listener.close)
        self.address = self.listener.candidates()[0]

    def dial(self, source, data=b""):
        sock = socket.create_connection(self.address, source_address=(source, 0), timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(data)
        return sock

    @staticmethod
    def closed_by_host(sock, timeout=3.0) -> bool:
        return bool(select.select([sock], [], [], timeout)[0]) and sock.recv(1) == b""

    def test_one_source_reads_at_most_its_share_of_preambles(self):
        share = listener_module.MAX_READERS_PER_SOURCE
        silent = [self.dial(ATTACKER) for _ in range(share)]
        wait_until(lambda: len(self.listener._reading) == share, timeout=5, what="the readers to start")
        self.assertTrue(self.closed_by_host(self.dial(ATTACKER)))        # over its share: shed at once
        for sock in silent:
            self.assertEqual(select.select([sock], [], [], 0)[0], [])    # the others still wait
        session_id = os.urandom(16)
        self.dial(VIEWER, encode_preamble(session_id, b"t" * 16))
        self.assertIsNotNone(self.listener.take(session_id, timeout=3))  # another source gets in

    def test_a_full_parking_lot_makes_room_for_another_source(self):
        parked = []
        for index in range(listener_module.MAX_PENDING):
            parked.append(self.dial(ATTACKER, encode_preamble(bytes([index]) * 16, b"t" * 16)))
            wait_until(lambda: len(self.listener._pending) == index + 1, timeout=5, what="parking")
        self.assertTrue(self.closed_by_host(self.dial(ATTACKER, encode_preamble(os.urandom(16), b"t" * 16))))
        session_id = os.urandom(16)
        self.dial(VIEWER, encode_preamble(session_id, b"v" * 16))
        taken = self.listener.take(session_id, timeout=3)
        self.assertIsNotNone(taken, "a viewer from another address was refused by a full parking lot")
        self.assertEqual(taken[1], b"v" * 16)
        taken[0].close()
        self.assertTrue(self.closed_by_host(parked[0]))                  # the attacker's oldest made room
        self.assertEqual(len(self.listener._pending), listener_module.MAX_PENDING - 1)


if __name__ == "__main__":
    unittest.main()
