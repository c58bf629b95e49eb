"""The steering guard keeps the real cases: two desks behind one home router still reach each other
directly through their private addresses (issue 10 item 8).

A network-namespace lab (tests/netlab.py): the relay on the lab's "internet", one cone-NAT router
with two LAN hosts behind it (a second LAN port is added to the router here), and tests/nat_peer.py
as host and viewer. The relay observes both at the router's one public address, so each side's
private candidates are forwarded and used: the router does not hairpin, so only those private
addresses give a direct path (dropping them would leave the relay). Skipped without root, `ip
netns` or `nft`.
"""

import tempfile
import unittest

from tests import netlab

SKIP = netlab.unavailable()
PASSWORD = "steering-lan-pw"
DIRECT = ("direct-tcp", "direct-udp")


@unittest.skipIf(SKIP, SKIP)
class OneRouterTwoDesksTest(unittest.TestCase):
    def setUp(self):
        self.lab = netlab.NetLab()
        self.addCleanup(self.lab.close)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def second_lan_host(self, first_host):
        """Another host on the router of `first_host` (its own LAN port, 10.<i>.1.0/24)."""
        i = int(first_host.rsplit("h", 1)[1])
        router, host = f"{self.lab.prefix}r{i}", self.lab._netns(f"h{i}b")
        self.lab._link(router, "lan2", f"10.{i}.1.1/24", host, "eth0", f"10.{i}.1.2/24")
        self.lab.ip(host, "route", "add", "default", "via", f"10.{i}.1.1")
        return host

    def test_private_candidates_still_give_a_direct_path(self):
        host_ns = self.lab.nat_host("cone")
        viewer_ns = self.second_lan_host(host_ns)
        _relay, address = self.lab.start_relay(self.tmp)
        relay = "%s:%d" % address
        host = self.lab.peer(host_ns, "host", "--relay", relay, "--config", f"{self.tmp}/host",
                             "--password", PASSWORD)
        ready = host.event("ready")
        self.assertTrue(all(ip.startswith("10.") for ip, _port in ready["candidates"]), ready)
        viewer = self.lab.peer(viewer_ns, "viewer", "--relay", relay, "--config", f"{self.tmp}/viewer",
                               "--password", PASSWORD, "--target", ready["id"])
        viewer.event("ready")
        connected = viewer.event("connected", timeout=25)
        self.assertIn(connected["path"], DIRECT, connected)
        self.assertEqual(host.event("connected", timeout=10)["path"], connected["path"])


if __name__ == "__main__":
    unittest.main()
