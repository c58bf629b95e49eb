"""The file-transfer engine (tagio.session.files) between two engines in one process, and against a
lying partner: round trips, resume, conflicts, and every bad name and bad size refused with nothing
written outside the chosen folder. Temporary folders only; no sockets, no threads."""

import errno
import hashlib
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from tagio.errors import RemoteProtocolError
from tagio.protocol import files as f
from tagio.protocol import session as sm
from tagio.session import files as engine_mod
from tagio.session import files_disk as disk
from tagio.session import files_flow, files_receive, files_states
from tagio.session.files import FileEngine, Receiving, Sending, fire
from tagio.session.files_names import PART_SUFFIX, CaseFolder, UnsafeName, check_path
from tagio.session.files_receive import Incoming

LAYER = "unit"


class Side:
    """One engine whose messages go, encoded and decoded as on the wire, to the other side's inbox."""

    def __init__(self, pair, name, **kwargs):
        self.name, self.pair, self.events, self.inbox, self.wire = name, pair, [], [], []
        self.engine = FileEngine(self._send, on_event=self._event, **kwargs)

    def _send(self, msg):
        data = sm.encode(sm.Files(msg))
        self.wire.append(type(msg).__name__)
        self.pair.other(self).inbox.append(sm.decode(data).msg)
        self.engine.sent(data)

    def _event(self, name, **fields):
        self.events.append((name, fields))

    def named(self, name):
        return [fields for n, fields in self.events if n == name]


class Pair:
    def __init__(self, host_root=None, viewer_root=None):
        self.viewer = Side(self, "viewer", root=viewer_root, first_tid=2)
        self.host = Side(self, "host", root=host_root, first_tid=1)

    def other(self, side):
        return self.host if side is self.viewer else self.viewer

    def run(self, limit=100000, batch=False):
        """Deliver messages and run both pumps until nothing moves (`batch`: as the pump thread
        does, small messages ready together go as one Batch)."""
        for _ in range(limit):
            moved = False
            for side in (self.viewer, self.host):
                while side.inbox:
                    side.engine.handle(side.inbox.pop(0))
                    moved = True
                msg = side.engine.next_message()
                if msg is not None:
                    side.engine._send(side.engine._batch_with(msg) if batch else msg)
                    moved = True
            if not moved:
                return
        raise AssertionError("the transfer never settled")


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_tree(root):
    tree = Path(root) / "tree"
    (tree / "empty").mkdir(parents=True)
    (tree / "deep" / "deeper").mkdir(parents=True)
    (tree / "small.txt").write_text("hello")
    (tree / "deep" / "deeper" / "ünïcødé ✓.bin").write_bytes(os.urandom(3 * f.CHUNK + 17))
    (tree / "zero").write_bytes(b"")
    for i, p in enumerate(sorted(tree.rglob("*"))):
        os.utime(p, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 1000))
    os.utime(tree, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    return tree


def assert_same_tree(test, a, b):
    names_a = sorted(p.relative_to(a).as_posix() for p in Path(a).rglob("*"))
    names_b = sorted(p.relative_to(b).as_posix() for p in Path(b).rglob("*"))
    test.assertEqual(names_a, names_b)
    for rel in names_a:
        pa, pb = Path(a) / rel, Path(b) / rel
        test.assertEqual(pa.stat().st_mtime_ns, pb.stat().st_mtime_ns, rel)
        if pa.is_file():
            test.assertEqual(sha(pa), sha(pb), rel)
    test.assertEqual(Path(a).stat().st_mtime_ns, Path(b).stat().st_mtime_ns)


class Base(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.local = self.tmp / "local"
        self.shared = self.tmp / "shared"      # the host's files folder
        self.outside = self.tmp / "outside"    # must stay empty
        for d in (self.local, self.shared, self.outside):
            d.mkdir()

    def assertOutsideEmpty(self):
        self.assertEqual(list(self.outside.iterdir()), [])
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["local", "outside", "shared"])

    def done(self, side):
        results = side.named("transfer_done")
        self.assertTrue(results, f"no transfer_done on the {side.name}: {side.events}")
        return results[-1]


class RoundTrip(Base):
    def test_send_a_tree_to_the_host(self):
        tree = make_tree(self.local)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(tree)])
        pair.run()
        assert_same_tree(self, tree, self.shared / "tree")
        sent, got = self.done(pair.viewer), self.done(pair.host)
        self.assertTrue(sent["ok"], sent)
        self.assertTrue(got["ok"], got)
        self.assertEqual(sent["verified"], 3)
        self.assertEqual(sent["bytes"], 5 + 3 * f.CHUNK + 17)
        self.assertEqual(list(self.shared.rglob("*" + PART_SUFFIX)), [])

    def test_send_into_a_subfolder(self):
        (self.local / "a.txt").write_text("x")
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "a.txt")], dest="in/box")
        pair.run()
        self.assertEqual((self.shared / "in" / "box" / "a.txt").read_text(), "x")

    def test_fetch_a_tree_from_the_host(self):
        tree = make_tree(self.shared)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.fetch(["tree/deep", "tree/small.txt"], self.local)
        pair.run()
        assert_same_tree(self, tree / "deep", self.local / "deep")
        self.assertEqual((self.local / "small.txt").read_text(), "hello")
        self.assertTrue(self.done(pair.viewer)["ok"])
        self.assertTrue(self.done(pair.host)["ok"])

    def test_second_run_skips_what_is_there(self):
        tree = make_tree(self.local)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(tree)])
        pair.run()
        pair.viewer.engine.send_paths([str(tree)])
        pair.run()
        second = self.done(pair.viewer)
        self.assertTrue(second["ok"], second)
        self.assertEqual((second["bytes"], second["skipped"]), (0, 3))

    def test_snapshot_for_a_display(self):
        tree = make_tree(self.local)
        pair = Pair(host_root=self.shared)
        tid = pair.viewer.engine.send_paths([str(tree)])[0]
        self.assertEqual(pair.viewer.engine.snapshot()[0]["state"], "offered")
        pair.run()
        row = pair.viewer.engine.snapshot()[0]
        self.assertEqual((row["tid"], row["direction"], row["name"], row["ok"]), (tid, "send", "tree", True))
        self.assertEqual(row["bytes"], row["total"])
        self.assertEqual(pair.host.engine.snapshot()[0]["direction"], "receive")

    def test_listing(self):
        make_tree(self.shared)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.list_dir("tree")
        pair.run()
        listing = pair.viewer.named("listing")[0]
        self.assertEqual(pair.viewer.engine.listings[1]["entries"], listing["entries"])
        self.assertEqual(listing["error"], "")
        self.assertEqual([e[0] for e in listing["entries"]], ["deep", "empty", "small.txt", "zero"])
        pair.viewer.engine.list_dir("../")
        pair.run()
        self.assertIn("leave the folder", pair.viewer.named("listing")[1]["error"])

    def test_offers_are_split_when_big(self):
        for i in range(7):
            (self.local / f"f{i}").write_text(str(i))
        pair = Pair(host_root=self.shared)
        with mock.patch.object(f, "MAX_ENTRIES", 3):
            tids = pair.viewer.engine.send_paths([str(self.local)])
            pair.run()
        self.assertEqual(len(tids), 3)
        self.assertTrue(all(r["ok"] for r in pair.viewer.named("transfer_done")))
        self.assertEqual(len(list((self.shared / "local").iterdir())), 7)


class Permission(Base):
    def test_no_files_folder_refuses_everything(self):
        (self.local / "a").write_text("a")
        pair = Pair(host_root=None)
        pair.viewer.engine.send_paths([str(self.local / "a")])
        pair.viewer.engine.fetch(["a"], self.local)
        pair.viewer.engine.list_dir("")
        pair.run()
        results = pair.viewer.named("transfer_done")
        self.assertEqual(len(results), 2)
        for result in results:
            self.assertFalse(result["ok"])
            self.assertIn("does not accept files", result["message"])
        self.assertIn("does not accept files", pair.viewer.named("listing")[0]["error"])
        said = pair.host.named("file_refused")               # the host's side says it too
        self.assertEqual([(r["direction"], r["path"]) for r in said], [("receive", "a"), ("send", "a")])
        self.assertTrue(all("does not allow files" in r["reason"] for r in said))
        self.assertIn("does not allow files", pair.host.named("transfer_done")[0]["message"])

    def test_viewer_takes_no_offer_it_did_not_ask_for(self):
        (self.shared / "a").write_text("a")
        pair = Pair(host_root=self.shared)
        pair.host.engine.send_paths([str(self.shared / "a")])
        pair.run()
        self.assertFalse(self.done(pair.host)["ok"])
        self.assertEqual(sorted(p.name for p in self.local.iterdir()), [])


BAD_NAMES = ["../escape", "a/../../escape", "/etc/escape", "\\escape", "C:/escape", "c:escape",
             "a\x00b", "bell\x07", "x\\..\\escape", "CON", "nul.txt", "com1", "LPT9.log", "aux ",
             "dot.", "", "a//b", ".", "a/./b", "what?", "pipe|", "x" * 256, "f" + PART_SUFFIX,
             "/".join(["d"] * 40)]


class BadNames(Base):
    def test_each_name_refused_by_the_check(self):
        for name in BAD_NAMES:
            with self.subTest(name=name):
                with self.assertRaises(UnsafeName) as ctx:
                    check_path(name)
                self.assertTrue(str(ctx.exception))

    def test_good_names_pass(self):
        for name in ("a", "ünï/cødé ✓", "console", "a b/c.d", ".hidden", "COM10"):
            self.assertEqual(check_path(name), tuple(name.split("/")))

    def test_offers_of_bad_names_write_nothing_outside(self):
        pair = Pair(host_root=self.shared)
        viewer = pair.viewer
        entries = [(name, f.KIND_FILE, 3, 0) for name in BAD_NAMES]
        pair.host.engine.handle(f.Offer(11, "", f.POLICY_OVERWRITE, entries))
        accept = viewer.inbox.pop()
        self.assertEqual([d[0] for d in accept.decisions], [f.ACT_REFUSE] * len(BAD_NAMES))
        self.assertTrue(all(d[4] for d in accept.decisions))
        refused = pair.host.named("file_refused")
        self.assertEqual(len(refused), len(BAD_NAMES))
        self.assertEqual(list(self.shared.iterdir()), [])
        self.assertOutsideEmpty()

    def test_bad_destination_folder_refused(self):
        pair = Pair(host_root=self.shared)
        pair.host.engine.handle(f.Offer(11, "../outside", f.POLICY_ASK, [("a", f.KIND_FILE, 1, 0)]))
        error = pair.viewer.inbox.pop()
        self.assertIsInstance(error, f.Error)
        self.assertIn("leave the folder", error.text)
        self.assertOutsideEmpty()

    def test_case_only_duplicates(self):
        folder = CaseFolder()
        folder.add(("Dir", "a.txt"))
        with self.assertRaises(UnsafeName) as ctx:
            folder.add(("dir", "A.TXT"))
        self.assertIn("differ only in case", str(ctx.exception))
        pair = Pair(host_root=self.shared)
        pair.host.engine.handle(f.Offer(11, "", f.POLICY_ASK, [("A", f.KIND_FILE, 1, 0),
                                                              ("a", f.KIND_FILE, 1, 0)]))
        decisions = pair.viewer.inbox.pop().decisions
        self.assertEqual([d[0] for d in decisions], [f.ACT_SEND, f.ACT_REFUSE])

    def test_symlink_pointing_outside_is_refused(self):
        (self.shared / "link").symlink_to(self.outside)
        (self.shared / "inner").mkdir()
        (self.shared / "ok").symlink_to(self.shared / "inner")
        pair = Pair(host_root=self.shared)
        pair.host.engine.handle(f.Offer(11, "", f.POLICY_OVERWRITE, [
            ("link/evil", f.KIND_FILE, 1, 0), ("link", f.KIND_FILE, 1, 0), ("ok/fine", f.KIND_FILE, 1, 0)]))
        decisions = pair.viewer.inbox.pop().decisions
        self.assertEqual([d[0] for d in decisions], [f.ACT_REFUSE, f.ACT_REFUSE, f.ACT_SEND])
        self.assertIn("outside the folder", decisions[0][4])
        pair.viewer.engine.fetch(["link"], self.local)
        pair.run()
        self.assertFalse(self.done(pair.viewer)["ok"])
        self.assertOutsideEmpty()

    def test_sender_skips_symlinks_in_its_tree(self):
        tree = self.local / "t"
        tree.mkdir()
        (tree / "real").write_text("r")
        (tree / "link").symlink_to(self.outside)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(tree)])
        pair.run()
        self.assertEqual(sorted(p.name for p in (self.shared / "t").iterdir()), ["real"])
        self.assertEqual(pair.viewer.named("file_refused")[0]["path"], "t/link")


class LyingSender(Base):
    """The host receives from a sender that lies; we play the sender by hand."""

    def offer(self, size=10, name="f.bin", policy=f.POLICY_ASK):
        self.pair = Pair(host_root=self.shared)
        self.pair.host.engine.handle(f.Offer(21, "", policy, [(name, f.KIND_FILE, size, 0)]))
        return self.pair.viewer.inbox.pop()

    def feed(self, *msgs):
        """The host's answers, without the Got acknowledgements (the window's: test_files_flow)."""
        for msg in msgs:
            self.pair.host.engine.handle(msg)
        return [msg for msg in self.pair.viewer.inbox if not isinstance(msg, f.Got)]

    def assertNothingFinal(self):
        self.assertFalse((self.shared / "f.bin").exists())
        self.assertOutsideEmpty()

    def test_more_data_than_announced(self):
        self.offer(10)
        replies = self.feed(f.Chunk(21, 0, 0, b"x" * 20), f.Done(21, 0, bytes(32)), f.End(21))
        self.assertIn("more data than the 10 bytes", replies[0].text)
        self.assertEqual(replies[-1], f.Summary(21, 0, 1, 0))
        self.assertNothingFinal()
        self.assertFalse((self.shared / ("f.bin" + PART_SUFFIX)).exists())
        self.assertFalse(self.done(self.pair.host)["ok"])

    def test_less_data_than_announced(self):
        self.offer(10)
        data = b"x" * 5
        replies = self.feed(f.Chunk(21, 0, 0, data), f.Done(21, 0, hashlib.sha256(data).digest()))
        self.assertIn("announced 10 bytes and sent 5", replies[0].text)
        self.assertNothingFinal()

    def test_wrong_sha256(self):
        self.offer(3)
        replies = self.feed(f.Chunk(21, 0, 0, b"abc"), f.Done(21, 0, hashlib.sha256(b"abd").digest()))
        self.assertIn("SHA-256 differs", replies[0].text)
        self.assertNothingFinal()

    def test_data_out_of_order_ends_the_session(self):
        self.offer(10)
        with self.assertRaises(RemoteProtocolError):
            self.feed(f.Chunk(21, 0, 4, b"abc"))

    def test_data_for_a_refused_or_unknown_entry(self):
        self.offer(3, name="../x")
        with self.assertRaises(RemoteProtocolError):
            self.feed(f.Chunk(21, 0, 0, b"abc"))
        with self.assertRaises(RemoteProtocolError):
            self.feed(f.Chunk(99, 0, 0, b"abc"))

    def test_end_twice_is_a_protocol_error(self):
        self.offer(0)
        self.feed(f.Done(21, 0, hashlib.sha256(b"").digest()), f.End(21))
        self.assertTrue((self.shared / "f.bin").exists())
        with self.assertRaises(RemoteProtocolError):
            self.feed(f.End(21))

    def test_full_disk_while_writing(self):
        self.offer(3)
        real_open = open

        class Full:
            def __init__(self, fh):
                self.fh = fh

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, name):
                return getattr(self.fh, name)

        with mock.patch.object(files_receive, "open", create=True,
                               side_effect=lambda *a, **k: Full(real_open(*a, **k))):
            replies = self.feed(f.Chunk(21, 0, 0, b"abc"))
        self.assertIn("the disk is full", replies[0].text)
        self.assertNothingFinal()
        self.assertFalse((self.shared / ("f.bin" + PART_SUFFIX)).exists())

    def test_not_enough_space_refused_up_front(self):
        with mock.patch.object(disk, "free_bytes", return_value=5 << 20):
            accept = self.offer(10 << 20)
        self.assertEqual(accept.decisions[0][0], f.ACT_REFUSE)
        self.assertIn("not enough space", accept.decisions[0][4])

    def test_read_only_folder_refused(self):
        with mock.patch.object(disk, "writable", return_value=False):
            accept = self.offer(3)
        self.assertEqual(accept.decisions[0][0], f.ACT_REFUSE)
        self.assertIn("read-only", accept.decisions[0][4])


class SenderSide(Base):
    def send_then(self, change):
        (self.local / "a.bin").write_bytes(b"x" * 1000)
        (self.local / "b.txt").write_text("fine")
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "a.bin"), str(self.local / "b.txt")])
        change(self.local / "a.bin")
        pair.run()
        return pair

    def test_file_gone_before_it_was_sent(self):
        pair = self.send_then(lambda p: p.unlink())
        result = self.done(pair.viewer)
        self.assertFalse(result["ok"])
        self.assertIn("cannot read it here", result["message"])
        self.assertEqual((self.shared / "b.txt").read_text(), "fine")
        self.assertFalse((self.shared / "a.bin").exists())
        self.assertEqual(self.done(pair.host)["failed"], 1)

    def test_file_grew_or_shrank_while_sent(self):
        for change, words in ((lambda p: p.write_bytes(b"y" * 2000), "grew"),
                              (lambda p: p.write_bytes(b"y" * 10), "shorter")):
            with self.subTest(words=words):
                for leftover in self.shared.iterdir():
                    leftover.unlink()
                pair = self.send_then(change)
                self.assertIn(words, self.done(pair.viewer)["message"])
                self.assertFalse((self.shared / "a.bin").exists())


class Existing(Base):
    def send(self, policy):
        (self.shared / "a.txt").write_text("old")
        (self.local / "a.txt").write_text("new!")
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "a.txt")], policy=policy)
        pair.run()
        return self.done(pair.viewer)

    def test_ask_refuses_and_keeps_the_file(self):
        result = self.send(f.POLICY_ASK)
        self.assertFalse(result["ok"])
        self.assertIn("choose overwrite, skip or keep both", result["message"])
        self.assertEqual((self.shared / "a.txt").read_text(), "old")

    def test_skip(self):
        result = self.send(f.POLICY_SKIP)
        self.assertEqual((result["ok"], result["skipped"]), (True, 1))
        self.assertEqual((self.shared / "a.txt").read_text(), "old")

    def test_overwrite(self):
        self.assertTrue(self.send(f.POLICY_OVERWRITE)["ok"])
        self.assertEqual((self.shared / "a.txt").read_text(), "new!")

    def test_keep_both(self):
        self.assertTrue(self.send(f.POLICY_KEEP_BOTH)["ok"])
        self.assertEqual((self.shared / "a.txt").read_text(), "old")
        self.assertEqual((self.shared / "a (1).txt").read_text(), "new!")

    def test_a_folder_in_the_way(self):
        (self.shared / "a.txt").mkdir()
        (self.local / "a.txt").write_text("new!")
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "a.txt")], policy=f.POLICY_OVERWRITE)
        pair.run()
        self.assertIn("a folder of that name", self.done(pair.viewer)["message"])


class Resume(Base):
    def test_resume_sends_only_the_rest(self):
        data = os.urandom(10 * f.CHUNK + 5)
        (self.local / "big").write_bytes(data)
        (self.shared / ("big" + PART_SUFFIX)).write_bytes(data[:6 * f.CHUNK + 3])
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "big")])
        pair.run()
        result = self.done(pair.viewer)
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["bytes"], len(data) - (6 * f.CHUNK + 3))
        self.assertEqual((self.shared / "big").read_bytes(), data)

    def test_resume_restarts_at_the_first_damaged_block(self):
        data = os.urandom(10 * f.CHUNK)
        part = bytearray(data[:8 * f.CHUNK])
        part[3 * f.CHUNK + 7] ^= 0xFF
        (self.local / "big").write_bytes(data)
        (self.shared / ("big" + PART_SUFFIX)).write_bytes(part)
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(self.local / "big")])
        pair.run()
        result = self.done(pair.viewer)
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["bytes"], 7 * f.CHUNK)
        self.assertEqual((self.shared / "big").read_bytes(), data)

    def test_cancel_keeps_the_part_for_a_resume(self):
        data = os.urandom(6 * f.CHUNK)
        (self.local / "big").write_bytes(data)
        pair = Pair(host_root=self.shared)
        tid = pair.viewer.engine.send_paths([str(self.local / "big")])[0]
        pair.host.engine.handle(pair.host.inbox.pop(0))       # the offer
        pair.viewer.engine.handle(pair.viewer.inbox.pop(0))   # the accept
        for _ in range(3):
            pair.viewer.engine._send(pair.viewer.engine.next_message())
        pair.viewer.engine.cancel(tid, "user")
        pair.run()
        self.assertFalse(self.done(pair.viewer)["ok"])
        self.assertIn("cancelled", self.done(pair.host)["message"])
        part = self.shared / ("big" + PART_SUFFIX)
        self.assertEqual(part.stat().st_size, 3 * f.CHUNK)
        self.assertFalse((self.shared / "big").exists())
        pair.viewer.engine.send_paths([str(self.local / "big")])
        pair.run()
        self.assertEqual(self.done(pair.viewer)["bytes"], 3 * f.CHUNK)
        self.assertEqual((self.shared / "big").read_bytes(), data)


class SmallFiles(Base):
    def test_small_files_travel_many_to_a_message_and_few_acknowledgements(self):
        many = self.local / "many"
        many.mkdir()
        for i in range(300):
            (many / f"f{i:03}.txt").write_bytes(os.urandom(200 + i))
        (many / "big.bin").write_bytes(os.urandom(3 * f.CHUNK))
        pair = Pair(host_root=self.shared)
        pair.viewer.engine.send_paths([str(many)])
        pair.run(batch=True)
        self.assertTrue(self.done(pair.viewer)["ok"], self.done(pair.viewer))
        self.assertEqual(self.done(pair.host)["verified"], 301)
        assert_same_tree(self, many, self.shared / "many")
        sent = pair.viewer.wire
        self.assertIn("Batch", sent)
        self.assertLess(len(sent), 60)                      # not 2 x 300 messages
        self.assertLess(pair.host.wire.count("Got"), 20)    # 300 files, about 100 KB: a few Gots
        flow = pair.viewer.engine.flow                      # the tail need not be acknowledged
        self.assertLess(flow.sent - flow.acked, files_flow.ACK_BYTES)


class Reconnect(Base):
    """A session's path breaks mid-transfer (both engines closed), a new session carries on."""

    def deliver(self, pair, side, count):
        for _ in range(count):
            side.engine.handle(side.inbox.pop(0))

    def test_a_send_continues_after_the_reconnect(self):
        data = os.urandom(10 * f.CHUNK + 99)
        (self.local / "big").write_bytes(data)
        old = Pair(host_root=self.shared)
        tid = old.viewer.engine.send_paths([str(self.local / "big")])[0]
        self.deliver(old, old.host, 1)                                  # the offer
        self.deliver(old, old.viewer, 1)                                # the accept
        for _ in range(5):
            old.viewer.engine._send(old.viewer.engine.next_message())
        self.deliver(old, old.host, 4)                                  # the 5th is lost on the path
        old.viewer.engine.close()
        old.host.engine.close()
        cut = self.done(old.viewer)
        self.assertEqual((cut["ok"], cut["cut"], cut["bytes"]), (False, True, 5 * f.CHUNK))
        self.assertTrue(self.done(old.host)["cut"])

        new = Pair(host_root=self.shared)
        carried = new.viewer.engine.carry(old.viewer.engine)
        self.assertEqual(list(carried), [tid])
        self.assertGreater(carried[tid], tid)                           # ids go on after the old ones
        self.assertEqual(new.host.engine.carry(old.host.engine), {})    # the partner's to carry
        new.run()
        result = self.done(new.viewer)
        self.assertEqual((result["ok"], result["cut"]), (True, False))
        self.assertEqual(result["bytes"], len(data) - 4 * f.CHUNK)      # only the rest, and the lost chunk
        self.assertEqual((self.shared / "big").read_bytes(), data)
        self.assertFalse((self.shared / ("big" + PART_SUFFIX)).exists())

    def test_a_fetch_continues_after_the_reconnect(self):
        data = os.urandom(10 * f.CHUNK + 7)
        (self.shared / "big").write_bytes(data)
        old = Pair(host_root=self.shared)
        tid = old.viewer.engine.fetch(["big"], self.local)
        self.deliver(old, old.host, 1)                                  # the fetch
        self.deliver(old, old.viewer, 1)                                # the offer
        self.deliver(old, old.host, 1)                                  # the accept
        for _ in range(3):
            old.host.engine._send(old.host.engine.next_message())
        self.deliver(old, old.viewer, 3)
        old.viewer.engine.close()
        old.host.engine.close()
        self.assertTrue(self.done(old.viewer)["cut"])
        new = Pair(host_root=self.shared)
        self.assertEqual(list(new.viewer.engine.carry(old.viewer.engine)), [tid])
        new.run()
        result = self.done(new.viewer)
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["bytes"], len(data) - 3 * f.CHUNK)
        self.assertEqual((self.local / "big").read_bytes(), data)

    def test_a_fetch_never_answered_is_asked_again(self):
        (self.shared / "small").write_bytes(b"small")
        old = Pair(host_root=self.shared)
        tid = old.viewer.engine.fetch(["small"], self.local)
        old.viewer.engine.close()                                       # the Fetch was lost
        self.assertEqual((self.done(old.viewer)["tid"], self.done(old.viewer)["cut"]), (tid, True))
        new = Pair(host_root=self.shared)
        self.assertEqual(list(new.viewer.engine.carry(old.viewer.engine)), [tid])
        new.run()
        self.assertTrue(self.done(new.viewer)["ok"])
        self.assertEqual((self.local / "small").read_bytes(), b"small")

    def test_a_fetch_into_a_folder_now_gone_ends_with_a_reason(self):
        (self.shared / "small").write_bytes(b"small")
        into = self.local / "gone"
        into.mkdir()
        old = Pair(host_root=self.shared)
        tid = old.viewer.engine.fetch(["small"], into)
        old.viewer.engine.close()
        into.rmdir()
        new = Pair(host_root=self.shared)
        self.assertEqual(new.viewer.engine.carry(old.viewer.engine), {})
        result = self.done(new.viewer)
        self.assertEqual((result["tid"], result["ok"], result["cut"]), (tid, False, False))
        self.assertIn("does not exist", result["message"])

    def test_finished_cancelled_and_paused(self):
        for name in ("done", "cancelled", "paused"):
            (self.local / name).write_bytes(os.urandom(2 * f.CHUNK))
        old = Pair(host_root=self.shared)
        old.viewer.engine.send_paths([str(self.local / "done")])
        old.run()
        cancelled = old.viewer.engine.send_paths([str(self.local / "cancelled")])[0]
        old.viewer.engine.cancel(cancelled)
        paused = old.viewer.engine.send_paths([str(self.local / "paused")])[0]
        old.viewer.engine.pause(paused)
        old.run()
        old.viewer.engine.close()
        new = Pair(host_root=self.shared)
        carried = new.viewer.engine.carry(old.viewer.engine)
        self.assertEqual(list(carried), [paused])                       # not the done, not the cancelled
        new.run()
        row = new.viewer.engine.snapshot()[0]
        self.assertEqual((row["tid"], row["paused"], row["bytes"]), (carried[paused], True, 0))
        new.viewer.engine.pause(carried[paused], False)
        new.run()
        self.assertTrue(self.done(new.viewer)["ok"])


class PartClaims(unittest.TestCase):
    def test_one_writer_per_part(self):
        claims = disk.PartClaims()
        first, second = object(), object()
        self.assertTrue(claims.claim("/x/a.tagio-part", first))
        self.assertTrue(claims.claim("/x/a.tagio-part", first))         # its own again
        self.assertTrue(claims.claim("/x/b.tagio-part", second))        # another part
        self.assertFalse(claims.claim("/x/a.tagio-part", second, timeout=0.01))
        claims.release("/x/a.tagio-part", second)                        # not its: nothing happens
        self.assertFalse(claims.claim("/x/a.tagio-part", second, timeout=0.01))
        claims.release("/x/a.tagio-part", first)
        self.assertTrue(claims.claim("/x/a.tagio-part", second, timeout=0.01))

    def test_a_second_session_waits_for_the_first_to_close_the_part(self):
        with tempfile.TemporaryDirectory() as tmp:
            root, data = Path(tmp), os.urandom(4 * f.CHUNK)
            offer = f.Offer(1, "", f.POLICY_ASK, [("big", f.KIND_FILE, len(data), 0)])
            first, second = Incoming(1, disk.Folder(root)), Incoming(1, disk.Folder(root))
            first.decide(offer)
            self.assertEqual(first.chunk(f.Chunk(1, 0, 0, data[:f.CHUNK])), [])
            second.decide(offer)
            with mock.patch.object(disk, "CLAIM_WAIT", 0.01):
                refused = second.chunk(f.Chunk(1, 0, 0, data[:f.CHUNK]))
            self.assertIn("another transfer is still writing it", refused[0].text)
            first.stop()                                                 # the first one closes it
            third = Incoming(1, disk.Folder(root))
            accept = third.decide(offer)
            self.assertEqual(accept.decisions[0][:2], (f.ACT_RESUME, f.CHUNK))
            self.assertEqual(third.chunk(f.Chunk(1, 0, f.CHUNK, data[f.CHUNK:])), [])
            self.assertEqual(third.done(f.Done(1, 0, hashlib.sha256(data).digest())), [])
            self.assertEqual((root / "big").read_bytes(), data)


class Pause(Base):
    def test_a_paused_send_waits_and_goes_on(self):
        data = os.urandom(4 * f.CHUNK)
        (self.local / "big").write_bytes(data)
        pair = Pair(host_root=self.shared)
        tid = pair.viewer.engine.send_paths([str(self.local / "big")])[0]
        pair.viewer.engine.pause(tid)
        pair.run()
        row = pair.viewer.engine.snapshot()[0]
        self.assertEqual((row["state"], row["paused"], row["bytes"]), ("sending", True, 0))
        pair.viewer.engine.pause(tid, False)
        pair.run()
        self.assertTrue(self.done(pair.viewer)["ok"])
        self.assertEqual((self.shared / "big").read_bytes(), data)

    def test_a_pause_once_the_data_went_changes_nothing(self):
        """A display polls: its Pause may come as the End went out, or after the transfer ended.
        Nothing is held then, so the transfer is never shown paused (with a Resume to click)."""
        (self.local / "small").write_bytes(b"small")
        pair = Pair(host_root=self.shared)
        engine = pair.viewer.engine
        tid = engine.send_paths([str(self.local / "small")])[0]
        pair.host.engine.handle(pair.host.inbox.pop(0))         # the Offer: the host accepts
        engine.handle(pair.viewer.inbox.pop(0))
        for _ in range(3):                                      # Chunk, Done, End
            engine._send(engine.next_message())
        self.assertEqual(engine.snapshot()[0]["state"], "ending")
        engine.pause(tid)
        self.assertFalse(engine.snapshot()[0]["paused"])
        pair.run()
        engine.pause(tid)
        row = engine.snapshot()[0]
        self.assertEqual((row["state"], row["paused"], row["ok"]), ("done", False, True))
        engine.pause(tid, False)                                # a late Resume: nothing either
        self.assertEqual(engine.snapshot()[0]["paused"], False)


class StateTables(unittest.TestCase):
    def test_missing_pairs_raise(self):
        incoming = Incoming(1, None)
        incoming.state = Receiving.DONE
        with self.assertRaises(RemoteProtocolError):
            fire(incoming, "chunk")
        out = engine_mod.Outgoing(1, [])
        out.state = Sending.OFFERED
        with self.assertRaises(RemoteProtocolError):
            fire(out, "summary")
        out.state = Sending.CANCELLED
        self.assertFalse(fire(out, "accept"))     # late: ignored

    def test_every_state_is_reachable_in_the_tables(self):
        for table, states in ((files_states.SEND_TABLE, Sending), (files_states.RECEIVE_TABLE, Receiving)):
            reached = {s for (s, _e) in table} | set(table.values())
            self.assertEqual(reached, set(states))


if __name__ == "__main__":
    unittest.main()
