"""tagio.session.files_disk: what walk() offers when a person picked a symlink, and how a listing
shows links (unit layer: a temporary folder, no sockets)."""

import tempfile
import unittest
from pathlib import Path

from tagio.protocol import files as f
from tagio.session.files_disk import Folder, listing, walk

LAYER = "unit"


class WalkPickedLink(unittest.TestCase):
    def test_a_picked_link_is_followed_once_links_inside_are_not(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "real" / "sub").mkdir(parents=True)
            (root / "real" / "sub" / "a.txt").write_text("a")
            (root / "elsewhere").mkdir()
            (root / "real" / "inner-link").symlink_to(root / "elsewhere")
            (root / "picked").symlink_to(root / "real")
            skipped = []
            entries = walk(root / "picked", "picked", skipped)
        self.assertEqual([(rel, kind) for rel, kind, *_ in entries],
                         [("picked", f.KIND_DIR), ("picked/sub", f.KIND_DIR), ("picked/sub/a.txt", f.KIND_FILE)])
        self.assertEqual(skipped, ["picked/inner-link"])


class ListingLinks(unittest.TestCase):
    def test_links_inside_are_what_they_point_to_others_are_not_listed(self):
        with tempfile.TemporaryDirectory() as tmp:
            root, outside = Path(tmp, "root"), Path(tmp, "outside")
            (root / "sub").mkdir(parents=True)
            (root / "sub" / "f.txt").write_text("12345")
            outside.mkdir()
            (root / "in-dir").symlink_to(root / "sub")
            (root / "in-file").symlink_to(root / "sub" / "f.txt")
            (root / "out").symlink_to(outside)
            (root / "dangling").symlink_to(root / "missing")
            (root / "self").symlink_to(root)
            entries, truncated = listing(root, Folder(root))
            without, _ = listing(root)
        self.assertFalse(truncated)
        self.assertEqual([(name, kind, size) for name, kind, size, _m in entries],
                         [("in-dir", f.KIND_DIR, 0), ("in-file", f.KIND_FILE, 5), ("sub", f.KIND_DIR, 0)])
        self.assertEqual([e[0] for e in without], ["sub"])


if __name__ == "__main__":
    unittest.main()
