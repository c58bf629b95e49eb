"""Benchmark: the reliable UDP stream against TCP, and connection set-up through NAT.

    python -m tests.bench.rudp [--size MB] [--loss PERCENT ...] [--nat-runs N] [--runs N]

Prints one line per figure:
- throughput (MB/s) of RudpStream and of TCP (SocketStream) on loopback, for
  each loss rate; loss > 0 runs the measurement inside a private network
  namespace whose loopback drops that share of packets (nftables `numgen
  random`, each packet independently, so each direction) - needs root;
- round-trip latency (median and p99, ms) of 64-byte ping-pongs over each;
- request-to-connected time through two cone NATs (tests/netlab.py), with
  the path chosen, median of N runs (needs root; includes the SPAKE2 handshake);
- throughput of the secure channel over that punched path (two processes,
  so two GILs) without loss and with 5 % loss each way.
The loopback figures run both ends in this one process, sharing one GIL.
Goals (issue 5): >= 40 MB/s without loss, >= 8 MB/s at 5 % loss, set-up <= 1 s.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tagio.net.candidates import path_keys  # noqa: E402
from tagio.net.stream import SocketStream, recv_exactly  # noqa: E402
from tagio.net.udpmux import UdpMux  # noqa: E402
from tagio.net.udpstream import RudpStream  # noqa: E402
from tests import netlab  # noqa: E402

CHUNK = 64 * 1024


def rudp_pair():
    a, b = UdpMux.bind(), UdpMux.bind()
    token, sid = os.urandom(16), os.urandom(16)
    left = RudpStream(a, b.address(), path_keys(token, sid, "viewer"))
    right = RudpStream(b, a.address(), path_keys(token, sid, "host"))

    def close():
        left.close()
        right.close()
        a.close()
        b.close()

    return left, right, close


def tcp_pair():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    server.close()
    left, right = SocketStream(client), SocketStream(accepted)

    def close():
        left.close()
        right.close()

    return left, right, close


def throughput(make_pair, size):
    left, right, close = make_pair()
    block = os.urandom(CHUNK)

    def sender():
        sent = 0
        while sent < size:
            left.send(block[: min(CHUNK, size - sent)])
            sent += CHUNK

    started = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    recv_exactly(right, size)
    seconds = time.perf_counter() - started
    thread.join()
    close()
    return size / seconds / 1e6


def latency(make_pair, rounds=500):
    left, right, close = make_pair()

    def echo():
        for _ in range(rounds):
            right.send(recv_exactly(right, 64))

    thread = threading.Thread(target=echo)
    thread.start()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        left.send(b"p" * 64)
        recv_exactly(left, 64)
        samples.append((time.perf_counter() - started) * 1000)
    thread.join()
    close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def measure(size_mb, loss, runs=1):
    size = int(size_mb * 1e6)
    for name, make_pair in (("rudp", rudp_pair), ("tcp", tcp_pair)):
        rates = []
        for _ in range(runs):
            rates.append(throughput(make_pair, size))
            median, p99 = latency(make_pair)
            print(f"{name:4s} loopback loss={loss:>2}%  throughput {rates[-1]:7.1f} MB/s   "
                  f"rtt median {median:.3f} ms  p99 {p99:.3f} ms", flush=True)
        if runs > 1:
            print(f"{name:4s} loopback loss={loss:>2}%  median of {runs} runs {statistics.median(rates):7.1f} MB/s "
                  f"(min {min(rates):.1f}, max {max(rates):.1f})", flush=True)


def measure_with_loss(size_mb, loss, runs=1):
    """Re-run this script inside a fresh namespace whose loopback drops `loss`% of packets."""
    ns = f"tgbench{os.getpid()}"
    netlab.run("ip", "netns", "add", ns)
    try:
        netlab.run("ip", "-n", ns, "link", "set", "lo", "up")
        rules = ("table inet loss {\n chain lossy {\n type filter hook input priority filter;\n"
                 f" iif lo numgen random mod 100 < {int(loss)} drop\n }}\n}}\n")
        netlab.run("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inner", "--size", str(size_mb),
                        "--loss", str(loss), "--runs", str(runs)], check=True)
    finally:
        netlab.run("ip", "netns", "del", ns, check=False)


def nat_setup(runs):
    times, paths = [], []
    for _ in range(runs):
        with netlab.NetLab() as lab, tempfile.TemporaryDirectory() as tmp:
            host_ns, viewer_ns = lab.nat_host("cone"), lab.nat_host("cone")
            _relay, address = lab.start_relay(tmp)
            relay = f"{address[0]}:{address[1]}"
            host = lab.peer(host_ns, "host", "--relay", relay, "--config", f"{tmp}/h", "--password", "benchpw1")
            host_id = host.event("ready")["id"]
            viewer = lab.peer(viewer_ns, "viewer", "--relay", relay, "--config", f"{tmp}/v",
                              "--password", "benchpw1", "--target", host_id)
            viewer.event("ready")
            connected = viewer.event("connected", timeout=30)
            viewer.send("ping")
            first = viewer.event("pong")
            times.append(connected["seconds"] + first["rtt_ms"] / 1000)
            paths.append(connected["path"])
            viewer.send("quit")
    print(f"cone/cone NAT set-up (request -> first reply), {runs} runs: median {statistics.median(times):.3f} s, "
          f"max {max(times):.3f} s, paths {sorted(set(paths))}", flush=True)


def nat_bulk(size_mb):
    """20 MB through SecureChannel over punched UDP between two cone NATs (two processes)."""
    with netlab.NetLab() as lab, tempfile.TemporaryDirectory() as tmp:
        host_ns, viewer_ns = lab.nat_host("cone"), lab.nat_host("cone")
        _relay, address = lab.start_relay(tmp)
        relay = f"{address[0]}:{address[1]}"
        host = lab.peer(host_ns, "host", "--relay", relay, "--config", f"{tmp}/h", "--password", "benchpw1")
        host_id = host.event("ready")["id"]
        viewer = lab.peer(viewer_ns, "viewer", "--relay", relay, "--config", f"{tmp}/v",
                          "--password", "benchpw1", "--target", host_id)
        path = viewer.event("connected", timeout=30)["path"]
        for loss in (0, 5):
            lab.set_loss(loss)
            viewer.send(f"bulk {int(size_mb * 1e6)}")
            result = viewer.event("bulk", timeout=300)
            print(f"secure channel over {path} through cone NATs, loss={loss}% each way: "
                  f"{result['mb_per_s']:.1f} MB/s ({size_mb:g} MB, intact={result['ok']})", flush=True)
        viewer.send("quit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=50.0, help="MB per throughput run")
    parser.add_argument("--loss", type=int, nargs="*", default=[0, 5])
    parser.add_argument("--nat-runs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1, help="loopback runs per figure (median printed)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        measure(args.size, args.loss[0], args.runs)
        return
    reason = netlab.unavailable()
    for loss in args.loss:
        if loss == 0:
            measure(args.size, 0, args.runs)
        elif reason:
            print(f"loss={loss}%: skipped ({reason})")
        else:
            measure_with_loss(args.size, loss, args.runs)
    if args.nat_runs and not reason:
        nat_setup(args.nat_runs)
        nat_bulk(args.size)
    elif args.nat_runs:
        print(f"NAT set-up: skipped ({reason})")


if __name__ == "__main__":
    main()
