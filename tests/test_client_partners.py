"""Tests for tagio.client.partners (the address book and the always-allowed desks) and
tagio.client.history (the host's session history): bounds, atomic owner-only files, reloading,
damaged files, names cleaned of control characters, rights narrowed by the host's settings."""

import json
import os
import shutil
import stat
import tempfile
import threading
import unittest

from tagio.client import history as history_mod
from tagio.client import partners as partners_mod
from tagio.client.history import HostHistory
from tagio.client.partners import PartnerBook, Rights
from tagio.client.settings import Settings

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        self.now += 1
        return self.now


class Folder(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tagio-partners-")
        self.addCleanup(shutil.rmtree, self.dir, True)


class PartnerBookTest(Folder):
    def test_records_renames_removes_and_reloads(self):
        book = PartnerBook(self.dir, clock=Clock())
        book.record_session("111111111", "relay", "Anna\n\x1b[2J laptop")
        book.record_session("222222222", "direct-tcp")
        book.rename("222222222", "  Bob's\tdesk ")
        again = PartnerBook(self.dir)
        rows = again.partners()
        self.assertEqual([p.id for p in rows], ["222222222", "111111111"])     # newest first
        self.assertEqual(rows[0].shown_name, "Bob's desk")
        self.assertEqual(rows[1].shown_name, "Anna [2J laptop")
        self.assertEqual((rows[0].path, rows[1].path), ("direct-tcp", "relay"))
        again.remove("111111111")
        self.assertEqual([p.id for p in PartnerBook(self.dir).partners()], ["222222222"])

    def test_a_name_given_here_wins_and_empty_gives_the_desks_own_back(self):
        book = PartnerBook(self.dir, clock=Clock())
        book.record_session("111111111", "relay", "Anna")
        book.rename("111111111", "Mum")
        book.record_session("111111111", "relay", "Anna's new name")
        self.assertEqual(book.get("111111111").shown_name, "Mum")
        book.rename("111111111", "")
        self.assertEqual(book.get("111111111").shown_name, "Anna's new name")

    def test_bounded_to_the_newest_partners(self):
        book = PartnerBook(self.dir, clock=Clock())
        for n in range(partners_mod.MAX_PARTNERS + 5):
            book.record_session(f"{100000000 + n}", "relay")
        rows = PartnerBook(self.dir).partners()
        self.assertEqual(len(rows), partners_mod.MAX_PARTNERS)
        self.assertEqual(rows[0].id, f"{100000000 + partners_mod.MAX_PARTNERS + 4}")
        self.assertNotIn("100000000", [p.id for p in rows])

    def test_file_is_owner_only_and_left_whole(self):
        book = PartnerBook(self.dir, clock=Clock())
        book.record_session("111111111", "relay")
        path = os.path.join(self.dir, partners_mod.PARTNERS_FILE)
        if os.name == "posix":
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(self.dir)), [partners_mod.PARTNERS_FILE])   # no temp left
        json.loads(open(path, encoding="utf-8").read())

    def test_concurrent_writers_leave_a_valid_file_with_everything(self):
        book = PartnerBook(self.dir, clock=Clock())
        threads = [threading.Thread(target=lambda n=n: book.record_session(f"{300000000 + n}", "relay"))
                   for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(PartnerBook(self.dir).partners()), 20)

    def test_damaged_entries_are_dropped_one_by_one(self):
        path = os.path.join(self.dir, partners_mod.PARTNERS_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"partners": {"111111111": {"name": "ok", "last": 5, "path": "relay"},
                                    "12345": {"name": "short id"},
                                    "222222222": "not an object",
                                    "333333333": {"name": 7, "last": "yesterday", "path": "x" * 99}},
                       "trusted": {"444444444": {"control": "yes"}, "555555555": {"control": False}}}, f)
        book = PartnerBook(self.dir)
        rows = {p.id: p for p in book.partners()}
        self.assertEqual(sorted(rows), ["111111111", "333333333"])
        self.assertEqual((rows["333333333"].name, rows["333333333"].last, rows["333333333"].path), ("", 0, ""))
        self.assertEqual(book.trusted_rights("555555555"), Rights(control=False, clipboard=True, files=False))
        self.assertIsNone(book.trusted_rights("444444444"))

    def test_not_json_starts_empty_with_a_warning(self):
        with open(os.path.join(self.dir, partners_mod.PARTNERS_FILE), "wb") as f:
            f.write(b"\xff{{{")
        book = PartnerBook(self.dir)
        self.assertEqual(book.partners(), [])
        self.assertIn("could not be read", book.warning)

    def test_an_oversized_file_is_refused_unread(self):
        with open(os.path.join(self.dir, partners_mod.PARTNERS_FILE), "wb") as f:
            f.write(b" " * (partners_mod.MAX_FILE_BYTES + 10))
        book = PartnerBook(self.dir)
        self.assertEqual(book.partners(), [])
        self.assertIn("too large", book.warning)
        with open(os.path.join(self.dir, history_mod.HISTORY_FILE), "wb") as f:
            f.write(b" " * (history_mod.MAX_FILE_BYTES + 10))
        self.assertEqual(HostHistory(self.dir).entries(), [])

    def test_trust_and_revoke(self):
        book = PartnerBook(self.dir)
        book.trust("111111111", Rights(control=False, clipboard=True, files=False), "Anna\x07")
        again = PartnerBook(self.dir)
        self.assertEqual(again.trusted(), {"111111111": (Rights(False, True, False), "Anna")})
        again.revoke("111111111")
        self.assertIsNone(PartnerBook(self.dir).trusted_rights("111111111"))

    def test_seeded_once_from_the_old_recent_list(self):
        settings = Settings(self.dir, recent_partners=["111111111", "222222222"])
        self.assertEqual([p.id for p in settings.partners.partners()], ["111111111", "222222222"])
        settings.partners.remove("111111111")
        self.assertEqual([p.id for p in Settings(self.dir, recent_partners=["111111111"]).partners.partners()],
                         ["222222222"])


class RightsTest(unittest.TestCase):
    def test_rights_narrow_the_settings_never_widen_them(self):
        options = {"view_only": False, "clipboard": True, "files_dir": "/srv/x", "fps_cap": 30}
        narrowed = Rights(control=False, clipboard=False, files=False).session_options(options)
        self.assertEqual(narrowed, {"view_only": True, "clipboard": False, "fps_cap": 30})
        strict = {"view_only": True, "clipboard": False}
        self.assertEqual(Rights(True, True, True).session_options(strict),
                         {"view_only": True, "clipboard": False})
        self.assertEqual(options["files_dir"], "/srv/x")       # the host's own dict is left alone


class HistoryTest(Folder):
    def test_records_in_order_and_reloads(self):
        history = HostHistory(self.dir)
        history.record("111111111", 1000.0, 61.4, "relay", False, "Anna\r\n")
        history.record("222222222", 2000.0, 5.0, "direct-tcp", True)
        entries = HostHistory(self.dir).entries()
        self.assertEqual([(e.peer_id, e.name, e.started, e.seconds, e.path, e.view_only) for e in entries],
                         [("222222222", "", 2000.0, 5.0, "direct-tcp", True),
                          ("111111111", "Anna", 1000.0, 61.4, "relay", False)])
        if os.name == "posix":
            mode = os.stat(os.path.join(self.dir, history_mod.HISTORY_FILE)).st_mode
            self.assertEqual(stat.S_IMODE(mode), 0o600)

    def test_bounded_to_the_last_entries(self):
        history = HostHistory(self.dir)
        for n in range(history_mod.MAX_ENTRIES + 3):
            history.record("111111111", float(n), 1.0)
        entries = HostHistory(self.dir).entries()
        self.assertEqual(len(entries), history_mod.MAX_ENTRIES)
        self.assertEqual((entries[0].started, entries[-1].started), (history_mod.MAX_ENTRIES + 2.0, 3.0))

    def test_damaged_entries_are_dropped(self):
        with open(os.path.join(self.dir, history_mod.HISTORY_FILE), "w", encoding="utf-8") as f:
            json.dump([{"peer_id": "111111111", "name": "", "started": 1, "seconds": 2, "path": "relay",
                        "view_only": False},
                       {"peer_id": "bad", "started": 1, "seconds": 2, "path": "", "view_only": False},
                       {"peer_id": "222222222", "started": -1, "seconds": 2, "path": "", "view_only": False},
                       "junk"], f)
        self.assertEqual([e.peer_id for e in HostHistory(self.dir).entries()], ["111111111"])

    def test_a_bad_id_is_our_bug(self):
        with self.assertRaises(ValueError):
            HostHistory(self.dir).record("12", 1.0, 1.0)


if __name__ == "__main__":
    unittest.main()
