"""The files panel's pure helpers: a local folder's rows (links shown as what they point to), the
words of a queue line, and the grouping of files found already there (tagio.ui.files_lists,
tagio.ui.files_exists). No display: the widgets are driven in test_e2e_files_gui."""

import os
import tempfile
import unittest
from pathlib import Path

from tagio.protocol import files as f
from tagio.session.files_receive import EXISTS_ASK
from tagio.ui.files_exists import already_there, by_folder, remote_join
from tagio.ui.files_lists import list_local, rate_and_time_left, time_left

LAYER = "unit"


class LocalRows(unittest.TestCase):
    def test_links_show_as_what_they_point_to(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "folder").mkdir()
            (root / "file.txt").write_text("twelve bytes")
            (root / "to-folder").symlink_to(root / "folder")
            (root / "to-file").symlink_to(root / "file.txt")
            (root / "nowhere").symlink_to(root / "missing")
            rows = {name: (kind, size, link) for name, kind, size, _mtime, link in list_local(root)}
        self.assertEqual(rows["to-folder"], (f.KIND_DIR, rows["to-folder"][1], True))
        self.assertEqual(rows["to-file"], (f.KIND_FILE, 12, True))
        self.assertEqual(rows["nowhere"], (f.KIND_FILE, None, "broken"))
        self.assertEqual(rows["file.txt"], (f.KIND_FILE, 12, False))

    def test_folders_first_and_unreadable_is_empty(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("b.txt", "A.txt"):
                Path(tmp, name).write_text(name)
            Path(tmp, "z").mkdir()
            self.assertEqual([r[0] for r in list_local(tmp)], ["z", "A.txt", "b.txt"])
            self.assertEqual(list_local(os.path.join(tmp, "gone")), [])


class QueueWords(unittest.TestCase):
    def test_rate_and_time_left(self):
        self.assertEqual(rate_and_time_left(0, 100_000_000, 2_000_000), ", 2.0 MB/s, 50 s left")
        self.assertEqual(rate_and_time_left(0, 400_000_000, 2_000_000), ", 2.0 MB/s, 3 min 20 s left")
        self.assertEqual(rate_and_time_left(5, 5, 2_000_000), ", 2.0 MB/s")
        self.assertEqual(rate_and_time_left(0, 5, 0), "")
        self.assertEqual(time_left(10, 0), "")


class AlreadyThere(unittest.TestCase):
    def test_only_names_taken_are_asked_about(self):
        refused = [("t/a.txt", f"t/a.txt: {EXISTS_ASK}"), ("t/CON", "t/CON: a reserved device name"),
                   ("t/b/c.txt", f"t/b/c.txt: {EXISTS_ASK}"), ("t/d.txt", f"t/d.txt: {EXISTS_ASK}")]
        paths = already_there(refused)
        self.assertEqual(paths, ["t/a.txt", "t/b/c.txt", "t/d.txt"])
        self.assertEqual(by_folder(paths), {"t": ["t/a.txt", "t/d.txt"], "t/b": ["t/b/c.txt"]})
        self.assertEqual(remote_join("", "t/b"), "t/b")
        self.assertEqual(remote_join("inbox", "t/b"), "inbox/t/b")
        self.assertEqual(remote_join("inbox", ""), "inbox")


if __name__ == "__main__":
    unittest.main()
