"""A password guesser for tests: as many checkable guesses per second as a host will answer.

Theory of operation. A guess is checkable once the host has sent its REPLY (it carries the
confirmation MAC the guesser can test locally), so the cheapest attack sends HELLO, reads the
host's first answer and hangs up: a REPLY is one guess (`checked`), an ABORT is a refusal
(`refused`), anything else is a path that did not get that far (`failed`). The guesser skips the
password KDF (any scalar is some password's guess) and never waits longer than the host makes it.

One `Attack` per path kind, each run by several threads until a deadline:

    relay       a rendezvous, then the relay's pairing (RelayClient.open_relay)
    direct-tcp  a rendezvous, then DIALS dials of the host's listener with the session's tag
                (before the fix every dial got a handshake: 15,118 guesses per minute)
    udp         a rendezvous with our UDP address, then UDP hole punching (punch.open_path)
    lan         no relay: a LAN preamble with a made-up viewer ID, whose tag key is public

Nothing here is used by TagIO itself; tests/test_guess_rate.py drives it, in this process or (in a
network namespace of tests/netlab.py) as `python3 -m tests.guess_attack KIND HOST_ID RELAY SECONDS`,
which prints the counts as one JSON line.
"""

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections import Counter

from tagio.crypto import handshake, kdf
from tagio.crypto.identity import Identity
from tagio.crypto.spake2 import ROLE_A, Spake2Party
from tagio.errors import TagioError
from tagio.net import punch
from tagio.net.candidates import tcp_preamble_tag
from tagio.net.connect import lan_token
from tagio.net.listener import DirectListener
from tagio.net.relay_client import RelayClient
from tagio.net.stream import SocketStream, recv_exactly
from tagio.protocol.direct import encode_preamble

ANSWER_WAIT = 3.0      # how long one try waits for the host's first answer
DIALS = 8              # dials per rendezvous on the direct-TCP path


def guess_once(stream, viewer_id: str, host_id: str, session_id: bytes) -> str:
    """Send one HELLO (a random guess) and classify the host's first answer; closes the stream."""
    try:
        context = kdf.handshake_context(viewer_id, host_id, session_id)
        party = Spake2Party(ROLE_A, secrets.randbelow(2 ** 200), viewer_id.encode(), host_id.encode(),
                            context)
        stream.send(handshake.encode_hello(handshake._ctx_tag(context), party.message))
        msg_type, _length = handshake.parse_header(recv_exactly(stream, 3))
        return {handshake.Msg.REPLY: "checked", handshake.Msg.ABORT: "refused"}.get(msg_type, "failed")
    except (TagioError, OSError):
        return "failed"
    finally:
        getattr(stream, "abort", stream.close)()    # a UDP stream: no waiting for its FIN


class Attack:
    """Guess against `host_id` through one path kind from `threads` threads for `seconds`."""

    def __init__(self, kind, host_id, *, seconds, relay=None, host_port=None, threads=4,
                 bind_ip="127.0.0.1"):
        self.kind, self.host_id, self.relay, self.host_port = kind, host_id, relay, host_port
        self.bind_ip = bind_ip
        self.seconds = seconds
        self.counts = Counter()
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"guess-{kind}-{i}", daemon=True)
                         for i in range(threads)]

    def start(self):
        self.deadline = time.monotonic() + self.seconds
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> Counter:
        """Wait for the threads, which end at the deadline; the outcome counts."""
        for thread in self._threads:
            thread.join(self.seconds + ANSWER_WAIT + 30)
        self._stop.set()
        for thread in self._threads:
            thread.join(ANSWER_WAIT + 10)
        return self.counts

    def _count(self, outcome):
        with self._lock:
            self.counts[outcome] += 1

    def _loop(self):
        setup, attempt = ATTACKS[self.kind]
        state = {}
        try:
            state = setup(self)
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                for outcome in attempt(self, state):
                    self._count(outcome)
        except Exception as exc:     # kept for the test to show: an attack that died measures nothing
            with self._lock:
                self.errors.append(exc)
        finally:
            for item in state.values():
                close = getattr(item, "close", None)
                if close is not None:
                    close()

    # ---- relay-brokered paths: a registered identity per thread

    def _relay_client(self, udp_listener=None):
        client = RelayClient(self.relay, Identity.generate())
        client.connect()
        if udp_listener is not None:   # the relay records the address it sees: behind a NAT, the NAT's
            client.discover_udp(udp_listener.udp.discovery_socket())
        return client

    def _rendezvous(self, client):
        try:
            return client.request_peer(self.host_id, os.urandom(16), timeout=ANSWER_WAIT)
        except TagioError:           # e.g. the relay's own rate limit: back off a little, no spin
            self._stop.wait(0.2)
            return None


def _setup_relay(attack):
    return {"client": attack._relay_client()}


def _attempt_relay(attack, state):
    client = state["client"]
    peer = attack._rendezvous(client)
    if peer is None:
        return ["failed"]
    try:
        stream = client.open_relay(peer.relay_token, timeout=ANSWER_WAIT)
    except TagioError:
        return ["failed"]             # the host did not join: it refused the attempt
    return [guess_once(stream, client.identity.id, attack.host_id, peer.session_id)]


def _dial(address, session_id, tag, viewer_id=None):
    sock = socket.create_connection(address, timeout=ANSWER_WAIT)
    sock.settimeout(ANSWER_WAIT)
    sock.sendall(encode_preamble(session_id, tag, viewer_id))
    return SocketStream(sock, path="direct-tcp")


def _attempt_direct(attack, state):
    client = state["client"]
    peer = attack._rendezvous(client)
    if peer is None:
        return ["failed"]
    tag = tcp_preamble_tag(peer.relay_token, peer.session_id, "viewer")
    results, threads = [], []

    def one():
        try:
            stream = _dial(("127.0.0.1", attack.host_port), peer.session_id, tag)
        except OSError:
            results.append("failed")
            return
        results.append(guess_once(stream, client.identity.id, attack.host_id, peer.session_id))
    for _ in range(DIALS):
        threads.append(threading.Thread(target=one, daemon=True))
        threads[-1].start()
    for thread in threads:
        thread.join(ANSWER_WAIT + 5)
    return results


def _setup_udp(attack):
    listener = DirectListener((attack.bind_ip, 0))
    return {"listener": listener, "client": attack._relay_client(listener)}


def _attempt_udp(attack, state):
    client = state["client"]
    peer = attack._rendezvous(client)
    if peer is None:
        return ["failed"]
    try:
        stream = punch.open_path(state["listener"].udp, peer, attack._stop, ANSWER_WAIT)
    except TagioError:
        return ["failed"]
    return [guess_once(stream, client.identity.id, attack.host_id, peer.session_id)]


def _attempt_lan(attack, state):
    viewer_id = "%09d" % secrets.randbelow(10 ** 9)       # a new "source" every time
    session_id = os.urandom(16)
    tag = tcp_preamble_tag(lan_token(session_id, viewer_id, attack.host_id), session_id, "viewer")
    try:
        stream = _dial(("127.0.0.1", attack.host_port), session_id, tag, viewer_id)
    except OSError:
        return ["failed"]
    return [guess_once(stream, viewer_id, attack.host_id, session_id)]


ATTACKS = {   # kind -> (setup(attack) -> state, attempt(attack, state) -> [outcome, ...])
    "relay": (_setup_relay, _attempt_relay),
    "direct-tcp": (_setup_relay, _attempt_direct),
    "udp": (_setup_udp, _attempt_udp),
    "lan": (lambda attack: {}, _attempt_lan),
}


def main(argv) -> int:
    """KIND HOST_ID RELAY_IP:PORT SECONDS: attack, then print {"counts": {...}, "errors": [...]}."""
    kind, host_id, relay, seconds = argv
    ip, port = relay.rsplit(":", 1)
    attack = Attack(kind, host_id, seconds=float(seconds), relay=(ip, int(port)), bind_ip="0.0.0.0")
    counts = attack.start().join()
    print(json.dumps({"counts": dict(counts), "seconds": attack.seconds,
                      "errors": [repr(e) for e in attack.errors]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
