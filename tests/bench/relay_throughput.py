"""Relay throughput: one TCP stream through the relay vs socat vs straight loopback, in one run.

Run: python -m tests.bench.relay_throughput [--mb 1024] [--rounds 5]

Prints MB/s for each path (median and best of --rounds, the paths interleaved
round by round so load from other processes hits them alike), the CPU the
forwarding process used per second of transfer, and the ratios: of the
medians, and the median of each round's own relay/socat ratio (the paired
figure, least sensitive to a noisy machine). Goal (issue 2): relay >=
1.0x `socat -b 262144`. The relay runs as a separate process
(tagio_relay_server.py) so its CPU is measured alone; CPU is read from
/proc (Linux), elsewhere it prints n/a.
"""

import argparse
import os
import shutil
import socket
import statistics
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
    ap.add_argument("--rounds", type=int, default=5, help="rounds, paths interleaved (default 5)")
    args = ap.parse_args()
    total = args.mb * CHUNK
    print(f"relay_throughput: {args.mb} MiB per transfer, {args.rounds} interleaved rounds, "
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
    runs = {name: [] for name in paths}       # name -> [(MB/s, cpu)] in round order
    try:
        for _ in range(args.rounds):  # interleaved, so load from other processes hits all paths alike
            for name, (make_pair, pid) in paths.items():
                runs[name].append(measure_once(make_pair, total, pid))
    finally:
        for cleanup in cleanups:
            cleanup()
    medians = {}
    for name, results in runs.items():
        rate = statistics.median(r for r, _ in results)
        cpus = [c for _, c in results if c is not None]
        medians[name] = rate
        cpu_text = f", CPU {_pct(statistics.median(cpus) if cpus else None)}" if name != "direct loopback" else ""
        print(f"  {name:16}: median {rate:6.0f} MB/s ({rate * 8 / 1000:.1f} Gbit/s), "
              f"best {max(r for r, _ in results):6.0f}{cpu_text}")
    relay, direct = medians["TagIO relay"], medians["direct loopback"]
    socat = medians.get("socat -b 262144")
    line = f"  ratios          : relay/direct {relay / direct:.2f}x"
    if socat:
        paired = statistics.median(r / s for (r, _), (s, _) in zip(runs["TagIO relay"], runs["socat -b 262144"]))
        line += f", relay/socat {relay / socat:.2f}x (per-round median {paired:.2f}x; goal >= 1.0x)"
    print(line)


if __name__ == "__main__":
    main()
