"""The window when a partner's key changed: the real Tk app on Xvfb, a real relay on 127.0.0.1 and
a real partner Client, clicked through the X server with xdotool.

The app's pins.json names another key for the partner's ID (a squatter answered the first time, as
tests/test_e2e_identity.py explains). Connecting shows the key-changed dialog, not the plain error
box: its title and plain words, both fingerprints, Cancel focused; Enter cancels and changes nothing.
"Trust the new key" asks for the password again and connects, accepting exactly the key shown, and
the partner's proven key is then the pin. Screenshots: key-changed.png (TAGIO_UI_SHOTS=DIR keeps it).
"""

import unittest
from unittest import mock

from tests.test_ui_app import RelayCase, tk
from tests.desk import AppClicks
from tests.xvfb import skip_unless_xvfb

QUICK_GIVE_UP = 3.0    # the partner's wait for a viewer that walked away (15 s in the product)


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class KeyChangedWindowTest(AppClicks, RelayCase):

    def changed_key_dialog(self, host):
        from tagio.ui.keychange import KeyChangedDialog
        self.connect_to(host)
        return self.pump(lambda: (self.toplevels(KeyChangedDialog) or [None])[0], "key-changed dialog", 30)

    def test_refused_loudly_then_trusted_on_purpose(self):
        from tagio.client.pins import PinStore
        from tagio.crypto.identity import Identity, fingerprint
        from tagio.ui.model import HomeState
        from tagio.ui.prompts import MessageDialog, PasswordDialog
        from tagio.ui.viewer_window import ViewerWindow
        patch = mock.patch("tagio.client.hosting.HANDSHAKE_TIMEOUT", QUICK_GIVE_UP)
        patch.start()
        self.addCleanup(patch.stop)
        self.wait_online()
        host = self.partner()
        pins = PinStore(self.config_dir)
        squatter = Identity.generate().public_key
        pins.remember(host.id, squatter)

        dialog = self.changed_key_dialog(host)
        self.assertFalse(self.toplevels(MessageDialog))
        self.assertEqual(dialog.title_text, "The partner's key has changed")
        self.assertIn("key has changed", dialog.message_text)
        self.assertIn("posing as your partner", dialog.message_text)
        shown = " ".join(w.cget("text") for w in _widgets(dialog.body) if w.winfo_class() == "TLabel")
        self.assertIn(fingerprint(squatter), shown)
        self.assertIn(fingerprint(host.identity.public_key), shown)
        # With no window manager the keyboard focus follows the pointer: the person looks at it.
        self.desk.move_to(dialog.cancel_button)
        self.pump(lambda: self.root.focus_get() == dialog.cancel_button, "Cancel focused", 10)
        self.screenshot("key-changed")
        self.assertIsNone(self.app.viewer)                      # no session, no picture

        self.desk.press("Return")                               # Enter by reflex: Cancel
        self.pump(lambda: self.app.machine.state is HomeState.IDLE, "home after Cancel", 10)
        self.assertEqual(pins.get(host.id).key, squatter)

        dialog = self.changed_key_dialog(host)
        self.desk.click(dialog.trust_button)
        password = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password again", 20)
        password.password_var.set(host.one_time_password)
        password.ok_button.invoke()
        self.pump(lambda: self.app.machine.state is HomeState.IN_SESSION, "in session", 30)
        self.pump(lambda: self.toplevels(ViewerWindow), "session window", 10)
        self.assertEqual(pins.get(host.id).key, host.identity.public_key)
        self.assertIsNone(self.app.viewing.accept_key)                 # the choice was for that connect only


def _widgets(parent):
    for child in parent.winfo_children():
        yield child
        yield from _widgets(child)


if __name__ == "__main__":
    unittest.main()
