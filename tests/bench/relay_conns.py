"""Many open connections against a running relay (any build, the Windows exe included): does it hold
them, and does /health still answer? Prints figures; asserts nothing.

Run: python -m tests.bench.relay_conns HOST:PORT [--conns 1000]

Start the relay with `--max-conns-per-ip 5000` (every connection comes from this one address). The
connections say nothing, so the relay closes them after its handshake deadline (10 s); everything
here happens well inside that. On Windows this is the check that the relay's selectors hold more
than select()'s 512 sockets (tagio.relay.shards): before, the relay stopped at about 510.
"""

import argparse
import http.client
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tagio.protocol.address import parse_address  # noqa: E402


def health(address):
    started = time.perf_counter()
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    finally:
        connection.close()
    return status, (time.perf_counter() - started) * 1000


def still_open(sock) -> bool:
    """Not closed or reset by the relay (a closed one is readable with b"" or raises)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("relay", help="HOST:PORT of the relay")
    ap.add_argument("--conns", type=int, default=1000)
    args = ap.parse_args()
    address = parse_address(args.relay, default_port=443)
    started, socks = time.perf_counter(), []
    try:
        for _ in range(args.conns):
            socks.append(socket.create_connection(address, timeout=10))
        opened = time.perf_counter() - started
        status, ms = health(address)
        alive = sum(still_open(s) for s in socks)
        print(f"relay_conns: {len(socks)} connections opened in {opened:.2f} s; "
              f"{alive} still open; /health {status} in {ms:.0f} ms")
    finally:
        for sock in socks:
            sock.close()


if __name__ == "__main__":
    main()
