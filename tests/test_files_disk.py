"""tagio.session.files_disk: what walk() offers when a person picked a symlink (unit layer: a
temporary folder, no sockets)."""

import tempfile
import unittest
from pathlib import Path

from tagio.protocol import files as f
from tagio.session.files_disk import walk

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


if __name__ == "__main__":
    unittest.main()
