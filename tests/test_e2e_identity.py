"""End to end: the viewer pins the host's key, and each side proves its ID inside the channel.

Real processes on 127.0.0.1: a relay (`tagio_relay_server.py`), `tagio-gui.py --cli host` sharing a
small Xvfb display, and `tagio-gui.py --cli connect` viewers with their own settings folders.

- The first session pins the host's key in the viewer's pins.json. A squatter cannot be made
  cheaply (a key with the same 9-digit ID costs hours), so it is simulated from the other side: the
  viewer's pin for the ID names another key, as if a squatter had answered the first time and the
  real desk answers now. The viewer then refuses with `key_changed` (exit 6, one line, no picture:
  no snapshot, no connected line), through the relay before any handshake (the relay names the key)
  and on the LAN once the host proved its key inside the channel; `--accept-new-key` connects and
  pins the proven key. Either way the host hears it at once (on the relay path, or a goodbye in
  the channel) and its attempt ends, instead of waiting out its handshake timeout.
- A viewer that lies about its ID (a LAN dial naming another desk's ID, knowing the password) is
  refused by the host before anything else: the host prints `refused ... could not prove its ID`,
  never `verified` or `session_started` for it, and three such refusals use up the one-time password
  like three wrong passwords. An older viewer that proves nothing reads "update both sides".
- In process (real sockets, real Clients): the host's accept callback (the window's prompt) is
  never asked about a viewer whose proof failed, and is asked about an honest viewer only after the
  host logged its verified ID.
"""

import os
import socket
import sys
import tempfile
import threading
import unittest
from pathlib import Path

from tagio.client.pins import PinStore
from tagio.client.proving import NOT_PROVEN
from tagio.crypto.handshake import viewer_handshake
from tagio.crypto.identity import Identity
from tagio.crypto.proof import ROLE_VIEWER, binding, make_proof
from tagio.net.connect import establish, lan_viewer_peer
from tagio.protocol import session as m
from tests.relay_fixture import run_relay_process
from tests.test_e2e import GUI, Proc, free_port
from tests.xvfb import Xvfb, skip_unless_xvfb

ROOT = Path(__file__).resolve().parent.parent
LAN_DIAL_TIMEOUT = 10.0
HOST_HEARS_WITHIN = 5.0    # well under the host's 15 s handshake timeout


class Claiming:
    """A viewer identity that claims `claimed_id` but signs with its own, other key."""

    def __init__(self, real, claimed_id):
        self.id, self.public_key, self.sign = claimed_id, real.public_key, real.sign


def lan_dial(host_id, port, claimed_id, password):
    """A SecureChannel to the host's listener as a LAN viewer naming itself `claimed_id`."""
    session_id = os.urandom(16)
    peer = lan_viewer_peer(host_id, ("127.0.0.1", port), claimed_id, session_id)

    def shake(stream):
        return viewer_handshake(stream, password, viewer_id=claimed_id, host_id=host_id,
                                session_id=session_id, timeout=LAN_DIAL_TIMEOUT)
    return establish(peer, None, shake, timeout=LAN_DIAL_TIMEOUT)


def first_answer(channel):
    """The host's first message after our proof (or our Introduce), decoded; the channel closed."""
    try:
        return m.decode(channel.recv())
    finally:
        channel.close()


@skip_unless_xvfb
class PinningTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls._tmp.name)
        cls.xvfb = Xvfb(width=320, height=240).start()
        cls.relay_proc, address = run_relay_process("--bind", "127.0.0.1:0")
        cls.relay_text = "%s:%d" % address

    @classmethod
    def tearDownClass(cls):
        cls.relay_proc.terminate()
        cls.relay_proc.wait(10)
        cls.xvfb.stop()
        cls._tmp.cleanup()

    def env(self):
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD"):
            env.pop(name, None)
        return env

    def start_host(self, name, *extra, relay=None):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", relay or self.relay_text,
                     "--config-dir", str(self.tmp / name), *extra], self.env())
        self.addCleanup(_kill, host)      # an attempt the viewer walked away from waits its 15 s
        ready = host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return host, ready["id"], ready["password"]

    def view(self, host_id, password, name, *extra, relay=None):
        argv = [sys.executable, GUI, "--cli", "connect", host_id, "--password", password, "--json",
                "--relay", relay or self.relay_text, "--config-dir", str(self.tmp / name),
                "--direct-bind", "127.0.0.1", *extra]
        env = self.env()
        env.pop("DISPLAY")                   # the viewer is headless
        viewer = Proc(argv, env)
        self.addCleanup(viewer.stop)
        return viewer

    def next_password(self, host, used):
        """The host's one-time password after `used` was used up (its newest ready line)."""
        return host.wait_for(lambda e: e.get("event") == "ready" and e["password"] != used,
                             what="a new password")["password"]

    def assert_key_changed_and_no_picture(self, viewer, snapshot):
        self.assertEqual(viewer.finish(), 6, viewer.stderr)
        self.assertEqual([e["kind"] for e in viewer.events("error")], ["key_changed"])
        lines = viewer.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, viewer.stderr)
        self.assertIn("key has changed", lines[0])
        self.assertIn("--accept-new-key", lines[0])
        self.assertNotIn("Traceback", viewer.stderr)
        self.assertEqual(viewer.events("connected"), [])
        self.assertFalse(snapshot.exists(), "a picture was saved")

    def assert_viewed(self, viewer, snapshot):
        self.assertEqual(viewer.finish(), 0, viewer.stderr)
        self.assertEqual(len(viewer.events("connected")), 1)
        self.assertGreater(viewer.events("closed")[0]["frames"], 0)
        self.assertTrue(snapshot.exists())

    def plant_squatter_pin(self, viewer_name, host_id):
        """The viewer's pin for `host_id` now names another key (see the module docstring)."""
        PinStore(self.tmp / viewer_name).remember(host_id, Identity.generate().public_key)

    # ---------------------------------------------------------------- relay path

    def test_first_session_pins_then_a_changed_key_is_refused_until_accepted(self):
        host, host_id, password = self.start_host("pin-host", "--direct-bind", "127.0.0.1")
        host_key = Identity.load_or_create(self.tmp / "pin-host").public_key
        first = self.tmp / "first.png"
        self.assert_viewed(self.view(host_id, password, "pin-viewer", "--duration", "1",
                                     "--snapshot", str(first)), first)
        self.assertEqual(PinStore(self.tmp / "pin-viewer").get(host_id).key, host_key)
        # A clean end (the viewer's --duration elapsed) still says why it ended.
        ended = host.wait_for(lambda e: e.get("event") == "session_ended", what="session_ended")
        self.assertEqual(ended["reason"], "viewer closed the session")

        self.plant_squatter_pin("pin-viewer", host_id)
        password = self.next_password(host, password)
        refused = self.tmp / "refused.png"
        viewer = self.view(host_id, password, "pin-viewer", "--snapshot", str(refused))
        self.assert_key_changed_and_no_picture(viewer, refused)
        self.assertEqual(len(host.events("session_started")), 1)
        # Refused through the relay before any handshake: the password was not even tried.
        self.assertEqual(host.events("auth_failed"), [])
        # The viewer told the host why on the relay path: its attempt ends now, not after 15 s.
        told = host.wait_for(lambda e: e.get("event") == "attempt_failed", timeout=HOST_HEARS_WITHIN,
                             what="the host hearing the refusal")
        self.assertIn("key_changed", told["reason"])

        accepted = self.tmp / "accepted.png"
        self.assert_viewed(self.view(host_id, password, "pin-viewer", "--accept-new-key", "--duration",
                                     "1", "--snapshot", str(accepted)), accepted)
        self.assertEqual(PinStore(self.tmp / "pin-viewer").get(host_id).key, host_key)

    # ---------------------------------------------------------------- LAN: the proof decides

    def test_on_the_lan_the_hosts_proof_is_checked_against_the_pin(self):
        nowhere = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"       # no relay names any key here
        lan = ["--lan", "--lan-target", "127.255.255.255", "--lan-interval", "0.2",
               "--lan-port", str(free_port(socket.SOCK_DGRAM))]
        host, host_id, password = self.start_host("lan-host", "--direct-bind", "127.0.0.1", *lan,
                                                  relay=nowhere)
        host_key = Identity.load_or_create(self.tmp / "lan-host").public_key
        self.plant_squatter_pin("lan-viewer", host_id)
        refused = self.tmp / "lan-refused.png"
        viewer = self.view(host_id, password, "lan-viewer", "--snapshot", str(refused), *lan,
                           relay=nowhere)
        self.assert_key_changed_and_no_picture(viewer, refused)
        # The host did prove its key (and saw the viewer's proof) before the viewer refused it.
        host.wait_for(lambda e: e.get("event") == "verified", what="the viewer verified")
        self.assertEqual(host.events("session_started"), [])
        host.wait_for(lambda e: e.get("event") == "refused", timeout=HOST_HEARS_WITHIN,
                      what="the host's attempt ending")

        accepted = self.tmp / "lan-accepted.png"
        self.assert_viewed(self.view(host_id, password, "lan-viewer", "--accept-new-key", "--duration",
                                     "1", "--snapshot", str(accepted), *lan, relay=nowhere), accepted)
        self.assertEqual(PinStore(self.tmp / "lan-viewer").get(host_id).key, host_key)

    # ---------------------------------------------------------------- the viewer's ID

    def test_a_viewer_lying_about_its_id_is_refused_and_counted(self):
        port = free_port(socket.SOCK_STREAM)
        host, host_id, password = self.start_host("liar-host", "--direct-bind", f"127.0.0.1:{port}")
        victim, liar = Identity.generate(), Identity.generate()

        channel = lan_dial(host_id, port, victim.id, password)      # the password is right
        channel.send(make_proof(Claiming(liar, victim.id), ROLE_VIEWER, binding(channel)).encode())
        bye = first_answer(channel)
        self.assertIsInstance(bye, m.Bye)
        self.assertTrue(bye.text.startswith(NOT_PROVEN), bye.text)
        refused = host.wait_for(lambda e: e.get("event") == "refused", what="refused line")
        self.assertEqual((refused["peer"], refused["reason"]), (victim.id, "could not prove its ID"))

        older = Identity.generate().id                              # an older TagIO proves nothing
        channel = lan_dial(host_id, port, older, password)
        channel.send(m.encode(m.Introduce("old desk")))
        bye = first_answer(channel)
        self.assertIn("newer TagIO", bye.text)          # said from the older viewer's side
        self.assertIn("update both sides", bye.text)
        refused = host.wait_for(lambda e: e.get("event") == "refused" and e["peer"] == older,
                                what="the older viewer refused")
        self.assertIn("older TagIO", refused["reason"])

        channel = lan_dial(host_id, port, Identity.generate().id, password)
        channel.send(make_proof(liar, ROLE_VIEWER, binding(channel)).encode())   # liar's own, other ID
        first_answer(channel)
        # Three refused proofs cost the one-time password its three tries, as wrong passwords do.
        self.next_password(host, password)
        self.assertEqual(len(host.events("refused")), 3)
        self.assertEqual(host.events("verified"), [])
        self.assertEqual(host.events("session_started"), [])
        self.assertEqual(host.events("auth_failed"), [])             # it was not a wrong password


class HostPromptTest(unittest.TestCase):
    """In process: the host's accept callback (what the window turns into its prompt)."""

    def setUp(self):
        from tests.relay_fixture import start_relay
        self.relay = start_relay()
        self.addCleanup(self.relay.stop)
        self.relay_text = "%s:%d" % self.relay.address

    def client(self, **kwargs):
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        client = Client(tmp.name, relay=self.relay_text, settings=Settings(tmp.name, ask_before_accept=True),
                        direct_bind=("127.0.0.1", 0), view_only=True, **kwargs)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(10)
        return client

    def test_the_prompt_shows_only_proven_ids(self):
        events, asked, lock = [], [], threading.Lock()

        def on_event(name, **fields):
            with lock:
                events.append((name, fields))

        def ask(peer_id, cancelled):
            with lock:
                asked.append((peer_id, [n for n, f in events if n == "verified" and f["peer_id"] == peer_id]))
            return False
        host = self.client(accept_callback=ask, on_event=on_event)
        victim, liar = Identity.generate(), Identity.generate()
        channel = lan_dial(host.id, host.listener.port, victim.id, host.one_time_password)
        channel.send(make_proof(Claiming(liar, victim.id), ROLE_VIEWER, binding(channel)).encode())
        self.assertIsInstance(first_answer(channel), m.Bye)

        viewer = self.client()
        with self.assertRaisesRegex(Exception, "declined"):
            viewer.connect(host.id, host.one_time_password)
        with lock:
            self.assertEqual(asked, [(viewer.id, ["verified"])])   # never the liar; the viewer once proven
            refusals = [f for n, f in events if n == "refused" and f["peer_id"] == victim.id]
        self.assertEqual([f["reason"] for f in refusals], ["could not prove its ID"])


def _kill(proc):
    """End a host at once: a clean stop would wait for an attempt the viewer walked away from."""
    if proc.popen.poll() is None:
        proc.popen.kill()
    proc.stop()


if __name__ == "__main__":
    unittest.main()
