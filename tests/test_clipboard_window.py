"""The session window's clipboard toggle and notice, with a real ViewerSession over a SecureChannel
on Xvfb: a scripted host on the other end, Tk's own clipboard as "another program" on the display.

Off: what the host sends is not applied and what is copied here is not sent (checked for NOTHING_WAIT
seconds); on again, both cross (the positive control). A partner's over-limit copy shows in the
status line."""

import gc
import queue
import threading
import time
import unittest

from tagio.protocol import session as m
from tests.xvfb import shared_xvfb, skip_unless_xvfb

NOTHING_WAIT = 1.5


def free_tk_here(test, *names):
    """Drop the test's Tk objects and collect them now, on this (the Tk) thread: a Tk interpreter
    freed later by a collection on a worker thread (the clipboard's, a session's) aborts the
    process ("Tcl_AsyncDelete: async handler deleted by the wrong thread")."""
    for name in names:
        setattr(test, name, None)
    gc.collect()


@skip_unless_xvfb
class ClipboardToggle(unittest.TestCase):
    def setUp(self):
        import tkinter as tk
        from tagio.session.viewer import ViewerSession
        from tagio.ui.viewer_window import ViewerWindow
        from tests.test_session_host import secure_pair
        xvfb = shared_xvfb(1280, 800)       # Tk runs in this process: the display must outlive it
        self.host, channel = secure_pair()
        self.session = ViewerSession(channel, clipboard=True, display=xvfb.display)
        self.session.start()
        self.root = tk.Tk(screenName=xvfb.display)
        self.root.withdraw()
        self.root.clipboard_clear()
        self.inbox = queue.Queue()
        reader = threading.Thread(target=self._read_host, daemon=True)
        reader.start()
        self.window = ViewerWindow(self.root, self.session, "Partner")
        self.host.send(m.encode(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 64, 48, 1)))
        self.addCleanup(self._cleanup, reader)

    def _cleanup(self, reader):
        self.session.stop()
        self.host.close()
        reader.join(5)
        self.window.close()
        self.root.destroy()
        free_tk_here(self, "window", "root")

    def _read_host(self):
        try:
            while True:
                msg = m.decode(self.host.recv())
                if isinstance(msg, m.Clipboard):
                    self.inbox.put(msg)
        except Exception:       # the channel closed at the end of the test
            pass

    def pump(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.root.update()
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def tk_clipboard(self):
        try:
            return self.root.clipboard_get()
        except Exception:       # empty, or a value Tk cannot read as text
            return None

    def copy_here(self, text):
        self.root.clipboard_clear()
        self.root.clipboard_append(text)

    def sent_within(self, timeout):
        """Clipboard messages the host got within `timeout` (Tk keeps answering paste requests)."""
        self.pump(lambda: not self.inbox.empty(), timeout)
        return list(self.inbox.queue)

    def test_off_lets_nothing_cross_and_on_again_does(self):
        link = self.session.clipboard
        self.assertIsNotNone(link)
        self.window.toolbar.clipboard_button.invoke()
        self.assertFalse(link.enabled)
        self.host.send(m.encode(m.Clipboard.of_text("while off")))
        self.assertFalse(self.pump(lambda: self.tk_clipboard() == "while off", NOTHING_WAIT))
        self.copy_here("copied while off")
        self.assertEqual(self.sent_within(NOTHING_WAIT), [])
        self.window.toolbar.clipboard_button.invoke()
        self.assertTrue(link.enabled)
        self.host.send(m.encode(m.Clipboard.of_text("while on")))
        self.assertTrue(self.pump(lambda: self.tk_clipboard() == "while on", 10), "not applied when on")
        self.copy_here("copied while on")
        self.assertTrue(self.pump(lambda: not self.inbox.empty(), 10), "not sent when on")
        self.assertEqual(self.inbox.get(), m.Clipboard.of_text("copied while on"))

    def test_a_partners_copy_over_the_limit_shows_in_the_status_line(self):
        self.host.send(m.encode(m.Clipboard(m.CLIP_TEXT, b"", 400_000)))
        self.assertTrue(self.pump(lambda: "the text your partner copied is 391 KB"
                                  in self.window.status.cget("text"), 10), self.window.status.cget("text"))


@skip_unless_xvfb
class ClipboardSetting(unittest.TestCase):
    """The host's "share the clipboard" option: Settings dialog checkbox -> settings file -> the
    options every host session of a Client starts with."""

    def test_unticking_is_saved_and_reaches_host_sessions(self):
        import tempfile
        import tkinter as tk
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        from tagio.ui.settings_dialog import SettingsDialog
        config = tempfile.TemporaryDirectory()
        self.addCleanup(config.cleanup)
        self.assertTrue(Settings.load(config.name).clipboard)         # on unless unticked
        self.assertTrue(Client(config.name, relay="127.0.0.1:9", direct_bind=None).host_options["clipboard"])
        self.root = tk.Tk(screenName=shared_xvfb(1280, 800).display)
        self.addCleanup(free_tk_here, self, "root", "dialog")
        self.addCleanup(self.root.destroy)
        self.root.withdraw()
        saved = []
        self.dialog = dialog = SettingsDialog(self.root, Settings.load(config.name), "123456789",
                                              derive_secret=lambda *_: self.fail("no password typed"),
                                              on_saved=saved.append)
        self.assertTrue(dialog.share_clipboard.get())
        dialog.share_clipboard.set(False)
        self.assertTrue(dialog.save())
        self.assertEqual([s.clipboard for s in saved], [False])
        self.assertFalse(Settings.load(config.name).clipboard)
        self.assertFalse(Client(config.name, relay="127.0.0.1:9", direct_bind=None).host_options["clipboard"])
        del dialog


if __name__ == "__main__":
    unittest.main()
