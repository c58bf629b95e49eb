"""The GUI host's chat window in the real app: a partner (a second real Client, through a real relay)
connects to the app and writes; the app opens a chat window for that partner with a notice on the
home window; the answer typed there (xdotool) reaches the partner; the window says when the session
ended. Accepting without a prompt (ask_before_accept off) keeps this test out of the accept prompt's
way.
"""

import os
import subprocess
import unittest

from tests.test_ui_app import RelayCase
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
class HostChatInTheApp(RelayCase):
    def xdotool(self, *args):
        subprocess.run(["xdotool", *map(str, args)], env=dict(os.environ, DISPLAY=self.xvfb.display),
                       check=True, timeout=10, capture_output=True)

    def click(self, widget):
        self.pump(widget.winfo_viewable, f"{widget} on screen")
        self.xdotool("mousemove", widget.winfo_rootx() + widget.winfo_width() // 2,
                     widget.winfo_rooty() + widget.winfo_height() // 2, "click", 1)

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
        self.click(window.view.entry)
        self.xdotool("type", "--delay", 20, "hello viewer")
        self.pump(lambda: window.view.entry.get() == "hello viewer", "typed")
        self.xdotool("key", "Return")
        self.pump(lambda: [t for _w, who, t in session.chat.lines() if who == "partner"] == ["hello viewer"],
                  "the answer at the viewer", 20)
        session.send_chat("bye")
        self.pump(lambda: "Partner: bye" in window.view.shown_text(), "the next line, same window")
        self.assertEqual(len(self.toplevels(HostChatWindow)), 1)
        session.stop()
        self.pump(lambda: str(window.view.entry["state"]) == "disabled", "the window says it ended", 20)


if __name__ == "__main__":
    unittest.main()
