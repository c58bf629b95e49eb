"""Tests for tagio.client.viewing: the viewer derives its password secret once per connect.

Real parts: a relay on 127.0.0.1 (tests/relay_fixture) and two Clients whose direct listeners are on
127.0.0.1, so one connect races several paths (the viewer's dial, the host's dial back, punched UDP
and the relay). Each path runs the viewer handshake; the scrypt behind the password must not.
"""

import tempfile
import threading
import unittest
from unittest import mock

from tagio.client.core import Client
from tagio.client.settings import Settings
from tagio.crypto import handshake, kdf
from tests.relay_fixture import start_relay

LOOPBACK = ("127.0.0.1", 0)
PATHS_WANTED = 2            # the connect must have raced at least this many paths
PATH_WAIT = 10.0            # how long the first path waits for a second one to open


class PathGate:
    """Wraps viewer_handshake_secret: the first path waits (on a condition, bounded) until a second
    path has started its handshake too, so the race really runs the handshake on several paths."""

    def __init__(self, real):
        self.real = real
        self.started = 0
        self.cond = threading.Condition()

    def __call__(self, stream, secret, **kwargs):
        with self.cond:
            self.started += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.started >= PATHS_WANTED, timeout=PATH_WAIT)
        return self.real(stream, secret, **kwargs)


class DerivationCounter:
    """Wraps kdf.password_secret and counts the derivations of one password."""

    def __init__(self, real, password):
        self.real, self.password = real, password
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, password, host_id):
        if password == self.password:
            with self.lock:
                self.count += 1
        return self.real(password, host_id)


class OneDerivationTest(unittest.TestCase):
    def setUp(self):
        self.relay = start_relay()
        self.addCleanup(self.relay.stop)
        self.relay_text = "%s:%d" % self.relay.address

    def client(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        client = Client(tmp.name, relay=self.relay_text, settings=Settings(tmp.name),
                        direct_bind=LOOPBACK, view_only=True)
        client.start()
        self.addCleanup(client.close)
        client.wait_online(30)     # registration can take seconds on a loaded machine
        return client

    def test_one_scrypt_for_a_connect_that_races_several_paths(self):
        host, viewer = self.client(), self.client()
        password = host.one_time_password
        counter = DerivationCounter(kdf.password_secret, password)
        gate = PathGate(handshake.viewer_handshake_secret)
        with mock.patch.object(kdf, "password_secret", counter), \
                mock.patch.object(handshake, "viewer_handshake_secret", gate):
            conn = viewer.connect(host.id, password)
        self.addCleanup(conn.channel.close)
        self.assertGreaterEqual(gate.started, PATHS_WANTED, "the connect did not race several paths")
        self.assertEqual(counter.count, 1, f"password derived {counter.count} times for one connect")


if __name__ == "__main__":
    unittest.main()
