"""A TagIO peer for NAT tests, run inside a network namespace (see tests/netlab.py).

    nat_peer.py host   --relay IP:PORT --config DIR --password PW
    nat_peer.py viewer --relay IP:PORT --config DIR --password PW --target ID
    (--lan instead of --relay: no relay; the host announces itself on the LAN)

Both register at the relay with a DirectListener (TCP + UDP, reflexive
address discovered through the relay) and use establish() with the real
SPAKE2 handshake. Everything they report is one JSON object per line on
stdout ("ready", "connected", results, "error"). The viewer then obeys
commands on stdin, one per line: `ping`, `bulk N` (N random bytes to the
host, which answers with their SHA-256), `session SECONDS FILE.png` (a
remote desktop session against a host started with --session: it shares
$DISPLAY; the viewer saves the screen it received), `client-session SECONDS
FILE.png` (the same against a real client host, which admits the viewer
first: tagio.client.admission), `quit`. The host serves one session.
"""

import argparse
import hashlib
import json
import os
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tagio.crypto import kdf  # noqa: E402
from tagio.crypto.handshake import host_handshake, viewer_handshake  # noqa: E402
from tagio.crypto.identity import Identity  # noqa: E402
from tagio.errors import TagioError  # noqa: E402
from tagio.net.connect import DirectListener, establish, lan_host_peer, lan_viewer_peer  # noqa: E402
from tagio.net.lan import LanService  # noqa: E402
from tagio.net.relay_client import RelayClient, parse_address  # noqa: E402

CHUNK = 60_000


def report(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Peer:
    """What one side runs: identity, DirectListener, and the relay or (--lan) a LanService."""

    def __init__(self, args):
        self.identity = Identity.load_or_create(Path(args.config))
        self.listener = DirectListener(("0.0.0.0", 0))
        self.relay = self.lan = None
        udp = None
        if args.lan:
            self.lan = LanService(self.identity.id, self.listener.port)
        else:
            self.relay = RelayClient(parse_address(args.relay), self.identity,
                                     local_candidates=self.listener.candidates())
            self.relay.connect()
            try:
                udp = self.relay.discover_udp(self.listener.udp.discovery_socket(), timeout=3.0)
            except TagioError:
                udp = None
        report("ready", id=self.identity.id, udp=udp, candidates=self.listener.candidates())

    def incoming(self, wait):
        """The next PeerInfo for us as the host (from the relay, or a LAN dial)."""
        try:
            if self.lan is not None:
                return lan_host_peer(self.listener.lan_requests.get(timeout=wait), self.identity.id)
            return self.relay.incoming.get(timeout=wait)
        except queue.Empty:
            raise TimeoutError("no connect request arrived") from None

    def request(self, target, wait):
        """PeerInfo for connecting to `target` (through the relay, or found on the LAN)."""
        if self.lan is None:
            return self.relay.request_peer(target, os.urandom(16))
        deadline = time.monotonic() + wait
        while (found := self.lan.find(target)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} was not announced on the LAN")
            time.sleep(0.05)
        return lan_viewer_peer(target, found.address, self.identity.id, os.urandom(16))

    def close(self):
        for part in (self.relay, self.lan, self.listener):
            if part is not None:
                part.close()


def run_host(args):
    me = Peer(args)
    peer = me.incoming(args.wait)
    secret = kdf.password_secret(args.password, me.identity.id)

    def handshake(stream):
        return host_handshake(stream, [secret], viewer_id=peer.peer_id, host_id=me.identity.id,
                              session_id=peer.session_id)

    channel = establish(peer, me.relay, handshake, listener=me.listener, relay_delay=args.relay_delay)
    report("connected", path=channel.path)
    if args.session:
        host_session(channel)
    else:
        serve(channel)
    channel.close()
    me.close()


def host_session(channel):
    """Share this display (DISPLAY) with the viewer until it says Bye."""
    from tagio.session.host import HostSession

    session = HostSession(channel, fps_cap=10, view_only=True)
    session.start()
    session.join()
    report("session_ended", frames=session.stats["frames"])


def viewer_session(channel, seconds, snapshot):
    """Run a ViewerSession until frames arrived (or `seconds` passed); save the screen."""
    from tagio.session.viewer import ViewerSession

    session = ViewerSession(channel)
    session.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (session.stats["frames"] < 1 or session.framebuffer is None):
        time.sleep(0.05)
    frame = session.framebuffer
    if frame is not None:
        frame.save(snapshot)
    report("session", frames=session.stats["frames"], bytes=session.stats["bytes"],
           size=list(frame.size) if frame is not None else None, path=channel.path)
    session.stop()


def serve(channel):
    digest, count = hashlib.sha256(), 0
    while True:
        message = channel.recv()
        kind, body = message[:1], message[1:]
        if kind == b"H":
            digest.update(body)
            count += len(body)
        elif kind == b"D":
            channel.send(b"D" + json.dumps({"sha256": digest.hexdigest(), "bytes": count}).encode())
            digest, count = hashlib.sha256(), 0
        elif kind == b"P":
            channel.send(message)
        else:
            return


def run_viewer(args):
    me = Peer(args)
    started = time.monotonic()
    peer = me.request(args.target, args.wait)
    rendezvous = time.monotonic() - started
    password = args.password

    def handshake(stream):
        return viewer_handshake(stream, password, viewer_id=me.identity.id, host_id=args.target,
                                session_id=peer.session_id)

    channel = establish(peer, me.relay, handshake, listener=me.listener, relay_delay=args.relay_delay)
    report("connected", path=channel.path, seconds=round(time.monotonic() - started, 3),
           rendezvous_seconds=round(rendezvous, 3))
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "ping":
            ping(channel)
        elif words[0] == "bulk":
            bulk(channel, int(words[1]))
        elif words[0] in ("session", "client-session"):
            if words[0] == "client-session":     # a real TagIO host: prove our ID, then be admitted
                from tagio.client.admission import await_admission
                from tagio.client.proving import prove_to_host
                prove_to_host(channel, me.identity, args.target)
                await_admission(channel)
            viewer_session(channel, float(words[1]), words[2])
            me.close()
            return
        elif words[0] == "quit":
            break
    channel.send(b"Q")
    channel.close()
    me.close()


def ping(channel):
    started = time.monotonic()
    channel.send(b"P" + os.urandom(16))
    channel.recv()
    report("pong", rtt_ms=round((time.monotonic() - started) * 1000, 2))


def bulk(channel, size):
    digest, sent, started = hashlib.sha256(), 0, time.monotonic()
    block = os.urandom(CHUNK)
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        block = hashlib.sha256(block[:64]).digest() * (CHUNK // 32)  # vary the content cheaply
        digest.update(piece)
        channel.send(b"H" + piece)
        sent += len(piece)
    channel.send(b"D")
    answer = json.loads(channel.recv()[1:])
    seconds = time.monotonic() - started
    report("bulk", ok=answer == {"sha256": digest.hexdigest(), "bytes": size}, bytes=answer["bytes"],
           seconds=round(seconds, 3), mb_per_s=round(size / seconds / 1e6, 2))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["host", "viewer"])
    parser.add_argument("--relay", help="IP:PORT of the relay (or --lan)")
    parser.add_argument("--lan", action="store_true", help="no relay: find the host by LAN discovery")
    parser.add_argument("--config", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--target")
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--relay-delay", type=float, default=0.3)
    parser.add_argument("--session", action="store_true", help="host: share DISPLAY instead of echoing")
    args = parser.parse_args()
    try:
        (run_host if args.role == "host" else run_viewer)(args)
    except (TagioError, OSError, ValueError) as exc:
        report("error", type=type(exc).__name__, message=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
