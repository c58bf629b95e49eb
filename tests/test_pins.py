"""client/pins.py: the viewer's pinned partner keys (SSH known_hosts style), and how a changed key
reads for people (client/words.py, the command line's one error line and exit status).

A real pins.json in a temporary folder: first pin, refresh, a changed key refused unless accepted
(any key, or exactly the one shown), bounded (the pins used longest ago go first), written
atomically (a write that fails leaves the old file whole), and a damaged file is a clear
PinFileError from every call, never another exception and never silently emptied.
"""

import io
import json
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from tagio.cli.output import EXIT_KEY_CHANGED, Output
from tagio.client import pins as p
from tagio.client import words
from tagio.crypto.identity import Identity, fingerprint

LAYER = "unit"
HOST = "123456789"


class Clock:
    def __init__(self, now=1_700_000_000):
        self.now = now

    def __call__(self):
        return self.now


def key():
    return Identity.generate().public_key


class PinStoreTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.clock = Clock()
        self.store = p.PinStore(self.dir, clock=self.clock)
        self.first, self.other = key(), key()

    def on_disk(self):
        return json.loads((self.dir / p.PINS_FILE).read_text())

    def test_nothing_pinned_nothing_refused(self):
        self.assertIsNone(self.store.get(HOST))
        self.assertIsNone(self.store.check(HOST, self.first))
        self.assertFalse((self.dir / p.PINS_FILE).exists())      # checking writes nothing

    def test_first_session_pins_later_ones_refresh(self):
        self.assertTrue(self.store.remember(HOST, self.first))
        self.clock.now += 3600
        self.assertFalse(self.store.remember(HOST, self.first))
        pin = self.store.get(HOST)
        self.assertEqual((pin.key, pin.first_seen, pin.last_seen),
                         (self.first, 1_700_000_000, 1_700_003_600))
        self.assertEqual(self.on_disk()["pins"][HOST]["key"], self.first.hex())
        if os.name == "posix":
            self.assertEqual((self.dir / p.PINS_FILE).stat().st_mode & 0o777, 0o600)

    def test_a_changed_key_is_refused_loudly(self):
        self.store.remember(HOST, self.first)
        with self.assertRaises(p.KeyChangedError) as ctx:
            self.store.check(HOST, self.other, proven=True)
        error = ctx.exception
        self.assertEqual((error.partner_id, error.pinned, error.offered, error.proven),
                         (HOST, self.first, self.other, True))
        self.assertIn(fingerprint(self.first), str(error))
        self.assertIn(fingerprint(self.other), str(error))
        self.assertEqual(self.store.get(HOST).key, self.first)    # refusing changes nothing

    def test_accepting_any_new_key_or_exactly_the_one_shown(self):
        self.store.remember(HOST, self.first)
        self.assertEqual(self.store.check(HOST, self.other, accept=True).key, self.first)
        self.assertEqual(self.store.check(HOST, self.other, accept=self.other).key, self.first)
        with self.assertRaises(p.KeyChangedError):          # the window accepted another key
            self.store.check(HOST, self.other, accept=key())
        self.assertTrue(self.store.remember(HOST, self.other))
        self.assertIsNone(self.store.check(HOST, self.other))
        self.assertEqual(self.store.get(HOST).first_seen, self.clock.now)

    def test_forget(self):
        self.store.remember(HOST, self.first)
        self.assertTrue(self.store.forget(HOST))
        self.assertFalse(self.store.forget(HOST))
        self.assertIsNone(self.store.check(HOST, self.other))

    def test_bounded_the_pins_used_longest_ago_go_first(self):
        store = p.PinStore(self.dir, clock=self.clock, limit=3)
        ids = [str(100_000_000 + i) for i in range(5)]
        for partner in ids:
            self.clock.now += 1
            store.remember(partner, key())
        self.clock.now += 1
        store.remember(ids[2], store.get(ids[2]).key)      # used again: kept
        store.remember("999999999", key())
        self.assertEqual(set(store.pins()), {ids[2], ids[4], "999999999"})
        self.assertEqual(len(self.on_disk()["pins"]), 3)

    def test_written_atomically_a_failed_write_keeps_the_old_file(self):
        self.store.remember(HOST, self.first)
        before = (self.dir / p.PINS_FILE).read_bytes()
        real = p.atomic_write

        def write_then_fail(path, data, mode=0o600):
            raise OSError(28, "No space left on device")
        with mock.patch.object(p, "atomic_write", write_then_fail):
            with self.assertRaisesRegex(p.PinFileError, "cannot save .*No space left"):
                self.store.remember("987654321", self.other)
        self.assertEqual((self.dir / p.PINS_FILE).read_bytes(), before)
        self.assertIs(p.atomic_write, real)
        self.assertEqual([f.name for f in self.dir.iterdir()], [p.PINS_FILE])   # no temporary left

    def test_a_damaged_file_is_a_clear_error_from_every_call(self):
        good = p.serialise({HOST: p.Pin(self.first, 1, 2)})
        damaged = {
            "truncated": good[:len(good) // 2],
            "not json": b"\x00\xff garbage",
            "another version": good.replace(b'"version": 1', b'"version": 7'),
            "bad key": good.replace(self.first.hex().encode(), b"zz" * 32),
            "short key": good.replace(self.first.hex().encode(), b"ab"),
            "bad id": good.replace(HOST.encode(), b"12345"),
            "bad time": good.replace(b'"first_seen": 1', b'"first_seen": -1'),
            "pins not an object": b'{"version": 1, "pins": []}',
            "too large": b" " * (p.MAX_FILE_BYTES + 1) + good,
        }
        for name, data in damaged.items():
            with self.subTest(name):
                (self.dir / p.PINS_FILE).write_bytes(data)
                for call in (lambda: self.store.get(HOST), lambda: self.store.check(HOST, self.other),
                             lambda: self.store.remember(HOST, self.other), self.store.pins):
                    with self.assertRaises(p.PinFileError) as ctx:
                        call()
                    self.assertIn(str(self.dir / p.PINS_FILE), str(ctx.exception))
                    self.assertIn("Move the file away", str(ctx.exception))
                self.assertEqual((self.dir / p.PINS_FILE).read_bytes(), data)   # never emptied

    def test_a_pin_file_error_reads_as_a_setup_problem(self):
        (self.dir / p.PINS_FILE).write_bytes(b"{")
        with self.assertRaises(p.PinFileError) as ctx:
            self.store.get(HOST)
        said = words.explain(ctx.exception)
        self.assertEqual((said.kind, said.status), ("usage", words.EXIT_USAGE))
        self.assertIn("damaged", said.sentence)

    def test_memory_only_store(self):
        store = p.PinStore(None, clock=self.clock)
        store.remember(HOST, self.first)
        with self.assertRaises(p.KeyChangedError):
            store.check(HOST, self.other)
        self.assertEqual(list(self.dir.iterdir()), [])


class KeyChangedWordsTest(unittest.TestCase):
    def setUp(self):
        self.error = p.KeyChangedError(HOST, key(), key(), proven=False)

    def test_plain_words_own_kind_and_exit_status(self):
        said = words.explain(self.error, partner_id=HOST)
        self.assertEqual((said.kind, said.status), ("key_changed", EXIT_KEY_CHANGED))
        self.assertEqual(EXIT_KEY_CHANGED, 6)
        self.assertIn("Desk 123 456 789", said.sentence)
        self.assertIn("key has changed", said.sentence)
        self.assertIn("posing as your partner", said.advice)
        self.assertNotIn("SHA256", said.sentence)           # fingerprints: the log and the dialog

    def test_a_host_refusing_our_proof_and_an_older_partner_read_plainly(self):
        from tagio.client.refusal import PartnerRefused
        from tagio.protocol.version import VersionMismatch
        said = words.explain(PartnerRefused("identity", "x"), partner_id=HOST)
        self.assertEqual(said.line, "desk 123 456 789 could not verify this desk's ID, so it refused "
                                    "the connection")
        said = words.explain(VersionMismatch("identity proof", 0, 1))
        self.assertEqual(said.kind, "protocol")
        self.assertIn("update both sides", said.line)

    def test_the_command_line_says_it_in_one_line_with_the_way_out(self):
        stdout, stderr = io.StringIO(), io.StringIO()
        out = Output(True, stdout, stderr)
        out.partner_id = HOST
        self.assertEqual(out.error(self.error), 6)
        self.assertEqual(len(stderr.getvalue().splitlines()), 1)
        self.assertIn("--accept-new-key", stderr.getvalue())
        event = json.loads(stdout.getvalue())
        self.assertEqual((event["event"], event["kind"]), ("error", "key_changed"))


if __name__ == "__main__":
    unittest.main()
