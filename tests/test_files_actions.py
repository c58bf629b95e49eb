"""New folder, rename and delete in the host's files folder (tagio.session.files_actions), asked by
a viewer's engine of the host's engine as on the wire: done, refused with a sentence, and never
anything touched outside the folder (links on the way, "..", absolute paths, the folder itself).
Temporary folders only; no sockets, no threads."""

import os
import unittest

from tagio.protocol import files as f
from tests.test_files_engine import Base, Pair

LAYER = "unit"


class Actions(Base):
    def setUp(self):
        super().setUp()
        self.pair = Pair(host_root=self.shared)
        self.viewer = self.pair.viewer.engine

    def ask(self, method, *args):
        """Run one request through both engines: its answer ("" done, else why not)."""
        req = getattr(self.viewer, method)(*args)
        self.pair.run()
        self.assertEqual(self.pair.viewer.named("changed")[-1]["req"], req)
        return self.viewer.changes[req]

    def test_new_folder_rename_delete(self):
        self.assertEqual(self.ask("make_dir", "inbox"), "")
        self.assertTrue((self.shared / "inbox").is_dir())
        self.assertEqual(self.ask("make_dir", "inbox/ünï ✓"), "")
        (self.shared / "inbox" / "ünï ✓" / "a.txt").write_text("a")
        self.assertEqual(self.ask("rename", "inbox/ünï ✓/a.txt", "inbox/b.txt"), "")
        self.assertEqual((self.shared / "inbox" / "b.txt").read_text(), "a")
        self.assertEqual(self.ask("rename", "inbox", "renamed"), "")
        self.assertEqual(sorted(p.name for p in self.shared.iterdir()), ["renamed"])
        self.assertEqual(self.ask("delete", "renamed/b.txt"), "")
        self.assertEqual(self.ask("delete", "renamed"), "")        # a folder with what it holds
        self.assertEqual(list(self.shared.iterdir()), [])
        self.assertOutsideEmpty()

    def test_existing_names_and_missing_ones(self):
        (self.shared / "a").write_text("a")
        (self.shared / "b").write_text("b")
        self.assertIn("exists already", self.ask("make_dir", "a"))
        self.assertIn("exists already", self.ask("rename", "a", "b"))
        self.assertEqual((self.shared / "b").read_text(), "b")     # never replaced
        self.assertIn("does not exist", self.ask("rename", "nope", "c"))
        self.assertIn("does not exist", self.ask("delete", "nope"))
        self.assertIn("is not a folder", self.ask("make_dir", "a/sub"))
        (self.shared / "d").mkdir()
        self.assertIn("inside itself", self.ask("rename", "d", "d/e"))
        self.assertTrue((self.shared / "d").is_dir())

    def test_unsafe_paths_refused(self):
        (self.outside / "keep").write_text("keep")
        for method, args in (("make_dir", ("../outside/x",)), ("make_dir", ("/tmp/x",)),
                             ("make_dir", ("",)), ("delete", ("",)), ("delete", ("..",)),
                             ("delete", ("../outside/keep",)), ("rename", ("a", "../outside/a")),
                             ("make_dir", ("CON",)), ("make_dir", ("x.tagio-part",)),
                             ("make_dir", ("C:evil",))):
            with self.subTest(method=method, args=args):
                self.assertNotEqual(self.ask(method, *args), "")
        self.assertEqual((self.outside / "keep").read_text(), "keep")
        self.assertEqual([p.name for p in self.outside.iterdir()], ["keep"])
        self.assertEqual(list(self.shared.iterdir()), [])

    def test_links_pointing_outside(self):
        (self.outside / "keep").write_text("keep")
        (self.shared / "out").symlink_to(self.outside)
        self.assertIn("outside the folder", self.ask("delete", "out/keep"))
        self.assertIn("outside the folder", self.ask("make_dir", "out/new"))
        self.assertIn("outside the folder", self.ask("rename", "out/keep", "stolen"))
        self.assertEqual([p.name for p in self.outside.iterdir()], ["keep"])
        (self.shared / "tree").mkdir()
        (self.shared / "tree" / "link").symlink_to(self.outside)
        self.assertEqual(self.ask("delete", "tree"), "")            # the link goes, not its target
        self.assertEqual((self.outside / "keep").read_text(), "keep")
        self.assertFalse((self.shared / "tree").exists())

    @unittest.skipIf(os.name != "posix" or os.geteuid() == 0, "root ignores folder permissions")
    def test_read_only_folder(self):
        (self.shared / "ro").mkdir()
        (self.shared / "ro" / "f").write_text("f")
        os.chmod(self.shared / "ro", 0o555)
        self.addCleanup(os.chmod, self.shared / "ro", 0o755)
        self.assertIn("no permission", self.ask("delete", "ro/f"))
        self.assertIn("no permission", self.ask("make_dir", "ro/new"))
        self.assertTrue((self.shared / "ro" / "f").exists())

    def test_no_files_folder_refuses(self):
        pair = Pair(host_root=None)
        (self.shared / "a").write_text("a")
        req = pair.viewer.engine.delete("a")
        pair.run()
        self.assertIn("does not accept files", pair.viewer.engine.changes[req])
        self.assertTrue((self.shared / "a").exists())

    def test_answers_kept_are_bounded(self):
        from tagio.session.files import KEEP_CHANGES
        for i in range(KEEP_CHANGES + 5):
            self.ask("make_dir", f"d{i}")
        self.assertEqual(len(self.viewer.changes), KEEP_CHANGES)

    def test_requests_on_the_wire(self):
        sent = []
        from tagio.session.files import FileEngine
        engine = FileEngine(sent.append)
        engine.make_dir("a")
        engine.rename("a", "b")
        engine.delete("b")
        self.assertEqual(sent, [f.MkDir(1, "a"), f.Rename(2, "a", "b"), f.Delete(3, "b")])


if __name__ == "__main__":
    unittest.main()
