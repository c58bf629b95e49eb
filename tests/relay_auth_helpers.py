"""Helpers for the relay-secret tests: a recording TCP proxy, a scripted fake relay, capture parsing.

RecordingProxy(target) forwards every connection made to `proxy.address` to `target` and keeps
the bytes of each direction (Capture.up: client -> relay, Capture.down: relay -> client): what an
eavesdropper on a plain tagio:// path records. FakeRelay(script) accepts one connection and runs
script(sock, received) on it (a relay that does not behave like ours). Both run daemon threads
that close() stops and joins.
"""

import socket
import threading
from dataclasses import dataclass, field

from tagio.protocol import relay as m
from tagio.protocol.framing import FrameDecoder


@dataclass
class Capture:
    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)

    def messages(self, direction: str) -> list:
        """The relay messages one direction carried (decoded from the recorded bytes)."""
        return [m.decode_message(f) for f in FrameDecoder().feed(bytes(getattr(self, direction)))]

    def first(self, direction: str, cls):
        return next(msg for msg in self.messages(direction) if isinstance(msg, cls))

    def all(self, direction: str, cls) -> list:
        return [msg for msg in self.messages(direction) if isinstance(msg, cls)]


class RecordingProxy:
    def __init__(self, target):
        self.target = tuple(target)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.address = self.listener.getsockname()[:2]
        self.captures = []
        self._stop = threading.Event()
        self._socks, self._threads = [], []
        self._lock = threading.Lock()
        self._start(self._accept_loop)

    def _start(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            capture = Capture()
            with self._lock:
                self._socks += [client, upstream]
                self.captures.append(capture)
            self._start(_pump, client, upstream, capture.up)
            self._start(_pump, upstream, client, capture.down)

    def close(self):
        self._stop.set()
        self.listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            _shut(s)
        for t in threads:
            t.join(timeout=5)
        for s in socks:
            s.close()


def _pump(src, dst, record):
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        record += data
        try:
            dst.sendall(data)
        except OSError:
            break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class FakeRelay:
    """One scripted connection: script(sock, received) reads with `recv_message` and writes frames."""

    def __init__(self, script):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[:2]
        self.received = []  # messages the client sent
        self.error = None
        self._conn = None
        self._thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self._thread.start()

    def _run(self, script):
        try:
            self._conn, _ = self.listener.accept()
            self._conn.settimeout(10)
            script(self)
        except Exception as exc:  # kept for close(): the test sees a broken script
            self.error = exc

    def send(self, message):
        self._conn.sendall(message.encode())

    def recv_message(self):
        """The client's next message, or None at EOF; every message is also kept in `received`."""
        decoder, frames = FrameDecoder(), []
        while not frames:
            data = self._conn.recv(1)  # byte by byte: nothing of the next frame is read early
            if not data:
                return None
            frames = decoder.feed(data)
        msg = m.decode_message(frames[0])
        self.received.append(msg)
        return msg

    def drain(self):
        """Read until the client closes (or 10 s pass), keeping every message."""
        try:
            while self.recv_message() is not None:
                pass
        except OSError:
            pass

    def close(self):
        self.listener.close()
        if self._conn is not None:
            _shut(self._conn)
        self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
