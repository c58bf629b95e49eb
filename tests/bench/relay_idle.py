"""Relay idle capacity: N registered idle clients in one relay process; registrations/s and RSS per client.

Run: python -m tests.bench.relay_idle [--clients 10000] [--in-flight 256] [--workers 2]

The relay runs in a child process (this file with --serve) with the per-address
limits lifted (every client comes from 127.0.0.1); this process drives the
clients with one selectors loop: connect, Hello, sign the fresh Challenge
(Ed25519), Register, wait for Registered, then stay connected and silent.

Timing: the clients' Ed25519 keys and signer objects are made before the
clock starts; registrations/s is the number registered divided by the time
from the first connect() to the last Registered. Each one therefore includes
the relay's Ed25519 verification and, on the same CPUs, the client's real
signature over the relay's nonce. Because the clients and any other load share
the CPUs, the relay's own CPU time per registration (from /proc, all relay
threads) is printed too, with the rate that CPU cost allows per relay core:
that figure does not depend on what else the machine is doing.
RSS is the relay child's VmRSS (Linux /proc).
Goals (issue 2): >= 10,000 clients at <= 3 KB RSS each; >= 2,000 registrations/s.
"""

import argparse
import collections
import hashlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from Crypto.Signature import eddsa  # noqa: E402

from tagio.crypto.identity import Identity  # noqa: E402
from tests.bench.relay_throughput import cpu_seconds  # noqa: E402
from tagio.protocol import framing  # noqa: E402
from tagio.protocol import relay as m  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ORDER = 2 ** 252 + 27742317777372353535851937790883648493  # L, the order of the Ed25519 base point


def raise_fd_limit(need):
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def thread_cpu(pid, tids):
    """user+system CPU seconds of some threads of a process (Linux /proc), or None."""
    try:
        total = 0
        for tid in tids:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _loadavg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # Windows
        return "n/a"


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def serve(clients, workers):
    """Child: a relay with per-address limits lifted; prints its port, runs until stdin closes."""
    import threading
    from tagio.relay.logic import Limits
    from tagio.relay.server import RelayServer
    raise_fd_limit(clients * 2 + 1000)
    limits = Limits(max_conns_per_ip=clients + 100, max_conns=clients + 100, register_rate=1e9,
                    register_burst=1e9, heartbeat_interval=600.0)
    server = RelayServer(("127.0.0.1", 0), limits=limits, workers=workers).start()
    print(server.address[1], flush=True)
    # native thread ids, so the parent can split the relay's CPU between the loop and the workers
    print(json.dumps({"loop": server._thread.native_id,
                      "workers": [t.native_id for t in server._pool.threads]}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), server.request_stop()), daemon=True).start()
    server._thread.join()


def unique_identities(count):
    """`count` fresh identities with distinct IDs. An ID keeps ~30 bits of the key's hash, so among
    10,000 random keys two share an ID in ~5% of runs; the relay rightly refuses the second."""
    by_id = {}
    while len(by_id) < count:
        ident = Identity.generate()
        by_id.setdefault(ident.id, ident)
    return list(by_id.values())


class LeanSigner:
    """RFC 8032 Ed25519 signing (pure, deterministic) on pycryptodome's group arithmetic, hashlib for
    SHA-512 and Python ints for the scalar sums: the same signature as eddsa.new(key).sign(msg), at
    about half its Python overhead, so the bench's clients take less of the CPUs the relay needs.
    The nonce multiple [r]B uses the library's constant-time (secret-scalar) path."""

    def __init__(self, identity):
        key = identity._key  # pycryptodome EccKey: the expanded secret (prefix, scalar d) and B
        self.prefix, self.d, self.public_key = key._prefix, int(key._d), identity.public_key
        self.base = key._curve.G

    def sign(self, msg: bytes) -> bytes:
        r = int.from_bytes(hashlib.sha512(self.prefix + msg).digest(), "little") % ORDER
        xb, yb = (self.base * r)._get_xy_bytes()
        r_enc = (int.from_bytes(yb, "big") | ((xb[-1] & 1) << 255)).to_bytes(32, "little")
        k = int.from_bytes(hashlib.sha512(r_enc + self.public_key + msg).digest(), "little") % ORDER
        return r_enc + ((r + k * self.d) % ORDER).to_bytes(32, "little")


def make_signer(identity):
    """LeanSigner when it reproduces the library's signature for this key, else the library's signer."""
    reference = eddsa.new(identity._key, "rfc8032")
    try:
        lean = LeanSigner(identity)
        if lean.sign(b"relay_idle self-check") == reference.sign(b"relay_idle self-check"):
            return lean
    except (AttributeError, TypeError, ValueError):  # another pycryptodome: use its signer
        pass
    return reference


class Driver:
    """Registers many clients concurrently from one selectors loop."""

    HELLO = m.Hello().encode()

    def __init__(self, address, identities, in_flight):
        self.address = address
        # (id, public key, signer): the signer is made once per key, before timing starts
        self.todo = [(i.id, i.public_key, make_signer(i)) for i in identities]
        self.in_flight = in_flight
        self.sel = selectors.DefaultSelector()
        self.done = []
        self.failed = 0
        self.reasons = collections.Counter()

    def start_one(self):
        ident = self.todo.pop()
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(self.address)
        state = {"ident": ident, "decoder": framing.FrameDecoder(), "out": self.HELLO}
        self.sel.register(sock, selectors.EVENT_WRITE, state)

    def run(self):
        active = 0
        while self.todo or active:
            while self.todo and active < self.in_flight:
                self.start_one()
                active += 1
            for key, mask in self.sel.select(5):
                finished = self.step(key.fileobj, key.data, mask)
                if finished:
                    active -= 1

    def step(self, sock, state, mask):
        if mask & selectors.EVENT_WRITE and state["out"]:
            sent = sock.send(state["out"])
            state["out"] = state["out"][sent:]
            if not state["out"]:
                self.sel.modify(sock, selectors.EVENT_READ, state)
            return False
        try:
            data = sock.recv(4096)
        except OSError as exc:  # e.g. a reset
            data = exc
        if not data or isinstance(data, OSError):
            self.failed += 1
            self.reasons[f"connection: {data}" if data else "closed by the relay"] += 1
            self.sel.unregister(sock)
            sock.close()
            return True
        for frame in state["decoder"].feed(data):
            msg = m.decode_message(frame)
            if isinstance(msg, m.Challenge):
                client_id, public_key, signer = state["ident"]
                sig = signer.sign(m.registration_message(msg.nonce, client_id, public_key))
                state["out"] = m.Register(client_id, public_key, sig).encode()
                self.sel.modify(sock, selectors.EVENT_WRITE, state)
            elif isinstance(msg, m.Registered):
                self.sel.unregister(sock)
                self.done.append(sock)  # stays open and silent
                return True
            else:
                self.failed += 1
                self.reasons[f"{type(msg).__name__} {getattr(msg, 'code', '')} {getattr(msg, 'text', '')}"] += 1
                self.sel.unregister(sock)
                sock.close()
                return True
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="relay signature-check threads")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.clients, args.workers)
    raise_fd_limit(args.clients + 1000)
    relay = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", "--clients", str(args.clients),
                              "--workers", str(args.workers)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             cwd=str(ROOT), text=True)
    try:
        port = int(relay.stdout.readline())
        tids = json.loads(relay.stdout.readline())
        time.sleep(0.5)
        base = rss_kib(relay.pid)
        t0 = time.perf_counter()
        identities = unique_identities(args.clients)
        driver = Driver(("127.0.0.1", port), identities, args.in_flight)
        keygen = time.perf_counter() - t0
        loop0, work0 = thread_cpu(relay.pid, [tids["loop"]]), thread_cpu(relay.pid, tids["workers"])
        t0, relay_cpu0, client_cpu0 = time.perf_counter(), cpu_seconds(relay.pid), time.process_time()
        driver.run()
        elapsed = time.perf_counter() - t0
        relay_cpu = cpu_seconds(relay.pid)
        loop1, work1 = thread_cpu(relay.pid, [tids["loop"]]), thread_cpu(relay.pid, tids["workers"])
        relay_cpu = relay_cpu - relay_cpu0 if relay_cpu is not None and relay_cpu0 is not None else None
        client_cpu = time.process_time() - client_cpu0
        time.sleep(1.0)
        after = rss_kib(relay.pid)
        idle0 = cpu_seconds(relay.pid)
        time.sleep(5.0)
        idle1 = cpu_seconds(relay.pid)
        idle_cpu = (idle1 - idle0) / 5.0 if idle0 is not None and idle1 is not None else None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            online = json.loads(resp.read())["online_clients"]
        n = len(driver.done)
        print(f"relay_idle: {args.clients} clients, {args.in_flight} registrations in flight, "
              f"{args.workers} relay workers, {os.cpu_count()} CPUs, load average {_loadavg()}")
        print(f"  (client keys and signers, made before timing: {keygen:.1f} s)")
        print(f"  registered      : {n} ok, {driver.failed} failed; relay reports {online} online")
        for reason, count in driver.reasons.most_common(5):
            print(f"  failed          : {count} x {reason}")
        print(f"  registrations/s : {n / elapsed:.0f}  ({elapsed:.2f} s, incl. Ed25519 sign + verify)")
        per = (lambda sec: f"{sec / max(n, 1) * 1000:.2f} ms/registration")
        print(f"  CPU             : relay {per(relay_cpu) if relay_cpu is not None else 'n/a'}, "
              f"clients {per(client_cpu)}")
        if None not in (loop0, loop1, work0, work1):
            print(f"  relay threads   : loop {per(loop1 - loop0)}, {args.workers} workers {per(work1 - work0)}")
        if relay_cpu:
            print(f"  relay CPU-bound : {n / relay_cpu:.0f} registrations per relay CPU-second")
        if idle_cpu is not None:
            print(f"  idle relay CPU  : {idle_cpu * 100:.1f}% of one CPU with {n} silent clients (5 s)")
        if base is not None and after is not None:
            print(f"  relay RSS       : {base / 1024:.1f} MiB idle -> {after / 1024:.1f} MiB with {n} clients")
            print(f"  RSS per client  : {(after - base) * 1024 / max(n, 1) / 1000:.2f} KB "
                  f"({(after - base) / max(n, 1):.2f} KiB)")
        for sock in driver.done:
            sock.close()
    finally:
        relay.stdin.close()
        try:
            relay.wait(15)
        except subprocess.TimeoutExpired:
            relay.kill()


if __name__ == "__main__":
    main()
