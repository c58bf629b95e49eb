"""End to end, reconnect: a session whose relay path breaks comes back by itself, within 5 s of the
relay's return, with no new password and no new Accept; the resumption secret is single use, bound
to the viewer's ID, refused after the host's Disconnect or with "allow automatic reconnect" off.

Real parts over 127.0.0.1: a relay process killed with SIGKILL mid-session and started again on the
same port, the CLI host on a private Xvfb (or an in-test host Client with an accept callback, the
seam the window's accept prompt uses), CLI viewers. Both sides run without a direct listener, so the
session runs over the relay.
"""

import socket
import subprocess
import sys
import threading
import time
import unittest

from tests.desk import ProcessDeskCase
from tests.relay_fixture import run_relay_process
from tests.test_e2e import GUI, free_port
from tests.test_e2e_flow import StampedProc
from tests.waiting import wait_until
from tests.xvfb import skip_unless_xvfb

BACK_WITHIN = 5.0           # the goal: reconnected within 5 s of the relay's return
BLUE, RED = "#2040c0", "#e02020"


def _reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


class HostEvents:
    """An in-test host Client's events (any thread) and its accept prompts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items, self.asked = [], []

    def __call__(self, name, **fields):
        with self.lock:
            self.items.append((name, fields))

    def accept(self, peer_id, cancelled=None):
        with self.lock:
            self.asked.append(peer_id)
        return True

    def named(self, name):
        with self.lock:
            return [fields for event, fields in self.items if event == name]


@skip_unless_xvfb
class RelayRestartTest(ProcessDeskCase):
    XVFB_SIZE, WITH_RELAY = (320, 240), False     # each test starts (and kills) its own relay

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.xsetroot(BLUE)

    @classmethod
    def xsetroot(cls, colour):
        subprocess.run(["xsetroot", "-solid", colour], env=cls.xvfb.env(), check=True, timeout=10)

    def start_relay_at(self, port):
        proc, _ = run_relay_process("--bind", f"127.0.0.1:{port}", "--state-file", "")
        self.addCleanup(_reap, proc)
        return proc

    def kill_relay(self, proc, port):
        proc.kill()                                  # SIGKILL: no goodbyes
        proc.wait(10)
        wait_until(lambda: not _port_open(port), timeout=10, what="the relay's port to close")

    def cli_host(self, relay):
        host = StampedProc([sys.executable, GUI, "--cli", "host", "--json", "--relay", relay,
                            "--config-dir", str(self.tmp / "cli-host"), "--direct-bind", "none"],
                           self.env())
        self.addCleanup(host.stop)
        ready = host.wait_for(lambda e: e.get("event") == "ready", timeout=30, what="host ready")
        return host, ready["id"], ready["password"]

    def client_host(self, relay, name="client-host"):
        """A host Client in this process whose accept callback records each prompt."""
        from tagio.client.core import Client
        events = HostEvents()
        client = Client(str(self.tmp / name), relay=relay, direct_bind=None, on_event=events,
                        accept_callback=events.accept, display=self.xvfb.display)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(20)
        return client, events

    def viewer(self, host_id, password, relay, name, *extra):
        proc = StampedProc([sys.executable, GUI, "--cli", "connect", host_id, "--password", password,
                            "--json", "--relay", relay, "--config-dir", str(self.tmp / name),
                            "--direct-bind", "none", *extra], self.env(display=False))
        self.addCleanup(proc.stop)
        connected = proc.wait_for(lambda e: e.get("event") == "connected", timeout=40, what="connected")
        self.assertEqual(connected["path"], "relay")
        return proc

    def restart_relay_and_time_the_comeback(self, relay_proc, port, viewer):
        self.kill_relay(relay_proc, port)
        viewer.wait_for(lambda e: e.get("event") == "reconnecting", timeout=20, what="reconnecting")
        self.start_relay_at(port)
        back = time.monotonic()
        again = viewer.wait_for(lambda e: e.get("event") == "reconnected", timeout=70,
                                what="reconnected")
        took = again["_t"] - back
        print(f"\n  relay back: the session came back after {took:.1f} s", file=sys.stderr)
        self.assertLess(took, BACK_WITHIN)
        self.assertEqual(again["path"], "relay")

    def test_cli_session_comes_back_after_a_relay_restart(self):
        port = free_port(socket.SOCK_STREAM)
        relay_text = f"127.0.0.1:{port}"
        relay = self.start_relay_at(port)
        host, host_id, password = self.cli_host(relay_text)
        snapshot = self.tmp / "after-reconnect.png"
        self.xsetroot(BLUE)
        viewer = self.viewer(host_id, password, relay_text, "viewer-cli", "--duration", "30",
                             "--snapshot", str(snapshot))
        host.wait_for(lambda e: e.get("event") == "session_started", what="host session")
        self.restart_relay_and_time_the_comeback(relay, port, viewer)
        resumed = host.wait_for(lambda e: e.get("event") == "session_started" and e.get("resumed"),
                                what="the host's resumed session")
        self.assertEqual(resumed["peer"], host.events("session_started")[0]["peer"])
        self.assertFalse(host.events("auth_failed"), host.lines)
        self.assertFalse(host.events("refused"), host.lines)
        self.xsetroot(RED)                          # frames flow again: the new screen arrives
        self.assertEqual(viewer.finish(60), 0, viewer.stderr)
        closed = viewer.events("closed")
        self.assertEqual(len(closed), 1, viewer.lines)
        from PIL import Image
        pixel = Image.open(snapshot).convert("RGB").getpixel((160, 120))
        self.assertTrue(pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80, pixel)

    def test_no_new_accept_prompt_and_disconnect_is_not_undone(self):
        port = free_port(socket.SOCK_STREAM)
        relay_text = f"127.0.0.1:{port}"
        relay = self.start_relay_at(port)
        host, events = self.client_host(relay_text)
        viewer = self.viewer(host.id, host.one_time_password, relay_text, "viewer-asked",
                             "--duration", "120")
        wait_until(lambda: events.named("session_started"), timeout=20, what="host session")
        self.assertEqual(len(events.asked), 1)         # the first connect was asked
        self.restart_relay_and_time_the_comeback(relay, port, viewer)
        wait_until(lambda: [f for f in events.named("session_started") if f.get("resumed")],
                   timeout=20, what="the resumed session")
        self.assertEqual(len(events.asked), 1)         # ... the reconnect was not
        self.assertFalse(events.named("auth_failed"))
        host.end_host_sessions()                       # the host's user presses Disconnect
        self.assertEqual(viewer.finish(30), 5, viewer.stderr)
        self.assertEqual(len(viewer.events("reconnecting")), 1, viewer.lines)  # only the relay's
        self.assertIn("ended the session", viewer.stderr)


@skip_unless_xvfb
class ResumeSecretTest(ProcessDeskCase):
    """The resumption secret through the product's own connect, with the path cut under a session
    (the viewer's stream closed without a goodbye, as a relay that dies does)."""

    XVFB_SIZE, WITH_RELAY = (160, 120), True

    def client(self, name, **kwargs):
        from tagio.client.core import Client
        client = Client(str(self.tmp / name), relay=self.relay_text, direct_bind=None,
                        display=self.xvfb.display, **kwargs)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(20)
        return client

    def cut_session(self, name):
        """(host, host events, viewer, the connection whose path was cut after its session began)."""
        events = HostEvents()
        host = self.client(f"{name}-host", on_event=events, accept_callback=events.accept)
        viewer = self.client(f"{name}-viewer")
        conn = viewer.connect(host.id, host.one_time_password, timeout=20)
        wait_until(lambda: events.named("session_started"), timeout=20, what="host session")
        conn.channel.stream.close()                # no CLOSE record, no Bye: the path broke
        wait_until(lambda: events.named("session_ended"), timeout=20, what="host session end")
        return host, events, viewer, conn

    def test_single_use_bound_to_the_viewer_id_and_counted(self):
        from tagio.errors import WrongPasswordError
        host, events, viewer, conn = self.cut_session("single")
        stranger = self.client("single-stranger")
        with self.assertRaises(WrongPasswordError):    # another ID with the secret: a wrong guess
            stranger.resume(host.id, conn.resume_secret, timeout=20)
        wait_until(lambda: events.named("auth_failed"), timeout=10, what="the stranger counted")
        again = viewer.resume(host.id, conn.resume_secret, timeout=20)   # its own viewer: welcome
        self.addCleanup(again.channel.close)
        wait_until(lambda: [f for f in events.named("session_started") if f.get("resumed")],
                   timeout=20, what="the resumed session")
        self.assertEqual(events.asked, [viewer.id])    # only the first connect was asked
        self.assertNotEqual(again.resume_secret, conn.resume_secret)
        with self.assertRaises(WrongPasswordError):    # used up
            viewer.resume(host.id, conn.resume_secret, timeout=20)
        wait_until(lambda: len(events.named("auth_failed")) == 2, timeout=10, what="counted again")
        self.assertEqual(events.named("auth_failed")[-1]["peer_id"], viewer.id)

    def test_a_viewer_that_saw_the_break_first_takes_over_the_live_session(self):
        events = HostEvents()
        host = self.client("live-host", on_event=events, accept_callback=events.accept)
        viewer = self.client("live-viewer")
        conn = viewer.connect(host.id, host.one_time_password, timeout=20)
        old = conn.open_session()
        old.start()
        self.addCleanup(old.stop)
        wait_until(lambda: events.named("session_started"), timeout=20, what="host session")
        again = viewer.resume(host.id, conn.resume_secret, timeout=20)   # the host has not noticed
        self.addCleanup(again.channel.close)
        wait_until(lambda: events.named("session_ended"), timeout=20, what="the old session ended")
        wait_until(lambda: not old.running, timeout=20, what="the old session closed here too")
        # The Bye is a courtesy: when the sender is busy the channel is closed without it.
        self.assertIn(old.closed_reason, ("the viewer reconnected", "the peer closed the secure channel"))
        wait_until(lambda: [f for f in events.named("session_started") if f.get("resumed")],
                   timeout=20, what="the resumed session")
        self.assertEqual(len(host.host_sessions), 1)
        self.assertEqual(events.asked, [viewer.id])
        self.assertFalse(events.named("auth_failed"))

    def test_disconnect_refuses_it(self):
        from tagio.errors import WrongPasswordError
        host, events, viewer, conn = self.cut_session("disconnect")
        host.end_host_sessions()                       # Disconnect, while the viewer is away
        with self.assertRaises(WrongPasswordError):
            viewer.resume(host.id, conn.resume_secret, timeout=20)

    def test_the_setting_off_refuses_it(self):
        from tagio.errors import WrongPasswordError
        events = HostEvents()
        host = self.client("off-host", on_event=events, accept_callback=events.accept)
        host.settings.allow_reconnect = False
        viewer = self.client("off-viewer")
        conn = viewer.connect(host.id, host.one_time_password, timeout=20)
        wait_until(lambda: events.named("session_started"), timeout=20, what="host session")
        conn.channel.stream.close()
        wait_until(lambda: events.named("session_ended"), timeout=20, what="host session end")
        with self.assertRaises(WrongPasswordError):
            viewer.resume(host.id, conn.resume_secret, timeout=20)


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    unittest.main()
