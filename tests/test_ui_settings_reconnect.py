"""The Settings dialog's "come back by itself" option on the real app (Xvfb, a real Client hosting,
a real relay on 127.0.0.1), driven with xdotool: ticked by default; unticked and saved it is in the
settings file, the dialog shows it again, and the host refuses the resumption secret of a session
whose path broke (client/resume.py), where with the box ticked the same viewer came back.
"""

import os
import threading
import unittest

from tests.desk import SettingsClicks
from tests.test_ui_app import RelayCase
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
class ReconnectOption(SettingsClicks, RelayCase):
    def broken_session(self, viewer):
        """`viewer` connects (accepted in the prompt), then its path breaks without a goodbye;
        returns the connection once the host saw the session end."""
        from tagio.ui.prompts import AcceptPrompt, ControlledIndicator
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            connection=viewer.connect(self.app.client.id, self.app.client.one_time_password)))
        worker.start()
        self.addCleanup(worker.join, 20)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt")
        self.desk.click(prompt.accept_button)
        self.pump(lambda: self.toplevels(ControlledIndicator), "the being-controlled bar")
        self.pump(lambda: not worker.is_alive(), "the viewer connected")
        connection = result["connection"]
        self.addCleanup(connection.channel.close)
        connection.channel.stream.close()               # no CLOSE record, no Bye: the path broke
        self.pump(lambda: not self.toplevels(ControlledIndicator), "the host saw the session end")
        return connection

    def resume(self, viewer, connection):
        """The viewer's try to come back: "resumed", or the error it met."""
        from tagio.errors import TagioError
        outcome = []

        def attempt():
            try:
                again = viewer.resume(self.app.client.id, connection.resume_secret, timeout=20)
                again.channel.close()
                outcome.append("resumed")
            except TagioError as exc:
                outcome.append(exc)
        worker = threading.Thread(target=attempt)
        worker.start()
        self.addCleanup(worker.join, 30)
        self.pump(lambda: outcome, "the resume attempt")
        return outcome[0]

    def test_untick_save_and_a_broken_session_no_longer_comes_back(self):
        from tagio.client.settings import Settings
        from tagio.errors import WrongPasswordError
        self.wait_online()
        viewer = self.partner()
        self.assertEqual(self.resume(viewer, self.broken_session(viewer)), "resumed")   # on by default

        dialog = self.open_dialog()
        self.assertTrue(dialog.vars["allow_reconnect"].get())
        self.desk.click(dialog.checks["allow_reconnect"])     # (its page is brought forward first)
        self.pump(lambda: not dialog.vars["allow_reconnect"].get(), "the box cleared")
        self.desk.click(dialog.save_button)
        self.pump(lambda: not dialog.winfo_exists(), "the dialog saved and closed")
        self.assertIs(self.saved()["allow_reconnect"], False)
        self.assertFalse(Settings.load(self.config_dir).allow_reconnect)
        self.assertFalse(self.open_dialog().vars["allow_reconnect"].get())    # shown as saved
        self.app.dialog.cancel()

        refused = self.resume(viewer, self.broken_session(viewer))
        self.assertIsInstance(refused, WrongPasswordError)


if __name__ == "__main__":
    unittest.main()
