"""The connect / accept flow in the real Tk app on Xvfb, against a real relay and a real partner
Client: "Waiting for your partner to accept... [Cancel]" on the viewer, Cancel clicked through the
X server (xdotool) closing the partner's prompt at once, a Deny reading "Your partner declined", and
the host's accept prompt closing by itself when the viewer gives up.
"""

import shutil
import tempfile
import threading
import time
import unittest

from tests.desk import AppClicks
from tests.test_ui_app import RelayCase, UiCase, tk
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class ConnectFlowTest(AppClicks, RelayCase):

    def asking_partner(self, answer):
        """A headless partner Client that asks `answer(peer_id, cancelled)` before accepting."""
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        config = tempfile.mkdtemp(prefix="tagio-ui-flow-")
        self.addCleanup(shutil.rmtree, config, True)
        settings = Settings(config, ask_before_accept=True)
        self.partner_events = []
        client = Client(config, relay=self.relay_text, settings=settings, direct_bind=None,
                        view_only=True, accept_callback=answer,
                        on_event=lambda name, **f: self.partner_events.append((name, f)))
        client.start()
        self.addCleanup(client.close)
        client.wait_online(10)
        return client

    def test_waiting_then_cancel_closes_the_partners_prompt(self):
        from tagio.ui.model import HomeState
        asked, withdrawn, late_answer = threading.Event(), [], threading.Event()

        def answer(peer_id, cancelled):
            asked.set()
            if cancelled.wait(30):
                withdrawn.append(time.monotonic())
            late_answer.wait(30)
            return True                      # a late Accept must not start a ghost session
        self.wait_online()
        host = self.asking_partner(answer)
        self.connect_to(host)
        home = self.app.home
        self.pump(lambda: self.app.machine.state is HomeState.WAITING, "waiting state", 20)
        self.assertIn("Waiting for your partner to accept", home.busy_var.get())
        self.assertIn("Waiting for your partner to accept", home.message_label.cget("text"))
        self.assertTrue(asked.is_set())
        self.screenshot("waiting-for-accept")
        self.desk.click(home.cancel_button)
        clicked = time.monotonic()
        self.pump(lambda: self.app.machine.state is HomeState.IDLE, "home after Cancel", 5)
        self.assertFalse(home.cancel_button.winfo_ismapped())
        self.pump(lambda: withdrawn, "the partner's prompt withdrawn", 5)
        self.assertLess(withdrawn[0] - clicked, 2.0)
        late_answer.set()
        self.pump(lambda: any(n == "refused" for n, _ in self.partner_events), "partner refused", 10)
        self.assertNotIn("session_started", [n for n, _ in self.partner_events])
        self.assertEqual(host.host_sessions, [])
        self.assertIsNone(self.app.viewer)
        self.assertIn("cancelled", home.notice_var.get())

    def test_deny_reads_your_partner_declined(self):
        from tagio.ui.prompts import MessageDialog
        self.wait_online()
        host = self.asking_partner(lambda peer_id, cancelled: False)
        self.connect_to(host)
        message = self.pump(lambda: (self.toplevels(MessageDialog) or [None])[0], "message", 20)
        self.assertEqual(message.title_text, "Declined")
        self.assertEqual(message.message_text, "Your partner declined.")
        self.assert_back_home(message)

    def test_cancel_while_connecting(self):
        from tagio.ui.model import HomeState
        self.wait_online()
        host = self.asking_partner(lambda peer_id, cancelled: cancelled.wait(30) and False)
        self.connect_to(host)
        home = self.app.home
        self.assertIs(self.app.machine.state, HomeState.CONNECTING)
        self.desk.click(home.cancel_button)
        self.pump(lambda: self.app.machine.state is HomeState.IDLE, "home after Cancel", 5)
        self.assertNotIn("disabled", home.connect_button.state())
        # The connect ends in the background, and its late result shows nothing.
        self.pump(lambda: any(n == "refused" for n, _ in self.partner_events), "partner refused", 20)
        self.pump(lambda: not [t for t in self.app._workers if t.is_alive() and t.name == "connect"],
                  "connect worker done", 20)
        self.assertIs(self.app.machine.state, HomeState.IDLE)
        self.assertIsNone(self.app.dialog)

    def test_host_prompt_closes_when_the_viewer_gives_up(self):
        from tagio.ui.prompts import AcceptPrompt
        self.wait_online()
        viewer = self.partner()
        cancel = threading.Event()
        result = {}

        def connect():
            try:
                viewer.connect(self.app.client.id, self.app.client.one_time_password, cancelled=cancel)
            except Exception as exc:        # checked below
                result["error"] = exc
        worker = threading.Thread(target=connect)
        worker.start()
        self.addCleanup(worker.join, 20)
        self.pump(lambda: self.toplevels(AcceptPrompt), "accept prompt", 20)
        cancel.set()
        gave_up = time.monotonic()
        self.pump(lambda: not self.toplevels(AcceptPrompt), "prompt closed", 5)
        self.assertLess(time.monotonic() - gave_up, 2.0)
        self.pump(lambda: "gave up" in self.app.home.notice_var.get(), "notice", 5)
        self.pump(lambda: not worker.is_alive(), "viewer done", 10)
        self.assertEqual(type(result.get("error")).__name__, "ConnectCancelled")
        self.assertEqual(self.app.client.host_sessions, [])


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class RelayComebackTest(AppClicks, UiCase):
    """The relay is away (a closed port on 127.0.0.1), then comes back on that port."""

    def test_countdown_retry_now_and_back_within_5_s(self):
        import re
        from tests.relay_fixture import start_relay
        home = self.app.home
        countdown = self.pump(lambda: re.search(r"retrying in (\d+) s", home.status_var.get()),
                              "countdown", 20)
        self.assertTrue(home.retry_button.winfo_ismapped())
        self.screenshot("relay-countdown")
        retries, real_retry = [], self.app.client.retry_relay
        self.app.client.retry_relay = lambda: (retries.append(1), real_retry())
        self.desk.click(home.retry_button)
        self.pump(lambda: retries, "Retry now reached the core", 5)
        # The relay comes back on its port: the window is Ready within 5 s, whatever the backoff.
        host, port = self.relay.rsplit(":", 1)
        handle = start_relay(bind=(host, int(port)))
        self.addCleanup(handle.stop)
        back = time.monotonic()
        self.pump(lambda: "Ready" in home.status_var.get(), "Ready again", 10)
        self.assertLess(time.monotonic() - back, 5.0)
        self.assertFalse(home.retry_button.winfo_ismapped())
        self.assertTrue(countdown)


if __name__ == "__main__":
    unittest.main()
