"""Where the client keeps its identity on Windows: %LOCALAPPDATA%\\TagIO (a roaming profile must not
give two PCs one ID), and an older roaming folder is moved there once. Run with sys.platform set to
"win32" and temporary folders standing in for the two AppData folders."""

import tempfile
import unittest
from pathlib import Path
from unittest import mock

from tagio.client import settings as settings_mod
from tagio.client.settings import ROAMING_NOTE, Settings, default_config_dir, migrate_roaming_config

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class WindowsConfigDir(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.roaming = Path(tmp.name) / "Roaming"
        self.local = Path(tmp.name) / "Local"
        self.env = {"APPDATA": str(self.roaming), "LOCALAPPDATA": str(self.local)}
        patcher = mock.patch.object(settings_mod.sys, "platform", "win32")
        patcher.start()
        self.addCleanup(patcher.stop)

    def old_install(self):
        (self.roaming / "TagIO").mkdir(parents=True)
        (self.roaming / "TagIO" / "identity.pem").write_bytes(b"KEY")
        (self.roaming / "TagIO" / "settings.json").write_text('{"relay": "r.example:443"}')

    def test_local_appdata_is_the_place(self):
        self.assertEqual(default_config_dir(self.env), self.local / "TagIO")
        self.assertEqual(default_config_dir({**self.env, "TAGIO_CONFIG_DIR": "X"}), Path("X"))

    def test_roaming_identity_moves_once_and_leaves_a_note(self):
        self.old_install()
        self.assertEqual(default_config_dir(self.env), self.local / "TagIO")
        self.assertEqual((self.local / "TagIO" / "identity.pem").read_bytes(), b"KEY")
        self.assertIn("r.example", (self.local / "TagIO" / "settings.json").read_text())
        self.assertFalse((self.roaming / "TagIO" / "identity.pem").exists())   # no second PC takes this ID
        self.assertTrue((self.roaming / "TagIO" / ROAMING_NOTE).exists())

    def test_an_existing_local_identity_wins(self):
        self.old_install()
        (self.local / "TagIO").mkdir(parents=True)
        (self.local / "TagIO" / "identity.pem").write_bytes(b"NEWER")
        self.assertFalse(migrate_roaming_config(self.roaming / "TagIO", self.local / "TagIO"))
        self.assertEqual((self.local / "TagIO" / "identity.pem").read_bytes(), b"NEWER")
        self.assertTrue((self.roaming / "TagIO" / "identity.pem").exists())      # untouched

    def test_nothing_to_move(self):
        self.assertFalse(migrate_roaming_config(self.roaming / "TagIO", self.local / "TagIO"))
        self.assertFalse((self.local / "TagIO").exists())


if __name__ == "__main__":
    unittest.main()


class FileInPlaceOfTheFolder(unittest.TestCase):
    def test_same_error_as_posix_when_windows_says_not_found(self):
        from tagio.errors import ConfigError
        with tempfile.TemporaryDirectory() as tmp:
            not_a_dir = Path(tmp) / "file"
            not_a_dir.write_text("x")
            settings = Settings(not_a_dir)
            with mock.patch("builtins.open", side_effect=FileNotFoundError(2, "path not found")):
                with self.assertRaisesRegex(ConfigError, "cannot read settings .*is not a folder"):
                    settings._read_json()
