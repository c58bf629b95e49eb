"""End to end, the connect flow through the command line: a partner that vanishes without a FIN is
gone within ~10 s on both sides, a refused viewer is told why within a second, and the partner's ID
is checked before any password is asked. Real processes over 127.0.0.1: a relay, the CLI
host on a private Xvfb, CLI viewers; a "vanished" partner is a process stopped with SIGSTOP (its
kernel still acknowledges TCP, so only an in-channel heartbeat can tell).
"""

import json
import signal
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

from tests.desk import ProcessDeskCase
from tests.test_e2e import GUI, Proc
from tests.xvfb import skip_unless_xvfb

PASSWORD = "liveness-unattended"
TRYING = 4          # --reconnect-for: how long the viewer tries to come back
GONE_BOUND = 15.0          # heartbeat.GONE_AFTER (10 s) + a tick + Bye/close, on a loaded machine


class StampedProc(Proc):
    """A Proc whose lines carry the monotonic time they were read ("_t")."""

    def _read_out(self):
        for line in self.popen.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                item = {"raw": line.rstrip("\n")}
            item["_t"] = time.monotonic()
            with self._cond:
                self.lines.append(item)
                self._cond.notify_all()


@skip_unless_xvfb
class LivenessTest(ProcessDeskCase):
    XVFB_SIZE, WITH_RELAY = (320, 240), True      # (the set-up and env(): tests/desk.py)

    def host(self, name):
        """A CLI host with a permanent password (so several viewers may come in)."""
        proc = StampedProc([sys.executable, GUI, "--cli", "host", "--json", "--relay", self.relay_text,
                            "--config-dir", str(self.tmp / name), "--direct-bind", "127.0.0.1",
                            "--password", "-"], self.env(), stdin_text=PASSWORD + "\n")
        self.addCleanup(self.stop, proc)
        ready = proc.wait_for(lambda e: e.get("event") == "ready", what="host ready line")
        return proc, ready["id"]

    def viewer(self, host_id, name, *extra):
        proc = StampedProc([sys.executable, GUI, "--cli", "connect", host_id, "--password", PASSWORD,
                            "--json", "--relay", self.relay_text, "--config-dir", str(self.tmp / name),
                            "--direct-bind", "127.0.0.1", *extra], self.env(display=False))
        self.addCleanup(self.stop, proc)
        return proc

    @staticmethod
    def stop(proc):
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGCONT)
        proc.stop()

    def test_viewer_that_vanishes_frees_the_hosts_slot_within_10_s(self):
        host, host_id = self.host("host-ghost")
        viewer = self.viewer(host_id, "viewer-ghost", "--duration", "300")
        viewer.wait_for(lambda e: e.get("event") == "connected", timeout=30, what="connected")
        host.wait_for(lambda e: e.get("event") == "session_started", what="host session")
        viewer.popen.send_signal(signal.SIGSTOP)
        vanished = time.monotonic()
        ended = host.wait_for(lambda e: e.get("event") == "session_ended", timeout=GONE_BOUND + 10,
                              what="the host noticing the vanished viewer")
        gone_after = ended["_t"] - vanished
        print(f"\n  ghost viewer gone on the host after {gone_after:.1f} s", file=sys.stderr)
        self.assertLess(gone_after, GONE_BOUND)
        self.assertGreater(gone_after, 5.0)           # the heartbeat, not something else, ended it
        self.assertIn("connection lost", ended["reason"])

    def test_host_that_vanishes_ends_the_viewer_within_10_s(self):
        host, host_id = self.host("host-vanishes")
        viewer = self.viewer(host_id, "viewer-of-vanished", "--duration", "300",
                             "--reconnect-for", str(TRYING))
        viewer.wait_for(lambda e: e.get("event") == "connected", timeout=30, what="connected")
        host.wait_for(lambda e: e.get("event") == "session_started", what="host session")
        host.popen.send_signal(signal.SIGSTOP)
        vanished = time.monotonic()
        # The viewer notices, says so, and tries to come back (client/resume.py) for
        # --reconnect-for seconds before it gives up: the host never answers again.
        lost = viewer.wait_for(lambda e: e.get("event") == "reconnecting", timeout=GONE_BOUND + 10,
                               what="the viewer noticing the vanished host")
        gone_after = lost["_t"] - vanished
        print(f"\n  vanished host noticed by the viewer after {gone_after:.1f} s", file=sys.stderr)
        self.assertLess(gone_after, GONE_BOUND)
        self.assertIn("connection lost", lost["reason"])
        self.assertEqual(viewer.finish(TRYING + 20), 5, viewer.stderr)      # EXIT_GONE
        self.assertIn("connection was lost", viewer.events("error")[-1]["message"])

    def test_busy_host_tells_the_viewer_within_a_second(self):
        from tagio.client.core import Client
        from tagio.client.hosting import MAX_INCOMING
        host, host_id = self.host("host-busy")
        fillers = []
        for index in range(MAX_INCOMING):               # fill every incoming slot
            client = Client(str(self.tmp / f"filler-{index}"), relay=self.relay_text, direct_bind=None)
            client.start()
            self.addCleanup(client.close)
            connection = client.connect(host_id, PASSWORD, timeout=30)
            session = connection.open_session()
            session.start()
            self.addCleanup(session.stop)
            fillers.append(session)
        viewer = self.viewer(host_id, "viewer-busy", "--duration", "5")
        refused = host.wait_for(lambda e: e.get("event") == "refused", timeout=30, what="refused")
        self.assertEqual(refused["reason"], "busy")
        error = viewer.wait_for(lambda e: e.get("event") == "error", timeout=30, what="viewer's error")
        told_after = error["_t"] - refused["_t"]
        print(f"\n  busy host: the viewer knew {told_after:.2f} s after the refusal", file=sys.stderr)
        self.assertLess(told_after, 1.0)
        self.assertEqual(error["kind"], "busy")
        self.assertIn("is busy", error["message"])
        self.assertTrue(all(session.running for session in fillers))

    def test_unknown_id_is_told_before_the_password_is_asked(self):
        proc = StampedProc([sys.executable, GUI, "--cli", "connect", "123456789", "--json", "--relay",
                            self.relay_text, "--config-dir", str(self.tmp / "viewer-unknown"),
                            "--password", "-"], self.env(display=False), stdin_text="")
        self.addCleanup(self.stop, proc)
        self.assertEqual(proc.finish(30), 4, proc.stderr)             # EXIT_RELAY, not a password error
        error = proc.events("error")[-1]
        self.assertEqual(error["kind"], "unknown_id")
        self.assertIn("no desk with ID 123 456 789", proc.stderr)

    def test_offline_id_is_told_before_the_password_is_asked(self):
        host, host_id = self.host("host-offline")
        host.stop()                                      # known to the relay, now offline
        proc = StampedProc([sys.executable, GUI, "--cli", "connect", host_id, "--json", "--relay",
                            self.relay_text, "--config-dir", str(self.tmp / "viewer-offline"),
                            "--password", "-"], self.env(display=False), stdin_text="")
        self.addCleanup(self.stop, proc)
        self.assertEqual(proc.finish(30), 4, proc.stderr)
        self.assertEqual(proc.events("error")[-1]["kind"], "offline")

    def test_cli_host_waits_for_a_relay_that_comes_later(self):
        """A host that starts before its relay (a machine booting before its network) keeps
        trying, says so, and is registered within 5 s of the relay appearing, even after a long
        outage (when its backoff has grown to 16-30 s)."""
        from tests.relay_fixture import run_relay_process
        from tests.test_e2e import free_port
        port = free_port(socket.SOCK_STREAM)
        relay = f"127.0.0.1:{port}"
        host = StampedProc([sys.executable, GUI, "--cli", "host", "--json", "--relay", relay,
                            "--config-dir", str(self.tmp / "host-early"), "--direct-bind", "127.0.0.1"],
                           self.env())
        self.addCleanup(self.stop, host)
        retrying = host.wait_for(lambda e: e.get("event") == "relay" and e.get("retrying"),
                                 what="the host saying it keeps trying")
        self.assertTrue(retrying["status"].startswith("unreachable"), retrying)
        host.wait_for(lambda e: e.get("event") == "ready", what="ready line")
        # A 20 s outage lets the backoff grow (1, 2, 4, 8, 16 s): without probing, the next try
        # came up to 37 s late. The host must not give up meanwhile.
        with self.assertRaises(subprocess.TimeoutExpired):
            host.popen.wait(timeout=max(0.0, retrying["_t"] + 20.0 - time.monotonic()))
        proc, _ = run_relay_process("--bind", relay)
        self.addCleanup(_stop_process, proc)
        back = time.monotonic()
        online = host.wait_for(lambda e: e.get("event") == "relay" and e.get("status") == "online",
                               timeout=30, what="the host registered again")
        took = online["_t"] - back
        print(f"\n  relay came back: host registered after {took:.1f} s", file=sys.stderr)
        self.assertLess(took, 5.0)

    def test_readme_cli_example_runs_as_written(self):
        """The README's command-line example, line by line: only the port is a free one, the
        folders it names go to a scratch folder, and ID and PASSWORD come from the host's line."""
        import re
        import shlex
        from tests.test_e2e import free_port
        from tests.waiting import wait_until
        readme = (Path(GUI).parent / "README.md").read_text()
        block = re.search(r"with a relay of your own on this machine.*?```\n(.*?)```", readme, re.S).group(1)
        commands = [c for c in block.replace("\\\n", " ").splitlines() if c and not c.startswith("#")]
        self.assertEqual(len(commands), 3, commands)
        port, work = str(free_port(socket.SOCK_STREAM)), self.tmp / "readme"
        work.mkdir()
        env = dict(self.env(), TAGIO_RELAY_STATE="", HOME=str(work), XDG_CONFIG_HOME=str(work / "config"))

        def run(command):
            command = command.replace("7070", port).replace("./", f"{work}/").rstrip("& ")
            command = command.replace("screen.png", str(work / "screen.png"))
            argv = [sys.executable if a == "python3" else a for a in shlex.split(command)]
            proc = StampedProc(argv, env)
            self.addCleanup(self.stop, proc)
            return proc
        run(commands[0])
        wait_until(lambda: _port_open(int(port)), 15, "the README's relay listening")
        host = run(commands[1])
        ready = host.wait_for(lambda e: e.get("event") == "ready", what="the README host's ready line")
        viewer = run(commands[2].replace("ID", ready["id"], 1).replace("PASSWORD", ready["password"], 1))
        self.assertEqual(viewer.finish(40), 0, viewer.stderr)
        self.assertEqual(viewer.events("connected")[0]["peer"], ready["id"])
        self.assertTrue((work / "screen.png").exists())
        self.assertTrue((work / "host-desk").is_dir() and (work / "viewer-desk").is_dir())


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    unittest.main()
