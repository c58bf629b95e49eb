"""End to end: a file transfer survives a broken path and continues where it stopped.

Real processes over 127.0.0.1: a relay process, `tagio-gui.py --cli host --files-dir DIR` on a
private Xvfb, and `tagio-gui.py --cli send` of a big file. Neither side has a direct listener, so
the session runs through the relay only. The relay is killed (SIGKILL: no goodbyes) while the data
flows and started again on the same port: the sender says `reconnecting`, the session comes back
by itself with its resumption secret, the transfer goes on from the part the host holds (checked
block by block), and `send` exits 0 with the file's SHA-256 equal on both sides. The bytes sent
twice (everything sent minus the file's size: what was on the broken path) stay far below the
file's size. The same for `get` (the host sends, the viewer's part is resumed): the bytes written
before and after the reconnect add up to the file exactly.
"""

import hashlib
import os
import socket
import sys
import tempfile
import unittest
from pathlib import Path

from tests.relay_fixture import run_relay_process
from tests.test_e2e import GUI, ROOT, free_port
from tests.test_e2e_flow import StampedProc
from tests.test_e2e_reconnect import _port_open, _reap
from tests.waiting import wait_until
from tests.xvfb import Xvfb, skip_unless_xvfb

SIZE = 192 * 1024 * 1024
KILL_AFTER = 24 * 1024 * 1024       # bytes on their way when the relay dies
MOST_RESENT = SIZE // 8             # "far below the file size": what was in flight, not the file


def _sha256(path):
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@skip_unless_xvfb
class TransferAcrossRelayRestart(unittest.TestCase):
    def setUp(self):
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None     # the disk is not under test
        tmp = tempfile.TemporaryDirectory(dir=shm)
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.xvfb = Xvfb(width=160, height=120).start()
        self.addCleanup(self.xvfb.stop)
        self.shared, self.local = self.tmp / "shared", self.tmp / "local"
        self.shared.mkdir()
        self.local.mkdir()

    def env(self, display=True):
        env = self.xvfb.env()
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        for name in ("TAGIO_RELAY", "TAGIO_CONFIG_DIR", "TAGIO_PASSWORD") + (() if display else ("DISPLAY",)):
            env.pop(name, None)
        return env

    def relay_at(self, port):
        proc, _ = run_relay_process("--bind", f"127.0.0.1:{port}", "--state-file", "")
        self.addCleanup(_reap, proc)
        return proc

    def cli(self, *argv, display=False):
        proc = StampedProc([sys.executable, GUI, "--cli", *argv], self.env(display))
        self.addCleanup(proc.stop)
        return proc

    def make_big(self, path):
        block = os.urandom(1 << 20)
        with open(path, "wb") as fh:
            for i in range(SIZE >> 20):
                fh.write(i.to_bytes(8, "big") + block[8:])

    def through_a_relay_restart(self, command, *args):
        """Run `command` (send/get) against a CLI host through the relay only, kill the relay
        mid-transfer and start it again. (the command's transferred line, the host's Proc, the
        part's path, its size when the path broke)."""
        port = free_port(socket.SOCK_STREAM)
        relay_text = f"127.0.0.1:{port}"
        relay = self.relay_at(port)
        host = self.cli("host", "--json", "--relay", relay_text, "--config-dir", str(self.tmp / "host"),
                        "--direct-bind", "none", "--files-dir", str(self.shared), display=True)
        ready = host.wait_for(lambda e: e.get("event") == "ready", timeout=30, what="host ready")
        viewer = self.cli(command, ready["id"], *args, "--password", ready["password"], "--json",
                          "--relay", relay_text, "--config-dir", str(self.tmp / "viewer"),
                          "--direct-bind", "none")
        connected = viewer.wait_for(lambda e: e.get("event") == "connected", timeout=40, what="connected")
        self.assertEqual(connected["path"], "relay")
        viewer.wait_for(lambda e: e.get("event") == "progress" and e["bytes"] >= KILL_AFTER, timeout=60,
                        what="data on its way")

        relay.kill()                                    # SIGKILL: the path breaks without a word
        relay.wait(10)
        wait_until(lambda: not _port_open(port), timeout=10, what="the relay's port to close")
        viewer.wait_for(lambda e: e.get("event") == "reconnecting", timeout=30, what="reconnecting")
        wait_until(lambda: host.events("session_ended"), timeout=30, what="the host saw the break")
        part = (self.shared if command == "send" else self.local) / "big.bin.tagio-part"
        have = part.stat().st_size
        self.assertTrue(0 < have < SIZE, have)
        self.relay_at(port)

        self.assertEqual(viewer.finish(120), 0, f"{viewer.lines}\n{viewer.stderr}")
        self.assertTrue(viewer.events("reconnected"), viewer.lines)
        self.assertTrue(host.events("session_started")[-1].get("resumed"), host.lines)
        self.assertFalse(part.exists())
        done = viewer.events("transferred")[-1]
        self.assertTrue(done["ok"], done)
        self.assertEqual((done["verified"], done["reconnects"]), (1, 1))
        progress = viewer.events("progress")[-1]
        self.assertEqual((progress["bytes"], progress["total"]), (SIZE, SIZE))
        first, second = done["parts"]
        print(f"\n  {command} across a relay restart: {first} bytes before, {second} after the "
              f"reconnect (the part held {have}); {first + second - SIZE} counted twice of {SIZE}",
              file=sys.stderr)
        self.assertLessEqual(second, SIZE - have)       # the part already there was not sent again
        return done, have

    def test_send_continues_after_the_relay_restarts(self):
        big = self.tmp / "big.bin"
        self.make_big(big)
        done, have = self.through_a_relay_restart("send", str(big))
        self.assertEqual(_sha256(big), _sha256(self.shared / "big.bin"))
        first, second = done["parts"]
        self.assertGreaterEqual(second, SIZE - first)   # what was sent before and lost came again
        self.assertLess(first + second - SIZE, MOST_RESENT)

    def test_get_continues_after_the_relay_restarts(self):
        self.make_big(self.shared / "big.bin")
        done, have = self.through_a_relay_restart("get", "big.bin", "--to", str(self.local))
        self.assertEqual(_sha256(self.shared / "big.bin"), _sha256(self.local / "big.bin"))
        first, second = done["parts"]                   # bytes written here: nothing twice
        self.assertEqual(first + second, SIZE)
        self.assertEqual(second, SIZE - have)


if __name__ == "__main__":
    unittest.main()
