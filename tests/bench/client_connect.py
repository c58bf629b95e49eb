"""Benchmark: how long `Client.connect()` takes, from the call to an authenticated channel.

Two real Clients and a real relay on 127.0.0.1, the host capturing a small private Xvfb display.
For each path (direct TCP to the host's listener, and relay only) it connects ROUNDS times with the
host's current one-time password, and also times one scrypt password derivation (the PAKE input,
paid once by the viewer per attempt) to show what part of connect_ms is deliberate key stretching.

    python -m tests.bench.client_connect [ROUNDS]

Prints one JSON object: connect_ms of the first connect and min/p50/p95/max of the others per path,
and scrypt_ms.
"""

import json
import statistics
import sys
import tempfile
import time

from tagio.client.core import Client
from tagio.client.ratelimit import AttemptLimiter
from tagio.client.settings import Settings
from tagio.crypto.kdf import password_secret
from tests.relay_fixture import start_relay
from tests.xvfb import Xvfb

ROUNDS = 10


def _client(tmp, relay_text, **kwargs):
    client = Client(tmp, relay=relay_text, settings=Settings(tmp), view_only=True, **kwargs)
    client.start()
    client.wait_online(10)
    return client


def _measure(host, viewer, rounds):
    times, paths = [], set()
    for _ in range(rounds):
        password = host.one_time_password
        conn = viewer.connect(host.id, password)
        times.append(conn.connect_ms)
        paths.add(conn.path)
        conn.channel.close()
        deadline = time.monotonic() + 5          # the host replaces a used password: wait for it
        while (host.host_sessions or host.one_time_password == password) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    first, times = times[0], sorted(times[1:])     # the first pays lazy imports and cold caches
    return {"paths": sorted(paths), "first": round(first, 1),
            "min": round(times[0], 1), "p50": round(statistics.median(times), 1),
            "p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
            "max": round(times[-1], 1)}


def main(rounds=ROUNDS):
    results = {"rounds": rounds}
    started = time.perf_counter()
    password_secret("benchmark1", "123456789")
    results["scrypt_ms"] = round((time.perf_counter() - started) * 1000, 1)
    with Xvfb(width=320, height=240) as xvfb, start_relay() as relay, \
            tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, \
            tempfile.TemporaryDirectory() as c:
        relay_text = "%s:%d" % relay.address
        limiter = AttemptLimiter(per_peer=10 * rounds, total=10 * rounds)
        viewer = _client(a, relay_text, direct_bind=None)
        for name, bind, tmp in (("direct", ("127.0.0.1", 0), b), ("relay", None, c)):
            host = _client(tmp, relay_text, direct_bind=bind, limiter=limiter, display=xvfb.display)
            try:
                results[name] = _measure(host, viewer, rounds)
            finally:
                host.close()
        viewer.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
