"""Sharing the clipboard inside a session: this machine's clipboard <-> Clipboard messages.

Theory of operation. Host and viewer run the same thing. `ClipboardSync` is the pure decision
logic, with no thread and no platform: a local change (`local_changed(Content)`) becomes a
Clipboard message unless it is off, unless it is the value both sides already hold, or unless it
is over the format's limit (then the user gets a notice and the partner only learns the size, so
nothing is ever truncated silently); a partner's message (`received(msg)`) is applied unless
sharing is off, and an over-limit announcement from the partner becomes a notice here.

No echo: both sides remember the digest of the last value they share. Applying the partner's
value makes our clipboard change (a clipboard manager may even copy it again); that change has
the shared digest and is not sent back. A user who copies the same text again after the partner
copied something else does have it sent: the shared value moved on.

`ClipboardLink` is the running part: it opens the platform clipboard (tagio.session.clipboard),
feeds its change callbacks to a ClipboardSync and writes what the partner sent. The backend calls
back from its own thread, which must never wait on the network (it also answers other programs'
paste requests), so outgoing messages go through a one-slot queue to a sender thread: a newer
value replaces one not yet sent.

Off: `enabled` (the session window's toggle) gates sending and applying; `allowed()` gates sending
only (the viewer: not before the host's Hello, nor to a view-only host). What the partner sends is
applied whenever we are enabled: a host that shares has decided so, and its value may arrive before
its Hello has been decoded. A host that does not share has no link at all.
"""

import hashlib
import logging
import queue
import threading

from tagio.errors import TagioError
from tagio.protocol import session as m
from tagio.session.clipboard import Content, open_clipboard

log = logging.getLogger("tagio.clipboard")

SEND_POLL = 0.2         # how often the sender thread looks at `stopping`
READ_NOW = object()     # in the outbox: read the clipboard and send it
KIND = {m.CLIP_TEXT: "text", m.CLIP_PNG: "image"}


def human_size(size):
    """262144 -> '256 KB', 1500000 -> '1.4 MB' (units of 1024, as file managers on Windows show)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def too_big_notice(mime, size, partner):
    """The sentence for a clipboard value over the limit (`partner`: it was copied over there).
    Sizes that round to the limit's text are given in bytes, so the sentence never reads
    "256 KB is over the 256 KB limit"."""
    limit = m.CLIPBOARD_LIMITS[mime]
    shown, shown_limit = human_size(size), human_size(limit)
    if shown == shown_limit:
        shown, shown_limit = f"{size:,} bytes", f"{limit:,} bytes"
    who = "your partner" if partner else "you"
    return (f"Clipboard not shared: the {KIND.get(mime, 'data')} {who} copied is {shown}, "
            f"over the {shown_limit} limit.")


def _well_formed(mime, data):
    """`data` as the protocol requires it (text: UTF-8, bad bytes replaced; images: a PNG), or None.
    A platform may hand us anything (pbpaste in another encoding, a program's odd "PNG")."""
    if mime == m.CLIP_TEXT:
        return data.decode("utf-8", "replace").encode("utf-8")
    return data if data.startswith(m.PNG_SIGNATURE) else None


def digest(mime, data):
    return hashlib.sha256(mime.encode() + b"\0" + data).digest()


class ClipboardSync:
    """Decides what to send, what to apply and what to tell the user; no I/O of its own.

    send(msg), apply(mime, data) and notice(text) are called from the caller's thread."""

    def __init__(self, send, apply, notice, allowed=lambda: True):
        self._send, self._apply, self._notice, self._allowed = send, apply, notice, allowed
        self._enabled = True
        self._shared = None         # digest of the value both sides hold (None: unknown)
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return self._enabled

    @enabled.setter
    def enabled(self, value):
        # While off, either side may have copied anything: nothing is known to be shared any more.
        with self._lock:
            self._enabled, self._shared = bool(value), None

    def local_changed(self, content):
        """This machine's clipboard now holds `content` (a tagio.session.clipboard.Content)."""
        if not (self._enabled and self._allowed()) or content.mime not in m.CLIPBOARD_LIMITS:
            return      # off, or a format we do not share
        if content.data == b"":
            return      # an empty clipboard: nothing to paste over there
        data = None if content.data is None else _well_formed(content.mime, content.data)
        if content.data is not None and data is None:
            return      # not what the format promises: the partner would have to end the session
        limit = m.CLIPBOARD_LIMITS[content.mime]
        if data is None or len(data) > limit:
            size = max(content.size, len(data or b""))
            self._notice(too_big_notice(content.mime, size, partner=False))
            self._send(m.Clipboard(content.mime, b"", max(size, limit + 1)))
            return
        key = digest(content.mime, data)
        with self._lock:
            if key == self._shared:
                return          # the partner's value coming back, or a copy of the same value
            self._shared = key
        self._send(m.Clipboard(content.mime, data))

    def received(self, msg):
        """The partner's Clipboard message."""
        if not self._enabled:
            return
        if msg.omitted:
            self._notice(too_big_notice(msg.mime, msg.size, partner=True))
            return
        with self._lock:
            self._shared = digest(msg.mime, msg.data)
        self._apply(msg.mime, msg.data)


class ClipboardLink:
    """A ClipboardSync joined to this machine's clipboard and to a session's send function."""

    def __init__(self, backend, send, notice, allowed=lambda: True):
        self.backend = backend
        self._send = send
        self._outbox = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self.sync = ClipboardSync(self._post, backend.write, notice, allowed)
        self._thread = threading.Thread(target=self._send_loop, name="clipboard-send", daemon=True)

    @classmethod
    def open(cls, send, notice, allowed=lambda: True, display=None):
        """A started link, or None where this machine has no clipboard we can reach."""
        backend = open_clipboard(display)
        if backend is None:
            return None
        return cls(backend, send, notice, allowed).start()

    def start(self):
        self._thread.start()
        self.backend.watch(self.sync.local_changed)
        return self

    @property
    def enabled(self):
        return self.sync.enabled

    @enabled.setter
    def enabled(self, value):
        self.sync.enabled = bool(value)

    def received(self, msg):
        """The partner's Clipboard message (the session's receive thread; never blocks long)."""
        self.sync.received(msg)

    def local_changed(self, mime, data):
        """Tell the partner about a value as if it had just been copied here (tests, callers
        that know of a change the backend cannot see)."""
        self.sync.local_changed(Content(mime, data, len(data)))

    def share_current(self):
        """Send what the clipboard holds now (read by the sender thread: reading may wait)."""
        self._post(READ_NOW)

    def _post(self, msg):
        """From the backend's thread: replace whatever still waits to be sent."""
        while True:
            try:
                self._outbox.put_nowait(msg)
                return
            except queue.Full:
                try:
                    self._outbox.get_nowait()
                except queue.Empty:
                    pass

    def _send_loop(self):
        while not self._stopping.is_set():
            try:
                msg = self._outbox.get(timeout=SEND_POLL)
            except queue.Empty:
                continue
            if msg is READ_NOW:
                self._read_now()
                continue
            try:
                self._send(msg)
            except TagioError:          # the session is ending; its own threads report why
                log.debug("clipboard not sent", exc_info=True)
                return

    def _read_now(self):
        got = self.backend.read()
        if got is not None:
            self.sync.local_changed(Content(got[0], got[1], len(got[1])))

    def close(self):
        """Stop the sender and the backend (and give up the clipboard). Idempotent."""
        self._stopping.set()
        self.backend.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
