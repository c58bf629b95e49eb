"""Client-level tests of tagio.client.core (with hosting.py and viewing.py): two real Clients, a real relay on 127.0.0.1, a real Xvfb.

Every Client gets a private config dir, a direct listener on 127.0.0.1 (or none) and the relay from
tests/relay_fixture, so nothing leaves loopback. The host captures a private Xvfb display.
"""

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest
from pathlib import Path

from tagio.client.admission import ConnectCancelled
from tagio.client.core import REGISTERED_MARKER, Client
from tagio.client.refusal import PartnerRefused
from tagio.client.ratelimit import AttemptLimiter
from tagio.client import words
from tagio.client.settings import Settings
from tagio.crypto.identity import Identity
from tagio.errors import (ConfigError, RelayError, TransportError, WrongPasswordError)
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import start_relay
from tests.xvfb import Xvfb, skip_unless_xvfb

LOOPBACK = ("127.0.0.1", 0)


class Events:
    """Records Client events; `wait(name)` blocks until one with that name arrived."""

    def __init__(self):
        self.items = []
        self._cond = threading.Condition()

    def __call__(self, name, **fields):
        with self._cond:
            self.items.append((name, fields))
            self._cond.notify_all()

    def names(self):
        with self._cond:
            return [n for n, _ in self.items]

    def wait(self, name, timeout=10, **match):
        def found():
            return next((f for n, f in self.items if n == name
                         and all(f.get(k) == v for k, v in match.items())), None)
        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
            got = found()
        if got is None:
            raise AssertionError(f"no {name} event {match} within {timeout}s; got {self.names()}")
        return got


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@skip_unless_xvfb
class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xvfb = Xvfb(width=320, height=240).start()
        cls.relay = start_relay()
        cls.relay_text = "%s:%d" % cls.relay.address

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        cls.xvfb.stop()

    def client(self, *, settings_kw=None, relay=None, **kwargs):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        settings = Settings(tmp.name, **(settings_kw or {}))
        events = Events()
        kwargs.setdefault("direct_bind", LOOPBACK)
        client = Client(tmp.name, relay=relay or self.relay_text, settings=settings, on_event=events,
                        display=self.xvfb.display, view_only=True, **kwargs)
        client.events = events
        client.start()
        self.addCleanup(client.close)
        if relay is None:
            client.wait_online(10)
        return client

    def view(self, conn):
        session = conn.open_session()
        session.start()
        self.addCleanup(session.stop)
        self.assertTrue(wait_until(lambda: session.framebuffer is not None and session.stats["frames"]),
                        "no frame arrived")
        return session

    # ---------------------------------------------------------------- happy paths

    def test_connect_with_one_time_password(self):
        host, viewer = self.client(), self.client(direct_bind=None)
        self.assertEqual((host.relay_status, viewer.relay_status), ("online", "online"))
        otp = host.one_time_password
        conn = viewer.connect(host.id, otp)
        self.assertEqual(conn.peer_id, host.id)
        # Direct TCP normally wins; on a loaded machine the relay (tried 0.3 s later) may finish its
        # handshake first, which is the race working as designed. test_lan_* checks direct alone.
        self.assertIn(conn.path, ("direct-tcp", "relay"))
        self.assertGreater(conn.connect_ms, 0)
        session = self.view(conn)
        self.assertEqual(session.framebuffer.size, (320, 240))
        started = host.events.wait("session_started", peer_id=viewer.id)
        self.assertEqual((started["path"], started["role"]), (conn.path, "host"))
        # The password lives on while its session runs (a reconnect needs no new one) ...
        self.assertEqual(host.one_time_password, otp)
        self.assertEqual(len(host.host_sessions), 1)
        self.assertEqual(Settings.load(viewer.config_dir).recent_partners, [host.id])
        session.stop()
        ended = host.events.wait("session_ended", peer_id=viewer.id)
        self.assertEqual(ended["role"], "host")
        self.assertEqual(ended["reason"], "viewer closed the session")     # a clean end says why
        self.assertTrue(wait_until(lambda: not host.host_sessions))
        # ... and is used up once the session ended.
        self.assertTrue(wait_until(lambda: host.one_time_password != otp),
                        "a used one-time password must be replaced")

    def test_relay_path_when_host_has_no_listener(self):
        host, viewer = self.client(direct_bind=None), self.client(direct_bind=None)
        conn = viewer.connect(host.id, host.one_time_password)
        self.assertEqual(conn.path, "relay")
        self.view(conn)
        host.end_host_sessions()             # the "disconnect" button
        ended = host.events.wait("session_ended", peer_id=viewer.id)
        self.assertEqual(words.ending(ended["reason"]), "The session was ended on this desk.")

    def test_session_through_a_websocket_relay(self):
        url = "ws://" + self.relay_text                 # as behind an HTTPS-only front end, minus TLS
        host = self.client(relay=url, direct_bind=None)
        viewer = self.client(relay=url, direct_bind=None)
        host.wait_online(10)
        viewer.wait_online(10)
        conn = viewer.connect(host.id, host.one_time_password)
        self.assertEqual(conn.path, "relay")
        self.view(conn)

    def test_permanent_password_skips_prompt_and_keeps_otp(self):
        asked = []
        host = self.client(host_password="unattended-pw", settings_kw={"ask_before_accept": True},
                           accept_callback=lambda peer: asked.append(peer) or False)
        viewer = self.client(direct_bind=None)
        otp = host.one_time_password
        self.view(viewer.connect(host.id, "unattended-pw"))
        host.events.wait("session_started")
        self.assertEqual(asked, [])
        self.assertEqual(host.one_time_password, otp)

    def test_stolen_settings_file_does_not_let_anyone_in(self):
        """Issue 10 item 4: the saved permanent password is a SPAKE2+ verifier; whatever a thief
        copies out of settings.json is refused, and the real password still works."""
        host = self.client(settings_kw={"ask_before_accept": True}, accept_callback=lambda peer: False)
        host.settings.set_permanent_password("correct horse battery", host.id)
        host.settings.save()
        stored = json.loads((Path(host.config_dir) / "settings.json").read_text())
        verifier = stored["permanent_verifier"]
        self.assertNotIn("permanent_secret", stored)
        viewer = self.client(direct_bind=None)
        for loot in (verifier, verifier[:64], verifier[64:]):        # w0 || L, w0, L
            with self.assertRaises(WrongPasswordError):
                viewer.connect(host.id, loot)
        self.view(viewer.connect(host.id, "correct horse battery"))   # no prompt: it was unattended
        host.events.wait("session_started", peer_id=viewer.id)


    def test_ask_before_accept_decline(self):
        asked = []
        host = self.client(settings_kw={"ask_before_accept": True},
                           accept_callback=lambda peer: asked.append(peer) or False)
        viewer = self.client(direct_bind=None)
        waiting = []
        with self.assertRaises(PartnerRefused) as ctx:
            viewer.connect(host.id, host.one_time_password, on_waiting=lambda: waiting.append(1))
        self.assertEqual(ctx.exception.code, "declined")
        self.assertEqual(waiting, [1])              # the viewer heard that the partner was asked
        refused = host.events.wait("refused", peer_id=viewer.id)
        self.assertEqual(refused["reason"], "declined")
        self.assertEqual(asked, [viewer.id])
        self.assertNotIn("session_started", host.events.names())

    def test_viewer_that_cancels_closes_the_prompt_and_starts_nothing(self):
        prompt_closed, answered = threading.Event(), threading.Event()

        def ask(peer, cancelled):
            prompt_closed.set() if cancelled.wait(10) else None
            answered.wait(10)
            return True                              # a late Accept
        host = self.client(settings_kw={"ask_before_accept": True}, accept_callback=ask)
        viewer = self.client(direct_bind=None)
        cancel = threading.Event()
        started = time.monotonic()
        with self.assertRaises(ConnectCancelled):
            viewer.connect(host.id, host.one_time_password, on_waiting=cancel.set, cancelled=cancel)
        self.assertTrue(prompt_closed.wait(5), "the host's prompt was not told")
        self.assertLess(time.monotonic() - started, 8)
        answered.set()
        refused = host.events.wait("refused", peer_id=viewer.id)
        self.assertEqual(refused["reason"], "the viewer cancelled")
        self.assertNotIn("session_started", host.events.names())
        self.assertEqual(host.host_sessions, [])

    def test_ask_before_accept_allow(self):
        asked = []
        host = self.client(settings_kw={"ask_before_accept": True},
                           accept_callback=lambda peer: asked.append(peer) or True)
        viewer = self.client(direct_bind=None)
        self.view(viewer.connect(host.id, host.one_time_password))
        host.events.wait("session_started", peer_id=viewer.id)
        self.assertEqual(asked, [viewer.id])        # the person was asked, and said yes

    # ---------------------------------------------------------------- failures

    def test_wrong_password_three_tries_then_rotates_and_host_keeps_serving(self):
        # Issue 10/11: every failed guess is reported; the one-time password survives a typo and
        # is replaced after its third failed try.
        host, viewer = self.client(), self.client(direct_bind=None)
        otp = host.one_time_password
        other = self.client(direct_bind=None)            # (the host lets one peer try 5 times a minute)
        with self.assertRaises(WrongPasswordError):
            other.connect(host.id, "not-the-password")      # a guess at the permanent password:
        host.events.wait("auth_failed", peer_id=other.id, failures=1)    # reported, no rotation
        for tries in (2, 3, 4):                             # typos of the one-time password
            with self.assertRaises(WrongPasswordError):
                viewer.connect(host.id, "zzzz2222")
            failed = host.events.wait("auth_failed", peer_id=viewer.id, failures=tries)
            self.assertEqual((failed["password_replaced"], failed["tries_left"]), (tries == 4, 4 - tries))
            if tries < 4:
                self.assertEqual(host.one_time_password, otp)
        self.assertTrue(wait_until(lambda: host.one_time_password != otp), "password not rotated")
        with self.assertRaises(WrongPasswordError):
            viewer.connect(host.id, otp)           # the old password is gone
        host.events.wait("auth_failed", peer_id=viewer.id, failures=5)
        self.view(viewer.connect(host.id, host.one_time_password))

    def test_one_typo_then_the_right_password_connects(self):
        host, viewer = self.client(), self.client(direct_bind=None)
        otp = host.one_time_password
        with self.assertRaises(WrongPasswordError):
            viewer.connect(host.id, otp + "x")
        host.events.wait("auth_failed", peer_id=viewer.id)
        self.view(viewer.connect(host.id, otp))

    def test_rate_limit_refuses_without_handshake(self):
        host = self.client(limiter=AttemptLimiter(per_peer=1, total=10))
        viewer = self.client(direct_bind=None)
        with self.assertRaises(WrongPasswordError):
            viewer.connect(host.id, "guess-1")
        started = time.monotonic()
        with self.assertRaises(PartnerRefused) as ctx:  # no handshake: told on the relay path
            viewer.connect(host.id, host.one_time_password, timeout=10)
        self.assertEqual(ctx.exception.code, "rate_limited")
        self.assertLess(time.monotonic() - started, 2.0)
        refused = host.events.wait("refused", peer_id=viewer.id)
        self.assertEqual(refused["reason"], "too many attempts")

    def test_unknown_id_and_bad_input(self):
        viewer = self.client(direct_bind=None)
        with self.assertRaises(RelayError) as ctx:
            viewer.connect("123 456 789", "whatever")
        self.assertIn(ctx.exception.code, ("unknown_id", "offline"))
        with self.assertRaises(ConfigError):
            viewer.connect("12345", "pw")
        with self.assertRaises(ConfigError):
            viewer.connect(viewer.id, "pw")
        with self.assertRaises(ConfigError):
            viewer.connect("123456789", "  ")

    def test_garbage_instead_of_a_handshake_does_not_stop_the_host(self):
        host = self.client()
        attacker = RelayClient(self.relay.address, Identity.generate())
        attacker.connect()
        self.addCleanup(attacker.close)
        peer = attacker.request_peer(host.id, os.urandom(16))
        stream = attacker.open_relay(peer.relay_token)
        stream.send(bytes(range(256)) * 64)          # not a handshake at all
        failed = host.events.wait("attempt_failed", timeout=20)
        self.assertEqual(failed["peer_id"], attacker.identity.id)
        self.assertTrue(failed["reason"])
        stream.close()
        port = host.listener.candidates()[0][1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:   # junk on the listener
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\xff" * 4096)
        viewer = self.client(direct_bind=None)       # and the host still serves a real viewer
        self.view(viewer.connect(host.id, host.one_time_password))

    def test_malformed_session_messages_end_only_that_session(self):
        host, viewer = self.client(), self.client(direct_bind=None)
        conn = viewer.connect(host.id, host.one_time_password)
        host.events.wait("session_started", peer_id=viewer.id)
        conn.channel.send(b"\xee" + bytes(range(200)))     # authenticated, but not a session message
        ended = host.events.wait("session_ended", peer_id=viewer.id)
        self.assertIn("unknown session message", ended["reason"])
        self.assertTrue(wait_until(lambda: not host.host_sessions))
        conn.channel.close()
        self.view(viewer.connect(host.id, host.one_time_password))    # still serving

    def test_lan_session_without_a_relay(self):
        nowhere = "127.0.0.1:%d" % free_port(socket.SOCK_STREAM)       # no relay listens here
        lan = {"targets": ("127.255.255.255",), "lan_port": free_port(socket.SOCK_DGRAM),
               "interval": 0.2}                                         # loopback "LAN" only
        host = self.client(relay=nowhere, lan=lan)
        viewer = self.client(relay=nowhere, lan=lan)
        self.assertTrue(wait_until(lambda: host.id in [p.id for p in viewer.lan_peers]),
                        "the host was never seen on the LAN")
        self.assertTrue(wait_until(lambda: viewer.relay_status.startswith("unreachable")),
                        viewer.relay_status)
        conn = viewer.connect(host.id, host.one_time_password)
        self.assertIn(conn.path, ("direct-tcp", "direct-udp"))
        self.view(conn)
        started = host.events.wait("session_started", peer_id=viewer.id)
        self.assertEqual(started["path"], conn.path)
        with self.assertRaises(RelayError):                 # not on the LAN, no relay: clear error
            viewer.connect("123456789", "whatever")

    def test_lan_is_off_unless_asked(self):
        self.assertIsNone(self.client().lan_peers)

    def test_events_never_carry_secrets(self):
        host, viewer = self.client(), self.client(direct_bind=None)
        passwords = [host.one_time_password]
        with self.assertRaises(WrongPasswordError):
            viewer.connect(host.id, "wrong-secret-guess")
        passwords.append(host.one_time_password)
        text = repr(host.events.items) + repr(viewer.events.items)
        for secret in passwords + ["wrong-secret-guess"]:
            self.assertNotIn(secret, text)


class RelayStatusTest(unittest.TestCase):
    """Status and errors when the relay is missing or goes away (no display needed)."""

    def make(self, relay_text, relay_ca=None, **settings_kw):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        events = Events()
        client = Client(tmp.name, relay=relay_text, settings=Settings(tmp.name, **settings_kw),
                        on_event=events, direct_bind=None, relay_ca=relay_ca)
        client.events = events
        client.start()
        self.addCleanup(client.close)
        return client

    def test_unreachable(self):
        relay = start_relay()
        address = "%s:%d" % relay.address
        relay.stop()                                   # nothing listens there any more
        client = self.make(address)
        with self.assertRaises(RelayError) as ctx:
            client.wait_online(5)
        self.assertEqual(ctx.exception.code, "unreachable")
        self.assertIn(address, str(ctx.exception))
        self.assertTrue(client.relay_status.startswith("unreachable: "), client.relay_status)
        with self.assertRaises(RelayError):
            client.connect("123456789", "pw")

    def test_private_relay_secret(self):
        relay = start_relay(auth_secret="relay-s3cret")
        self.addCleanup(relay.stop)
        address = "%s:%d" % relay.address
        good = self.make(address, relay_secret="relay-s3cret")
        good.wait_online(5)
        bad = self.make(address, relay_secret="not-it")
        with self.assertRaises(RelayError):
            bad.wait_online(5)
        self.assertTrue(bad.relay_status.startswith("unreachable: The relay refused this desk: its relay "
                                                    "secret is missing or wrong"), bad.relay_status)
        self.assertNotIn("not-it", bad.relay_status + repr(bad.events.items))

    def test_relay_over_websocket(self):
        relay = start_relay()
        self.addCleanup(relay.stop)
        client = self.make("ws://%s:%d" % relay.address)
        client.wait_online(5)
        self.assertEqual((client.relay_address, client.relay_url), (relay.address,
                                                                    "ws://%s:%d" % relay.address))

    @unittest.skipUnless(shutil.which("openssl"), "needs openssl to make a test certificate")
    def test_relay_over_tls_with_its_own_ca(self):
        from tagio.relay.cli import make_tls_context
        from tests.test_relay_tls import make_certificate
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        cert, key = make_certificate(Path(tmp.name))
        relay = start_relay(ssl_context=make_tls_context(str(cert), str(key)))
        self.addCleanup(relay.stop)
        url = "tls://%s:%d" % relay.address
        trusting = self.make(url, relay_ca=str(cert))
        trusting.wait_online(5)
        doubting = self.make(url)                      # system CAs do not know this certificate
        with self.assertRaises(RelayError):
            doubting.wait_online(5)
        self.assertIn("unreachable", doubting.relay_status)

    def test_relay_lost_then_back(self):
        relay = start_relay()
        address = relay.address
        client = self.make("%s:%d" % address)
        client.wait_online(5)
        self.assertEqual(client.relay_status, "online")
        relay.stop()
        self.assertTrue(wait_until(lambda: client.relay_status != "online", 15), client.relay_status)
        again = start_relay(bind=address)          # the relay restarts on the same port
        self.addCleanup(again.stop)
        self.assertTrue(wait_until(lambda: client.relay_status == "online", 15), client.relay_status)
        statuses = [f["status"] for n, f in client.events.items if n == "relay_status"]
        self.assertEqual(statuses[0], "online")
        self.assertEqual(statuses[-1], "online")
        self.assertTrue(any(s != "online" for s in statuses[1:-1]), statuses)


if __name__ == "__main__":
    unittest.main()



class IdCollisionTest(unittest.TestCase):
    """9-digit IDs collide (~5 % among 10,000 keys); the relay binds an ID to the first key it saw."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.config_dir = os.path.join(tmp.name, "config")
        self.identity = Identity.load_or_create(self.config_dir)   # this install's key
        state = Path(tmp.name) / "bindings.json"                   # ...whose ID a relay gave away
        state.write_text(json.dumps({"bindings": {self.identity.id: Identity.generate().public_key.hex()}}))
        relay = start_relay(state_file=str(state))
        self.addCleanup(relay.stop)
        self.relay_text = "%s:%d" % relay.address
        self.events = Events()

    def start_client(self):
        client = Client(self.config_dir, relay=self.relay_text, on_event=self.events, direct_bind=None)
        self.addCleanup(client.close)
        client.start()
        return client

    def test_a_key_never_registered_gets_a_new_id_and_registers(self):
        client = self.start_client()
        client.wait_online(10)
        self.assertNotEqual(client.id, self.identity.id)
        self.assertEqual(self.events.wait("id_changed")["id"], client.id)
        self.assertEqual(Identity.load_or_create(self.config_dir).id, client.id)   # kept on disk
        self.assertEqual(client.relay_status, "online")

    def test_a_key_that_registered_before_is_never_replaced_silently(self):
        Path(self.config_dir, REGISTERED_MARKER).touch()        # this key has been online before
        client = self.start_client()
        with self.assertRaises(RelayError) as caught:
            client.wait_online(10)
        self.assertIn("different key", str(caught.exception))
        self.assertEqual(client.id, self.identity.id)
        self.assertEqual(Identity.load_or_create(self.config_dir).id, self.identity.id)
        self.assertNotIn("id_changed", self.events.names())
