"""How fast can a stranger guess a host's password? Real processes, every path, as fast as possible.

A relay process (production limits) and one host process per path kind (`--cli host --json`); a
guesser (tests/guess_attack.py) attacks each host through one path - the relay, direct TCP, punched
UDP, the LAN - from several threads at once for GUESS_SECONDS (60 by default: the host's limit is
per minute), counting the guesses the host let it check (each REPLY carries a confirmation MAC).
The punched-UDP attack runs once more through two real cone NATs (tests/netlab.py, when the machine
allows network namespaces): host and guesser each behind its own router, the relay in between.
Printed: guesses per minute per path (before issue 10's fix: 15,118 direct, 3,881 via the relay).
The host must let at most HOST_PER_WINDOW guesses per minute through, whatever the path, and tell
its user of every one (an `auth_failed` line each).
"""

import json
import os
import socket
import sys
import tempfile
import unittest
from pathlib import Path

from tagio.client.guesses import HOST_PER_WINDOW, WINDOW
from tests import netlab
from tests.guess_attack import Attack
from tests.relay_fixture import ROOT, run_relay_process, wait_for
from tests.test_e2e import Proc, free_port
from tests.xvfb import Xvfb, skip_unless_xvfb, xvfb_available

GUI = str(ROOT / "tagio-gui.py")
GUESS_SECONDS = float(os.environ.get("TAGIO_GUESS_SECONDS", WINDOW))
PATHS = ("relay", "direct-tcp", "udp", "lan")


@skip_unless_xvfb
class GuessRateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls._tmp.cleanup)
        cls.xvfb = Xvfb().start()          # a host captures a screen (never shown here: no session)
        cls.addClassCleanup(cls.xvfb.stop)
        cls.relay_proc, address = run_relay_process("--bind", "127.0.0.1:0", "--state-file", "")
        cls.addClassCleanup(cls.stop_relay)
        cls.relay = ("127.0.0.1", address[1])
        cls.hosts = {}
        for kind in PATHS:
            port = free_port(socket.SOCK_STREAM)
            cls.hosts[kind] = (cls.start_host(kind, port), port)
            cls.addClassCleanup(cls.hosts[kind][0].stop)

    @classmethod
    def stop_relay(cls):
        cls.relay_proc.terminate()
        cls.relay_proc.wait(10)

    @classmethod
    def start_host(cls, name, port):
        env = dict(cls.xvfb.env(), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for var in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR"):
            env.pop(var, None)
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--relay", "%s:%d" % cls.relay,
                     "--config-dir", str(Path(cls._tmp.name) / name),
                     "--direct-bind", f"127.0.0.1:{port}"], env)
        host.wait_for(lambda e: e.get("event") == "ready", what="host ready line", timeout=30)
        return host

    def test_at_most_six_guesses_per_minute_on_every_path_and_each_one_is_reported(self):
        attacks = {}
        for kind, (host, port) in self.hosts.items():
            host_id = host.events("ready")[-1]["id"]
            attacks[kind] = Attack(kind, host_id, seconds=GUESS_SECONDS, relay=self.relay,
                                   host_port=port).start()
        results = {kind: attack.join() for kind, attack in attacks.items()}
        self.assertEqual({kind: a.errors for kind, a in attacks.items() if a.errors}, {})
        lines = [report(kind, counts, attacks[kind].seconds) for kind, counts in results.items()]
        print("\nguess rate per path (the host allows %d per minute):\n  %s"
              % (HOST_PER_WINDOW, "\n  ".join(lines)), file=sys.stderr)
        for kind, counts in results.items():
            with self.subTest(path=kind):
                self.assertGreater(counts["checked"], 0, "the attack never reached the host")
                self.assertLessEqual(counts["checked"], allowed_in(attacks[kind].seconds))
                host = self.hosts[kind][0]
                reported = lambda: len(host.events("auth_failed"))   # noqa: E731
                wait_for(lambda: reported() >= counts["checked"], timeout=40)
                self.assertEqual(reported(), counts["checked"], json.dumps(host.events("auth_failed")))


def report(kind, counts, seconds):
    """One line: guesses checked, and the pace per minute (a run of a minute or more measures it;
    a shorter one only extrapolates, and the host's limit is per minute)."""
    per_minute = counts.get("checked", 0) * 60.0 / max(seconds, 1e-3)
    return (f"{kind:>10}: {counts.get('checked', 0):4d} guesses checked in {seconds:.0f} s = "
            f"{per_minute:.1f} per minute{'' if seconds >= WINDOW else ' (extrapolated)'} "
            f"(refused {counts.get('refused', 0)}, no answer {counts.get('failed', 0)})")


def allowed_in(seconds) -> int:
    """What the host may let through in `seconds`: the window may straddle two of its minutes."""
    return HOST_PER_WINDOW * max(1, int(-(-seconds // WINDOW)))


LAB_SKIP = netlab.unavailable() or ("" if xvfb_available() else "Xvfb is not installed")


@unittest.skipIf(LAB_SKIP, LAB_SKIP)
class GuessRateThroughNatTest(unittest.TestCase):
    def test_punched_udp_through_two_cone_nats(self):
        lab = netlab.NetLab()
        self.addCleanup(lab.close)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        display = Xvfb().start()
        self.addCleanup(display.stop)
        host_ns, guesser_ns = lab.nat_host("cone"), lab.nat_host("cone")
        _relay, address = lab.start_relay(tmp.name)
        relay = "%s:%d" % address
        host = netlab.JsonLines(lab.popen(host_ns, [sys.executable, GUI, "--cli", "host", "--json", "--relay",
                                                    relay, "--config-dir", f"{tmp.name}/host"],
                                          extra_env={"DISPLAY": display.env()["DISPLAY"]}))
        host_id = host.wait_for(lambda item: item.get("event") == "ready", timeout=30)["id"]
        guesser = netlab.JsonLines(lab.popen(guesser_ns, [sys.executable, "-m", "tests.guess_attack", "udp",
                                                          host_id, relay, str(GUESS_SECONDS)]))
        result = guesser.wait_for(lambda item: "counts" in item, timeout=GUESS_SECONDS + 90)
        counts = result["counts"]
        print("\n  " + report("udp (NAT)", counts, result["seconds"]), file=sys.stderr)
        self.assertEqual(result["errors"], [])
        self.assertGreater(counts.get("checked", 0), 0, "no guess got through the NATs")
        self.assertLessEqual(counts["checked"], allowed_in(result["seconds"]))
        failed = lambda: sum(1 for line in list(host.log) if '"auth_failed"' in line)   # noqa: E731
        wait_for(lambda: failed() >= counts["checked"], timeout=40)
        self.assertEqual(failed(), counts["checked"])


if __name__ == "__main__":
    unittest.main()
