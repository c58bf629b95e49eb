"""A real in-process relay for tests: `with start_relay() as relay: ... relay.address`.

start_relay(**options) binds 127.0.0.1 port 0 (TCP, and UDP on the same port
number) and runs the server loop in a daemon thread. Options are RelayServer
keyword arguments (auth_secret, ssl_context, state_file, public_ip, clock,
wall_clock, bind) or any Limits field (heartbeat_interval, handshake_timeout,
max_conns_per_ip, unpaired_timeout, register_rate, ...).

Every test connects from 127.0.0.1, so the per-address limits are relaxed
here (TEST_LIMITS) unless a test passes its own values; the production
defaults live in tagio.relay.logic.Limits.

Also: `run_relay_process(*args)` starts `tagio_relay_server.py` as a
subprocess and returns (Popen, (host, port)) once it logs that it listens;
`wait_for(predicate)` polls a condition with a generous timeout (no fixed
sleeps); `open_pair(viewer, host, token)` binds a relay token from both sides;
`relayed_streams(test, viewer, host)` also asks for the introduction.
"""

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from tagio.relay.logic import Limits
from tagio.relay.server import RelayServer

ROOT = Path(__file__).resolve().parent.parent
_SERVER_OPTIONS = {"auth_secret", "ssl_context", "state_file", "public_ip", "clock", "wall_clock", "bind",
                   "workers", "trusted_proxies", "selector_factory", "metrics_token"}


TEST_LIMITS = {"register_burst": 1000.0, "register_rate": 1000.0, "connect_burst": 1000.0,
               "connect_rate": 1000.0, "max_conns_per_ip": 1000, "register_id_burst": 1000.0,
               "register_id_rate": 1000.0, "connect_target_burst": 1000.0, "connect_target_rate": 1000.0}


class RelayHandle:
    def __init__(self, server: RelayServer):
        self.server = server

    @property
    def address(self) -> tuple:
        return self.server.address

    @property
    def logic(self):
        return self.server.logic

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_relay(**options) -> RelayHandle:
    server_kw = {k: v for k, v in options.items() if k in _SERVER_OPTIONS}
    limit_kw = {**TEST_LIMITS, **{k: v for k, v in options.items() if k not in _SERVER_OPTIONS}}
    server_kw.setdefault("bind", ("127.0.0.1", 0))
    server = RelayServer(limits=Limits(**limit_kw), **server_kw)
    server.start()
    return RelayHandle(server)


def run_relay_process(*args, env=None, timeout=10.0, max_fds=None):
    """Start the relay CLI as a subprocess; returns (proc, (host, port)) after its listening line.

    max_fds: the child's RLIMIT_NOFILE, soft and hard (so the relay cannot raise it).
    """
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    if "TAGIO_RELAY_STATE" not in (env or {}) and "--state-file" not in args:
        full_env["TAGIO_RELAY_STATE"] = ""  # bindings in memory: nothing left behind on disk

    def limit_fds():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tagio_relay_server.py"), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=full_env, cwd=str(ROOT), text=True, preexec_fn=limit_fds if max_fds else None)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"listening on (\S+):(\d+)", line)
        if found:
            _drain_output(proc, lines)
            return proc, (found.group(1), int(found.group(2)))
    proc.wait(timeout)
    raise RuntimeError("relay process did not start:\n" + "".join(lines))


def _drain_output(proc, lines):
    """Keep reading the child's output so it never blocks on a full pipe; proc.output keeps the tail."""
    proc.output = collections.deque(lines, maxlen=2000)

    def pump():
        for line in proc.stdout:
            proc.output.append(line)
    # Join it (proc.output_thread.join(timeout)) after the process exits to read its last lines.
    proc.output_thread = threading.Thread(target=pump, daemon=True)
    proc.output_thread.start()


def wait_for(predicate, timeout=10.0) -> bool:
    """Poll until predicate() is true (True) or the timeout passes (its last value)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def open_pair(viewer, host, token, timeout=5.0):
    """Both RelayClients bind the same token concurrently; returns (viewer_stream, host_stream)."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("v", viewer.open_relay(token, timeout)))
    t.start()
    host_stream = host.open_relay(token, timeout)
    t.join(timeout + 5)
    return box["v"], host_stream


def relayed_streams(test, viewer, host, timeout=10.0):
    """Introduce two registered RelayClients and bind the relay token from both sides.

    Returns (viewer_stream, host_stream), closed at the test's cleanup.
    """
    info = viewer.request_peer(host.identity.id, os.urandom(16))
    test.assertEqual(host.incoming.get(timeout=5).relay_token, info.relay_token)
    v, h = open_pair(viewer, host, info.relay_token, timeout)
    test.addCleanup(v.close)
    test.addCleanup(h.close)
    return v, h
