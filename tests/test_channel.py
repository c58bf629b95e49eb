"""AEAD records (sans-I/O) and SecureChannel over real socketpairs and threads."""

import os
import socket
import threading
import time
import unittest

from tagio.crypto import records
from tagio.crypto.channel import MAX_MESSAGE, SecureChannel
from tagio.crypto.records import REC_CLOSE, REC_DATA, RecordOpener, RecordSealer
from tagio.errors import ConnectionClosed, LocalProtocolError, SecureChannelError
from tagio.net.stream import SocketStream


def direction(cipher=records.DEFAULT_CIPHER, interval=records.REKEY_INTERVAL):
    key, prefix = os.urandom(32), os.urandom(4)
    return (RecordSealer(key, prefix, cipher=cipher, rekey_interval=interval),
            RecordOpener(key, prefix, cipher=cipher, rekey_interval=interval))


def socketpair():
    """A socketpair whose reads give up after 10 s, so a bug fails a test instead of hanging it."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    return a, b


def channel_pair(path="direct-tcp", **kwargs):
    a_sock, b_sock = socketpair()
    k1, p1, k2, p2 = os.urandom(32), os.urandom(4), os.urandom(32), os.urandom(4)
    a = SecureChannel(SocketStream(a_sock, path), send_key=k1, send_prefix=p1,
                      recv_key=k2, recv_prefix=p2, **kwargs)
    b = SecureChannel(SocketStream(b_sock, path), send_key=k2, send_prefix=p2,
                      recv_key=k1, recv_prefix=p1, **kwargs)
    return a, b


def tapped_pair():
    """(a, mid_left, mid_right, b): a's records reach b only if the test copies them across."""
    a_sock, mid_left = socketpair()
    mid_right, b_sock = socketpair()
    key, prefix = os.urandom(32), os.urandom(4)
    a = SecureChannel(SocketStream(a_sock), send_key=key, send_prefix=prefix,
                      recv_key=os.urandom(32), recv_prefix=prefix)
    b = SecureChannel(SocketStream(b_sock), send_key=os.urandom(32), send_prefix=prefix,
                      recv_key=key, recv_prefix=prefix)
    return a, mid_left, mid_right, b


class RecordLayerTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def assert_cause(self, cause, fn, *args):
        with self.assertRaises(SecureChannelError) as ctx:
            fn(*args)
        self.assertEqual(ctx.exception.cause, cause)
        self.assertIn(cause, str(ctx.exception))
        return ctx.exception

    def test_round_trip_both_ciphers(self):
        for cipher in records.CIPHERS:
            with self.subTest(cipher=cipher):
                sealer, opener = direction(cipher)
                wire = b"".join(sealer.seal(m) for m in (b"a", b"", b"c" * 70000))
                self.assertEqual(opener.feed(wire), [(REC_DATA, b"a"), (REC_DATA, b""), (REC_DATA, b"c" * 70000)])

    def test_byte_at_a_time(self):
        sealer, opener = direction()
        wire = sealer.seal(b"hello") + sealer.seal(b"world")
        out = []
        for i in range(len(wire)):
            out += opener.feed(wire[i:i + 1])
        self.assertEqual([p for _, p in out], [b"hello", b"world"])

    def test_ciphertext_hides_plaintext_and_nonces_differ(self):
        sealer, _ = direction()
        one, two = sealer.seal(b"same message" * 10), sealer.seal(b"same message" * 10)
        self.assertNotEqual(one[12:], two[12:])
        self.assertNotIn(b"same message", one)

    def test_bit_flip_anywhere_is_tamper(self):
        key, prefix = os.urandom(32), os.urandom(4)
        sealer = RecordSealer(key, prefix)
        record = sealer.seal(b"payload" * 20)
        for position in (4, 11, 12, 40, len(record) - 1):   # seq, body, tag
            with self.subTest(position=position):
                opener = RecordOpener(key, prefix)
                bad = bytearray(record)
                bad[position] ^= 0x01
                self.assert_cause("tamper", opener.feed, bytes(bad))

    def test_length_out_of_range_is_tamper_without_buffering(self):
        _, opener = direction()
        self.assert_cause("tamper", opener.feed, records.HEADER.pack(records.MAX_BODY + 1, 0))
        _, opener = direction()
        self.assert_cause("tamper", opener.feed, records.HEADER.pack(3, 0) + b"abc")

    def test_replay(self):
        sealer, opener = direction()
        first = sealer.seal(b"one")
        opener.feed(first + sealer.seal(b"two"))
        self.assert_cause("replay", opener.feed, first)

    def test_reorder(self):
        sealer, opener = direction()
        first, second = sealer.seal(b"one"), sealer.seal(b"two")
        self.assert_cause("reorder", opener.feed, second + first)

    def test_dropped_record_is_reorder(self):
        sealer, opener = direction()
        sealer.seal(b"lost")
        self.assert_cause("reorder", opener.feed, sealer.seal(b"next"))

    def test_truncation_without_close(self):
        sealer, opener = direction()
        opener.feed(sealer.seal(b"one"))
        self.assert_cause("truncation", opener.end_of_stream)

    def test_truncation_inside_record(self):
        sealer, opener = direction()
        opener.feed(sealer.seal(b"one" * 100)[:50])
        error = self.assert_cause("truncation", opener.end_of_stream)
        self.assertIn("inside a record", str(error))

    def test_clean_close(self):
        sealer, opener = direction()
        self.assertEqual(opener.feed(sealer.seal(b"", REC_CLOSE)), [(REC_CLOSE, b"")])
        opener.end_of_stream()   # no error
        self.assertTrue(opener.closed)
        self.assertEqual(opener.feed(sealer.seal(b"after close")), [])

    def test_good_records_before_a_bad_one_are_delivered(self):
        sealer, opener = direction()
        first = sealer.seal(b"one")
        self.assertEqual(opener.feed(first + first), [(REC_DATA, b"one")])
        self.assert_cause("replay", opener.feed, b"")
        self.assert_cause("replay", opener.end_of_stream)

    def test_failure_is_terminal(self):
        sealer, opener = direction()
        good = sealer.seal(b"good")
        self.assert_cause("tamper", opener.feed, b"\x00\x00\x00\x20" + bytes(8) + bytes(0x20))
        self.assert_cause("tamper", opener.feed, good)

    def test_reflection_is_tamper(self):
        # A record sent back to its sender must not open: each direction has its own key.
        key_out, key_in = os.urandom(32), os.urandom(32)
        mine = RecordSealer(key_out, b"AAAA")
        my_opener = RecordOpener(key_in, b"BBBB")
        self.assert_cause("tamper", my_opener.feed, mine.seal(b"echo"))

    def test_rekey_round_trip_and_key_changes(self):
        sealer, opener = direction(interval=3)
        messages = [bytes([i]) * 10 for i in range(10)]
        wire = b"".join(sealer.seal(m) for m in messages)
        self.assertEqual([p for _, p in opener.feed(wire)], messages)
        # A receiver that never rekeys fails exactly at record 3.
        key, prefix = os.urandom(32), os.urandom(4)
        rekeying = RecordSealer(key, prefix, rekey_interval=3)
        stale = RecordOpener(key, prefix, rekey_interval=1000)
        wire = b"".join(rekeying.seal(b"m") for _ in range(4))
        self.assertEqual(len(stale.feed(wire)), 3)
        self.assert_cause("tamper", stale.feed, b"")
        self.assertEqual(stale.seq, 3)

    def test_counter_never_wraps(self):
        sealer, _ = direction()
        sealer.seq = records.MAX_SEQ
        with self.assertRaises(SecureChannelError):
            sealer.seal(b"x")

    def test_oversized_message_refused_locally(self):
        sealer, _ = direction()
        with self.assertRaises(LocalProtocolError):
            sealer.seal(b"x" * (records.MAX_RECORD + 1))
        self.assertEqual(len(sealer.seal(b"x" * records.MAX_RECORD)), records.MAX_RECORD + 1 + 16 + 12)


class SecureChannelTest(unittest.TestCase):
    def test_close_returns_when_the_peer_reads_nothing(self):
        """A full send buffer (a stuck peer) must not hold close() for ever: the CLOSE record gets
        CLOSE_SEND_WAIT, then the stream is cut."""
        from tagio.crypto import channel as channel_module
        a, b = channel_pair()
        self.addCleanup(b.close)
        a.stream.sock.settimeout(None)              # a blocking socket, as in the product
        a.stream.sock.setblocking(False)
        try:
            while True:                             # fill the kernel buffers: b never reads
                a.stream.sock.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        a.stream.sock.setblocking(True)
        started = time.monotonic()
        a.close()
        took = time.monotonic() - started
        self.assertTrue(a.closed)
        self.assertLess(took, channel_module.CLOSE_SEND_WAIT + 3.0)

    def test_path_is_copied(self):
        a, b = channel_pair(path="relay")
        self.assertEqual((a.path, b.path), ("relay", "relay"))
        a.close()
        b.close()

    def test_max_message_and_oversize(self):
        a, b = channel_pair()
        big = os.urandom(MAX_MESSAGE)
        sender = threading.Thread(target=a.send, args=(big,))
        sender.start()
        self.assertEqual(b.recv(), big)
        sender.join()
        with self.assertRaises(LocalProtocolError):
            a.send(b"x" * (MAX_MESSAGE + 1))
        a.close()
        b.close()

    def test_full_duplex_one_sender_one_receiver_each_side(self):
        a, b = channel_pair()
        count, errors, got = 300, [], {"a": [], "b": []}

        def send(channel, tag):
            try:
                for i in range(count):
                    channel.send(tag + i.to_bytes(4, "big") * 1000)
            except Exception as exc:
                errors.append(exc)

        def receive(channel, name):
            try:
                for _ in range(count):
                    got[name].append(channel.recv())
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(a, b"A")), threading.Thread(target=send, args=(b, b"B")),
                   threading.Thread(target=receive, args=(a, "a")), threading.Thread(target=receive, args=(b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(got["b"], [b"A" + i.to_bytes(4, "big") * 1000 for i in range(count)])
        self.assertEqual(got["a"], [b"B" + i.to_bytes(4, "big") * 1000 for i in range(count)])
        a.close()
        b.close()

    def test_clean_close_is_connection_closed(self):
        a, b = channel_pair()
        a.send(b"last words")
        a.close()
        self.assertEqual(b.recv(), b"last words")
        with self.assertRaisesRegex(ConnectionClosed, "peer closed"):
            b.recv()
        with self.assertRaises(ConnectionClosed):
            a.send(b"after close")
        a.close()   # idempotent
        b.close()

    def test_cut_stream_is_truncation(self):
        a, b = channel_pair()
        a.send(b"one")
        a.stream.close()   # the transport dies without a CLOSE record
        self.assertEqual(b.recv(), b"one")
        with self.assertRaises(SecureChannelError) as ctx:
            b.recv()
        self.assertEqual(ctx.exception.cause, "truncation")
        with self.assertRaises(SecureChannelError):   # stays broken
            b.recv()
        b.close()

    def test_tampering_on_the_wire(self):
        a, mid_left, mid_right, b = tapped_pair()
        a.send(b"transfer 100 to alice")
        raw = bytearray(mid_left.recv(4096))
        raw[20] ^= 0x40
        mid_right.sendall(bytes(raw))
        with self.assertRaises(SecureChannelError) as ctx:
            b.recv()
        self.assertEqual(ctx.exception.cause, "tamper")
        for item in (a, b, mid_left, mid_right):
            item.close()

    def test_replay_on_the_wire(self):
        a, mid_left, mid_right, b = tapped_pair()
        a.send(b"click OK")
        raw = mid_left.recv(4096)
        mid_right.sendall(raw + raw)
        self.assertEqual(b.recv(), b"click OK")
        with self.assertRaises(SecureChannelError) as ctx:
            b.recv()
        self.assertEqual(ctx.exception.cause, "replay")
        for item in (a, b, mid_left, mid_right):
            item.close()

    def test_close_wakes_blocked_receiver(self):
        a, b = channel_pair()
        outcome = []

        def blocked():
            try:
                b.recv()
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=blocked)
        thread.start()
        time.sleep(0.1)
        b.close()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertIsInstance(outcome[0], ConnectionClosed)
        a.close()

    def test_concurrent_closes_send_one_close_record(self):
        a, b = channel_pair()
        sent = []
        real_send = a.stream.send
        a.stream.send = lambda data: (sent.append(bytes(data)), real_send(data))[1]
        lock, waiting = a._send_lock, []

        class CountingLock:
            def acquire(self, timeout=-1):
                waiting.append(1)
                return lock.acquire(timeout=timeout)

            def release(self):
                lock.release()
        lock.acquire()  # a sender is busy: both close() calls pass the early check and wait
        a._send_lock = CountingLock()
        closers = [threading.Thread(target=a.close) for _ in range(2)]
        for t in closers:
            t.start()
        end = time.monotonic() + 10
        while len(waiting) < 2 and time.monotonic() < end:
            time.sleep(0.01)
        self.assertEqual(len(waiting), 2)
        lock.release()
        for t in closers:
            t.join(10)
        self.assertEqual(len(sent), 1)  # one CLOSE record, not one per close() call
        with self.assertRaises(ConnectionClosed):
            b.recv()
        b.close()


if __name__ == "__main__":
    unittest.main()


class ReadSizeTest(unittest.TestCase):
    """SecureChannel asks the stream for SMALL_RECV bytes while reads come back small and for
    RECV_CHUNK while big messages stream in (a 256 KiB read buffer costs malloc work per read)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    class Stream:
        def __init__(self, wire):
            self.wire, self.asked = bytearray(wire), []

        def recv(self, max_bytes):
            self.asked.append(max_bytes)
            data = bytes(self.wire[:max_bytes])
            del self.wire[:max_bytes]
            return data

    def test_read_size_follows_the_last_read(self):
        from tagio.crypto.channel import RECV_CHUNK, SMALL_RECV
        key, prefix = os.urandom(32), os.urandom(4)
        sealer = RecordSealer(key, prefix)
        big = b"p" * (3 * RECV_CHUNK)
        wire = b"".join(bytes(sealer.seal(m)) for m in (b"ack", big))
        stream = self.Stream(wire)
        channel = SecureChannel(stream, send_key=os.urandom(32), send_prefix=prefix, recv_key=key,
                                recv_prefix=prefix)
        self.assertEqual([channel.recv() for _ in range(2)], [b"ack", big])
        self.assertEqual(stream.asked[0], SMALL_RECV)
        self.assertEqual(set(stream.asked[1:]), {RECV_CHUNK})     # then big reads, as few as can be
        self.assertLessEqual(len(stream.asked), 1 + len(wire) // RECV_CHUNK + 1)
        for _ in range(2):
            stream.wire += bytes(sealer.seal(b"ack"))
            self.assertEqual(channel.recv(), b"ack")
        self.assertEqual(stream.asked[-1], SMALL_RECV, "a short read makes the next one small again")
