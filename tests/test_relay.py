"""The relay end to end over real sockets on 127.0.0.1: registration, rendezvous, relaying, HTTP, UDP."""

import hashlib
import json
import os
import socket
import threading
import unittest
import urllib.request

from tagio.crypto.identity import Identity
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import start_relay


def open_pair(viewer, host, token, timeout=5.0):
    """Both sides bind the same token concurrently; returns (viewer_stream, host_stream)."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("v", viewer.open_relay(token, timeout)))
    t.start()
    host_stream = host.open_relay(token, timeout)
    t.join(timeout)
    return box["v"], host_stream


class RelayTestCase(unittest.TestCase):
    relay_options = {}

    def setUp(self):
        self.relay = start_relay(**self.relay_options)
        self.addCleanup(self.relay.stop)

    def client(self, identity=None, **kw):
        c = RelayClient(self.relay.address, identity or Identity.generate(), **kw)
        self.addCleanup(c.close)
        return c

    def registered_pair(self):
        viewer, host = self.client(), self.client(local_candidates=[("192.168.7.7", 7000)])
        viewer.connect()
        host.connect()
        return viewer, host


class RendezvousTest(RelayTestCase):
    def test_register_connect_both_get_peer_info(self):
        viewer, host = self.registered_pair()
        self.assertTrue(viewer.online and host.online)
        self.assertEqual(viewer.registered.observed_addr[0], "127.0.0.1")
        sid = os.urandom(16)
        v_info = viewer.request_peer(host.identity.id, sid)
        h_info = host.incoming.get(timeout=5)
        self.assertEqual((v_info.role, h_info.role), ("viewer", "host"))
        self.assertEqual((v_info.session_id, h_info.session_id), (sid, sid))
        self.assertEqual(v_info.peer_id, host.identity.id)
        self.assertEqual(h_info.peer_id, viewer.identity.id)
        self.assertEqual(v_info.peer_public_key, host.identity.public_key)
        self.assertEqual(v_info.peer_local_candidates, [("192.168.7.7", 7000)])
        self.assertEqual(v_info.relay_token, h_info.relay_token)
        self.assertEqual(len(v_info.relay_token), 16)
        self.assertEqual(h_info.peer_public_addr, viewer._sock.getsockname()[:2])

    def test_unknown_and_offline_targets(self):
        viewer, host = self.registered_pair()
        with self.assertRaises(RelayError) as ctx:
            viewer.request_peer("111 111 111", os.urandom(16))
        self.assertEqual(ctx.exception.code, "unknown_id")
        host_id = host.identity.id
        host.close()
        with self.assertRaises(RelayError) as ctx:
            for _ in range(50):  # the relay notices the Bye asynchronously
                viewer.request_peer(host_id, os.urandom(16))
                threading.Event().wait(0.02)
        self.assertEqual(ctx.exception.code, "offline")
        self.assertTrue(viewer.online)

    def test_relay_carries_bytes_both_ways(self):
        viewer, host = self.registered_pair()
        info = viewer.request_peer(host.identity.id, os.urandom(16))
        token = host.incoming.get(timeout=5).relay_token
        self.assertEqual(token, info.relay_token)
        v, h = open_pair(viewer, host, token)
        self.addCleanup(v.close)
        self.addCleanup(h.close)
        self.assertEqual(v.path, "relay")
        v.send(b"ping")
        self.assertEqual(h.recv(10), b"ping")
        h.send(b"pong")
        self.assertEqual(v.recv(10), b"pong")

    def test_http_health(self):
        host, port = self.relay.address
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as resp:
            self.assertEqual(resp.status, 200)
            body = json.loads(resp.read())
        self.assertEqual(body["status"], "ok")
        for key in ("version", "uptime_s", "online_clients", "active_relays"):
            self.assertIn(key, body)


if __name__ == "__main__":
    unittest.main()
