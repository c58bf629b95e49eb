"""NAT traversal through real Linux NAT in network namespaces (see tests/netlab.py).

Each test builds its own lab: the relay (tagio_relay_server.py) in the
"public" namespace, and a host and a viewer (tests/nat_peer.py, real
RelayClient + establish() + SPAKE2 handshake) behind the routers it names.
Skipped, with the reason, without root, `ip netns` or `nft`.
"""

import tempfile
import unittest

from tests import netlab

def _missing_parts() -> str:
    """The relay and the crypto handshake are other modules; skip (saying so) until they exist."""
    try:
        import tagio.crypto.handshake  # noqa: F401
        import tagio.net.relay_client  # noqa: F401
        import tagio.relay.server  # noqa: F401
    except ImportError as exc:
        return f"NAT tests need the relay and crypto modules: {exc}"
    return ""


SKIP = netlab.unavailable() or _missing_parts()
PASSWORD = "nat-test-pw"
BULK = 20 * 1024 * 1024
DIRECT = ("direct-udp", "direct-tcp")


@unittest.skipIf(SKIP, SKIP)
class NatTraversalTest(unittest.TestCase):
    def setUp(self):
        self.lab = netlab.NetLab()
        self.addCleanup(self.lab.close)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def connect(self, host_kind, viewer_kind):
        """Host behind `host_kind`, viewer behind `viewer_kind`; returns (viewer report, host report)."""
        host_ns, viewer_ns = self.site(host_kind), self.site(viewer_kind)
        self.relay, address = self.lab.start_relay(self.tmp)
        relay = f"{address[0]}:{address[1]}"
        self.host = self.lab.peer(host_ns, "host", "--relay", relay, "--config", f"{self.tmp}/host",
                                  "--password", PASSWORD)
        host_id = self.host.event("ready")["id"]
        self.viewer = self.lab.peer(viewer_ns, "viewer", "--relay", relay, "--config", f"{self.tmp}/viewer",
                                    "--password", PASSWORD, "--target", host_id)
        self.viewer.event("ready")
        return self.viewer.event("connected", timeout=25), self.host.event("connected", timeout=10)

    def site(self, kind):
        return self.lab.public_host() if kind == "public" else self.lab.nat_host(kind)

    def command(self, line, event, timeout=20):
        self.viewer.send(line)
        return self.viewer.event(event, timeout=timeout)

    def assert_works(self):
        self.assertGreater(self.command("ping", "pong")["rtt_ms"], 0)
        self.assertTrue(self.command("bulk 300000", "bulk")["ok"])

    def test_cone_to_cone_punches_udp(self):
        viewer, host = self.connect("cone", "cone")
        self.assertEqual((viewer["path"], host["path"]), ("direct-udp", "direct-udp"))
        self.assert_works()

    def test_public_host_to_cone_viewer_is_direct(self):
        viewer, host = self.connect("public", "cone")
        self.assertIn(viewer["path"], DIRECT)
        self.assertEqual(viewer["path"], host["path"])
        self.assert_works()

    def test_public_host_to_symmetric_viewer_is_direct(self):
        viewer, host = self.connect("public", "symmetric")
        self.assertIn(viewer["path"], DIRECT)
        self.assertEqual(viewer["path"], host["path"])
        self.assert_works()

    def test_symmetric_to_symmetric_falls_back_to_relay_quickly(self):
        viewer, host = self.connect("symmetric", "symmetric")
        self.assertEqual((viewer["path"], host["path"]), ("relay", "relay"))
        self.assertLess(viewer["seconds"], 3.0)
        self.assert_works()

    def test_cone_to_symmetric_never_fails(self):
        viewer, host = self.connect("cone", "symmetric")
        self.assertIn(viewer["path"], DIRECT + ("relay",))
        self.assertEqual(viewer["path"], host["path"])
        self.assert_works()

    def test_twenty_megabytes_over_punched_udp_with_five_percent_loss_each_way(self):
        viewer, _host = self.connect("cone", "cone")
        self.assertEqual(viewer["path"], "direct-udp")
        self.lab.set_loss(5)
        result = self.command(f"bulk {BULK}", "bulk", timeout=120)
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["bytes"], BULK)

    def test_session_survives_the_relay_dying_after_direct_path_is_up(self):
        viewer, _host = self.connect("cone", "cone")
        self.assertEqual(viewer["path"], "direct-udp")
        self.relay.kill()
        self.relay.wait(5)
        self.assert_works()


if __name__ == "__main__":
    unittest.main()
