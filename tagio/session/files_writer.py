"""Writing and hashing a big part off the session's receive thread.

Theory of operation. The receive thread of a session also carries the partner's input and frame
acknowledgements, and it decrypts every record. While a big file arrives it should do no more than
that: it hands each chunk to a PartWriter, whose one thread appends it to the part and adds it to
the file's SHA-256 while the receive thread decrypts the next record. hashlib and file writes
release the GIL, so the two run on two cores (on loopback the receive thread alone was the
bottleneck: decrypt, hash and write one after the other).

The hand-over queue is bounded (QUEUE chunks, at most 2 MiB): a disk slower than the path slows the
path, nothing piles up in memory. A write error is kept and handed back by the next `put()` or by
`finish()`; the chunks behind it are dropped (the file fails, its part stays as far as it was
written). `finish()` waits until everything is written and joins the thread; `abort()` drops what
waits and joins it; both may be called more than once. An exception that is not a disk error is a
bug: it is kept and re-raised to the caller of put() or finish().

Small files are written inline by the receiver (files_receive: below ASYNC_MIN bytes): a thread per
file would cost more than the file when 10,000 small files arrive.
"""

import queue
import threading

QUEUE = 4                   # chunks waiting for the disk (at most 4 x 512 KiB)
ASYNC_MIN = 1 << 20         # bytes still to come in a file for it to get its own writer
POLL = 0.1                  # seconds between checks of `closed` while the queue is full


class PartWriter:
    """One part being written: `fh` (open for writing at the right place) and `sha` (its hash so far)."""

    def __init__(self, fh, sha, size=QUEUE):
        self.fh, self.sha = fh, sha
        self.error = None           # the OSError that stopped the writes, once there is one
        self._crash = None          # anything else: a bug, re-raised to the caller
        self._queue = queue.Queue(maxsize=size)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="files-writer", daemon=True)
        self._thread.start()

    def put(self, data):
        """Queue `data` to be written (waits while QUEUE chunks wait). Returns the kept OSError
        instead when the writes failed (nothing more is written then), else None."""
        self._raise_crash()
        while self.error is None and not self._closed.is_set():
            try:
                self._queue.put(data, timeout=POLL)
                return None
            except queue.Full:
                continue
        return self.error

    def finish(self):
        """Wait until everything queued is written; the OSError that stopped the writes, or None."""
        self._stop(drop=False)
        self._raise_crash()
        return self.error

    def abort(self):
        """Drop what waits and stop (a cancel, a session that ends, a file that failed)."""
        self._stop(drop=True)

    def _stop(self, drop):
        if not self._closed.is_set():
            self._closed.set()
            if drop:
                self._drain()
            self._queue.put(None)       # room: the writer takes items until this one
        self._thread.join()

    def _drain(self):
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _raise_crash(self):
        if self._crash is not None:
            raise self._crash

    def _run(self):
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self.error is not None or self._crash is not None:
                continue                # failed: what is left is dropped
            try:
                self.fh.write(data)
                self.sha.update(data)
            except OSError as exc:
                self.error = exc
            except BaseException as exc:     # a bug: the receive thread re-raises it
                self._crash = exc
