"""The desks you know, in the real Tk app on Xvfb, with real sessions through a real relay:
the address book after a session (the host's desk name, the path, the online dot asked of the
relay), rename and remove through real clicks and typing (xdotool); the host's accept prompt
with the viewer's name and the rights to grant, "always allow this desk" (no prompt next time,
same rights) revoked from Settings; "name this desk" reaching the partner; the host's history.
"""

import json
import os
import shutil
import tempfile
import unittest

from tests.desk import AppClicks
from tests.test_ui_app import RelayCase, tk
from tests.xvfb import skip_unless_xvfb

GREEN = (0x1E, 0x8E, 0x3E)      # theme.STATUS_COLOURS["ok"]: the line of a partner online


def spaced(pid):
    return " ".join((pid[:3], pid[3:6], pid[6:]))


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class PartnersFlowTest(AppClicks, RelayCase):

    def headless(self, desk_name="", answer=None):
        """A second real Client at the relay, with a desk name (and an accept callback)."""
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        config = tempfile.mkdtemp(prefix="tagio-ui-partner-")
        self.addCleanup(shutil.rmtree, config, True)
        settings = Settings(config, ask_before_accept=answer is not None, desk_name=desk_name)
        client = Client(config, relay=self.relay_text, settings=settings, direct_bind=None,
                        view_only=True, accept_callback=answer)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(10)
        return client

    def click_row(self, listbox, index):
        """A real click on row `index` of a Listbox (selects it)."""
        self.desk.show(listbox)                         # a Settings page: its tab first
        x, y, _w, h = listbox.bbox(index)
        self.desk.click(listbox, x + 40, y + h // 2)
        self.pump(lambda: listbox.curselection() == (index,), f"row {index} selected")

    def green_pixels(self, listbox, index):
        """Pixels close to the "online" green inside row `index` of the list, on the real screen."""
        shot, _path = self.screenshot("partners-online")
        x, y, w, h = listbox.bbox(index)
        left, top = listbox.winfo_rootx() + x, listbox.winfo_rooty() + y
        count = 0
        for px in range(left, left + min(w, 300)):
            for py in range(top, top + h):
                r, g, b = shot.pixel(px, py)
                count += all(abs(c - want) < 40 for c, want in zip((r, g, b), GREEN))
        return count

    def book_on_disk(self):
        with open(os.path.join(self.config_dir, "partners.json"), encoding="utf-8") as f:
            return json.load(f)

    # --- the viewer's side: the address book ---------------------------------------------------

    def test_address_book_after_a_real_session_rename_remove_and_online_dot(self):
        from tagio.client.pins import PinStore
        from tagio.ui.partners import RenameDialog
        from tagio.ui.prompts import ConfirmDialog
        from tagio.ui.viewer_window import ViewerWindow
        self.wait_online()
        asked = {}

        def answer(peer_id, name="", cancelled=None):
            asked["name"] = name            # the viewer's name, before the host's user decides
            return True
        self.settings.desk_name = "Viewer\x07 desk"
        host = self.headless("Anna's\x1b desk\n", answer)
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.assertEqual(asked["name"], "Viewer desk")
        self.assertEqual(window.title(), f"Anna's desk ({spaced(host.id)}) \u2014 TagIO")
        window.close()
        home = self.app.home
        self.pump(lambda: self.app.viewer is None and not home.busy_var.get(), "home again", 20)
        line = rf"{spaced(host.id)}   Anna's desk   \d\d:\d\d \u00b7 Relayed$"
        self.assertRegex(home.recent_list.get(0), line)
        # The relay says the host is online: a green dot and a green line, on the real screen.
        self.pump(lambda: home.recent_list.get(0).startswith("\u25cf "), "online dot", 10)
        self.assertGreater(self.green_pixels(home.recent_list, 0), 20)
        # Rename: select the row, click Rename, type a name, Enter.
        self.click_row(home.recent_list, 0)
        self.desk.click(home.rename_button)
        dialog = self.pump(lambda: (self.toplevels(RenameDialog) or [None])[0], "rename dialog")
        self.desk.click(dialog.entry)
        self.desk.press("ctrl+a")
        self.desk.type_text("Mum", delay=30)
        self.desk.press("Return")
        self.pump(lambda: "   Mum   " in home.recent_list.get(0), "renamed row")
        self.screenshot("partners-renamed")
        self.assertEqual(self.book_on_disk()["partners"][host.id]["name"], "Mum")
        # Remove: select, click Remove, and Remove again in the question that says the key is
        # forgotten too; the list, the file and the pinned key forget the partner.
        pins = PinStore(self.config_dir)
        self.assertIsNotNone(pins.get(host.id))             # the session pinned its key
        self.click_row(home.recent_list, 0)
        self.desk.click(home.remove_button)
        confirm = self.pump(lambda: (self.toplevels(ConfirmDialog) or [None])[0], "remove question")
        self.assertIn(f"{spaced(host.id)} (Mum)", confirm.message_text)
        self.assertIn("forgets the key", confirm.message_text)
        self.screenshot("partners-remove-question")
        self.desk.click(confirm.yes_button)
        self.pump(lambda: "No partners yet" in home.recent_list.get(0), "row removed")
        self.assertNotIn(host.id, self.book_on_disk()["partners"])
        self.assertIsNone(pins.get(host.id))

    # --- the host's side: accept prompt, rights, always allow, history, desk name -----------------

    def test_accept_prompt_rights_always_allow_revoke_and_history(self):
        from tagio.client.partners import Rights
        from tagio.ui.partners import HistoryDialog
        from tagio.ui.prompts import AcceptPrompt, ControlledIndicator
        from tagio.ui.settings_dialog import SettingsDialog
        self.wait_online()
        files_dir = tempfile.mkdtemp(prefix="tagio-files-")
        self.addCleanup(shutil.rmtree, files_dir, True)
        # Files allowed in a folder, as the Settings files option does (a later Save keeps it).
        self.settings.allow_files, self.settings.files_dir = True, files_dir
        self.app.client.host_options["files_dir"] = self.settings.host_files_dir()
        viewer = self.headless("Bob\r\n")
        worker, result = self.connect_in_background(viewer)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt", 20)
        self.assertIn(f"Desk {spaced(viewer.id)} (Bob) wants to", prompt.text_var.get())
        self.assertEqual(sorted(prompt.rights_boxes), ["clipboard", "control", "files"])
        self.desk.click(prompt.rights_boxes["control"])      # see only: no clipboard either
        self.pump(lambda: not prompt.rights["control"].get(), "control unticked")
        self.assertFalse(prompt.rights["clipboard"].get())
        self.desk.click(prompt.always_box)
        self.pump(lambda: prompt.always.get(), "always allow ticked")
        self.screenshot("accept-rights")
        self.desk.click(prompt.accept_button)
        bar = self.pump(lambda: (self.toplevels(ControlledIndicator) or [None])[0], "indicator", 20)
        self.assertTrue(bar.view_only)
        self.assertEqual(bar.text, f"Viewing your screen (no control) \u2014 {spaced(viewer.id)} (Bob)")
        self.pump(lambda: not worker.is_alive(), "viewer connected", 20)
        self.assertNotIn("error", result)
        self.assertTrue(self.app.client.host_sessions[0].view_only)
        self.assertIsNotNone(self.app.client.host_sessions[0].files.root)
        self.assertEqual(self.settings.partners.trusted_rights(viewer.id), Rights(False, False, True))
        result["session"].stop()
        self.pump(lambda: not self.toplevels(ControlledIndicator), "indicator gone", 20)
        # The host's history, through the History button.
        self.pump(lambda: self.settings.history.entries(), "history entry", 10)
        entry = self.settings.history.entries()[0]
        self.assertEqual((entry.peer_id, entry.name, entry.path, entry.view_only), (viewer.id, "Bob", "relay", True))
        self.desk.click(self.app.home.history_button)
        history = self.pump(lambda: (self.toplevels(HistoryDialog) or [None])[0], "history dialog")
        self.assertRegex(history.listbox.get(0),
                         rf"^\d\d:\d\d   {spaced(viewer.id)} \(Bob\)   \d+ s   Relayed   view only$")
        self.screenshot("history")
        self.desk.click(history.ok_button)
        self.pump(lambda: not self.toplevels(HistoryDialog), "history closed")
        # Name this desk, in Settings: typed, saved, and the partner reads it.
        self.desk.click(self.app.home.settings_button)
        dialog = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings")
        self.desk.click(dialog.entries["desk_name"])
        self.desk.type_text("Front desk", delay=30)
        self.assertEqual(dialog.trusted.listbox.get(0), f"{spaced(viewer.id)}   Bob   files")
        self.screenshot("settings-desks")
        dialog.save_button.invoke()
        self.pump(lambda: not self.toplevels(SettingsDialog), "settings saved")
        from tagio.client.settings import Settings
        self.assertEqual(Settings.load(self.config_dir).desk_name, "Front desk")
        # Always allowed: no prompt the second time, with the same rights.
        prompts = []
        worker, result = self.connect_in_background(viewer)
        self.pump(lambda: prompts.extend(self.toplevels(AcceptPrompt)) or not worker.is_alive(), "second connect", 20)
        self.assertEqual(prompts, [])
        self.assertNotIn("error", result)
        self.pump(lambda: self.app.client.host_sessions, "second host session", 10)
        self.assertTrue(self.app.client.host_sessions[0].view_only)
        self.assertEqual(viewer.settings.partners.get(self.app.client.id).their_name, "Front desk")
        result["session"].stop()
        self.pump(lambda: not self.app.client.host_sessions, "second session over", 20)
        # (its always-on-top bar lies over the Settings button until it goes)
        self.pump(lambda: not self.toplevels(ControlledIndicator), "second indicator gone", 20)
        # Revoked in Settings: asked again the third time.
        self.desk.click(self.app.home.settings_button)
        dialog = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings again")
        self.click_row(dialog.trusted.listbox, 0)
        self.desk.click(dialog.trusted.revoke_button)
        self.pump(lambda: dialog.trusted.listbox.get(0).startswith("None"), "revoked")
        dialog.cancel()
        self.assertIsNone(self.settings.partners.trusted_rights(viewer.id))
        worker, result = self.connect_in_background(viewer)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "prompt again", 20)
        self.desk.click(prompt.rights_boxes["files"])   # control, clipboard, but no files this time
        self.pump(lambda: not prompt.rights["files"].get(), "files unticked")
        self.desk.click(prompt.accept_button)
        self.pump(lambda: not worker.is_alive(), "third connect", 20)
        self.assertNotIn("error", result)
        self.pump(lambda: self.app.client.host_sessions, "third host session", 10)
        session = self.app.client.host_sessions[0]
        self.assertEqual((session.view_only, session.files.root), (False, None))
        self.assertIsNone(self.settings.partners.trusted_rights(viewer.id))     # not ticked: asked again
        result["session"].stop()
        self.pump(lambda: len(self.settings.history.entries()) == 3, "three sessions in the history", 20)


if __name__ == "__main__":
    unittest.main()
