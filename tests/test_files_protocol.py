"""File-transfer codec (tagio.protocol.files): golden vectors, round trips, bounds, malformed input."""

import json
import struct
import unittest
from pathlib import Path

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import files as f
from tagio.protocol import session as m

LAYER = "unit"
VECTORS = Path(__file__).parent / "data" / "files_golden_vectors.json"

SAMPLES = {
    "list_dir": f.ListDir(1, "docs/é"),
    "listing": f.Listing(1, "docs", "", 0, [("a.txt", f.KIND_FILE, 5, 1_700_000_000_000_000_000),
                                            ("sub", f.KIND_DIR, 0, -1)]),
    "listing_error": f.Listing(2, "x", "no such folder", 0, []),
    "fetch": f.Fetch(4, f.POLICY_KEEP_BOTH, ["a", "b/c"]),
    "offer": f.Offer(7, "inbox", f.POLICY_ASK, [("tree", f.KIND_DIR, 0, 10), ("tree/ü.bin", f.KIND_FILE, 3, 20)]),
    "accept": f.Accept(7, [(f.ACT_SEND, 0, 0, b"", ""),
                           (f.ACT_RESUME, 4, 2, bytes(range(32)) * 2, "part of 4 bytes")]),
    "chunk": f.Chunk(7, 1, 0, b"abc"),
    "done": f.Done(7, 1, bytes(range(32))),
    "end": f.End(7),
    "summary": f.Summary(7, 2, 0, 3),
    "error": f.Error(7, f.ALL, "disk full"),
    "cancel": f.Cancel(7, "cancelled by the user"),
    "mkdir": f.MkDir(3, "inbox/new ✓"),
    "rename": f.Rename(4, "inbox/a.txt", "inbox/b.txt"),
    "delete": f.Delete(5, "old"),
    "changed": f.Changed(5, ""),
    "changed_error": f.Changed(6, "old does not exist"),
    "got": f.Got(3 << 32 | 5),
    "batch": f.Batch([f.Chunk(7, 2, 0, b"abc"), f.Done(7, 2, bytes(range(32))), f.End(7)]),
}


def write_vectors():        # run by hand when a format changes on purpose
    VECTORS.write_text(json.dumps({k: f.encode(v).hex() for k, v in SAMPLES.items()}, indent=1) + "\n")


class Golden(unittest.TestCase):
    def test_vectors_encode_and_decode(self):
        vectors = json.loads(VECTORS.read_text())
        self.assertEqual(set(vectors), set(SAMPLES))
        for name, hexdata in vectors.items():
            with self.subTest(name=name):
                self.assertEqual(f.encode(SAMPLES[name]).hex(), hexdata)
                self.assertEqual(f.decode(bytes.fromhex(hexdata)), SAMPLES[name])

    def test_chunk_layout_by_hand(self):
        expected = b"\x06" + struct.pack("!IIQI", 7, 1, 0, 3) + b"abc"
        self.assertEqual(f.encode(f.Chunk(7, 1, 0, b"abc")), expected)

    def test_every_type_has_a_sample(self):
        self.assertEqual({type(s) for s in SAMPLES.values()}, set(f.MESSAGE_TYPES.values()))

    def test_carried_in_session_messages(self):
        for sample in SAMPLES.values():
            data = m.encode(m.Files(sample))
            self.assertEqual(data[0], m.FILES_CODE)
            self.assertEqual(m.decode(data), m.Files(sample))
        self.assertEqual(m.decode(m.encode(m.Chat("héllo"))), m.Chat("héllo"))

    def test_full_chunk_fits_a_session_message(self):
        data = m.encode(m.Files(f.Chunk(1, 2, 3, bytes(f.MAX_CHUNK))))
        self.assertLessEqual(len(data), m.MAX_MESSAGE)


class Bounds(unittest.TestCase):
    def assertRemote(self, data, fragment):
        with self.assertRaises(RemoteProtocolError) as ctx:
            f.decode(data)
        self.assertIn(fragment, str(ctx.exception))

    def test_unknown_empty_truncated_trailing(self):
        self.assertRemote(b"", "empty")
        self.assertRemote(b"\x63", "unknown file message type 99")
        good = f.encode(f.Done(1, 2, bytes(32)))
        self.assertRemote(good[:-1], "truncated")
        self.assertRemote(good + b"\x00", "trailing")

    def test_too_many_entries_refused_before_reading_them(self):
        data = b"\x04" + struct.pack("!IH", 1, 0) + b"\x00" + struct.pack("!I", f.MAX_ENTRIES + 1)
        self.assertRemote(data, "entries")

    def test_oversized_chunk_and_path(self):
        self.assertRemote(b"\x06" + struct.pack("!IIQI", 1, 0, 0, f.MAX_CHUNK + 1), "max")
        self.assertRemote(b"\x01" + struct.pack("!IH", 1, f.MAX_PATH + 1), "max")

    def test_batches_hold_no_batch_and_are_bounded(self):
        inner = f.encode(f.Batch([f.End(1)]))
        self.assertRemote(b"\x11" + struct.pack("!HI", 1, len(inner)) + inner, "Batch inside")
        self.assertRemote(b"\x11" + struct.pack("!HI", 1, 0), "empty")
        self.assertRemote(b"\x11" + struct.pack("!H", f.MAX_BATCH + 1), "max")
        self.assertRemote(b"\x11" + struct.pack("!HI", 1, 5) + b"\x08\x00", "truncated")
        with self.assertRaises(LocalProtocolError):
            f.encode(f.Batch([f.Batch([])]))
        with self.assertRaises(LocalProtocolError):
            f.encode(f.Batch([f.End(1)] * (f.MAX_BATCH + 1)))
        self.assertEqual(f.decode(f.encode(f.Batch([]))), f.Batch([]))

    def test_bad_utf8_kind_policy_size_action(self):
        self.assertRemote(b"\x01" + struct.pack("!IH", 1, 2) + b"\xff\xfe", "UTF-8")
        bad_kind = f.encode(f.Offer(1, "", 0, [("a", 0, 1, 0)])).replace(b"a\x00", b"a\x07", 1)
        self.assertRemote(bad_kind, "kind")
        self.assertRemote(b"\x03" + struct.pack("!IBI", 1, 9, 0), "policy")
        lie = f.encode(f.Offer(1, "", 0, [("a", 0, 1, 0)])).replace(
            struct.pack("!Q", 1), struct.pack("!Q", f.MAX_SIZE + 1))
        self.assertRemote(lie, "not believable")
        unknown_action = b"\x05" + struct.pack("!II", 1, 1) + b"\x09" + bytes(8 + 4 + 2 + 2)
        self.assertRemote(unknown_action, "unknown decision")

    def test_resume_hashes_must_cover_the_part(self):
        data = f.encode(f.Accept(1, [(f.ACT_RESUME, 100, 10, bytes(32), "")]))
        self.assertRemote(data, "do not cover")

    def test_local_errors_on_encode(self):
        for bad in (f.Chunk(1, 0, 0, bytes(f.MAX_CHUNK + 1)), f.ListDir(1, "x" * (f.MAX_PATH + 1)),
                    f.Done(1, 0, b"short"), f.End(-1), f.Error(1, 0, "x" * 2000)):
            with self.subTest(bad=type(bad).__name__):
                with self.assertRaises(LocalProtocolError):
                    f.encode(bad)
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Chat("x" * (m.MAX_CHAT + 1)))


if __name__ == "__main__":
    unittest.main()
