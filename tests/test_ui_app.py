"""The Tk client application on a real Xvfb display, with a real Client core.

The app runs its real after() poll; the test pumps the Tk event loop (root.update) until what
it waits for shows up, with a deadline.  Screenshots are taken with mss from the Xvfb display.
The relay is either a closed port on 127.0.0.1 (the "unreachable" cases) or, when
tests/relay_fixture.py is present, a real relay on 127.0.0.1 port 0.
"""

import collections
import faulthandler
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

from tests.desk import AppClicks
from tests.xvfb import shared_xvfb, skip_unless_xvfb

try:
    import tkinter as tk
except ImportError:        # a Python built without Tk
    tk = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUMP_TIMEOUT = 15.0
LOG_LINES = 80           # the tagio log lines a timed-out wait prints
ISOLATED_ENV = ("DISPLAY", "TAGIO_RELAY", "TAGIO_CONFIG_DIR")


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UiCase(unittest.TestCase):
    """The shared Xvfb; one App with a real Client per test."""
    relay_text = None          # "host:port" of a real relay; None: a closed loopback port

    @classmethod
    def setUpClass(cls):
        # Shared and kept until exit: Tk never closes an X connection, and once its server is
        # gone the next Tk call anywhere in the process is a fatal X I/O error.
        cls.xvfb = shared_xvfb()
        cls.old_env = {name: os.environ.get(name) for name in ISOLATED_ENV}
        for name in ISOLATED_ENV:        # the test decides relay and config dir, not the caller's env
            os.environ.pop(name, None)
        os.environ["DISPLAY"] = cls.xvfb.display
        # TAGIO_UI_SHOTS=DIR keeps the screenshots for a person to look at.
        cls.keep_shots = os.environ.get("TAGIO_UI_SHOTS")
        cls.shots = cls.keep_shots or tempfile.mkdtemp(prefix="tagio-ui-shots-")
        os.makedirs(cls.shots, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        for name, value in cls.old_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not cls.keep_shots:
            shutil.rmtree(cls.shots, ignore_errors=True)

    def setUp(self):
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        from tagio.ui.app import App
        self.log_lines = collections.deque(maxlen=LOG_LINES)    # shown when a wait times out
        handler = logging.Handler(logging.INFO)
        handler.emit = lambda record: self.log_lines.append(f"{record.threadName}: {record.getMessage()}")
        logging.getLogger("tagio").addHandler(handler)
        self.addCleanup(logging.getLogger("tagio").removeHandler, handler)
        if logging.getLogger("tagio").getEffectiveLevel() > logging.INFO:
            logging.getLogger("tagio").setLevel(logging.INFO)
            self.addCleanup(logging.getLogger("tagio").setLevel, logging.NOTSET)
        self.config_dir = tempfile.mkdtemp(prefix="tagio-ui-cfg-")
        self.addCleanup(shutil.rmtree, self.config_dir, True)
        self.relay = self.relay_text or f"127.0.0.1:{closed_port()}"
        self.settings = Settings.load(self.config_dir)
        self.settings.relay = self.relay          # as if chosen in Settings earlier (not saved)
        self.root = tk.Tk(className="TagIO")

        def factory(**kwargs):
            return Client(self.config_dir, direct_bind=None, **kwargs)
        self.app = App(self.root, factory, self.settings).start()
        self.addCleanup(self.close_app)
        self.root.geometry("+10+10")
        self.pump(lambda: self.root.winfo_viewable(), "main window mapped")

    def close_app(self):
        self.app.close(raise_errors=False)
        # Free the Tk objects here, on the Tk thread, not in some later test's worker thread.
        del self.app, self.root
        gc.collect()

    # --- helpers -----------------------------------------------------------------------------

    def pump(self, predicate, what, timeout=PUMP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.root.update()
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)    # what was everyone doing?
        print("\n".join(["last log lines:", *getattr(self, "log_lines", [])]), file=sys.stderr)
        self.fail(f"timed out waiting for {what}")

    def press_enter(self, widget):
        """A real key press: give the widget X focus, then let Tk deliver <Return> to it."""
        widget.focus_force()
        self.pump(lambda: self.root.focus_get() == widget, "focus on the entry")
        widget.event_generate("<KeyPress-Return>", when="tail")

    def toplevels(self, cls):
        return [w for w in self.root.winfo_children() if isinstance(w, cls) and w.winfo_exists()]

    def screenshot(self, name):
        import mss
        import mss.tools
        self.pump(lambda: True, "idle")
        with mss.MSS(display=self.xvfb.display) as grabber:
            shot = grabber.grab(grabber.monitors[1])
        path = os.path.join(self.shots, f"{name}.png")
        mss.tools.to_png(shot.rgb, shot.size, output=path)
        return shot, path

    def connect_and_get_error(self, partner_id, password="abcd2345"):
        """Type an ID, press Enter, give a password; return the error dialog that comes back."""
        from tagio.ui.model import HomeState
        from tagio.ui.prompts import MessageDialog, PasswordDialog
        home = self.app.home
        home.partner_var.set(partner_id)
        self.press_enter(home.partner_entry)
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog")
        dialog.password_var.set(password)
        dialog.ok_button.invoke()
        self.assertIs(self.app.machine.state, HomeState.CONNECTING)
        self.assertIn("disabled", home.connect_button.state())
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "error dialog", 30)
        self.shot = self.screenshot("error")
        return message

    def assert_back_home(self, message):
        from tagio.ui.model import HomeState
        message.ok_button.invoke()
        self.pump(lambda: self.app.machine.state is HomeState.IDLE, "home state")
        self.assertNotIn("disabled", self.app.home.connect_button.state())
        self.assertEqual(self.app.home.busy_var.get(), "")


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class AppTest(UiCase):
    """The app with its relay unreachable (a closed port on 127.0.0.1)."""

    def test_the_status_line_stays_in_the_window_when_the_home_grows(self):
        """The list of desks on this network appears after the window was placed (and sized):
        the window must grow with it, not cut the status line off its foot."""
        home = self.app.home
        self.pump(lambda: "unreachable" in home.status_var.get(), "relay status")
        home.set_lan([])
        self.pump(lambda: self.root.winfo_height() >= self.root.winfo_reqheight(), "the window grown to its content")
        status_foot = home.status_label.winfo_rooty() + home.status_label.winfo_height()
        self.assertLessEqual(status_foot, self.root.winfo_rooty() + self.root.winfo_height())

    def test_home_shows_id_password_and_unreachable_relay(self):
        from tagio.crypto.identity import format_id
        client = self.app.client
        home = self.app.home
        self.pump(lambda: home.id_var.get() == format_id(client.id), "ID on screen")
        self.assertEqual(home.password_var.get(), client.one_time_password)
        self.assertEqual(len(client.one_time_password), 8)
        self.pump(lambda: "unreachable" in home.status_var.get(), "relay status")
        self.assertEqual(str(home.status_label.cget("style")), "Status.error.TLabel")
        self.assertEqual(self.app.icon.get(1, 1), (0xd6, 0x45, 0x2f))     # the red tile ...
        self.assertEqual(self.app.icon.get(16, 20), (255, 255, 255))       # ... with a white T
        shot, path = self.screenshot("home")
        self.assertTrue(os.path.getsize(path) > 1000)
        # Not blank: the window's area has many colours (text, buttons, header), the rest is black.
        x0, y0 = self.root.winfo_rootx(), self.root.winfo_rooty()
        w, h = self.root.winfo_width(), self.root.winfo_height()
        self.assertGreater(w, 600)
        pixels = {shot.pixel(x, y) for x in range(x0, x0 + w, 3) for y in range(y0, y0 + h, 3)}
        self.assertGreater(len(pixels), 20)
        # The big ID label is drawn in dark text on a white card.
        label = home.id_label
        lx, ly = label.winfo_rootx(), label.winfo_rooty()
        dark = [shot.pixel(x, y) for x in range(lx, lx + label.winfo_width())
                for y in range(ly, ly + label.winfo_height()) if sum(shot.pixel(x, y)) < 200]
        self.assertGreater(len(dark), 50)

    def test_new_password_and_copy_buttons(self):
        home = self.app.home
        old = self.app.client.one_time_password
        self.pump(lambda: home.password_var.get() == old, "password")
        home.new_password_button.invoke()
        self.pump(lambda: home.password_var.get() != old, "a new password")
        self.assertEqual(home.password_var.get(), self.app.client.one_time_password)
        home.copy_id_button.invoke()
        self.assertEqual(self.root.clipboard_get(), self.app.client.id)
        self.assertIn("Copied", str(home.copy_id_button.cget("text")))
        home.copy_password_button.invoke()
        self.assertEqual(self.root.clipboard_get(), self.app.client.one_time_password)

    def test_new_password_scrypt_runs_off_the_tk_thread(self):
        from unittest import mock
        from tagio.crypto import kdf
        home, real, threads = self.app.home, kdf.password_secret, []

        def recording(*args, **kwargs):
            threads.append(threading.current_thread())
            return real(*args, **kwargs)
        old = self.app.client.one_time_password
        with mock.patch.object(kdf, "password_secret", recording):
            home.new_password_button.invoke()
            self.pump(lambda: home.password_var.get() not in ("", old), "a new password")
        self.assertEqual(len(threads), 1)
        self.assertIsNot(threads[0], threading.main_thread())

    def test_bad_partner_id_gets_inline_message_and_no_dialog(self):
        from tagio.ui.prompts import PasswordDialog
        home = self.app.home
        home.partner_var.set("12 34")
        self.press_enter(home.partner_entry)
        self.pump(lambda: home.id_error_var.get(), "inline error")
        self.assertIn("9 digits", home.id_error_var.get())
        self.assertEqual(self.toplevels(PasswordDialog), [])
        self.assertEqual(str(home.message_label.cget("text")), home.id_error_var.get())
        self.screenshot("inline-error")
        home.partner_var.set("1")                     # typing again clears the message
        self.assertEqual(str(home.message_label.cget("text")), "")
        home.partner_var.set(self.app.client.id)
        home.connect_button.invoke()
        self.assertIn("own ID", home.id_error_var.get())

    def double_click(self, widget, x, y):
        """A real double click through the X server (xdotool), at (x, y) inside `widget`."""
        from tests.desk import Desk
        Desk(self.xvfb.display, update=self.root.update).click(widget, x, y, repeat=2)

    def test_double_click_on_recent_or_lan_partner_asks_password(self):
        from tagio.net.lan import LanPeer
        from tagio.ui import model
        from tagio.ui.prompts import PasswordDialog
        home = self.app.home
        self.settings.partners.record_session("123456789")     # the address book, no path yet
        self.pump(lambda: home.recent_list.get(0).startswith("\u00b7 123 456 789   "), "recent list")
        self.screenshot("recent")
        self.double_click(home.recent_list, 30, 8)
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog")
        self.assertEqual(home.partner_var.get(), "123456789")
        dialog.cancel()
        home.set_lan(model.lan_rows([LanPeer("222333444", ("127.0.0.7", 21119), 0.0)]))
        self.pump(lambda: home.lan_list.winfo_viewable(), "LAN list shown")
        self.assertEqual(home.lan_list.get(0), "222 333 444   127.0.0.7")
        self.double_click(home.lan_list, 30, 8)
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog (LAN)")
        self.assertEqual(home.partner_var.get(), "222333444")
        dialog.cancel()

    def test_empty_recent_list_shows_a_hint_that_cannot_be_picked(self):
        from tagio.ui.prompts import PasswordDialog
        home = self.app.home
        self.pump(lambda: home.recent_list.size() == 1, "placeholder")
        self.assertIn("No partners yet", home.recent_list.get(0))
        clicks = []
        home.recent_list.bind("<Double-Button-1>", clicks.append, add="+")     # runs after the window's own
        self.double_click(home.recent_list, 30, 8)
        self.pump(lambda: clicks, "the double click to reach the list")
        self.pump(lambda: True, "idle")
        self.assertEqual(self.toplevels(PasswordDialog), [])

    def test_bug_in_a_callback_is_shown_kept_and_reraised_by_close(self):
        from tagio.ui.prompts import MessageDialog
        self.root.after(0, lambda: 1 / 0)             # any Tk callback that raises
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "error dialog")
        self.assertEqual(message.title_text, "Unexpected error")
        self.assertIn("ZeroDivisionError", message.message_text)
        self.app.events.post("accept_request", request=None)     # a handler that fails
        self.pump(lambda: len(self.app._errors) == 2, "second error kept")
        with self.assertRaises(ZeroDivisionError):
            self.app.close()

    def test_connect_with_relay_unreachable_shows_one_clear_error(self):
        message = self.connect_and_get_error("123 456 789")
        self.assertEqual(message.title_text, "Cannot connect")
        self.assertIn("Cannot reach the relay", message.message_text)
        self.assertNotIn("abcd2345", message.message_text)
        self.assert_back_home(message)

    def test_about_names_the_version(self):
        from tagio import __version__
        from tagio.ui.prompts import AboutDialog
        from tagio.ui.settings_dialog import SettingsDialog
        self.app.home.callbacks["about"]()
        about = self.pump(lambda: (self.toplevels(AboutDialog) or [None])[0], "about dialog")
        self.assertIn(__version__, about.message_text)
        self.app.home.callbacks["about"]()            # a second click: still one dialog
        self.app.open_settings()
        self.pump(lambda: True, "idle")
        self.assertEqual(len(self.toplevels(AboutDialog)), 1)
        self.assertEqual(self.toplevels(SettingsDialog), [])
        about.ok_button.invoke()
        self.assertFalse(self.toplevels(AboutDialog))

    def test_cancel_password_returns_home(self):
        from tagio.ui.model import HomeState
        from tagio.ui.prompts import PasswordDialog
        self.app.connect_clicked("123456789")
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog")
        dialog.submit()                                  # empty password: inline message, stays open
        self.assertIn("Enter the password", dialog.error_var.get())
        dialog.cancel()
        self.assertIs(self.app.machine.state, HomeState.IDLE)

    def test_settings_dialog_validates_saves_and_reloads(self):
        from tagio.client.settings import Settings
        from tagio.ui.settings_dialog import SettingsDialog
        made_on, real_factory = [], self.app._client_factory

        def recording_factory(**kwargs):
            made_on.append(threading.current_thread())
            return real_factory(**kwargs)
        self.app._client_factory = recording_factory
        self.app.open_settings()
        dialog = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings dialog")
        dialog.vars["fps_cap"].set("500")
        dialog.vars["relay"].set("bad host:x")
        self.assertFalse(dialog.save())
        self.assertIn("1 to 60", dialog.errors["fps_cap"].get())
        self.assertIn("relay address", dialog.errors["relay"].get())
        self.assertTrue(dialog.winfo_exists())
        self.assertFalse(os.path.exists(os.path.join(self.config_dir, "settings.json")))
        new_relay = f"127.0.0.1:{closed_port()}"
        for name, value in {"relay": new_relay, "relay_secret": "s3cret-relay", "fps_cap": "24",
                            "quality": "60", "ask_before_accept": False, "view_only": True,
                            "new_password": "unattended-pw", "confirm_password": "unattended-pw"}.items():
            dialog.vars[name].set(value)
        self.assertTrue(dialog.save())
        self.pump(lambda: not dialog.winfo_exists(), "dialog closed")
        loaded = Settings.load(self.config_dir)
        self.assertEqual((loaded.relay, loaded.relay_secret, loaded.fps_cap, loaded.quality),
                         (new_relay, "s3cret-relay", 24, 60))
        self.assertFalse(loaded.ask_before_accept)
        self.assertTrue(loaded.view_only)
        self.assertEqual(len(loaded.permanent_verifier or b""), 97)   # SPAKE2+ w0 || L, not the secret
        with open(os.path.join(self.config_dir, "settings.json")) as f:
            self.assertNotIn("unattended-pw", f.read())
        # The relay changed, so the app registered again with a new Client on the new address.
        self.pump(lambda: f"{self.app.client.relay_address[1]}" == new_relay.split(":")[1], "client restart")
        self.assertEqual(len(made_on), 1)       # scrypt and sockets of the new Client: not on the Tk thread
        self.assertIsNot(made_on[0], threading.main_thread())
        # Reopened, the dialog shows what was saved, but never the permanent password.
        self.app.open_settings()
        again = self.pump(lambda: (self.toplevels(SettingsDialog) or [None])[0], "settings again")
        self.assertEqual(again.vars["relay"].get(), new_relay)
        self.assertEqual(again.vars["fps_cap"].get(), "24")
        self.assertEqual(again.vars["new_password"].get(), "")
        self.assertIn("is set", str(again.password_state.cget("text")))
        again.vars["clear_password"].set(True)
        again.vars["fps_cap"].set("12")
        self.assertTrue(again.save())
        self.assertIsNone(Settings.load(self.config_dir).permanent_verifier)
        self.assertEqual(self.app.client.host_options["fps_cap"], 12)   # applies without a restart

    def test_accept_prompt_answers_the_core_thread(self):
        from tagio.ui.prompts import AcceptPrompt
        results = []
        asker = threading.Thread(target=lambda: results.append(self.app.accepts.ask("123456789")))
        asker.start()
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt")
        self.assertIn("123 456 789", prompt.text_var.get())
        self.screenshot("accept")
        prompt.accept_button.invoke()
        self.pump(lambda: not asker.is_alive(), "answer delivered")
        self.assertEqual(results, [True])

    def test_accept_prompt_shows_with_the_main_window_minimised(self):
        from tagio.ui.prompts import AcceptPrompt
        self.root.withdraw()        # (iconify needs a window manager; Tk treats both alike here)
        self.pump(lambda: not self.root.winfo_viewable(), "main window hidden")
        asker = threading.Thread(target=self.app.accepts.ask, args=("123456789",))
        asker.start()
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt")
        self.pump(lambda: prompt.winfo_viewable(), "prompt visible")
        self.assertEqual(prompt.attributes("-topmost"), 1)
        self.assertEqual(str(prompt.transient()), "")   # a WM would hide a transient with its master
        x, y = prompt.winfo_rootx(), prompt.winfo_rooty()
        self.assertTrue(0 < x < prompt.winfo_screenwidth() and 0 < y < prompt.winfo_screenheight())
        prompt.deny_button.invoke()
        self.pump(lambda: not asker.is_alive(), "answer delivered")

    def test_accept_prompt_times_out_to_deny(self):
        from tagio.ui.prompts import AcceptPrompt
        self.app.accepts.timeout = 1
        results = []
        asker = threading.Thread(target=lambda: results.append(self.app.accepts.ask("987654321")))
        asker.start()
        self.pump(lambda: self.toplevels(AcceptPrompt), "accept prompt")
        self.pump(lambda: not asker.is_alive(), "automatic deny", timeout=6)
        self.assertEqual(results, [False])
        self.assertEqual(self.toplevels(AcceptPrompt), [])

    def test_controlled_indicator_follows_host_session_events(self):
        from tagio.ui.prompts import ControlledIndicator
        self.app.events.post("session_started", peer_id="123456789", path="relay", role="host")
        bar = self.pump(lambda: (self.toplevels(ControlledIndicator) or [None])[0], "indicator")
        self.assertEqual(bar.text, "Being controlled by 123 456 789")
        self.assertEqual(bar.attributes("-topmost"), 1)
        self.screenshot("controlled")
        bar.disconnect_button.invoke()     # real Client.end_host_sessions (no sessions: no-op)
        self.app.events.post("session_ended", peer_id="123456789", role="host", reason=None)
        self.pump(lambda: not self.toplevels(ControlledIndicator), "indicator gone")
        self.assertIn("ended", self.app.home.notice_var.get())

    def test_the_connecting_notice_goes_when_the_session_starts(self):
        """An always-allowed desk: incoming, then session_started without a prompt. "Desk X is
        connecting..." stayed on the home window during the whole session."""
        from tagio.ui.prompts import ControlledIndicator
        self.app.events.post("incoming", peer_id="123456789")
        self.pump(lambda: "is connecting" in self.app.home.notice_var.get(), "connecting notice")
        self.app.events.post("session_started", peer_id="123456789", path="relay", role="host", view_only=True)
        self.pump(lambda: self.toplevels(ControlledIndicator), "indicator")
        self.assertEqual(self.app.home.notice_var.get(), "Desk 123 456 789 connected (view only).")
        self.app.events.post("session_ended", peer_id="123456789", role="host", reason=None)
        self.pump(lambda: not self.toplevels(ControlledIndicator), "indicator gone")


class AcceptPromptClicks(AppClicks, UiCase):
    def test_accept_prompt_unticking_control_unticks_the_clipboard(self):
        """See only shares no clipboard: the prompt must not say it does."""
        from tagio.ui.prompts import AcceptPrompt
        answers = []
        prompt = AcceptPrompt(self.root, "123456789", lambda granted, always: answers.append(granted))
        self.pump(prompt.winfo_viewable, "accept prompt")
        clipboard = prompt.rights_boxes["clipboard"]
        self.desk.click(prompt.rights_boxes["control"])
        self.pump(lambda: not prompt.rights["control"].get(), "control unticked")
        self.assertEqual((prompt.rights["clipboard"].get(), clipboard.instate(["disabled"])), (False, True))
        self.desk.click(prompt.rights_boxes["control"])     # ticked again: the clipboard box comes back
        self.pump(lambda: prompt.rights["control"].get(), "control ticked again")
        self.assertEqual((prompt.rights["clipboard"].get(), clipboard.instate(["disabled"])), (True, False))
        self.desk.click(prompt.rights_boxes["control"])
        self.pump(lambda: not prompt.rights["control"].get(), "control unticked again")
        self.desk.click(prompt.accept_button)
        self.pump(lambda: answers, "the answer")
        self.assertEqual((answers[0].control, answers[0].clipboard), (False, False))
        view_only = AcceptPrompt(self.root, "123456789", lambda *_a: None, view_only=True)   # Settings: view only
        self.assertEqual(sorted(view_only.rights_boxes), [])
        view_only.answer(False)


class HomeWidthTest(UiCase):
    def test_a_long_notice_or_relay_error_keeps_the_window_width(self):
        """The home window keeps its width whatever the notice says (a long relay error once
        stretched it wider than the screen)."""
        home = self.app.home
        self.pump(lambda: self.root.winfo_width() > 600, "window laid out")
        width = self.root.winfo_width()
        home.set_notice("The connection to desk 123 456 789 was lost. " * 12)
        home.set_relay_status("Relay unreachable (relay.example:443): " + "connection refused, " * 20, "error")
        home.set_retry(True)                        # "Retry now" beside it, as when the relay is away
        self.root.update()
        self.pump(lambda: True, "idle")
        self.assertEqual(self.root.winfo_width(), width)
        self.assertLessEqual(self.root.winfo_width(), self.root.winfo_screenwidth())

    def test_waiting_for_the_partner_keeps_the_window_width(self):
        """Cancel takes Connect's place: packed beside it, it widened the window (862 -> 1052 px)."""
        home = self.app.home
        self.pump(lambda: self.root.winfo_width() > 600, "window laid out")
        width = self.root.winfo_width()
        home.set_busy(True, "Waiting for your partner to accept…", cancellable=True)
        self.pump(home.cancel_button.winfo_ismapped, "Cancel shown")
        self.root.update_idletasks()
        self.assertEqual((self.root.winfo_reqwidth(), self.root.winfo_width()), (width, width))
        self.assertFalse(home.connect_button.winfo_ismapped())
        self.screenshot("home-waiting-for-accept")
        home.set_busy(False)
        self.pump(home.connect_button.winfo_ismapped, "Connect back")
        self.assertFalse(home.cancel_button.winfo_ismapped())
        self.assertEqual(self.root.winfo_width(), width)

    def test_texts_wrap_where_their_room_ends_not_before(self):
        """A relay error with "Retry now" is one line while the bar has room for it; the cards'
        lines use the card's width (they wrapped at 300 px in cards near 400 px wide)."""
        from tagio.ui.home import STATUS_WRAP
        home = self.app.home
        self.pump(lambda: self.root.winfo_width() > 600, "window laid out")
        width = self.root.winfo_width()
        home.set_relay_status("Ready", "ok")
        self.pump(lambda: home.status_label.winfo_height() > 1, "the status line laid out")
        one_line = home.status_label.winfo_height()
        home.set_relay_status("Relay unreachable (127.0.0.1:58789): Connection refused \u2014 retrying in 1 s",
                              "error")
        home.set_retry(True)
        self.pump(lambda: home.retry_button.winfo_ismapped() and home.status_label.winfo_height() == one_line
                  and home.status_label.winfo_reqwidth() > STATUS_WRAP, "the relay error on one line")
        for label in home.subtitles:
            card = label.master
            self.assertGreater(label.winfo_width(), 300, label.cget("text"))
            self.assertLessEqual(label.winfo_rootx() + label.winfo_width(),
                                 card.winfo_rootx() + card.winfo_width(), label.cget("text"))
        self.screenshot("home-status")
        self.assertEqual(self.root.winfo_width(), width)


class RelayCase(UiCase):
    """A real relay on 127.0.0.1 per class, and a second real Client as the partner."""

    @classmethod
    def setUpClass(cls):
        from tests.relay_fixture import start_relay
        cls.relay_handle = start_relay()
        cls.relay_text = "%s:%d" % cls.relay_handle.address
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.relay_handle.stop()

    def partner(self):
        """A second, headless Client registered at the same relay."""
        from tagio.client.core import Client
        config = tempfile.mkdtemp(prefix="tagio-ui-partner-")
        self.addCleanup(shutil.rmtree, config, True)
        client = Client(config, relay=self.relay_text, direct_bind=None, view_only=True)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(10)
        return client

    def wait_online(self):
        self.pump(lambda: "Ready" in self.app.home.status_var.get(), "relay online")
        self.assertEqual(str(self.app.home.status_label.cget("style")), "Status.ok.TLabel")

    def connect_in_background(self, viewer, wait_for_end=False):
        """`viewer` connects to the app's client and starts a session, in a thread (the app's
        accept prompt needs the Tk thread free); returns (thread, result dict: "session",
        "reason" once it ended when wait_for_end, or "error")."""
        result = {}

        def connect():
            try:
                connection = viewer.connect(self.app.client.id, self.app.client.one_time_password)
                result["session"] = session = connection.open_session()
                session.start()
                if wait_for_end:
                    session.join(15)
                    result["reason"] = session.closed_reason
            except Exception as exc:       # reported by the caller's assertions
                result["error"] = exc
        worker = threading.Thread(target=connect)
        worker.start()
        self.addCleanup(worker.join, 20)
        return worker, result

    def connect_to(self, host):
        """Connect through the home window with the host's real one-time password."""
        from tagio.ui.prompts import PasswordDialog
        home = self.app.home
        home.partner_var.set(host.id)
        self.press_enter(home.partner_entry)
        dialog = self.pump(lambda: (self.toplevels(PasswordDialog) or [None])[0], "password dialog")
        dialog.password_var.set(host.one_time_password)
        dialog.ok_button.invoke()


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class RelayAppTest(RelayCase):
    """The app against a real relay, with a real partner Client."""

    def test_unknown_id_shows_clear_error_and_returns_home(self):
        from tagio.ui.prompts import MessageDialog, PasswordDialog
        self.wait_online()
        # The ID is checked before the password is asked: no password dialog at all.
        self.app.home.partner_var.set("123 456 789")
        self.press_enter(self.app.home.partner_entry)
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "error dialog", 30)
        self.assertFalse(self.toplevels(PasswordDialog))
        self.assertIn("No desk with ID 123 456 789", message.message_text)
        self.assert_back_home(message)

    def test_offline_id_is_told_before_the_password(self):
        from tagio.ui.prompts import MessageDialog, PasswordDialog
        self.wait_online()
        host = self.partner()
        host_id = host.id
        host.close()                       # known to the relay, now offline
        self.app.home.partner_var.set(host_id)
        self.press_enter(self.app.home.partner_entry)
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "error dialog", 30)
        self.assertFalse(self.toplevels(PasswordDialog))
        self.assertIn("is not online", message.message_text)
        self.assert_back_home(message)

    def test_wrong_password_shows_clear_error_and_returns_home(self):
        self.wait_online()
        host = self.partner()
        message = self.connect_and_get_error(host.id, password="wrong-pass")
        self.assertEqual(message.title_text, "Wrong password")
        self.assertNotIn("wrong-pass", message.message_text)
        self.assert_back_home(message)

    def test_session_window_opens_and_closing_it_returns_home(self):
        from tagio.ui.model import HomeState
        from tagio.ui.viewer_window import ViewerWindow
        self.wait_online()
        host = self.partner()
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.assertIs(self.app.machine.state, HomeState.IN_SESSION)
        self.assertIn("In session with", self.app.home.busy_var.get())
        self.assertIn("disabled", self.app.home.connect_button.state())
        self.pump(lambda: window.drawn_rects > 0, "remote screen drawn", 20)
        self.screenshot("session")
        session = self.app.viewer
        stopped_on, real_stop = [], session.stop

        def recording_stop(*args, **kwargs):
            stopped_on.append(threading.current_thread())
            return real_stop(*args, **kwargs)
        session.stop = recording_stop
        window.close()
        self.pump(lambda: self.app.machine.state is HomeState.IDLE, "home again")
        self.assertFalse(session.running)
        self.assertTrue(stopped_on)     # Bye and joining the session's threads: not on the Tk thread
        self.assertNotIn(threading.main_thread(), stopped_on)
        self.assertNotIn("disabled", self.app.home.connect_button.state())
        shown = " ".join((host.id[:3], host.id[3:6], host.id[6:]))     # the address book's row:
        self.assertRegex(self.app.home.recent_list.get(0), rf"^[\u25cf\u25cb\u00b7] {shown}   \d\d:\d\d \u00b7 Relayed$")

    def test_session_that_cannot_start_closes_its_channel(self):
        from unittest import mock
        from tagio.errors import TransportError
        from tagio.session.viewer import ViewerSession
        from tagio.ui.prompts import MessageDialog
        self.wait_online()
        host = self.partner()
        channels = []

        def failing_start(session):
            channels.append(session.channel)
            raise TransportError("cannot start the session")
        with mock.patch.object(ViewerSession, "start", failing_start):
            self.connect_to(host)
            message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "message", 20)
        self.assertEqual(len(channels), 1)
        # Closed at once, so the partner's host session ends instead of waiting on it.
        self.assertTrue(channels[0].closed)
        self.assert_back_home(message)

    def test_partner_ending_the_session_shows_message_and_returns_home(self):
        from tagio.ui.prompts import MessageDialog
        from tagio.ui.viewer_window import ViewerWindow
        self.wait_online()
        host = self.partner()
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.pump(lambda: host.host_sessions, "host session running", 20)
        host.end_host_sessions()
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "message", 20)
        self.assertEqual(message.title_text, "Partner gone")
        self.assertFalse(window.winfo_exists())
        self.assert_back_home(message)

    def test_wrong_password_from_a_partner_rotates_the_shown_password(self):
        from tagio.errors import WrongPasswordError
        self.wait_online()
        viewer = self.partner()
        before = self.app.client.one_time_password
        typo = "zzzz2222"       # shaped as a one-time password: a guess at it (issue 10)
        self.pump(lambda: self.app.home.password_var.get() == before, "password shown")
        with self.assertRaises(WrongPasswordError):
            viewer.connect(self.app.client.id, typo)
        # A typo keeps the password (the notice says how many tries are left) ...
        self.pump(lambda: "2 more tries" in self.app.home.notice_var.get(), "notice", 20)
        self.assertEqual(self.app.home.password_var.get(), before)
        for _ in range(2):
            with self.assertRaises(WrongPasswordError):
                viewer.connect(self.app.client.id, typo)
        # ... and the third wrong try replaces it.
        self.pump(lambda: self.app.home.password_var.get() != before, "new password shown", 20)
        self.assertEqual(self.app.home.password_var.get(), self.app.client.one_time_password)
        self.pump(lambda: "new one-time password" in self.app.home.notice_var.get(), "notice", 20)

    def test_incoming_connection_prompt_indicator_and_disconnect(self):
        from tagio.ui.prompts import AcceptPrompt, ControlledIndicator
        self.wait_online()
        viewer = self.partner()
        worker, result = self.connect_in_background(viewer)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt", 20)
        self.assertIn(f"Desk {viewer.id[:3]} {viewer.id[3:6]} {viewer.id[6:]}", prompt.text_var.get())
        prompt.accept_button.invoke()
        bar = self.pump(lambda: (self.toplevels(ControlledIndicator) or [None])[0], "indicator", 20)
        self.assertIn(viewer.id[6:], bar.text)
        self.pump(lambda: not worker.is_alive(), "viewer connected", 20)
        self.assertNotIn("error", result)
        self.addCleanup(result["session"].stop)
        self.screenshot("controlled-real")
        bar.disconnect_button.invoke()
        self.pump(lambda: not self.toplevels(ControlledIndicator), "indicator gone after Disconnect", 20)
        self.pump(lambda: not result["session"].running, "viewer session ended", 20)

    def test_declined_connection_reaches_the_viewer(self):
        from tagio.ui.prompts import AcceptPrompt
        self.wait_online()
        viewer = self.partner()
        worker, result = self.connect_in_background(viewer, wait_for_end=True)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt", 20)
        prompt.deny_button.invoke()
        self.pump(lambda: not worker.is_alive(), "viewer gave up", 20)
        self.assertTrue(result.get("error") or result.get("reason"), result)
        self.assertFalse(self.toplevels(AcceptPrompt))


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class RelayKilledTest(RelayCase):
    """Its own relay, stopped in the middle of a session."""

    def test_relay_killed_mid_session_shows_message_and_returns_home(self):
        from tagio.ui.prompts import MessageDialog
        from tagio.ui.viewer_window import ViewerWindow
        self.wait_online()
        host = self.partner()
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.assertEqual(self.app.viewer_path, "relay")
        # The same window first says it is reconnecting (client/resume.py); the relay never comes
        # back, so after RESUME_TTL (cut to a few seconds here) the session ends as before.
        from tagio.client import resume, words
        RESUME_TTL = 4.0
        self.enterContext(mock.patch.object(resume, "RESUME_TTL", RESUME_TTL))
        self.relay_handle.stop()
        self.pump(lambda: window.reconnecting and words.RECONNECTING in window.status_text(),
                  "the window saying it reconnects", 30)
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "message",
                            RESUME_TTL + 30)
        self.assertEqual(message.title_text, "Connection lost")
        self.assertFalse(window.winfo_exists())
        self.assert_back_home(message)
        self.pump(lambda: "unreachable" in self.app.home.status_var.get()
                  or "Connecting" in self.app.home.status_var.get(), "relay status no longer online", 20)


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class RelayRestartTest(RelayCase):
    """Its own relay, stopped in the middle of a session and started again on the same port."""

    def test_the_same_window_says_reconnecting_then_shows_the_picture_again(self):
        from tagio.client import words
        from tagio.ui.prompts import MessageDialog
        from tagio.ui.viewer_window import ViewerWindow
        from tests.relay_fixture import start_relay
        self.wait_online()
        host = self.partner()
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.pump(lambda: window.shown_frame is not None, "the first picture", 20)
        first = self.app.viewer
        address = self.relay_handle.address
        self.relay_handle.stop()
        self.pump(lambda: window.reconnecting, "the window saying it reconnects", 30)
        self.assertIn(words.RECONNECTING, window.status_text())
        self.assertIn(words.RECONNECTING, window.canvas.itemcget("message", "text"))
        type(self).relay_handle = start_relay(bind=address)
        back = time.monotonic()
        self.pump(lambda: self.app.viewer is not None and self.app.viewer is not first,
                  "the session back", 30)
        self.assertLess(time.monotonic() - back, 5.0)
        drawn = window.drawn_rects
        self.pump(lambda: window.drawn_rects > drawn and not window.canvas.find_withtag("message"),
                  "the picture again", 20)
        self.assertEqual(self.toplevels(ViewerWindow), [window])   # the same window, no new one
        self.assertFalse(window.reconnecting)
        self.assertNotIn(words.RECONNECTING, window.status_text())
        self.assertFalse(self.toplevels(MessageDialog))


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class EntryPointTest(unittest.TestCase):
    """`tagio-gui.py` (no --cli) opens the window through tagio.ui.app.main, as a real process."""

    def run_gui(self, *args, env):
        config = tempfile.mkdtemp(prefix="tagio-ui-main-")
        self.addCleanup(shutil.rmtree, config, True)
        env = {k: v for k, v in env.items() if k not in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR")}
        return subprocess.Popen([sys.executable, os.path.join(ROOT, "tagio-gui.py"), "--config-dir", config,
                                 *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def test_window_opens_and_sigterm_closes_it_cleanly(self):
        xvfb = shared_xvfb()
        proc = self.run_gui("--relay", f"127.0.0.1:{closed_port()}", env=xvfb.env())
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^TagIO$"],
                               env=xvfb.env(), capture_output=True, text=True, timeout=30)
        self.assertEqual(found.returncode, 0, found.stderr)
        self.assertTrue(found.stdout.strip())
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("Traceback", err)

    def test_no_display_is_one_clear_line(self):
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        proc = self.run_gui(env=env)
        _out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--cli", err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_bad_relay_flag_is_one_clear_line(self):
        proc = self.run_gui("--relay", "no good:port", env=shared_xvfb().env())
        _out, err = proc.communicate(timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("relay", err)
        self.assertNotIn("Traceback", err)


class LanSwitchTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_window_uses_lan_unless_switched_off(self):
        from tagio.ui.app import lan_enabled
        self.assertTrue(lan_enabled({}))
        self.assertTrue(lan_enabled({"TAGIO_LAN": "1"}))
        for off in ("0", "off", "No", " false "):
            self.assertFalse(lan_enabled({"TAGIO_LAN": off}), off)

    def test_suite_never_broadcasts(self):
        import os
        self.assertEqual(os.environ.get("TAGIO_LAN"), "0")     # set by tests/__init__.py


if __name__ == "__main__":
    unittest.main()
