"""The session window's Files and Chat buttons and its chat panel, and the host's chat window, on
real Tk driven with xdotool.

The viewer side: a ViewerWindow over a real ViewerSession and SecureChannel, the other end scripted
(tests.test_ui_session_window.SessionWindowCase): the buttons follow the capabilities of the host's
Hello, Files opens the files panel (which asks the host for its folder), Chat shows a panel whose
lines reach the host and which shows the host's lines (opening by itself when one comes).
The host side: HostChats with a real HostSession's chat (its capture is never started: only chat
goes over the channel) opens a window on the first line, with a notice, and its answer reaches
the viewer.
"""

import unittest

from tagio.protocol import session as m
from tagio.protocol.version import CAP_CHAT, CAP_FILES, SESSION_CAPABILITIES
from tests.desk import Desk
from tests.test_ui_session_window import SessionWindowCase
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
class FilesAndChatButtons(SessionWindowCase):
    def open_with(self, capabilities):
        from tagio.ui.viewer_window import ViewerWindow
        window = ViewerWindow(self.root, self.session, "Partner 123 456 789", fit=False)
        window.geometry("960x540+0+0")
        self.pump(window.winfo_viewable, "the window to map")
        self.assertEqual(str(window.toolbar.files_button["state"]), "disabled")     # before the Hello
        self.assertEqual(str(window.toolbar.chat_button["state"]), "disabled")
        self.host.send(m.encode(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 320, 200, 1, capabilities)))
        self.pump(lambda: window.remote_size == (320, 200), "the Hello")
        return window

    def test_buttons_follow_the_hosts_capabilities(self):
        window = self.open_with(SESSION_CAPABILITIES & ~CAP_FILES)
        self.assertEqual(str(window.toolbar.files_button["state"]), "disabled")
        self.assertEqual(str(window.toolbar.chat_button["state"]), "normal")
        window.close()

    def test_files_button_opens_the_files_panel(self):
        from tagio.protocol import files as f
        window = self.open_with(SESSION_CAPABILITIES)
        self.assertEqual(str(window.toolbar.files_button["state"]), "normal")
        self.drain_inbox()
        self.desk.click(window.toolbar.files_button)
        self.pump(lambda: window.files_panel is not None and window.files_panel.winfo_viewable(),
                  "the files panel")
        asked = self.messages(m.Files, 1)
        self.assertEqual(len(asked), 1)
        self.assertEqual(asked[0].msg, f.ListDir(1, ""))                # the host's folder, listed
        panel = window.files_panel
        window.open_files()                                             # again: the same panel
        self.assertIs(window.files_panel, panel)
        window.close()

    def test_chat_panel_both_ways(self):
        window = self.open_with(CAP_CHAT)
        chat = window.chat
        self.assertEqual(chat.winfo_manager(), "")
        self.desk.click(window.toolbar.chat_button)
        self.pump(chat.winfo_viewable, "the chat panel")
        self.desk.click(chat.entry)
        self.desk.type_text("hello host")
        self.pump(lambda: chat.entry.get() == "hello host", "typed")
        chat.entry.insert("end", " \u00e9\u2713")                  # (xdotool types ASCII only here)
        self.desk.press("Return")
        self.assertEqual(self.messages(m.Chat, 1), [m.Chat("hello host \u00e9\u2713")])
        self.pump(lambda: "You: hello host \u00e9\u2713" in chat.shown_text(), "my line shown")
        self.host.send(m.encode(m.Chat("hello viewer \u2713")))
        self.pump(lambda: "Partner: hello viewer \u2713" in chat.shown_text(), "the host's line")
        self.assert_chat_on_screen(window)

        self.desk.click(window.toolbar.chat_button)              # hide it ...
        self.pump(lambda: not chat.winfo_ismapped(), "the chat panel hidden")
        self.host.send(m.encode(m.Chat("are you there?")))              # ... a new line shows it again
        self.pump(chat.winfo_viewable, "the chat panel back")
        self.assertIsNot(self.root.focus_get(), chat.entry)             # typing still goes to the picture
        self.pump(lambda: "Partner: are you there?" in chat.shown_text(), "the new line")
        self.assertIn("hello viewer", chat.shown_text())                # kept for the session
        self.assertEqual(str(window.toolbar.files_button["state"]), "disabled")
        window.close()

    def assert_chat_on_screen(self, window):
        """The panel is drawn right of the picture, with its lines as dark text on white."""
        import os
        import sys
        import tempfile
        self.root.update()
        text = window.chat.text
        self.assertGreater(text.winfo_rootx(), window.canvas.winfo_rootx() + window.canvas.winfo_width() - 1)
        box = (text.winfo_rootx(), text.winfo_rooty(), text.winfo_rootx() + text.winfo_width(),
               text.winfo_rooty() + 40)
        shot = self.desk.grab(box)
        self.assertGreater(sum(1 for p in shot.getdata() if max(p) < 100), 30, "no text drawn")
        w = window
        whole = self.desk.grab((w.winfo_rootx(), w.winfo_rooty(), w.winfo_rootx() + w.winfo_width(),
                                w.winfo_rooty() + w.winfo_height()))
        out = os.path.join(os.environ.get("TAGIO_TEST_ARTIFACTS", tempfile.gettempdir()), "session_chat.png")
        whole.save(out)
        print(f"\n  session window with its chat panel: {out}", file=sys.stderr)

    def test_the_chat_follows_the_session_that_came_back(self):
        """After a reconnect the window's chat sends to, and shows, the new session."""
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        window = self.open_with(CAP_CHAT)
        self.session.chat.add("partner", "before the break")
        self.pump(lambda: "before the break" in window.chat.shown_text(), "the old line")
        host, channel = secure_pair()
        self.addCleanup(host.close)
        again = ViewerSession(channel)
        again.start()
        self.addCleanup(again.stop)
        window.resume_with(again)
        window.chat.entry.insert(0, "still here")
        window.chat.send()
        self.assertEqual(_next_chat(host), m.Chat("still here"))
        again.chat.add("partner", "welcome back")
        self.pump(lambda: "welcome back" in window.chat.shown_text(), "the new session's line")
        self.assertIn("before the break", window.chat.shown_text())
        window.close()

    def test_the_panel_keeps_a_bounded_number_of_lines(self):
        from tagio.ui.chat_panel import MAX_SHOWN
        window = self.open_with(CAP_CHAT)
        for i in range(MAX_SHOWN + 20):
            self.session.chat.add("partner", f"line {i}")
        window.chat.poll()
        lines = window.chat.shown_text().splitlines()
        self.assertEqual(len(lines), MAX_SHOWN)
        self.assertTrue(lines[0].endswith("line 20") and lines[-1].endswith(f"line {MAX_SHOWN + 19}"), lines[:1])
        window.close()

    def test_a_too_long_line_is_refused_in_words(self):
        from tagio.session.chat import MAX_LINE
        window = self.open_with(CAP_CHAT)
        window.toggle_chat(True)
        window.chat.entry.insert(0, "x" * (MAX_LINE + 1))
        window.chat.send()
        self.assertIn("1 to", window.chat.status["text"])
        self.assertEqual(len(window.chat.entry.get()), MAX_LINE + 1)      # kept, to shorten
        window.close()


@skip_unless_xvfb
class HostChatWindow(unittest.TestCase):
    """The host's end: a real HostSession (capturing the shared Xvfb) and a real ViewerSession over
    a SecureChannel; the host's chat events go to HostChats on the Tk thread as the app does."""

    def setUp(self):
        import queue
        import tkinter as tk
        from tagio.session.host import HostSession
        from tagio.session.viewer import ViewerSession
        from tests.test_session_host import secure_pair
        from tests.xvfb import shared_xvfb
        self.xvfb = shared_xvfb(1280, 800)
        host_channel, viewer_channel = secure_pair()
        self.events = queue.Queue(64)
        self.host = HostSession(host_channel, display=self.xvfb.display, clipboard=False,
                                on_event=lambda name, **fields: self.events.put((name, fields)))
        self.viewer = ViewerSession(viewer_channel)
        self.host.start()
        self.viewer.start()
        self.addCleanup(self.host.stop)
        self.addCleanup(self.viewer.stop)
        self.root = tk.Tk(screenName=self.xvfb.display)
        self.root.withdraw()
        self.addCleanup(self.root.destroy)
        self.desk = Desk(self.xvfb.display, update=self.root.update)

    def pump_events(self, chats, predicate, what, timeout=10.0):
        """The app's poll: host events -> HostChats (a "chat" event opens the window)."""
        from tests.waiting import wait_until

        def step():
            self.root.update()
            while not self.events.empty():
                name, _fields = self.events.get_nowait()
                if name == "chat":
                    chats.message("123456789")
        return wait_until(predicate, timeout=timeout, what=what, poll=step)

    def test_first_line_opens_the_window_and_the_answer_goes_back(self):
        from tagio.ui.chat_panel import HostChats
        notices = []
        chats = HostChats(self.root, lambda peer: self.host if peer == "123456789" else None, notices.append)
        self.assertEqual(chats.windows, {})
        self.viewer.send_chat("hello host \u2713")
        self.pump_events(chats, lambda: "123456789" in chats.windows, "the chat window to open")
        window = chats.windows["123456789"]
        self.pump_events(chats, window.winfo_viewable, "the chat window on screen")
        self.assertEqual(notices, ["123456789 sent you a chat message."])
        self.pump_events(chats, lambda: "Partner: hello host \u2713" in window.view.shown_text(), "the line")
        self.viewer.send_chat("second")
        self.pump_events(chats, lambda: "Partner: second" in window.view.shown_text(), "the second line")
        self.assertEqual(len(notices), 1)                           # the same window, no new notice

        self.pump_events(chats, lambda: window.view.entry.winfo_viewable(), "the entry")
        self.desk.click(window.view.entry)
        self.desk.type_text("hello viewer")
        self.pump_events(chats, lambda: window.view.entry.get() == "hello viewer", "typed")
        window.view.entry.insert("end", " \u00e9")
        self.desk.click(window.view.send_button)
        self.pump_events(chats, lambda: [t for _w, who, t in self.viewer.chat.lines() if who == "partner"]
                         == ["hello viewer \u00e9"], "the answer at the viewer")
        self.assertIn("You: hello viewer \u00e9", window.view.shown_text())

        window.destroy()                                            # closed by the user ...
        self.viewer.send_chat("still there?")                       # ... opens again, with the history
        self.pump_events(chats, lambda: chats.windows["123456789"].winfo_exists()
                         and "still there?" in chats.windows["123456789"].view.shown_text(), "reopened")
        again = chats.windows["123456789"]
        self.assertIn("Partner: hello host", again.view.shown_text())
        chats.ended("123456789")
        self.assertEqual(str(again.view.entry["state"]), "disabled")
        self.assertIn("ended", again.view.status["text"])
        chats.message("555555555")                                  # no such session: nothing opens
        self.assertNotIn("555555555", chats.windows)


def _next_chat(host, timeout=10.0):
    """The next Chat the (stand-in) host channel receives, skipping the session's other messages;
    None when none comes within `timeout` (read on a helper thread: recv() blocks)."""
    import queue
    import threading
    got = queue.Queue()

    def read():
        try:
            while not isinstance(msg := m.decode(host.recv()), m.Chat):
                pass
            got.put(msg)
        except Exception:       # closed at the end of the test
            got.put(None)
    threading.Thread(target=read, daemon=True).start()
    try:
        return got.get(timeout=timeout)
    except queue.Empty:
        return None


if __name__ == "__main__":
    unittest.main()
