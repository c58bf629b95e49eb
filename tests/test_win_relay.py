"""The relay where select() takes 512 sockets per call (Windows), run here: a selector class that
refuses a 513th registration, as Windows' select() refuses a 513th socket, is given to the sharded
selector (tagio.relay.shards), to a real relay on 127.0.0.1 and to the forwarder, which must then
hold well over 512 sockets each. The console and bind helpers of tagio.relay.cli are tested with
fakes; the real Win32 console calls run on Windows only."""

import http.client
import selectors
import socket
import unittest

from tagio.relay import shards
from tagio.relay.forward import Forwarder, Pair
from tests.relay_fixture import start_relay, wait_for

CAP = shards.SELECT_CAP


class RefusingSelector(selectors.PollSelector if hasattr(selectors, "PollSelector") else selectors.SelectSelector):
    """Windows' select() in one rule: no more than 512 sockets per set (poll() underneath, so that
    high descriptor numbers work here)."""

    def register(self, fileobj, events, data=None):
        if len(self.get_map()) >= CAP:
            raise ValueError("too many file descriptors in select()")
        return super().register(fileobj, events, data)


def sharded():
    return shards.ShardedSelector(factory=RefusingSelector)


class ShardedSelectorTest(unittest.TestCase):
    def setUp(self):
        self.sel = sharded()
        self.addCleanup(self.sel.close)
        self.ends = []
        self.addCleanup(lambda: [s.close() for s in self.ends])

    def pairs(self, n):
        made = []
        for _ in range(n):
            a, b = socket.socketpair()
            self.ends += [a, b]
            made.append((a, b))
        return made

    def test_the_refusing_selector_refuses_like_windows(self):
        plain = RefusingSelector()
        self.addCleanup(plain.close)
        for a, _b in self.pairs(CAP):
            plain.register(a, selectors.EVENT_READ)
        extra, _ = self.pairs(1)[0]
        with self.assertRaisesRegex(ValueError, "too many file descriptors"):
            plain.register(extra, selectors.EVENT_READ)

    def test_1100_sockets_in_three_shards_and_only_the_ready_ones_reported(self):
        pairs = self.pairs(1100)
        for i, (a, _b) in enumerate(pairs):
            self.sel.register(a, selectors.EVENT_READ, i)
        self.assertEqual(self.sel.shards, 3)                     # 511 + 511 + 78
        self.assertEqual(len(self.sel.get_map()), 1100)
        self.assertEqual(self.sel.select(0), [])
        self.assertEqual(self.sel.select(0.05), [])              # the timeout ends a round
        for i in (5, 600, 1099):
            pairs[i][1].send(b"x")
        got = set()
        while len(got) < 3:                                      # a round may end at the first shard
            got |= {key.data for key, mask in self.sel.select(5) if mask & selectors.EVENT_READ}
        self.assertEqual(got, {5, 600, 1099})

    def test_unregister_modify_and_reuse_of_freed_slots(self):
        pairs = self.pairs(CAP + 10)
        for i, (a, _b) in enumerate(pairs):
            self.sel.register(a, selectors.EVENT_READ, i)
        self.assertEqual(self.sel.shards, 2)
        self.sel.unregister(pairs[0][0])
        extra, _ = self.pairs(1)[0]
        self.sel.register(extra, selectors.EVENT_READ, "extra")   # the freed slot: no third shard
        self.assertEqual(self.sel.shards, 2)
        self.sel.modify(pairs[CAP + 5][0], selectors.EVENT_WRITE, "writable")
        events = self.sel.select(5)
        self.assertIn("writable", {key.data for key, _mask in events})
        with self.assertRaises(KeyError):
            self.sel.unregister(pairs[0][0])

    def test_a_failing_shard_raises_in_the_caller(self):
        class Exploding(RefusingSelector):
            armed = False

            def select(self, timeout=None):
                if Exploding.armed:
                    raise OSError("select failed")
                return super().select(timeout)
        sel = shards.ShardedSelector(cap=4, factory=Exploding)
        self.addCleanup(sel.close)
        for a, _b in self.pairs(7):
            sel.register(a, selectors.EVENT_READ)
        self.assertEqual(sel.shards, 3)
        Exploding.armed = True
        with self.assertRaisesRegex(OSError, "select failed"):
            sel.select(1)

    def test_default_is_plain_where_select_is_not_capped(self):
        sel = shards.make_selector()
        self.addCleanup(sel.close)
        self.assertEqual(isinstance(sel, shards.ShardedSelector), shards.select_is_capped())


def health(address):
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    finally:
        connection.close()


class RelayOverTheCapTest(unittest.TestCase):
    """1,200 open connections on a relay whose selectors refuse a 513th socket: all are served."""

    def test_relay_serves_every_connection_past_512(self):
        with start_relay(selector_factory=sharded, max_conns_per_ip=5000, handshake_timeout=60) as relay:
            clients = [socket.create_connection(relay.address, timeout=10) for _ in range(1200)]
            self.addCleanup(lambda: [c.close() for c in clients])
            self.assertTrue(wait_for(lambda: len(relay.server.conns.by_fd) >= 1200, timeout=30),
                            f"{len(relay.server.conns.by_fd)} connections accepted")
            self.assertGreaterEqual(relay.server._sel.shards, 3)
            for client in clients[::100] + clients[-3:]:          # old and new ones alike are served
                client.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                self.assertIn(b"200", client.recv(64))
            self.assertEqual(health(relay.address), 200)
            self.assertIsNone(relay.server.error)


class ForwarderOverTheCapTest(unittest.TestCase):
    def test_300_pairs_600_sockets_all_carry_bytes(self):
        fwd = Forwarder(max_pairs=400, idle_timeout=60, selector_factory=sharded)
        ends = []
        try:
            for _ in range(300):
                a_client, a_relay = socket.socketpair()
                b_client, b_relay = socket.socketpair()
                for s in (a_relay, b_relay):
                    s.setblocking(False)
                for s in (a_client, b_client):
                    s.settimeout(10)
                ends.append((a_client, b_client))
                fwd.add(Pair(a_relay, b_relay, 65536))
            self.assertTrue(wait_for(lambda: fwd.active == 300, timeout=20))
            for i, (a, b) in enumerate(ends):
                a.sendall(b"to b %d" % i)
                b.sendall(b"to a %d" % i)
            for i, (a, b) in enumerate(ends):
                self.assertEqual(b.recv(100), b"to b %d" % i)
                self.assertEqual(a.recv(100), b"to a %d" % i)
            self.assertGreaterEqual(fwd._sel.shards, 2)
            self.assertIsNone(fwd.error)
        finally:
            fwd.close()
            for a, b in ends:
                a.close()
                b.close()


if __name__ == "__main__":
    unittest.main()


def _ipv6_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(_ipv6_works(), "no IPv6 here")
class DualStackTest(unittest.TestCase):
    def test_bind_any_v6_takes_ipv4_clients_too(self):
        with start_relay(bind=("::", 0)) as relay:
            self.assertEqual(relay.server.tcp.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 0)
            self.assertEqual(relay.server.udp.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 0)
            self.assertEqual(health(("127.0.0.1", relay.address[1])), 200)

    def test_a_named_v6_address_is_left_alone(self):
        with start_relay(bind=("::1", 0)) as relay:
            self.assertEqual(health(("::1", relay.address[1])), 200)
