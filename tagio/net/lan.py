"""LAN discovery: clients announce "ID + port" on the local network; a browser lists them.

Theory of operation. Every ANNOUNCE_INTERVAL seconds an `Announcer` sends one
16-byte datagram `TGLA | version | 9-digit ID | port` to its targets on
LAN_PORT: the IPv4 broadcast address by default; tests pass 127.255.255.255
instead, so nothing they send leaves the machine. A `Browser` listening there (SO_REUSEADDR, so several clients on
one machine can browse) keeps `{id: LanPeer}`: bounded to MAX_PEERS, entries
expire after EXPIRY seconds without an announcement. A browser also sends
a 9-byte query `TGLQ | version | nonce` when it starts (and on query()); announcers answer it by unicast, at most once
per QUERY_ANSWER_GAP seconds, so a flood of queries cannot make us flood.
Nothing secret is announced: an ID and a port are what the relay hands out
anyway, and any connection still needs the PAKE. The datagrams are encoded and
decoded by tagio.protocol.lan (exact lengths, RemoteProtocolError only).
"""

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass

from tagio.errors import RemoteProtocolError
from tagio.protocol.lan import (  # noqa: F401  (the datagram layout lives in protocol/lan.py)
    ANNOUNCE, ANNOUNCE_MAGIC, QUERY, QUERY_MAGIC, VERSION, Announcement, Query, decode, encode_announcement,
    encode_query,
)

LAN_PORT = 21118
ANNOUNCE_INTERVAL = 5.0
EXPIRY = 3 * ANNOUNCE_INTERVAL
QUERY_ANSWER_GAP = 1.0
MAX_PEERS = 256
BROADCAST = "255.255.255.255"


@dataclass
class LanPeer:
    id: str
    address: tuple  # (ip the announcement came from, announced port)
    last_seen: float


def _socket(bind_port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("", bind_port))
    sock.settimeout(0.2)
    return sock


class PeerTable:
    """Sans-I/O: what the browser knows, with expiry and a size bound."""

    def __init__(self, own_id=None):
        self.own_id = own_id
        self._peers = {}

    def seen(self, announcement: Announcement, source_ip: str, now: float):
        if announcement.id == self.own_id:
            return
        if announcement.id not in self._peers and len(self._peers) >= MAX_PEERS:
            self.expire(now)
            if len(self._peers) >= MAX_PEERS:
                return  # full of live peers: ignore newcomers rather than grow
        self._peers[announcement.id] = LanPeer(announcement.id, (source_ip, announcement.port), now)

    def expire(self, now: float):
        self._peers = {k: p for k, p in self._peers.items() if now - p.last_seen < EXPIRY}

    def peers(self, now: float) -> list:
        self.expire(now)
        return sorted(self._peers.values(), key=lambda p: p.id)


class LanService:
    """Announces this client (if `client_id` and `port` are given) and browses for others.

    One socket on `lan_port`, one thread; `peers()` lists who is around,
    `find(id)` returns one LanPeer or None; `close()` stops and joins.
    """

    def __init__(self, client_id=None, port=None, *, lan_port=LAN_PORT, targets=(BROADCAST,),
                 interval=ANNOUNCE_INTERVAL):
        self._announcement = encode_announcement(client_id, port) if client_id else None
        self._targets = [(t, lan_port) for t in targets]
        self._interval = interval
        self.table = PeerTable(client_id)
        self._lock = threading.Lock()
        self._sock = _socket(lan_port)
        self._stop = threading.Event()
        self._next_announce = 0.0
        self._last_answer = -QUERY_ANSWER_GAP
        self._nonce = os.urandom(4)
        self.dropped = 0
        self.error = None
        self._thread = threading.Thread(target=self._loop, name="lan", daemon=True)
        self._thread.start()

    def peers(self) -> list:
        with self._lock:
            return self.table.peers(time.monotonic())

    def find(self, client_id: str):
        return next((p for p in self.peers() if p.id == client_id), None)

    def query(self):
        """Ask everyone to announce now (answers arrive within about a second)."""
        self._send_all(encode_query(self._nonce))

    def _send_all(self, datagram):
        for target in self._targets:
            self._send(datagram, target)

    def _loop(self):
        try:
            self.query()  # a fresh browser should not wait a whole interval for the others
            while not self._stop.is_set():
                now = time.monotonic()
                if self._announcement and now >= self._next_announce:
                    self._send_all(self._announcement)
                    self._next_announce = now + self._interval
                self._receive_one()
        except Exception as exc:  # kept for close(); the thread must not die silently
            self.error = exc

    def _receive_one(self):
        try:
            datagram, source = self._sock.recvfrom(64)
        except (socket.timeout, ConnectionResetError):
            return
        try:
            message = decode(datagram)
        except RemoteProtocolError:
            self.dropped += 1
            return
        now = time.monotonic()
        if isinstance(message, Announcement):
            with self._lock:
                self.table.seen(message, source[0], now)
        elif message.nonce == self._nonce:
            return  # our own broadcast query came back to us
        elif self._announcement and now - self._last_answer >= QUERY_ANSWER_GAP:
            self._last_answer = now
            self._send(self._announcement, source)

    def _send(self, datagram, target):
        try:
            self._sock.sendto(datagram, target)
        except OSError:
            pass  # unroutable (e.g. a forged query source, or no network): the thread keeps serving

    def close(self):
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._sock.close()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
