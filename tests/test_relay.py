"""The relay end to end over real sockets on 127.0.0.1: registration, rendezvous, relaying, HTTP, UDP."""

import hashlib
import json
import os
import socket
import threading
import unittest
import urllib.request

from tagio.crypto.identity import Identity
from tagio.crypto.relay_auth import RelaySecret
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import open_pair, relayed_streams, start_relay, wait_for



def read_digest(stream) -> tuple:
    """(byte count, sha256 hex) of everything `stream` yields until EOF."""
    digest, total = hashlib.sha256(), 0
    while True:
        chunk = stream.recv(1 << 20)
        if not chunk:
            return total, digest.hexdigest()
        digest.update(chunk)
        total += len(chunk)


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

    def relayed_pair(self):
        """(viewer, host, viewer_stream, host_stream): registered, introduced and relayed."""
        viewer, host = self.registered_pair()
        v, h = relayed_streams(self, viewer, host, timeout=5.0)
        return viewer, host, v, h


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



class FakeClock:
    """Monotonic clock the test moves by hand (the relay's timers read it every loop turn)."""

    def __init__(self):
        import time
        self._now = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            return self._now

    def advance(self, seconds):
        with self._lock:
            self._now += seconds



class BulkRelayTest(RelayTestCase):
    SIZE = 50 * 1024 * 1024

    def test_50_mb_each_way_intact(self):
        from tagio.relay import forward
        self.bulk_both_ways(self.SIZE, forward.SpliceDirection if forward.CAN_SPLICE else forward.CopyDirection)

    def test_portable_copy_path(self):
        """The recv/send fallback used off Linux (and for TLS) moves the same bytes."""
        from unittest import mock
        from tagio.relay import forward
        with mock.patch.object(forward, "CAN_SPLICE", False):
            self.bulk_both_ways(8 * 1024 * 1024, expect_kind=forward.CopyDirection)

    def bulk_both_ways(self, size, expect_kind=None):
        viewer, host, v, h = self.relayed_pair()
        if expect_kind is not None:
            self.assertTrue(wait_for(lambda: self.relay.server.forwarder.active == 1))
            pair = next(iter(self.relay.server.forwarder._pairs))
            self.assertIs(type(pair.a2b), expect_kind)
        payloads = {"v": os.urandom(size), "h": os.urandom(size)}
        received = {}

        def pump(name, stream, data):
            sender = threading.Thread(target=lambda: (stream.send(data), stream.sock.shutdown(socket.SHUT_WR)))
            sender.start()
            received[name] = read_digest(stream)
            sender.join()

        threads = [threading.Thread(target=pump, args=("v", v, payloads["v"])),
                   threading.Thread(target=pump, args=("h", h, payloads["h"]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(received["h"], (size, hashlib.sha256(payloads["v"]).hexdigest()))
        self.assertEqual(received["v"], (size, hashlib.sha256(payloads["h"]).hexdigest()))
        self.assertTrue(wait_for(lambda: self.relay.server.forwarder.active == 0))
        self.assertEqual(self.relay.server.status()["relayed_bytes_total"], 2 * size)


class IdentityTest(RelayTestCase):
    def test_takeover_refused(self):
        owner = self.client()
        owner.connect()
        thief_key = Identity.generate()

        class Impostor:  # claims the owner's ID with its own key, or the owner's key without its secret
            def __init__(self, public_key):
                self.id, self.public_key, self.sign = owner.identity.id, public_key, thief_key.sign

        for public_key in (thief_key.public_key, owner.identity.public_key):
            with self.subTest(public_key=public_key.hex()[:8]):
                with self.assertRaises(RelayError) as ctx:
                    self.client(Impostor(public_key)).connect()
                self.assertEqual(ctx.exception.code, "identity")
        self.assertTrue(owner.online)
        viewer = self.client()
        viewer.connect()
        info = viewer.request_peer(owner.identity.id, os.urandom(16))
        self.assertEqual(info.peer_public_key, owner.identity.public_key)
        self.assertEqual(owner.incoming.get(timeout=5).peer_id, viewer.identity.id)

    def test_owner_reconnect_replaces_stale_registration(self):
        ident = Identity.generate()
        first = self.client(ident)
        first.connect()
        second = self.client(ident)
        second.connect()
        self.assertTrue(wait_for(lambda: not first.online))
        self.assertEqual(first.last_error_code, "replaced")
        self.assertTrue(second.online)

    def test_bindings_survive_restart(self):
        import tempfile
        from pathlib import Path
        from tests.relay_fixture import start_relay as start
        tmp = tempfile.mkdtemp()
        state = Path(tmp) / "relay-state.json"
        ident = Identity.generate()
        with start(state_file=state) as relay:
            c = RelayClient(relay.address, ident)
            c.connect()
            c.close()
        self.assertIn(ident.id, json.loads(state.read_text())["bindings"])
        with start(state_file=state) as relay:
            viewer = RelayClient(relay.address, Identity.generate())
            viewer.connect()
            try:
                with self.assertRaises(RelayError) as ctx:
                    viewer.request_peer(ident.id, os.urandom(16))
                self.assertEqual(ctx.exception.code, "offline")  # known, not "unknown_id"
            finally:
                viewer.close()


class HeartbeatExpiryTest(unittest.TestCase):
    def test_silent_client_expires_on_injected_clock(self):
        clock = FakeClock()
        with start_relay(clock=clock, heartbeat_interval=20.0) as relay:
            quiet = RelayClient(relay.address, Identity.generate())
            quiet.connect()
            self.addCleanup(quiet.close)
            self.assertEqual(quiet.registered.heartbeat_interval, 20.0)
            clock.advance(50)  # under 3 x 20 s: still online
            threading.Event().wait(0.7)
            self.assertTrue(quiet.online)
            self.assertEqual(len(relay.logic.registry), 1)
            clock.advance(20)
            self.assertTrue(wait_for(lambda: not quiet.online))
            self.assertEqual(quiet.last_error_code, "timeout")
            self.assertEqual(len(relay.logic.registry), 0)

    def test_heartbeats_keep_a_client_online(self):
        with start_relay(heartbeat_interval=0.4) as relay:
            c = RelayClient(relay.address, Identity.generate())
            c.connect()
            self.addCleanup(c.close)
            threading.Event().wait(2.5)  # 6 intervals; silence would expire it after 3
            self.assertTrue(c.online)
            self.assertEqual(len(relay.logic.registry), 1)


class AuthTest(RelayTestCase):
    relay_options = {"auth_secret": "correct horse"}

    def test_right_secret(self):
        c = self.client(auth_secret=RelaySecret("correct horse"))
        c.connect()
        self.assertTrue(c.online)

    def test_wrong_and_missing_secret(self):
        with self.assertRaises(RelayError) as ctx:
            self.client(auth_secret=RelaySecret("wrong")).connect()
        self.assertEqual(ctx.exception.code, "auth_failed")
        with self.assertRaises(RelayError) as ctx:
            self.client().connect()
        self.assertEqual(ctx.exception.code, "auth_required")
        self.client(auth_secret=RelaySecret("correct horse")).connect()  # still serving


class LimitsTest(RelayTestCase):
    relay_options = {"register_burst": 2, "register_rate": 0.01, "connect_burst": 2, "connect_rate": 0.01,
                     "unpaired_timeout": 0.5}

    def test_registration_rate_per_address(self):
        self.client().connect()
        self.client().connect()
        with self.assertRaises(RelayError) as ctx:
            self.client().connect()
        self.assertEqual(ctx.exception.code, "rate_limited")
        self.client(source_ip="127.0.0.2").connect()  # another address is served

    def test_connect_request_rate(self):
        viewer = self.client(source_ip="127.0.0.3")
        viewer.connect()
        for _ in range(2):
            with self.assertRaises(RelayError) as ctx:
                viewer.request_peer("111111111", os.urandom(16))
            self.assertEqual(ctx.exception.code, "unknown_id")
        with self.assertRaises(RelayError) as ctx:
            viewer.request_peer("111111111", os.urandom(16))
        self.assertEqual(ctx.exception.code, "rate_limited")
        self.assertTrue(viewer.online)

    def test_unpaired_bind_times_out(self):
        viewer, host = self.client(source_ip="127.0.0.4"), self.client(source_ip="127.0.0.5")
        viewer.connect()
        host.connect()
        info = viewer.request_peer(host.identity.id, os.urandom(16))
        with self.assertRaises(RelayError) as ctx:
            viewer.open_relay(info.relay_token, timeout=5)
        self.assertEqual(ctx.exception.code, "unpaired")
        with self.assertRaises(RelayError) as ctx:  # the token is spent
            viewer.open_relay(info.relay_token, timeout=5)
        self.assertEqual(ctx.exception.code, "unknown_token")


class UdpTest(RelayTestCase):
    def test_reflexive_address_reaches_partner(self):
        viewer, host = self.registered_pair()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(udp.close)
        udp.bind(("127.0.0.1", 0))
        udp.sendto(b"garbage that must not be answered", self.relay.address)
        self.assertEqual(host.discover_udp(udp), udp.getsockname())
        info = viewer.request_peer(host.identity.id, os.urandom(16))
        self.assertEqual(info.peer_udp_addr, udp.getsockname())
        self.assertIsNone(host.incoming.get(timeout=5).peer_udp_addr)  # the viewer did no discovery

    def test_update_candidates(self):
        viewer, host = self.registered_pair()
        self.assertEqual(viewer.request_peer(host.identity.id, os.urandom(16)).nat_hint, "")
        host.update_candidates([("10.1.2.3", 4000)], udp_addr=("10.1.2.3", 4001), nat_hint="cone")
        self.assertTrue(wait_for(lambda: self.relay.logic.registry.get(host.identity.id).local_candidates
                                 == [("10.1.2.3", 4000), ("10.1.2.3", 4001)]))
        info = viewer.request_peer(host.identity.id, os.urandom(16))
        self.assertEqual(info.peer_local_candidates, [("10.1.2.3", 4000), ("10.1.2.3", 4001)])
        self.assertEqual(info.nat_hint, "cone")
        symmetric = self.client(nat_hint="symmetric")
        symmetric.connect()
        self.assertEqual(viewer.request_peer(symmetric.identity.id, os.urandom(16)).nat_hint, "symmetric")


class HttpTest(RelayTestCase):
    def url(self, path):
        host, port = self.relay.address
        return f"http://{host}:{port}{path}"

    def test_healthz_and_metrics(self):
        c = self.client()
        c.connect()
        with urllib.request.urlopen(self.url("/healthz"), timeout=5) as resp:
            body = json.loads(resp.read())
        self.assertEqual(body["online_clients"], 1)
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            text = resp.read().decode()
            self.assertTrue(resp.headers["Content-Type"].startswith("text/plain"))
        self.assertIn("tagio_relay_online_clients 1\n", text)
        self.assertIn("tagio_relay_registrations_total 1\n", text)
        self.assertIn("tagio_relay_relayed_bytes_total 0\n", text)
        self.assertIn("# TYPE tagio_relay_registrations_total counter", text)

    def test_info_page_and_head(self):
        with urllib.request.urlopen(self.url("/"), timeout=5) as resp:
            page = resp.read().decode()
        self.assertIn("TagIO relay", page)
        self.assertIn(f"{self.relay.address[0]}:{self.relay.address[1]}", page)
        req = urllib.request.Request(self.url("/health"), method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"")


class RelayIdleTest(RelayTestCase):
    relay_options = {"relay_idle_timeout": 1.0}

    def test_idle_relay_is_closed_busy_one_is_not(self):
        viewer, host, v, h = self.relayed_pair()
        for _ in range(8):  # traffic every 0.2 s (1.6 s in all, over the 1 s timeout) keeps it open
            v.send(b"tick")
            self.assertEqual(h.recv(10), b"tick")
            threading.Event().wait(0.2)
        h.settimeout(5)
        self.assertEqual(h.recv(10), b"")  # then silence: closed by the relay
        self.assertTrue(wait_for(lambda: self.relay.server.forwarder.active == 0))
        self.assertTrue(viewer.online and host.online)  # control connections unaffected

    def test_client_reconnects_after_relay_restart(self):
        from tests.relay_fixture import start_relay as start
        relay = start()
        address = relay.address
        c = RelayClient(address, Identity.generate())
        self.addCleanup(c.close)
        c.connect()
        relay.stop()
        self.assertTrue(wait_for(lambda: not c.online))
        self.assertIn("relay shutting down", c.last_error)
        relay = start(bind=address)
        self.addCleanup(relay.stop)
        self.assertEqual(c.connect().observed_addr[0], "127.0.0.1")
        self.assertTrue(c.online)


class BackpressureTest(RelayTestCase):
    def test_slow_receiver_stalls_sender_without_spinning(self):
        import time
        viewer, host, v, h = self.relayed_pair()
        v.sock.settimeout(1.0)
        chunk, sent = os.urandom(64 * 1024), hashlib.sha256()
        total = 0
        while True:  # the host does not read: the sender must block, not fill the relay's memory
            try:
                n = v.sock.send(chunk)
            except socket.timeout:
                break
            sent.update(chunk[:n])
            total += n
            self.assertLess(total, 256 * 1024 * 1024, "no backpressure: the relay buffers without bound")
        cpu0, wall0 = time.process_time(), time.monotonic()
        threading.Event().wait(1.0)
        busy = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        self.assertLess(busy, 0.5, "the relay spins while its buffers are full")
        v.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(read_digest(h), (total, sent.hexdigest()))


class WrongServerTest(unittest.TestCase):
    def test_not_a_relay_is_a_transport_error(self):
        from tagio.errors import TransportError
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)

        def fake_ssh():
            conn, _ = listener.accept()
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.recv(100)
            conn.close()
        t = threading.Thread(target=fake_ssh, daemon=True)
        t.start()
        client = RelayClient(listener.getsockname(), Identity.generate(), timeout=5)
        with self.assertRaisesRegex(TransportError, "does not speak the TagIO relay protocol"):
            client.connect()
        t.join(5)

    def test_nothing_listening(self):
        from tagio.errors import TransportError
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with self.assertRaisesRegex(TransportError, "cannot reach relay"):
            RelayClient(("127.0.0.1", port), Identity.generate()).connect()


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(_has_ipv6_loopback(), "no IPv6 loopback")
class Ipv6Test(unittest.TestCase):
    def test_register_rendezvous_and_udp_over_ipv6(self):
        with start_relay(bind=("::1", 0)) as relay:
            viewer = RelayClient(relay.address, Identity.generate())
            host = RelayClient(relay.address, Identity.generate())
            self.addCleanup(viewer.close)
            self.addCleanup(host.close)
            self.assertEqual(viewer.connect().observed_addr[0], "::1")
            host.connect()
            udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.addCleanup(udp.close)
            udp.bind(("::1", 0))
            self.assertEqual(host.discover_udp(udp), udp.getsockname()[:2])
            info = viewer.request_peer(host.identity.id, os.urandom(16))
            self.assertEqual(info.peer_udp_addr, udp.getsockname()[:2])
            self.assertEqual(info.peer_public_addr[0], "::1")


if __name__ == "__main__":
    unittest.main()
