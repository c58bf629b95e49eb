"""The relay at its file-descriptor limit, through real processes and sockets on 127.0.0.1.

A relay process started with a low RLIMIT_NOFILE keeps answering /health and tells TagIO clients
"relay full" while idle sockets hold every descriptor it may give clients; a pair whose pipes cannot
be made is logged, counted in /metrics, both sides hear why, and their per-address slots and the
half-made pipe are released.
"""

import errno
import json
import os
import socket
import threading
import time
import unittest
import urllib.request
from unittest import mock

from tagio.crypto.identity import Identity
from tagio.errors import RelayError
from tagio.net.relay_client import RelayClient
from tagio.relay import forward
from tests.relay_fixture import open_pair, run_relay_process, start_relay, wait_for

MAX_FDS = 100


def http_json(address, path, timeout=5.0):
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read())


def metrics(address) -> dict:
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return {k: float(v) for k, _, v in (line.partition(" ") for line in lines if not line.startswith("#"))
            if k.startswith("tagio_relay_") and "{" not in k}


class DescriptorLimitProcessTest(unittest.TestCase):
    def test_idle_sockets_cannot_starve_it_and_a_full_relay_says_so(self):
        proc, address = run_relay_process("--bind", "127.0.0.1:0", max_fds=MAX_FDS)
        self.addCleanup(self.stop, proc)
        idle = [socket.create_connection(address, timeout=5) for _ in range(2 * MAX_FDS)]
        self.addCleanup(lambda: [s.close() for s in idle])
        status = http_json(address, "/health", timeout=3)  # long before the idle sockets time out (10 s)
        self.assertEqual((status["status"], status["fd_limit"]), ("ok", MAX_FDS))
        clients = []
        self.addCleanup(lambda: [c.close() for c in clients])
        clients.append(self.register(address))  # idle sockets make room for a client that speaks
        while len(clients) < MAX_FDS:
            try:
                clients.append(self.register(address))
            except RelayError as exc:
                if exc.code != "relay_full":
                    raise
                break
        self.assertLess(len(clients), MAX_FDS, "never heard relay_full")
        self.assertEqual(http_json(address, "/health", timeout=3)["status"], "ok")  # answered while full
        self.assertGreater(metrics(address)["tagio_relay_relay_full_total"], 0)
        clients.pop().close()
        self.assertTrue(wait_for(lambda: self.try_register(address)), "not served again after a client left")

    def register(self, address):
        """A registered RelayClient; waits out the production registration rate limit."""
        for _ in range(100):
            client = RelayClient(address, Identity.generate(), timeout=3)
            try:
                client.connect()
                return client
            except RelayError as exc:
                client.close()
                if exc.code != "rate_limited":
                    raise
            time.sleep(0.2)  # the limiter refills at 5 per second
        self.fail("registrations stayed rate limited")

    def try_register(self, address):
        try:
            self.register(address).close()
            return True
        except RelayError:
            return False

    @staticmethod
    def stop(proc):
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:
            proc.kill()
            proc.wait()


def bind_both(viewer, host, token):
    """Both sides bind `token` at once; returns each side's stream or exception."""
    outcomes = [None, None]

    def bind(i, client):
        try:
            outcomes[i] = client.open_relay(token, 5)
        except Exception as exc:
            outcomes[i] = exc
    threads = [threading.Thread(target=bind, args=(i, c)) for i, c in enumerate((viewer, host))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return outcomes


class PairSetupFailureTest(unittest.TestCase):
    def test_a_pair_without_pipes_is_reported_counted_and_released(self):
        if not forward.CAN_SPLICE:
            self.skipTest("pairs use pipes only where os.splice exists (Linux)")
        with start_relay(max_conns_per_ip=4) as relay:  # 2 registrations + 2 relay connections
            viewer, host = RelayClient(relay.address, Identity.generate()), RelayClient(relay.address, Identity.generate())
            for c in (viewer, host):
                c.connect()
                self.addCleanup(c.close)
            made, made_inodes = [], []
            real_pipe = os.pipe

            def second_pipe_fails():
                if made:
                    raise OSError(errno.EMFILE, "Too many open files")
                made.append(real_pipe())
                made_inodes.extend(os.fstat(fd).st_ino for fd in made[-1])
                return made[-1]
            info = viewer.request_peer(host.identity.id, os.urandom(16))
            with mock.patch.object(forward.os, "pipe", second_pipe_fails):
                outcomes = bind_both(viewer, host, info.relay_token)
            self.assertEqual([getattr(o, "code", o) for o in outcomes], ["relay_full", "relay_full"])
            (rfd, wfd), inodes = made[0], made_inodes
            for fd, inode in zip((rfd, wfd), inodes):  # the half-made pair's pipe is closed, not leaked
                try:
                    still_open = os.fstat(fd).st_ino == inode
                except OSError:
                    still_open = False
                self.assertFalse(still_open, "a pipe of the failed pair leaked")
            self.assertEqual(metrics(relay.address)["tagio_relay_relay_pairs_failed_total"], 1)
            info = viewer.request_peer(host.identity.id, os.urandom(16))
            v, h = open_pair(viewer, host, info.relay_token)  # the address's slots were released
            self.addCleanup(v.close)
            self.addCleanup(h.close)
            v.send(b"still relaying")
            self.assertEqual(h.recv(14), b"still relaying")


if __name__ == "__main__":
    unittest.main()
