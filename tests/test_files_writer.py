"""PartWriter (tagio.session.files_writer): a big part written and hashed on its own thread, in
order, with a bounded queue; a disk error kept and handed back; abort drops, finish drains; the
thread is always joined; a bug is re-raised to the caller. Fake file objects; no disk, no sockets."""

import errno
import hashlib
import threading
import unittest

from tagio.session import files_writer
from tagio.session.files_writer import PartWriter

LAYER = "unit"


class FakeFile:
    """Collects writes; fails with `error` from the `fail_at`-th write on; may hold each write
    until `gate` is set."""

    def __init__(self, fail_at=None, error=None, gate=None):
        self.chunks, self.fail_at, self.error, self.gate = [], fail_at, error, gate

    def write(self, data):
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_at is not None and len(self.chunks) >= self.fail_at:
            raise self.error
        self.chunks.append(bytes(data))


class PartWriterTest(unittest.TestCase):
    def test_everything_written_in_order_and_hashed(self):
        fh, sha = FakeFile(), hashlib.sha256(b"head")
        writer = PartWriter(fh, sha)
        pieces = [bytes([i]) * 1000 for i in range(50)]
        for piece in pieces:
            self.assertIsNone(writer.put(memoryview(piece)))
        self.assertIsNone(writer.finish())
        self.assertEqual(fh.chunks, pieces)
        self.assertEqual(sha.digest(), hashlib.sha256(b"head" + b"".join(pieces)).digest())
        self.assertFalse(writer._thread.is_alive())
        self.assertIsNone(writer.finish())              # twice is fine

    def test_a_disk_error_is_kept_and_handed_back(self):
        full = OSError(errno.ENOSPC, "No space left on device")
        fh = FakeFile(fail_at=2, error=full)
        writer = PartWriter(fh, hashlib.sha256())
        for _ in range(3):
            writer.put(b"x")
        self.assertIs(writer.finish(), full)
        self.assertEqual(len(fh.chunks), 2)              # nothing after the failed write
        self.assertIs(writer.put(b"more"), full)         # the next put says so too

    def test_the_queue_is_bounded(self):
        gate = threading.Event()
        writer = PartWriter(FakeFile(gate=gate), hashlib.sha256(), size=2)
        self.addCleanup(writer.abort)
        self.addCleanup(gate.set)
        done = threading.Event()

        def fill():
            for _ in range(5):          # one taken by the writer, two queued, the rest waits
                writer.put(b"x")
            done.set()
        thread = threading.Thread(target=fill)
        thread.start()
        self.assertFalse(done.wait(0.3))
        gate.set()
        self.assertTrue(done.wait(10))
        thread.join(10)

    def test_abort_drops_what_waits_and_joins(self):
        gate = threading.Event()
        fh = FakeFile(gate=gate)
        writer = PartWriter(fh, hashlib.sha256(), size=4)
        for _ in range(4):
            writer.put(b"x")
        threading.Timer(0.1, gate.set).start()
        writer.abort()
        self.assertLess(len(fh.chunks), 4)
        self.assertFalse(writer._thread.is_alive())
        self.assertIsNone(writer.put(b"late"))           # after abort: ignored
        self.assertLess(len(fh.chunks), 4)

    def test_a_bug_in_the_writer_is_raised_to_the_caller(self):
        writer = PartWriter(FakeFile(fail_at=0, error=ValueError("I/O operation on closed file")),
                            hashlib.sha256())
        writer.put(b"x")
        with self.assertRaises(ValueError):
            writer.finish()

    def test_only_big_files_get_a_writer(self):
        """A thread per small file would cost more than the file: below ASYNC_MIN the receiver
        writes inline."""
        import os
        import tempfile
        from pathlib import Path
        from tagio.protocol import files as f
        from tagio.session import files_disk as disk
        from tagio.session.files_receive import Incoming
        with tempfile.TemporaryDirectory() as tmp:
            small, big = os.urandom(f.CHUNK), os.urandom(files_writer.ASYNC_MIN + 1)
            offer = f.Offer(1, "", f.POLICY_ASK, [("small", f.KIND_FILE, len(small), 0),
                                                   ("big", f.KIND_FILE, len(big), 0)])
            incoming = Incoming(1, disk.Folder(tmp))
            incoming.decide(offer)
            incoming.chunk(f.Chunk(1, 0, 0, small))
            self.assertIsNone(incoming.plans[0].writer)
            self.assertEqual(incoming.done(f.Done(1, 0, hashlib.sha256(small).digest())), [])
            for pos in range(0, len(big), f.CHUNK):
                incoming.chunk(f.Chunk(1, 1, pos, big[pos:pos + f.CHUNK]))
                self.assertIsNotNone(incoming.plans[1].writer)
            self.assertEqual(incoming.done(f.Done(1, 1, hashlib.sha256(big).digest())), [])
            self.assertIsNone(incoming.plans[1].writer)
            self.assertEqual((Path(tmp) / "big").read_bytes(), big)
            self.assertEqual((Path(tmp) / "small").read_bytes(), small)


if __name__ == "__main__":
    unittest.main()
