"""SecureChannel: whole messages over AEAD records over any blocking Stream.

Theory of operation. The handshake (tagio.crypto.handshake) produces one
key + nonce prefix per direction; this class owns a RecordSealer for what we
send and a RecordOpener for what we receive, and does only the I/O and the
locking around them. One thread may call send() while another calls recv().

Endings, each with its own error so callers can tell users what happened:
  * the peer called close()        -> recv() raises ConnectionClosed
  * we called close()              -> recv()/send() raise ConnectionClosed
  * tamper / replay / reorder / truncation -> SecureChannelError whose
    `.cause` names it; the channel is dead afterwards and keeps raising it.
There is no plaintext mode.

Exporter. `export(label, length)` gives both ends the same secret bytes, bound to this channel and
to `label`, that reveal nothing about the record keys (tagio.client.resume derives the single-use
resumption secret this way). It is HKDF over the channel's starting keys: both ends hold the same
two (direction, key, nonce prefix) sets, one as "send" and one as "recv", so they are sorted before
they are hashed. Only that HKDF output is kept, never the starting keys, so rekeying still makes
old records unreadable; it lives in memory only.
"""

import collections
import threading

from tagio.crypto.records import (
    DEFAULT_CIPHER, MAX_MESSAGE, MAX_RECORD, REC_CLOSE, REC_DATA, REKEY_INTERVAL,
    RecordOpener, RecordSealer,
)
from tagio.crypto.spake2 import hkdf_sha256
from tagio.errors import ConnectionClosed, LocalProtocolError, SecureChannelError, TransportError

__all__ = ["SecureChannel", "MAX_MESSAGE", "MAX_RECORD"]

RECV_CHUNK = 256 * 1024  # bytes asked of the stream per read while big messages stream in ...
SMALL_RECV = 16 * 1024   # ... and while reads come back small (acks, input): CPython allocates the
                         # whole size first, and at 256 KiB glibc's malloc makes that ~8 us a read
CLOSE_LOCK_WAIT = 1.0   # seconds close() waits for a busy sender before skipping the CLOSE record
CLOSE_SEND_WAIT = 2.0   # seconds the CLOSE record may take to leave: a peer that reads nothing (its
                        # buffers full) must not hold close() for ever; the stream is cut instead
EXPORT_DOMAIN = b"TagIO exporter v1|"
MAX_EXPORT = 64


class SecureChannel:
    """Encrypted, authenticated, ordered messages (each <= MAX_MESSAGE bytes)."""

    matched_secret = None   # host side: which of its keys the viewer's password opened (handshake.py)
    password_kind = None    # host side: the kind of password that opened it (handshake.Kind)

    def __init__(self, stream, *, send_key, send_prefix, recv_key, recv_prefix,
                 cipher=DEFAULT_CIPHER, rekey_interval=REKEY_INTERVAL, path=None):
        self.stream = stream
        self.path = path or getattr(stream, "path", "unknown")
        self.cipher = cipher
        self._sealer = RecordSealer(send_key, send_prefix, cipher=cipher, rekey_interval=rekey_interval)
        self._opener = RecordOpener(recv_key, recv_prefix, cipher=cipher, rekey_interval=rekey_interval)
        self._inbox = collections.deque()   # bounded by RECV_CHUNK bytes of records per refill
        self._recv_size = SMALL_RECV        # the next read's size (recv thread): follows the last one
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._closed = threading.Event()
        self._send_error = None
        self._exporter = _exporter_secret((send_key, send_prefix), (recv_key, recv_prefix))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def export(self, label: bytes, length: int = 32) -> bytes:
        """`length` bytes both ends of this channel derive alike for `label` (see the module
        docstring). Raises LocalProtocolError for a length outside 1..MAX_EXPORT."""
        if not 1 <= length <= MAX_EXPORT:
            raise LocalProtocolError(f"export length must be 1..{MAX_EXPORT}")
        return hkdf_sha256(self._exporter, length, info=EXPORT_DOMAIN + bytes(label))

    def send(self, message: bytes) -> None:
        """Send one message. Raises LocalProtocolError (too big), ConnectionClosed, TransportError."""
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionClosed("secure channel is closed")
            if self._send_error is not None:
                raise self._send_error
            record = self._sealer.seal(bytes(message), REC_DATA)
            try:
                self.stream.send(record)
            except TransportError as exc:
                self._send_error = exc
                raise

    def recv(self) -> bytes:
        """The next whole message. Raises SecureChannelError, ConnectionClosed, TransportError."""
        with self._recv_lock:
            while not self._inbox:
                self._fill()
            return self._inbox.popleft()

    def _fill(self) -> None:
        if self._opener.error is not None:
            raise self._opener.error
        if self._opener.closed:
            raise ConnectionClosed("the peer closed the secure channel")
        if self._closed.is_set():
            raise ConnectionClosed("secure channel is closed")
        data = self.stream.recv(self._recv_size)
        self._recv_size = RECV_CHUNK if len(data) > SMALL_RECV // 2 else SMALL_RECV
        if not data:
            if self._closed.is_set():
                raise ConnectionClosed("secure channel is closed")
            self._opener.end_of_stream()     # raises unless the peer sent CLOSE
            raise ConnectionClosed("the peer closed the secure channel")
        for rec_type, payload in self._opener.feed(data):
            if rec_type == REC_DATA:
                self._inbox.append(payload)

    def close(self) -> None:
        """Send a CLOSE record (so the peer can tell a clean end from a cut) and close the stream."""
        if self._closed.is_set():
            return
        if self._send_lock.acquire(timeout=CLOSE_LOCK_WAIT):
            try:
                if not self._closed.is_set():  # a close() that waited on the lock behind another one
                    self._send_close_record()
            finally:
                self._closed.set()
                self._send_lock.release()
        self._closed.set()
        self.stream.close()

    def _send_close_record(self) -> None:
        if self._send_error is not None:
            return
        watchdog = threading.Timer(CLOSE_SEND_WAIT, self.stream.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.stream.send(self._sealer.seal(b"", REC_CLOSE))
        except (TransportError, SecureChannelError, OSError):
            pass    # the peer is gone or stuck; it will see truncation or has already left
        finally:
            watchdog.cancel()


def _exporter_secret(*directions) -> bytes:
    """One secret from both directions' starting key and nonce prefix, alike on both ends."""
    material = b"".join(bytes(key) + bytes(prefix) for key, prefix in sorted(directions))
    return hkdf_sha256(material, 32, info=EXPORT_DOMAIN + b"master")
