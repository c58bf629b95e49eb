"""ID squatting and relay state, attacked through the real relay process and sockets.

Small-order Ed25519 keys (any signature verifies with them) are refused; /health says whether the
bindings were loaded, started fresh or lost; bindings unused for Limits.binding_ttl expire; /metrics
needs a metrics token of its own (never the relay secret) and is off on a private relay without one.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from tagio.crypto.identity import Identity, id_from_public_key
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tests.relay_fixture import run_relay_process, start_relay

RELAY = Path(__file__).resolve().parent.parent / "tagio_relay_server.py"
IDENTITY_POINT = bytes([1]) + bytes(31)  # y = 1: the neutral element
SMALL_ORDER_KEYS = [IDENTITY_POINT,
                    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # order 2
                    bytes(32),  # y = 0: order 4
                    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")]  # order 8


class SmallOrderIdentity:
    """Claims the ID of a small-order key: (R = identity, s = 0) verifies for every message with it."""

    def __init__(self, public_key):
        self.public_key = public_key
        self.id = id_from_public_key(public_key)

    def sign(self, message):
        return IDENTITY_POINT + bytes(32)


def get(url, headers=None):
    """(status, body) of one GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except Exception:
        proc.kill()
        proc.wait()


class SmallOrderKeyTest(unittest.TestCase):
    def test_small_order_keys_cannot_register(self):
        from tagio.relay.verify import verify
        with start_relay() as relay:
            for key in SMALL_ORDER_KEYS:
                squatter = SmallOrderIdentity(key)
                self.assertTrue(verify(key, b"any message", squatter.sign(b"")), "the attack signature verifies")
                client = RelayClient(relay.address, squatter)
                with self.subTest(key=key.hex()[:8]), self.assertRaises(RelayError) as ctx:
                    client.connect()
                client.close()
                self.assertEqual(ctx.exception.code, "identity")
                self.assertIn("small-order", ctx.exception.text)
            self.assertEqual(len(relay.logic.registry), 0)
            self.assertEqual(len(relay.logic.registry.bindings), 0)
            with RelayClient(relay.address, Identity.generate()) as honest:
                honest.connect()  # an ordinary key still registers


class StateReportTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.state = self.dir / "relay-bindings.json"

    def health(self, *extra_env):
        proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", "--state-file", str(self.state))
        self.addCleanup(stop, proc)
        status, body = get(f"http://{host}:{port}/health")
        self.assertEqual(status, 200)
        return json.loads(body), proc

    def test_fresh_then_loaded(self):
        body, proc = self.health()
        self.assertEqual(body["state"], "fresh")
        stop(proc)
        self.state.write_text(json.dumps({"version": 1, "bindings": {}}))
        body, _proc = self.health()
        self.assertEqual(body["state"], "loaded")

    def test_an_unreadable_state_file_is_reported_lost_and_kept_aside(self):
        self.state.write_text("{half a file")
        body, proc = self.health()
        self.assertEqual((body["status"], body["state"]), ("ok", "lost"))
        self.assertEqual((self.dir / "relay-bindings.json.unreadable").read_text(), "{half a file")
        stop(proc)
        proc.output_thread.join(10)
        self.assertIn("kept as", "".join(proc.output))

    def test_deployment_files_keep_the_state_on_a_persistent_disk(self):
        root = Path(__file__).resolve().parent.parent
        blueprint = (root / "render.yaml").read_text()
        self.assertRegex(blueprint, r"disk:\s*\n\s+name: \S+\s*\n\s+mountPath: /data")
        dockerfile = (root / "Dockerfile").read_text()
        self.assertIn("TAGIO_RELAY_STATE=/data/", dockerfile)
        self.assertRegex(dockerfile, r'VOLUME \["?/data"?\]?')


class BindingExpiryTest(unittest.TestCase):
    def test_a_binding_unused_for_the_ttl_is_forgotten(self):
        now = time.time()
        stale, recent = Identity.generate(), Identity.generate()
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "relay-bindings.json"
            state.write_text(json.dumps({
                "version": 2, "bindings": {stale.id: stale.public_key.hex(), recent.id: recent.public_key.hex()},
                "last_used": {stale.id: int(now - 181 * 86400), recent.id: int(now - 179 * 86400)}}))
            with start_relay(state_file=state, binding_ttl=180 * 86400.0) as relay:
                with RelayClient(relay.address, Identity.generate()) as viewer:
                    viewer.connect()
                    codes = {}
                    for ident in (stale, recent):
                        with self.assertRaises(RelayError) as ctx:
                            viewer.request_peer(ident.id, os.urandom(16))
                        codes[ident] = ctx.exception.code
            self.assertEqual((codes[stale], codes[recent]), ("unknown_id", "offline"))
            saved = json.loads(state.read_text())
            self.assertNotIn(stale.id, saved["bindings"])
            self.assertEqual(saved["bindings"][recent.id], recent.public_key.hex())
            self.assertEqual(saved["last_used"][recent.id], int(now - 179 * 86400))


class PrivateMetricsTest(unittest.TestCase):
    """/metrics crosses plain HTTP: its Bearer token is a metrics token of its own, never the relay
    secret (one captured operator request must not give the secret away)."""

    def test_the_relay_secret_never_opens_the_metrics(self):
        proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", env={"AUTH_SECRET": "s3cret-relay"})
        self.addCleanup(stop, proc)
        url = f"http://{host}:{port}/metrics"
        for headers in (None, {"Authorization": "Bearer s3cret-relay"}):
            status, body = get(url, headers)
            self.assertEqual(status, 404)                     # no metrics token: metrics are off
            self.assertIn(b"--metrics-token", body)
            self.assertNotIn(b"tagio_relay_connections_total", body)
        self.assertEqual(get(f"http://{host}:{port}/health")[0], 200)  # health checks stay open

    def test_metrics_of_a_private_relay_need_the_metrics_token(self):
        proc, (host, port) = run_relay_process("--bind", "127.0.0.1:0", env={
            "AUTH_SECRET": "s3cret-relay", "METRICS_TOKEN": "metrics-only-token"})
        self.addCleanup(stop, proc)
        url = f"http://{host}:{port}/metrics"
        self.assertEqual(get(url)[0], 401)
        self.assertEqual(get(url, {"Authorization": "Bearer wrong"})[0], 401)
        self.assertEqual(get(url, {"Authorization": "Bearer s3cret-relay"})[0], 401)
        status, body = get(url, {"Authorization": "Bearer metrics-only-token"})
        self.assertEqual(status, 200)
        self.assertIn(b"tagio_relay_connections_total", body)
        self.assertEqual(get(f"http://{host}:{port}/health")[0], 200)  # health checks stay open

    def test_the_metrics_token_may_not_be_the_relay_secret(self):
        proc = subprocess.run([sys.executable, str(RELAY), "--bind", "127.0.0.1:0", "--state-file", ""],
                              env={**os.environ, "AUTH_SECRET": "same-secret", "METRICS_TOKEN": "same-secret"},
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertIn("must not be the relay secret", proc.stderr)
        self.assertNotIn("same-secret", proc.stderr)

    def test_metrics_of_a_public_relay_stay_open(self):
        with start_relay() as relay:
            host, port = relay.address
            self.assertEqual(get(f"http://{host}:{port}/metrics")[0], 200)

    def test_a_public_relay_with_a_metrics_token_guards_them(self):
        with start_relay(metrics_token="metrics-only-token") as relay:
            host, port = relay.address
            url = f"http://{host}:{port}/metrics"
            self.assertEqual(get(url)[0], 401)
            self.assertEqual(get(url, {"Authorization": "Bearer metrics-only-token"})[0], 200)

if __name__ == "__main__":
    unittest.main()
