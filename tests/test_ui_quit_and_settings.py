"""Two finishing touches of the Tk client, on a real Xvfb display with a real Client core:

- the Settings dialog derives a new permanent password's secret (scrypt) in a worker, with
  Save disabled meanwhile, and applies and saves only once the secret is back;
- closing the home window during a session (controlled, or viewing) asks first; without a
  session, and on SIGTERM, it closes at once.

The close box is pressed by running the command Tk registered for WM_DELETE_WINDOW, which
is what Tk runs when a window manager sends that message.  Helpers come from test_ui_app.
"""

import os
import signal
import threading
import time
import unittest
from unittest import mock

from tests.desk import AppClicks, Desk
from tests.test_ui_app import RelayCase, UiCase, tk
from tests.waiting import wait_until
from tests.xvfb import skip_unless_xvfb

GATE_TIMEOUT = 10.0
PASSWORD = "unattended-pw"


class UiGuardCase(UiCase):
    def close_box(self):
        """Press the home window's close box (Tk's WM_DELETE_WINDOW handler)."""
        self.root.tk.call(self.root.protocol("WM_DELETE_WINDOW"))

    def confirm_dialogs(self):
        from tagio.ui.prompts import ConfirmDialog
        return self.toplevels(ConfirmDialog)

    def assert_closed(self):
        self.assertTrue(self.app._closing.is_set())
        with self.assertRaises(tk.TclError):
            self.root.winfo_exists()

    def run_until(self, predicate, what, timeout=15.0):
        """Like pump(), for a loop the app may end by destroying the root."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            try:
                self.root.update()
            except tk.TclError:     # the root was destroyed inside this update
                break
            time.sleep(0.02)
        self.assertTrue(predicate(), f"timed out waiting for {what}")


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class SettingsPasswordTest(UiGuardCase):
    """A permanent password set in the Settings dialog."""

    def gated_kdf(self):
        """Patch kdf.password_secret: record the thread, then wait for `gate` before deriving."""
        from tagio.crypto import kdf
        real, gate, threads = kdf.password_secret, threading.Event(), []

        def gated(*args, **kwargs):
            threads.append(threading.current_thread())
            gate.wait(GATE_TIMEOUT)
            return real(*args, **kwargs)
        patcher = mock.patch.object(kdf, "password_secret", gated)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(gate.set)       # never leave a worker waiting
        return gate, threads, real

    def open_with_password(self):
        from tagio.ui.settings_dialog import SettingsDialog
        self.app.open_settings()
        dialog = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings dialog")
        dialog.vars["new_password"].set(PASSWORD)
        dialog.vars["confirm_password"].set(PASSWORD)
        dialog.vars["fps_cap"].set("20")
        return dialog

    def test_secret_is_derived_in_a_worker_while_the_dialog_stays_responsive(self):
        from tagio.client.settings import Settings
        from tagio.crypto import kdf
        gate, threads, real = self.gated_kdf()
        dialog = self.open_with_password()
        self.assertTrue(dialog.save_button.invoke())
        self.pump(lambda: threads, "derivation started")
        self.assertIsNot(threads[0], threading.main_thread())
        # While scrypt runs: Save is disabled, nothing applied or written, and Tk keeps running.
        self.assertIn("disabled", dialog.save_button.state())
        self.assertFalse(dialog.save())                       # a second Save is ignored
        ticked = []
        self.root.after(50, lambda: ticked.append(True))
        self.pump(lambda: ticked, "a Tk callback while deriving")
        self.assertTrue(dialog.winfo_exists())
        self.assertIsNone(self.settings.permanent_verifier)
        self.assertNotEqual(self.settings.fps_cap, 20)
        self.assertFalse(os.path.exists(os.path.join(self.config_dir, "settings.json")))
        gate.set()
        self.pump(lambda: not dialog.winfo_exists(), "dialog closed")
        self.assertEqual(len(threads), 1)
        loaded = Settings.load(self.config_dir)
        self.assertEqual(loaded.permanent_verifier, kdf.verifier_from_secret(real(PASSWORD, self.app.client.id)))
        self.assertEqual(loaded.fps_cap, 20)
        self.assertEqual(self.app.home.notice_var.get(), "Settings saved.")
        with open(os.path.join(self.config_dir, "settings.json")) as f:
            self.assertNotIn(PASSWORD, f.read())

    def test_the_dialog_hands_the_password_over_and_derives_nothing_itself(self):
        from tagio.client.settings import Settings
        from tagio.crypto import kdf
        from tagio.ui.settings_dialog import SettingsDialog
        asked = []
        with mock.patch.object(kdf, "password_secret", side_effect=AssertionError("scrypt ran")):
            dialog = SettingsDialog(self.root, self.settings, self.app.client.id,
                                    derive_secret=lambda password, done: asked.append((password, done)))
            dialog.vars["new_password"].set(PASSWORD)
            dialog.vars["confirm_password"].set(PASSWORD)
            self.assertTrue(dialog.save())
            self.assertEqual([password for password, _done in asked], [PASSWORD])
            self.assertIn("disabled", dialog.save_button.state())
            self.assertIsNone(self.settings.permanent_verifier)
            verifier = kdf.verifier_from_secret(b"\x07" * 32)
            asked[0][1](verifier, None)                      # the app's worker is done
        self.assertFalse(dialog.winfo_exists())
        self.assertEqual(Settings.load(self.config_dir).permanent_verifier, verifier)

    def test_the_dialog_refuses_a_short_permanent_password(self):
        from tagio.ui.settings_dialog import SettingsDialog
        asked = []
        dialog = SettingsDialog(self.root, self.settings, self.app.client.id,
                                derive_secret=lambda password, done: asked.append(password))
        self.addCleanup(lambda: dialog.winfo_exists() and dialog.destroy())
        dialog.vars["new_password"].set("nine-char")
        dialog.vars["confirm_password"].set("nine-char")
        self.assertFalse(dialog.save())
        self.assertEqual(asked, [])                                   # nothing stored, nothing derived
        self.assertIn("at least 10 characters", dialog.errors["permanent_password"].get())
        self.assertTrue(dialog.winfo_exists())

    def test_cancel_while_deriving_changes_nothing(self):
        gate, threads, _real = self.gated_kdf()
        dialog = self.open_with_password()
        self.assertTrue(dialog.save())
        self.pump(lambda: threads, "derivation started")
        dialog.cancel_button.invoke()
        self.assertFalse(dialog.winfo_exists())
        workers = [t for t in self.app._workers if t.is_alive()]
        gate.set()
        self.pump(lambda: not any(t.is_alive() for t in workers), "worker done")
        self.pump(lambda: self.app.events._queue.empty(), "the app's poll to take the result")
        self.pump(lambda: True, "result delivered")
        self.assertIsNone(self.settings.permanent_verifier)
        self.assertNotEqual(self.settings.fps_cap, 20)
        self.assertFalse(os.path.exists(os.path.join(self.config_dir, "settings.json")))
        self.assertEqual(self.app._errors, [])

    def test_failed_derivation_is_one_message_and_save_again_possible(self):
        from tagio.crypto import kdf
        from tagio.errors import LocalProtocolError
        real = kdf.password_secret
        calls = []

        def failing_once(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise LocalProtocolError("scrypt refused the password")
            return real(*args, **kwargs)
        with mock.patch.object(kdf, "password_secret", failing_once):
            dialog = self.open_with_password()
            self.assertTrue(dialog.save())
            self.pump(lambda: dialog.errors["save"].get(), "error shown")
            self.assertIn("scrypt refused", dialog.errors["save"].get())
            self.assertNotIn(PASSWORD, dialog.errors["save"].get())
            self.assertNotIn("disabled", dialog.save_button.state())
            self.assertIsNone(self.settings.permanent_verifier)
            self.assertTrue(dialog.save())
            self.pump(lambda: not dialog.winfo_exists(), "dialog closed after the second Save")
        self.assertEqual(self.settings.permanent_verifier, kdf.verifier_from_secret(real(PASSWORD, self.app.client.id)))


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class RelayOverrideTest(AppClicks, UiCase):
    """TAGIO_RELAY (like --relay) wins over the settings file for the run: the Settings dialog
    showed the file's relay (or nothing) and "Settings saved." as if it were used."""

    def setUp(self):
        from tests.test_ui_app import closed_port
        self.override = f"127.0.0.1:{closed_port()}"
        os.environ["TAGIO_RELAY"] = self.override
        self.addCleanup(os.environ.pop, "TAGIO_RELAY", None)
        super().setUp()

    def test_the_relay_given_at_start_is_shown_read_only_and_the_file_keeps_its_own(self):
        from tagio.client.settings import Settings
        from tagio.ui.settings_dialog import SettingsDialog
        self.assertEqual(self.app.client.relay_url, self.override)
        self.desk.click(self.app.home.settings_button)
        dialog = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings dialog")
        entry = dialog.entries["relay"]
        self.assertEqual((entry.get(), entry.instate(["readonly"])), (self.override, True))
        self.assertIn("TAGIO_RELAY", dialog.relay_note.cget("text"))
        self.assertIn(self.relay, dialog.relay_note.cget("text"))       # what the file says
        self.desk.click(entry)
        self.desk.type_text("9")
        self.pump(lambda: True, "the keys")
        self.assertEqual(entry.get(), self.override)
        self.desk.click(dialog.save_button)
        self.pump(lambda: not dialog.winfo_exists(), "dialog saved and closed")
        self.assertEqual(Settings.load(self.config_dir).relay, self.relay)
        self.assertEqual(self.app.home.notice_var.get(),
                         f"Settings saved. This run keeps the relay {self.override} given at start.")


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class QuitTest(UiGuardCase):
    """The close box and SIGTERM, with and without a host session."""

    def controlled(self):
        from tagio.ui.prompts import ControlledIndicator
        self.app.events.post("session_started", peer_id="123456789", path="relay", role="host")
        self.pump(lambda: self.toplevels(ControlledIndicator), "being-controlled indicator")

    def pointer_on(self, widget):
        """Put the X pointer over `widget`, as a user's hand is: with no window manager the X focus
        follows the pointer, so keys reach this app only then (an earlier test may have left the
        pointer over another window of the shared display)."""
        Desk(self.xvfb.display, update=self.root.update).move_to(widget)
        self.pump(lambda: self.root.focus_get() is not None, "the keyboard focus in this app")

    def test_close_box_without_session_quits_at_once(self):
        self.close_box()
        self.assertEqual(self.app.quit_prompt, None)
        self.assert_closed()

    def test_close_box_while_controlled_asks_and_quits_only_on_yes(self):
        self.controlled()
        self.close_box()
        prompt = self.pump(lambda: (self.confirm_dialogs() or [None])[0], "quit question")
        self.assertEqual(prompt.message_text, "End the session(s) and quit?")
        self.pointer_on(prompt)
        self.assertEqual(self.root.focus_get(), prompt.no_button)    # Enter by reflex keeps it
        self.close_box()                                             # a second click: still one
        self.pump(lambda: True, "idle")
        self.assertEqual(len(self.confirm_dialogs()), 1)
        prompt.no_button.invoke()
        self.pump(lambda: not self.confirm_dialogs(), "question gone")
        self.assertFalse(self.app._closing.is_set())
        self.assertTrue(self.root.winfo_viewable())
        self.app.events.post("incoming", peer_id="222333444")        # the poll still serves
        self.pump(lambda: "is connecting" in self.app.home.notice_var.get(), "poll alive")
        self.close_box()
        prompt = self.pump(lambda: (self.confirm_dialogs() or [None])[0], "quit question again")
        prompt.yes_button.invoke()
        self.assert_closed()

    def test_escape_on_the_question_keeps_running(self):
        self.controlled()
        self.close_box()
        prompt = self.pump(lambda: (self.confirm_dialogs() or [None])[0], "quit question")
        self.pointer_on(prompt)
        prompt.event_generate("<Escape>")
        self.pump(lambda: not self.confirm_dialogs(), "question gone")
        self.assertFalse(self.app._closing.is_set())

    @unittest.skipUnless(hasattr(signal, "SIGTERM") and hasattr(os, "kill"), "no SIGTERM here")
    def test_sigterm_while_controlled_closes_without_asking(self):
        from tagio.ui.app import _close_on_sigterm
        self.controlled()
        old = signal.getsignal(signal.SIGTERM)
        self.addCleanup(signal.signal, signal.SIGTERM, old)
        _close_on_sigterm(self.root, lambda: self.app)
        os.kill(os.getpid(), signal.SIGTERM)
        self.run_until(self.app._closing.is_set, "closed by SIGTERM")
        self.assertIsNone(self.app.quit_prompt)
        self.assert_closed()


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class QuitViewerTest(RelayCase, UiGuardCase):
    """A real viewer session through a real relay on 127.0.0.1."""

    def test_close_box_during_viewer_session_asks_then_ends_it(self):
        from tagio.ui.viewer_window import ViewerWindow
        self.wait_online()
        host = self.partner()
        self.connect_to(host)
        self.pump(lambda: self.toplevels(ViewerWindow), "session window", 20)
        self.pump(lambda: host.host_sessions, "host session running", 20)
        session = self.app.viewer
        self.close_box()
        prompt = self.pump(lambda: (self.confirm_dialogs() or [None])[0], "quit question")
        self.assertTrue(session.running)
        prompt.yes_button.invoke()
        self.assert_closed()
        self.assertFalse(session.running)
        wait_until(lambda: not host.host_sessions, timeout=20, what="the partner to see the session end")


if __name__ == "__main__":
    unittest.main()
