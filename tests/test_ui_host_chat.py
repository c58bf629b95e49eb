"""The GUI host's chat window in the real app: a partner (a second real Client, through a real relay)
connects to the app and writes; the app opens a chat window for that partner with a notice on the
home window; the answer typed there (xdotool) reaches the partner; the window says when the session
ended. Accepting without a prompt (ask_before_accept off) keeps this test out of the accept prompt's
way.
"""

import unittest

from tests.desk import AppClicks
from tests.test_ui_app import RelayCase
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
class HostChatInTheApp(AppClicks, RelayCase):
    def test_first_line_opens_a_chat_window_to_answer(self):
        from tagio.ui.chat_panel import HostChatWindow
        self.settings.ask_before_accept = False
        self.wait_online()
        viewer = self.partner()
        worker, result = self.connect_in_background(viewer)
        self.pump(lambda: not worker.is_alive(), "viewer connected", 20)
        self.assertNotIn("error", result)
        session = result["session"]
        self.addCleanup(session.stop)
        self.assertFalse(self.toplevels(HostChatWindow))
        self.pump(lambda: session.capabilities, "the host's Hello")
        session.send_chat("hello host \u2713")
        window = self.pump(lambda: (self.toplevels(HostChatWindow) or [None])[0], "the chat window", 20)
        self.pump(window.winfo_viewable, "the chat window on screen")
        self.assertIn(viewer.id[6:], window.title())
        self.assertIn("sent you a chat message", self.app.home.notice_var.get())
        self.pump(lambda: "Partner: hello host \u2713" in window.view.shown_text(), "the line shown")
        self.desk.click(window.view.entry)
        self.desk.type_text("hello viewer")
        self.pump(lambda: window.view.entry.get() == "hello viewer", "typed")
        self.desk.press("Return")
        self.pump(lambda: [t for _w, who, t in session.chat.lines() if who == "partner"] == ["hello viewer"],
                  "the answer at the viewer", 20)
        session.send_chat("bye")
        self.pump(lambda: "Partner: bye" in window.view.shown_text(), "the next line, same window")
        self.assertEqual(len(self.toplevels(HostChatWindow)), 1)
        session.stop()
        self.pump(lambda: str(window.view.entry["state"]) == "disabled", "the window says it ended", 20)


if __name__ == "__main__":
    unittest.main()
