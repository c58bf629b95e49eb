"""The Stream interface every transport offers to the layers above it.

A Stream is a reliable, ordered byte pipe with blocking semantics:

    send(data)        blocks until all of `data` is handed to the transport;
                      raises ConnectionClosed / TransportTimeout.
    recv(max_bytes)   blocks until at least one byte is available and returns
                      up to `max_bytes`; returns b"" once the peer has closed.
    close()           idempotent; wakes a thread blocked in recv().

One thread may send while another receives. TCP (direct or through the relay)
and the reliable UDP stream both implement it; the secure channel runs on top
of any of them unchanged.
"""

import socket
import threading
import time
from typing import Protocol

from tagio.errors import ConnectionClosed, TransportTimeout


class Stream(Protocol):
    def send(self, data: bytes) -> None: ...

    def recv(self, max_bytes: int = 65536) -> bytes: ...

    def close(self) -> None: ...


class SocketStream:
    """A Stream over a connected TCP (or TLS) socket."""

    def __init__(self, sock: socket.socket, path: str = "tcp"):
        self.sock = sock
        self.path = path
        self._send_lock = threading.Lock()
        self._closed = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("stream is closed")
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except socket.timeout as exc:
            raise TransportTimeout("send timed out") from exc
        except OSError as exc:
            raise ConnectionClosed(f"connection lost while sending: {exc}") from exc

    def recv(self, max_bytes: int = 65536) -> bytes:
        try:
            return self.sock.recv(max_bytes)
        except socket.timeout as exc:
            raise TransportTimeout("receive timed out") from exc
        except OSError as exc:
            if self._closed:
                return b""
            raise ConnectionClosed(f"connection lost while receiving: {exc}") from exc

    def settimeout(self, seconds) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def recv_exactly(source, n: int, deadline: float | None = None) -> bytes:
    """Exactly n bytes from `source`: a Stream, or a socket (anything with recv(max_bytes)).

    The one "read exactly n bytes" loop of the code base. With `deadline` (a time.monotonic()
    value; `source` must then have settimeout) each recv waits only for the time left, so a peer
    that trickles one byte at a time cannot stretch the read: TransportTimeout once it passes.
    Raises ConnectionClosed if the source ends first (its `received` says how many bytes came);
    socket errors (socket.timeout included) pass through for the caller to name.
    """
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportTimeout(f"read {got} of {n} bytes before the deadline")
            source.settimeout(remaining)
        chunk = source.recv(n - got)
        if not chunk:
            error = ConnectionClosed(f"stream ended after {got} of {n} bytes")
            error.received = got
            raise error
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
