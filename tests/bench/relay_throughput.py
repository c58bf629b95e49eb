"""Relay throughput: one TCP stream through the relay vs socat vs straight loopback, in one run.

Run: python -m tests.bench.relay_throughput [--mb 1024] [--rounds 5]

Prints MB/s for each path (best of --rounds, the paths interleaved round by
round so load from other processes hits them alike), the CPU the forwarding
process used per second of transfer, and the ratios. Goal (issue 2): relay >=
1.0x `socat -b 262144`. The relay runs as a separate process
(tagio_relay_server.py) so its CPU is measured alone; CPU is read from
/proc (Linux), elsewhere it prints n/a.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tagio.crypto.identity import Identity  # noqa: E402
from tagio.net.relay_client import RelayClient  # noqa: E402
from tests.relay_fixture import run_relay_process  # noqa: E402

CHUNK = 1 << 20


def cpu_seconds(pid):
    """user+system CPU seconds of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def transfer(send_sock, recv_sock, total):
    """Push `total` bytes from send_sock to recv_sock; returns elapsed seconds."""
    payload = memoryview(os.urandom(CHUNK))
    done = threading.Event()

    def sender():
        left = total
        while left > 0:
            n = min(left, CHUNK)
            send_sock.sendall(payload[:n])
            left -= n
        done.set()

    buf = bytearray(CHUNK)
    t = threading.Thread(target=sender, daemon=True)
    start = time.perf_counter()
    t.start()
    got = 0
    while got < total:
        n = recv_sock.recv_into(buf)
        if n == 0:
            raise RuntimeError(f"stream ended after {got} of {total} bytes")
        got += n
    elapsed = time.perf_counter() - start
    t.join()
    return elapsed


def measure_once(make_pair, total, pid=None):
    """(MB/s, CPU seconds per second of process `pid`, an int or a callable) for one transfer."""
    a, b, cleanup = make_pair()
    pid_now = pid() if callable(pid) else pid
    try:
        cpu0 = cpu_seconds(pid_now) if pid_now else None
        elapsed = transfer(a, b, total)
        cpu1 = cpu_seconds(pid_now) if pid_now else None
    finally:
        cleanup()
    cpu = (cpu1 - cpu0) / elapsed if cpu0 is not None and cpu1 is not None else None
    return total / elapsed / 1e6, cpu


def loopback_listener():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    return lst


def direct_pair():
    lst = loopback_listener()
    a = socket.create_connection(lst.getsockname())
    b, _ = lst.accept()
    lst.close()
    return a, b, lambda: (a.close(), b.close())


class SocatPath:
    def __init__(self):
        self.target = loopback_listener()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        tport = self.target.getsockname()[1]
        self.proc = subprocess.Popen(["socat", "-b", "262144", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
                                      f"TCP:127.0.0.1:{tport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def pair(self):
        a = socket.create_connection(("127.0.0.1", self.port))
        b, _ = self.target.accept()
        return a, b, lambda: (a.close(), b.close())

    def forwarding_pid(self):
        """socat forks one child per connection; that child does the copying."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.target.close()


class RelayPath:
    def __init__(self):
        self.proc, self.address = run_relay_process("--bind", "127.0.0.1:0")
        self.viewer = RelayClient(self.address, Identity.generate())
        self.host = RelayClient(self.address, Identity.generate())
        self.viewer.connect()
        self.host.connect()

    def pair(self):
        info = self.viewer.request_peer(self.host.identity.id, os.urandom(16))
        self.host.incoming.get(timeout=5)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("h", self.host.open_relay(info.relay_token)))
        t.start()
        v = self.viewer.open_relay(info.relay_token)
        t.join()
        a, b = v.sock, box["h"].sock
        return a, b, lambda: (v.close(), box["h"].close())

    def close(self):
        self.viewer.close()
        self.host.close()
        self.proc.terminate()
        self.proc.wait()


def _pct(cpu):
    return f"{cpu * 100:.0f}% of one CPU" if isinstance(cpu, float) else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="MiB per transfer (default 1024)")
    ap.add_argument("--rounds", type=int, default=5, help="best of N, paths interleaved (default 5)")
    args = ap.parse_args()
    total = args.mb * CHUNK
    print(f"relay_throughput: {args.mb} MiB per transfer, best of {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs")
    paths = {"direct loopback": (direct_pair, None)}
    cleanups = []
    if shutil.which("socat"):
        sp = SocatPath()
        cleanups.append(sp.close)
        socat_child = {}

        def socat_pair():
            a, b, cleanup = sp.pair()
            time.sleep(0.05)  # let socat fork its per-connection child
            socat_child["pid"] = sp.forwarding_pid()
            return a, b, cleanup
        paths["socat -b 262144"] = (socat_pair, lambda: socat_child.get("pid"))
    else:
        print("  socat           : not installed (apt-get install socat)")
    rp = RelayPath()
    cleanups.append(rp.close)
    paths["TagIO relay"] = (rp.pair, rp.proc.pid)
    best = {}
    try:
        for _ in range(args.rounds):  # interleaved, so load from other processes hits all paths alike
            for name, (make_pair, pid) in paths.items():
                rate, cpu = measure_once(make_pair, total, pid)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, cpu)
    finally:
        for cleanup in cleanups:
            cleanup()
    for name, (rate, cpu) in best.items():
        cpu_text = f", CPU {_pct(cpu)}" if name != "direct loopback" else ""
        print(f"  {name:16}: {rate:8.0f} MB/s  ({rate * 8 / 1000:.1f} Gbit/s){cpu_text}")
    relay, direct = best["TagIO relay"][0], best["direct loopback"][0]
    socat = best.get("socat -b 262144", (None,))[0]
    print(f"  ratios          : relay/direct {relay / direct:.2f}x"
          + (f", relay/socat {relay / socat:.2f}x (goal >= 1.0x)" if socat else ""))


if __name__ == "__main__":
    main()
