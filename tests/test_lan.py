"""LAN discovery: peer table, announce/browse/query over loopback broadcast,
and real broadcast between two network namespaces. The datagram codec's tests are in
test_protocol_lan.py."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from tagio.net import lan
from tagio.net.lan import Announcement, LanService, PeerTable, decode, encode_query
from tests import netlab

LOOPBACK_BROADCAST = "127.255.255.255"


def free_udp_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class PeerTableTest(unittest.TestCase):
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_expiry_and_own_id(self):
        table = PeerTable(own_id="111111111")
        table.seen(Announcement("111111111", 1), "10.0.0.1", 0.0)
        table.seen(Announcement("222222222", 2), "10.0.0.2", 0.0)
        self.assertEqual([(p.id, p.address) for p in table.peers(1.0)], [("222222222", ("10.0.0.2", 2))])
        self.assertEqual(table.peers(lan.EXPIRY + 0.1), [])

    def test_bounded(self):
        table = PeerTable()
        for i in range(lan.MAX_PEERS + 50):
            table.seen(Announcement(str(100_000_000 + i), 1), "10.0.0.1", 0.0)
        self.assertEqual(len(table.peers(0.0)), lan.MAX_PEERS)


@unittest.skipUnless(sys.platform.startswith("linux"), "loopback broadcast + SO_REUSEPORT are Linux behaviour")
class LoopbackServiceTest(unittest.TestCase):
    def setUp(self):
        self.port = free_udp_port()
        self.services = []

    def tearDown(self):
        for service in self.services:
            service.close()

    def service(self, client_id=None, port=None, interval=0.1):
        service = LanService(client_id, port, lan_port=self.port, targets=(LOOPBACK_BROADCAST,), interval=interval)
        self.services.append(service)
        return service

    def wait_for_peer(self, service, client_id, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = service.find(client_id)
            if found:
                return found
            time.sleep(0.02)
        return None

    def test_browser_lists_announcer(self):
        browser = self.service()
        self.service("123456789", 40000)
        found = self.wait_for_peer(browser, "123456789")
        self.assertIsNotNone(found)
        self.assertEqual(found.address, ("127.0.0.1", 40000))

    def test_query_gets_an_answer_and_answers_are_rate_limited(self):
        announcer = self.service("987654321", 40001, interval=3600)  # announces once at start
        time.sleep(0.3)
        asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        asker.bind(("127.0.0.1", 0))
        asker.settimeout(0.3)
        self.addCleanup(asker.close)
        for _ in range(50):
            asker.sendto(encode_query(), ("127.0.0.1", self.port))
        answers = []
        try:
            while True:
                answers.append(asker.recvfrom(64)[0])
        except socket.timeout:
            pass
        self.assertGreaterEqual(len(answers), 1)
        self.assertLessEqual(len(answers), 2)
        self.assertEqual(decode(answers[0]), Announcement("987654321", 40001))
        self.assertIsNone(announcer.error)

    def test_garbage_is_counted_and_ignored(self):
        browser = self.service()
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(junk.close)
        for _ in range(20):
            junk.sendto(os.urandom(16), ("127.0.0.1", self.port))
        self.service("123123123", 40002)
        self.assertIsNotNone(self.wait_for_peer(browser, "123123123"))
        self.assertGreaterEqual(browser.dropped, 1)


ANNOUNCER = """
import sys, time
from tagio.net.lan import LanService
service = LanService("555555555", 40100, lan_port=int(sys.argv[1]), interval=0.2)
time.sleep(float(sys.argv[2]))
service.close()
"""
BROWSER = """
import json, sys, time
from tagio.net.lan import LanService
service = LanService(lan_port=int(sys.argv[1]))
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and not service.peers():
    time.sleep(0.05)
print(json.dumps([[p.id, list(p.address)] for p in service.peers()]))
service.close()
"""


@unittest.skipIf(netlab.unavailable(), netlab.unavailable())
class NamespaceBroadcastTest(unittest.TestCase):
    """Two machines on one Ethernet segment (a veth pair between two namespaces), no relay."""

    def setUp(self):
        prefix = f"tglan{os.getpid()}"
        self.a, self.b = a, b = prefix + "a", prefix + "b"
        self.addCleanup(lambda: [netlab.run("ip", "netns", "del", ns, check=False) for ns in (a, b)])
        for ns in (a, b):
            netlab.run("ip", "netns", "add", ns)
            netlab.run("ip", "-n", ns, "link", "set", "lo", "up")
        netlab.run("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, ip in ((a, "10.77.0.1/24"), (b, "10.77.0.2/24")):
            netlab.run("ip", "-n", ns, "addr", "add", ip, "dev", "eth0")
            netlab.run("ip", "-n", ns, "link", "set", "eth0", "up")
            netlab.run("ip", "-n", ns, "route", "add", "255.255.255.255/32", "dev", "eth0")

    def test_real_broadcast_between_two_namespaces(self):
        a, b = self.a, self.b
        env = dict(os.environ, PYTHONPATH=str(netlab.ROOT))
        announcer = subprocess.Popen(["ip", "netns", "exec", a, sys.executable, "-c", ANNOUNCER,
                                      str(lan.LAN_PORT), "4"], env=env)
        self.addCleanup(announcer.wait)
        self.addCleanup(announcer.kill)
        browser = subprocess.run(["ip", "netns", "exec", b, sys.executable, "-c", BROWSER, str(lan.LAN_PORT), "3"],
                                 env=env, capture_output=True, text=True, timeout=20)
        self.assertEqual(json.loads(browser.stdout), [["555555555", ["10.77.0.1", 40100]]], browser.stderr)


    def test_connect_by_id_on_the_lan_without_any_relay(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        children = []

        def stop_children():
            for child in children:
                child.proc.kill()
                child.proc.wait()
                for pipe in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
                    pipe.close()

        self.addCleanup(stop_children)

        def peer(ns, *args):
            env = dict(os.environ, PYTHONPATH=str(netlab.ROOT), PYTHONUNBUFFERED="1")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(netlab.ROOT / "tests" / "nat_peer.py"),
                                     *args, "--lan", "--password", "lan-pass-1"], env=env, text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            children.append(netlab.JsonLines(proc))
            return children[-1]

        host = peer(self.a, "host", "--config", f"{tmp.name}/host")
        host_id = host.event("ready")["id"]
        viewer = peer(self.b, "viewer", "--config", f"{tmp.name}/viewer", "--target", host_id)
        self.assertEqual(viewer.event("connected", timeout=20)["path"], "direct-tcp")
        self.assertEqual(host.event("connected")["path"], "direct-tcp")
        viewer.send("bulk 200000")
        self.assertTrue(viewer.event("bulk")["ok"])
        viewer.send("quit")


if __name__ == "__main__":
    unittest.main()
