"""No one-time password in any log: a real `--cli host --verbose` through rotations and wrong guesses.

The host's ready line on stdout is the product (the person reads the password there); everything
else it writes - stderr, where --verbose sends every log record - must never hold a one-time
password, neither the current one nor an old one, and a viewer's log never holds what it typed.
The host's password rotates three times here: after three wrong guesses, after a session, and the
viewer's wrong guesses themselves go through the full handshake.
"""

import json
import socket
import sys
import unittest
from pathlib import Path

from tests.desk import scratch_and_xvfb
from tests.relay_fixture import start_relay
from tests.test_e2e import GUI, Proc, free_port
from tests.waiting import wait_until
from tests.xvfb import skip_unless_xvfb

# Shaped like one-time passwords (8 characters of its alphabet), so each is a try at it: after three
# the host replaces it (a wrong guess shaped like a permanent password leaves it alone).
WRONG = ["abcdefg2", "bcdefgh3", "cdefghj4"]


@skip_unless_xvfb
class NoPasswordInLogsTest(unittest.TestCase):
    def setUp(self):
        self.tmp, self.xvfb = scratch_and_xvfb(self)
        self.relay = start_relay()
        self.addCleanup(self.relay.stop)
        self.relay_text = "%s:%d" % self.relay.address

    def env(self, display=True):
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(Path(GUI).parent), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR") + (() if display else ("DISPLAY",)):
            env.pop(name, None)
        return env

    def connect(self, host_id, password, *extra):
        """A viewer with an ID of its own each time (the host limits attempts per partner ID)."""
        viewer = Proc([sys.executable, GUI, "--cli", "connect", host_id, "--password", password, "--json",
                       "--verbose", "--relay", self.relay_text, "--config-dir", str(self.tmp / password),
                       "--direct-bind", "127.0.0.1", *extra], self.env(display=False))
        self.addCleanup(viewer.stop)
        viewer.finish(60)
        self.assertNotIn(password, viewer.stderr)          # what the viewer typed is not logged either
        return viewer

    def test_the_host_never_logs_a_one_time_password(self):
        host = Proc([sys.executable, GUI, "--cli", "host", "--json", "--verbose", "--relay", self.relay_text,
                     "--config-dir", str(self.tmp / "host"), "--direct-bind", "127.0.0.1",
                     "--lan-port", str(free_port(socket.SOCK_DGRAM))], self.env())
        self.addCleanup(host.stop)
        ready = host.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        for guess in WRONG:
            viewer = self.connect(ready["id"], guess)
            self.assertEqual(viewer.popen.returncode, 3, viewer.stderr)    # EXIT_AUTH: wrong password
            self.assertIn("tagio: ", viewer.stderr)                        # --verbose logs there
        wait_until(lambda: len(host.events("ready")) >= 2, 20, "a new password after three wrong guesses")
        password = host.events("ready")[-1]["password"]
        viewer = self.connect(ready["id"], password, "--duration", "0.5")
        self.assertEqual(viewer.popen.returncode, 0, viewer.stderr[-2000:])
        wait_until(lambda: len(host.events("ready")) >= 3, 20, "a new password after the session")
        host.stop()

        shown = {event["password"] for event in host.events("ready")}
        self.assertGreaterEqual(len(shown), 3)
        for secret in shown | set(WRONG):
            self.assertNotIn(secret, host.stderr)
        others = [line for line in host.lines if line.get("event") != "ready"]
        for secret in shown:
            self.assertNotIn(secret, json.dumps(others))     # only the ready lines carry it


if __name__ == "__main__":
    unittest.main()
