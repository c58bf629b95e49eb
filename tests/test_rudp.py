"""Reliable UDP: codec vectors and rejection, the sans-I/O core over a simulated lossy link,
and RudpStream over real UDP sockets on 127.0.0.1."""

import os
import random
import socket
import threading
import time
import unittest

from tagio.errors import ConnectionClosed, RemoteProtocolError, TransportError, TransportTimeout
from tagio.net import rudp
from tagio.protocol import rudp as codec
from tagio.net.candidates import path_keys
from tagio.net.rudp import RudpConnection, State
from tagio.net.stream import recv_exactly
from tagio.net.udpmux import UdpMux
from tagio.net.udpstream import RudpStream

TOKEN, SESSION = bytes(range(16)), bytes(range(16, 32))


def key_pair():
    return path_keys(TOKEN, SESSION, "viewer"), path_keys(TOKEN, SESSION, "host")


class CodecTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    KEYS = path_keys(TOKEN, SESSION, "viewer")
    MESSAGES = [codec.Punch(b"12345678"), codec.PunchAck(b"abcdefgh"),
                codec.Data(7, 99, codec.FLAG_FIN, b"payload"), codec.Data(0, 0, 0, b""),
                codec.Ack(5, 1234, 100, ((7, 9), (11, 12))), codec.Ping(42), codec.Reset(1)]

    def encode(self, message):
        return codec.encode(message, self.KEYS.conn_id, self.KEYS.send_key)

    def decode(self, datagram):
        return codec.decode(datagram, self.KEYS.conn_id, self.KEYS.send_key)

    def test_round_trips(self):
        for message in self.MESSAGES:
            self.assertEqual(self.decode(self.encode(message)), message)

    def test_golden_vector(self):
        keys = path_keys(b"\x01" * 16, b"\x02" * 16, "viewer")
        datagram = codec.encode(codec.Ping(0x01020304), keys.conn_id, keys.send_key)
        self.assertEqual(datagram[:2], bytes([0xD5, 1]))
        self.assertEqual(datagram[2:6], keys.conn_id)
        self.assertEqual(datagram[6:10], b"\x01\x02\x03\x04")
        self.assertEqual(len(datagram), 18)

    def test_mac_is_truncated_hmac_sha256(self):
        import hashlib
        import hmac
        for key in (self.KEYS.send_key, b"k", bytes(range(100))):  # short, and longer than a block
            datagram = codec.encode(codec.Ping(7), self.KEYS.conn_id, key)
            expected = hmac.new(key, datagram[:-codec.MAC_LEN], hashlib.sha256).digest()[:codec.MAC_LEN]
            self.assertEqual(datagram[-codec.MAC_LEN:], expected)

    def test_data_fast_path_matches_the_generic_codec(self):
        keys = self.KEYS
        fast = codec.encode_data(9, 77, codec.FLAG_FIN, b"abc", keys.conn_id, keys.send_key)
        self.assertEqual(fast, self.encode(codec.Data(9, 77, codec.FLAG_FIN, b"abc")))
        self.assertEqual(codec.decode_data(fast, keys.conn_id, keys.send_key), (9, 77, codec.FLAG_FIN, b"abc"))
        for bad in (self.encode(codec.Ping(1)), fast[:-1], fast + b"x", b""):
            with self.assertRaises(RemoteProtocolError):
                codec.decode_data(bad, keys.conn_id, keys.send_key)
        signed = codec.DATA_HEAD.pack(codec.PacketType.DATA, 1, keys.conn_id, 1, 1, 0) + b"x" * 1300
        too_long = signed + codec._mac(keys.send_key, signed)  # authentic, but over MAX_PAYLOAD
        with self.assertRaises(RemoteProtocolError):
            codec.decode_data(too_long, keys.conn_id, keys.send_key)
        with self.assertRaises(RemoteProtocolError):
            self.decode(too_long)

    def test_every_bit_flip_is_rejected(self):
        datagram = self.encode(codec.Data(3, 4, 0, b"hello"))
        for index in range(len(datagram)):
            for bit in (0x01, 0x80):
                forged = bytearray(datagram)
                forged[index] ^= bit
                with self.assertRaises(RemoteProtocolError):
                    self.decode(bytes(forged))

    def test_wrong_key_and_connection_rejected(self):
        viewer, host = key_pair()
        datagram = codec.encode(codec.Ping(1), viewer.conn_id, viewer.send_key)
        with self.assertRaises(RemoteProtocolError):
            codec.decode(datagram, viewer.conn_id, viewer.recv_key)  # our own packet reflected
        other = path_keys(TOKEN, os.urandom(16), "host")
        with self.assertRaises(RemoteProtocolError):
            codec.decode(datagram, other.conn_id, other.recv_key)

    def test_oversize_and_truncated_rejected(self):
        too_big = self.encode(codec.Data(1, 1, 0, b"x" * codec.MAX_PAYLOAD)) + b"x" * 200
        for raw in (b"", b"\xd5\x01", too_big, self.encode(codec.Ping(1))[:-1]):
            with self.assertRaises(RemoteProtocolError):
                self.decode(raw)

    def test_impossible_sack_block_rejected(self):
        bad = codec.Ack(10, 0, 1, ((12, 11),))
        with self.assertRaises(RemoteProtocolError):
            self.decode(self.encode(bad))

    def test_random_garbage_only_raises_protocol_error(self):
        rng = random.Random(5)
        for _ in range(2000):
            raw = bytes([rng.choice([0xD1, 0xD3, 0xD4])] + [1]) + self.KEYS.conn_id + \
                rng.randbytes(rng.randrange(0, 60))
            with self.assertRaises(RemoteProtocolError):
                self.decode(raw)

    def test_payload_limit_enforced_locally(self):
        from tagio.errors import LocalProtocolError
        with self.assertRaises(LocalProtocolError):
            self.encode(codec.Data(1, 1, 0, b"x" * (codec.MAX_PAYLOAD + 1)))


class Link:
    """Simulated path between two cores: fixed delay, seeded random loss each way, virtual clock."""

    def __init__(self, loss=0.0, delay=0.005, seed=1, jitter=0.0, duplicate=0.0):
        self.rng = random.Random(seed)
        self.loss, self.delay = loss, delay
        self.jitter, self.duplicate = jitter, duplicate
        self.now = 1000.0
        a_keys, b_keys = key_pair()
        self.a, self.b = RudpConnection(a_keys, self.now), RudpConnection(b_keys, self.now)
        self.flying = []  # (arrival, destination, datagram)
        self.cut = False
        self.sent = 0

    def step(self, dt=0.001):
        self.now += dt
        for conn in (self.a, self.b):
            deadline = conn.next_deadline()
            if deadline is not None and self.now >= deadline:
                conn.on_timer(self.now)
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            for datagram in src.datagrams_to_send(self.now):
                self.sent += 1
                copies = 2 if self.rng.random() < self.duplicate else 1
                for _ in range(copies):
                    if not self.cut and self.rng.random() >= self.loss:
                        delay = self.delay + self.rng.random() * self.jitter  # jitter reorders
                        self.flying.append((self.now + delay, dst, datagram))
        arrived = [f for f in self.flying if f[0] <= self.now]
        self.flying = [f for f in self.flying if f[0] > self.now]
        for _t, dst, datagram in arrived:
            dst.datagram_received(datagram, self.now)

    def transfer(self, data, limit=120.0):
        """Send `data` a -> b (then FIN), return what b read."""
        got, offset, start = bytearray(), 0, self.now
        while self.now - start < limit:
            if offset < len(data):
                offset += self.a.write(data[offset:offset + 65536])
                if offset == len(data):
                    self.a.close()
            got += self.b.read(1 << 20)
            if self.b.at_eof and self.a.state is State.CLOSED:
                return bytes(got)
            self.step()
        raise AssertionError(f"transfer did not finish: {len(got)} of {len(data)} bytes")


class CoreTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_transfer_without_loss(self):
        link = Link()
        data = random.Random(2).randbytes(300_000)
        self.assertEqual(link.transfer(data), data)
        self.assertEqual(link.a.retransmits, 0)
        self.assertIsNotNone(link.a.srtt)
        self.assertAlmostEqual(link.a.min_rtt, 0.01, delta=0.004)

    def test_transfer_with_ten_percent_loss_each_way(self):
        link = Link(loss=0.10, seed=3)
        data = random.Random(4).randbytes(400_000)
        self.assertEqual(link.transfer(data), data)
        self.assertGreater(link.a.retransmits, 0)
        self.assertLess(link.a.ssthresh, rudp.MAX_CWND)  # the window backed off

    def test_transfer_with_reordering_and_duplicates(self):
        link = Link(loss=0.02, delay=0.002, jitter=0.02, duplicate=0.05, seed=9)
        data = random.Random(10).randbytes(300_000)
        self.assertEqual(link.transfer(data), data)

    def test_authenticated_nonsense_never_breaks_the_core(self):
        link = Link()
        peer = link.b.keys
        rng = random.Random(11)
        link.a.write(b"x" * 50_000)
        link.step()
        for _ in range(3000):
            kind = rng.randrange(4)
            if kind == 0:
                message = codec.Data(rng.randrange(1 << 32), rng.randrange(1 << 32), rng.randrange(256),
                                     rng.randbytes(rng.randrange(0, 50)))
            elif kind == 1:
                cum = rng.randrange(0, 100)
                start = cum + 1 + rng.randrange(50)
                message = codec.Ack(cum, rng.randrange(1 << 32), rng.randrange(1 << 16),
                                    ((start, start + 1 + rng.randrange(50)),))
            elif kind == 2:
                message = codec.Ping(rng.randrange(1 << 32))
            else:
                message = codec.Punch(rng.randbytes(8))
            link.a.datagram_received(codec.encode(message, peer.conn_id, peer.send_key), link.now)
            link.a.datagrams_to_send(link.now)
        self.assertIn(link.a.state, (State.OPEN, State.CLOSING))
        self.assertLessEqual(len(link.a._ooo), rudp.RECV_WINDOW)
        self.assertLessEqual(len(link.a._readable), rudp.RECV_WINDOW * codec.MAX_PAYLOAD)
        self.assertLessEqual(link.a.snd_una, link.a.snd_nxt)

    def test_segments_respect_payload_limit(self):
        link = Link()
        link.a.write(b"x" * 10_000)
        sizes = [len(d) for d in link.a.datagrams_to_send(link.now)]
        self.assertTrue(sizes)
        self.assertLessEqual(max(sizes), codec.MAX_DATAGRAM)
        self.assertEqual(len(sizes), 9)  # ceil(10000 / 1200)

    def test_dead_peer_detected(self):
        link = Link()
        link.a.write(b"hello")
        link.cut = True
        for _ in range(40_000):
            link.step(0.002)
            if link.a.state is State.FAILED:
                break
        self.assertIs(link.a.state, State.FAILED)
        self.assertIsInstance(link.a.error, TransportTimeout)
        with self.assertRaises(TransportTimeout):
            link.a.write(b"more")

    def test_rto_backs_off(self):
        link = Link()
        link.step()  # no traffic yet
        link.a.write(b"x")
        link.cut = True
        first = link.a.rto
        for _ in range(3000):
            link.step()
        self.assertGreater(link.a.rto, first)
        self.assertEqual(link.a.cwnd, 1.0)

    def test_keepalive_when_idle(self):
        link = Link()
        before = link.sent
        for _ in range(int((rudp.KEEPALIVE + 1) / 0.01)):
            link.step(0.01)
        self.assertGreater(link.sent, before)  # pings and their acks
        self.assertIs(link.a.state, State.OPEN)
        self.assertLessEqual(rudp.KEEPALIVE, 15.0)

    def test_forged_and_replayed_datagrams_have_no_effect(self):
        link = Link()
        link.a.write(b"first")
        datagrams = link.a.datagrams_to_send(link.now)
        for d in datagrams:
            link.b.datagram_received(d, link.now)
        self.assertEqual(link.b.read(100), b"first")
        for d in datagrams:  # replay: duplicate, delivers nothing new
            link.b.datagram_received(d, link.now)
        forged = bytearray(datagrams[0])
        forged[-12] ^= 1
        self.assertIsNone(link.b.datagram_received(bytes(forged), link.now))
        self.assertIsNone(link.b.datagram_received(os.urandom(40), link.now))
        self.assertEqual(link.b.read(100), b"")
        self.assertEqual(link.b.dropped, 2)
        self.assertIs(link.b.state, State.OPEN)

    def test_ack_for_unsent_data_is_ignored(self):
        link = Link()
        keys = link.b.keys
        bogus = codec.encode(codec.Ack(50, 0, 10), keys.conn_id, keys.send_key)
        link.a.datagram_received(bogus, link.now)
        self.assertEqual((link.a.snd_una, link.a.dropped), (0, 1))

    def test_receiver_window_bounds_buffering(self):
        link = Link()
        data = b"y" * (rudp.RECV_WINDOW * codec.MAX_PAYLOAD * 3)
        offset = 0
        for _ in range(3000):  # b never reads
            offset += link.a.write(data[offset:])
            link.step()
        self.assertLessEqual(len(link.b._readable), rudp.RECV_WINDOW * codec.MAX_PAYLOAD)
        self.assertLess(offset, len(data))  # the sender's buffer filled up: write() took less
        self.assertEqual(link.a.write(b"z"), 0)

    def test_reading_a_full_window_sends_a_window_update(self):
        link = Link()
        data = b"w" * (rudp.RECV_WINDOW * codec.MAX_PAYLOAD * 2)
        offset = 0
        for _ in range(400):  # fill b's window while it does not read
            offset += link.a.write(data[offset:offset + 65536])
            link.step()
        self.assertEqual(link.a.peer_window, 0)
        self.assertGreater(len(link.b.read(1 << 30)), 0)
        update = link.b.datagrams_to_send(link.now)  # without waiting for a probe
        self.assertEqual(len(update), 1)
        ack = codec.decode(update[0], link.a.keys.conn_id, link.a.keys.recv_key)
        self.assertEqual(ack.window, rudp.RECV_WINDOW)

    def test_reset_fails_the_peer(self):
        link = Link()
        link.a.abort()
        link.step()
        link.step(0.01)
        self.assertIs(link.b.state, State.FAILED)
        self.assertIsInstance(link.b.error, ConnectionClosed)

    def test_transition_table_rejects_missing_pairs(self):
        link = Link()
        with self.assertRaises(RuntimeError):
            link.a._transition("fin_acked")


class AckPolicyTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def flags_of(self, keys, datagrams):
        return [codec.decode(d, keys.conn_id, keys.recv_key).flags for d in datagrams]

    def test_last_segment_of_a_burst_asks_for_an_ack(self):
        link = Link()
        link.a.write(b"x" * 5000)
        burst = link.a.datagrams_to_send(link.now)
        flags = self.flags_of(link.b.keys, burst)
        self.assertEqual(flags[-1] & codec.FLAG_ACK_NOW, codec.FLAG_ACK_NOW)
        self.assertEqual(len(burst), 5)
        for datagram in burst[:2]:  # one unflagged in-order segment at a time: no ack yet
            if self.flags_of(link.b.keys, [datagram])[0] & codec.FLAG_ACK_NOW:
                continue
            link.b.datagram_received(datagram, link.now)
            self.assertEqual(link.b.datagrams_to_send(link.now), [])
        for datagram in burst[2:]:
            link.b.datagram_received(datagram, link.now)
        acks = link.b.datagrams_to_send(link.now)
        self.assertGreaterEqual(len(acks), 1)
        self.assertEqual(codec.decode(acks[-1], link.a.keys.conn_id, link.a.keys.recv_key).cum, 5)

    def test_unrequested_acks_wait_at_most_ack_delay(self):
        link = Link()
        keys = link.a.keys
        datagram = codec.encode_data(0, 0, 0, b"quiet", keys.conn_id, keys.send_key)
        link.b.datagram_received(datagram, link.now)
        self.assertEqual(link.b.datagrams_to_send(link.now), [])
        self.assertLessEqual(link.b.next_deadline(), link.now + rudp.ACK_DELAY)
        acks = link.b.datagrams_to_send(link.now + rudp.ACK_DELAY)
        self.assertEqual(len(acks), 1)

    def test_every_request_in_one_batch_gets_its_own_ack(self):
        link = Link()
        keys = link.a.keys
        for seq in range(4):
            link.b.datagram_received(codec.encode_data(seq, 0, codec.FLAG_ACK_NOW, b"r", keys.conn_id,
                                                       keys.send_key), link.now)
        acks = [codec.decode(d, keys.conn_id, keys.recv_key) for d in link.b.datagrams_to_send(link.now)]
        self.assertEqual([ack.cum for ack in acks], [1, 2, 3, 4])

    def test_one_lost_segment_costs_one_retransmission(self):
        link = Link(delay=0.002)
        original = link.step
        state = {"dropped": False}

        def lossy_step(dt=0.001):
            kept = []
            for arrival, dst, datagram in link.flying:
                if (not state["dropped"] and dst is link.b and datagram[0] == codec.PacketType.DATA
                        and codec.decode(datagram, link.a.keys.conn_id, link.a.keys.send_key).seq == 40):
                    state["dropped"] = True
                    continue
                kept.append((arrival, dst, datagram))
            link.flying = kept
            original(dt)

        link.step = lossy_step
        data = random.Random(7).randbytes(600_000)
        self.assertEqual(link.transfer(data), data)
        self.assertTrue(state["dropped"])
        self.assertEqual(link.a.retransmits, 1)
        self.assertLess(link.a.ssthresh, rudp.MAX_CWND)  # and the window backed off once

    def test_tail_probe_goes_out_through_a_full_window(self):
        link = Link()
        link.a.write(b"t" * 200_000)
        for _ in range(30):
            link.step()
        self.assertIsNotNone(link.a.srtt)
        link.cut = True
        link.step()
        link.a.cwnd = 2.0  # as after a loss: far more in flight than the window allows
        self.assertEqual(link.a.datagrams_to_send(link.now), [])
        before = link.a.retransmits
        link.now = link.a._tlp_deadline
        link.a.on_timer(link.now)
        probe = link.a.datagrams_to_send(link.now)
        self.assertEqual(len(probe), 1)
        self.assertEqual(link.a.retransmits, before + 1)
        self.assertEqual(link.a.datagrams_to_send(link.now), [])  # one probe, not a burst


class StreamTest(unittest.TestCase):
    def setUp(self):
        self.mux_a, self.mux_b = UdpMux.bind(), UdpMux.bind()
        a_keys, b_keys = key_pair()
        self.a = RudpStream(self.mux_a, self.mux_b.address(), a_keys)
        self.b = RudpStream(self.mux_b, self.mux_a.address(), b_keys)

    def tearDown(self):
        for item in (self.a, self.b, self.mux_a, self.mux_b):
            item.close()

    def read_all(self, stream):
        got = bytearray()
        while True:
            chunk = stream.recv(1 << 20)
            if not chunk:
                return bytes(got)
            got += chunk

    def test_bulk_transfer_and_clean_close(self):
        data = os.urandom(3_000_000)

        def sender():
            self.a.send(data)
            self.a.close()

        thread = threading.Thread(target=sender)
        thread.start()
        self.assertEqual(self.read_all(self.b), data)
        thread.join(10)
        self.assertIs(self.a.conn.state, State.CLOSED)
        self.assertEqual(self.a.path, "direct-udp")

    def test_both_directions_at_once(self):
        up, down = os.urandom(500_000), os.urandom(500_000)
        results = {}

        def run(stream, data, name):
            sender = threading.Thread(target=stream.send, args=(data,))
            sender.start()
            results[name] = recv_exactly(stream, len(data))
            sender.join()

        threads = [threading.Thread(target=run, args=(self.a, up, "a")),
                   threading.Thread(target=run, args=(self.b, down, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual((results.get("b"), results.get("a")), (up, down))

    def test_junk_from_a_stranger_does_not_disturb(self):
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(stranger.close)
        conn_id = self.b._keys.conn_id
        for _ in range(200):
            stranger.sendto(bytes([0xD3, 1]) + conn_id + os.urandom(30), self.mux_b.address())
            stranger.sendto(os.urandom(50), self.mux_b.address())
        self.a.send(b"still fine")
        self.b.settimeout(5)
        self.assertEqual(self.b.recv(100), b"still fine")
        deadline = time.monotonic() + 10   # generous: a wait for a condition, free when it holds
        while self.b.conn.dropped < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertGreaterEqual(self.b.conn.dropped, 200)

    def test_recv_timeout(self):
        self.b.settimeout(0.2)
        with self.assertRaises(TransportTimeout):
            self.b.recv(10)

    def test_a_driver_failure_is_raised_to_the_caller(self):
        def broken(*_args):
            raise ValueError("bug in the core")

        self.b.conn.datagram_received = broken
        self.a.send(b"trigger")
        self.b.settimeout(5)
        with self.assertRaises(TransportError) as caught:
            self.b.recv(10)
        self.assertIn("bug in the core", str(caught.exception))

    def test_two_sessions_share_one_socket_pair(self):
        keys_a, keys_b = path_keys(TOKEN, b"second-session-1", "viewer"), path_keys(TOKEN, b"second-session-1", "host")
        c = RudpStream(self.mux_a, self.mux_b.address(), keys_a)
        d = RudpStream(self.mux_b, self.mux_a.address(), keys_b)
        self.addCleanup(d.close)
        self.addCleanup(c.close)
        first, second = os.urandom(700_000), os.urandom(700_000)
        senders = [threading.Thread(target=self.a.send, args=(first,)), threading.Thread(target=c.send, args=(second,))]
        for thread in senders:
            thread.start()
        self.b.settimeout(20)
        d.settimeout(20)
        self.assertEqual(recv_exactly(self.b, len(first)), first)
        self.assertEqual(recv_exactly(d, len(second)), second)
        for thread in senders:
            thread.join(10)

    def test_mux_flushes_each_read_batch(self):
        class Recorder:
            def __init__(self):
                self.items, self.flushes = [], 0

            def put_nowait(self, item):
                self.items.append(item)

            def flush(self):
                self.flushes += 1

        recorder, conn_id = Recorder(), b"\x01\x02\x03\x04"
        self.mux_b.register(conn_id, recorder)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for n in range(200):
            sender.sendto(bytes([0xD5, 1]) + conn_id + n.to_bytes(4, "big") + bytes(8), self.mux_b.address())
        deadline = time.monotonic() + 5
        while len(recorder.items) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual([item[0][6:10] for item in recorder.items], [n.to_bytes(4, "big") for n in range(200)])
        self.assertGreaterEqual(recorder.flushes, 1)
        self.assertLessEqual(recorder.flushes, 200)

    def test_send_after_close_raises(self):
        self.a.close()
        with self.assertRaises(ConnectionClosed):
            self.a.send(b"late")


if __name__ == "__main__":
    unittest.main()
