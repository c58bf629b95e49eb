"""The Settings dialog's files option on the real app (Xvfb, a real Client), driven with xdotool:
off by default; ticking "Allow partners to send and fetch files" with a folder saves both, makes
the folder and gives it to the next host session (host_options["files_dir"]); unticking takes it
away again. $HOME is a temporary folder, so the default "TagIO Files" is made nowhere else.
"""

import os
import shutil
import tempfile
import unittest
from pathlib import Path

from tests.desk import SettingsClicks
from tests.test_ui_app import UiCase
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
class SettingsFilesOption(SettingsClicks, UiCase):
    def setUp(self):
        self.home = Path(tempfile.mkdtemp(prefix="tagio-home-"))
        self.addCleanup(shutil.rmtree, self.home, True)
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(self.home)
        self.addCleanup(lambda: os.environ.__setitem__("HOME", old_home) if old_home is not None
                        else os.environ.pop("HOME", None))
        super().setUp()

    def test_allow_files_in_a_folder_then_take_it_back(self):
        self.assertIsNone(self.app.client.host_options["files_dir"])         # off by default
        dialog = self.open_dialog()
        self.assertFalse(dialog.allow_files.get())
        self.assertEqual(dialog.files_dir.get(), str(self.home / "TagIO Files"))
        self.desk.click(dialog.allow_files_check)
        self.pump(dialog.allow_files.get, "the box ticked")
        shared = self.home / "shared for partners"
        self.desk.click(dialog.entries["files_dir"])
        self.desk.press("End", "shift+Home", "BackSpace")
        self.desk.type_text(str(shared), delay=10)
        self.pump(lambda: dialog.files_dir.get() == str(shared), "the folder typed")
        self.desk.click(dialog.save_button)
        self.pump(lambda: not dialog.winfo_exists(), "the dialog saved and closed")
        self.assertEqual((self.saved()["allow_files"], self.saved()["files_dir"]), (True, str(shared)))
        self.assertTrue(shared.is_dir())
        self.assertEqual(self.app.client.host_options["files_dir"], str(shared))

        dialog = self.open_dialog()
        self.assertTrue(dialog.allow_files.get())
        self.desk.click(dialog.allow_files_check)
        self.pump(lambda: not dialog.allow_files.get(), "the box cleared")
        self.desk.click(dialog.save_button)
        self.pump(lambda: not dialog.winfo_exists(), "saved again")
        self.assertFalse(self.saved()["allow_files"])
        self.assertIsNone(self.app.client.host_options["files_dir"])

    def test_default_folder_is_made_in_home_and_not_stored(self):
        dialog = self.open_dialog()
        self.desk.click(dialog.allow_files_check)
        self.pump(dialog.allow_files.get, "the box ticked")
        self.desk.click(dialog.save_button)
        self.pump(lambda: not dialog.winfo_exists(), "saved")
        self.assertTrue((self.home / "TagIO Files").is_dir())
        self.assertIsNone(self.saved()["files_dir"])                        # follows $HOME
        self.assertEqual(self.app.client.host_options["files_dir"], str(self.home / "TagIO Files"))


if __name__ == "__main__":
    unittest.main()
