"""Chat inside a session: what both sides keep of it and how a long line is cut for the wire.

Theory of operation: a chat line travels as one session `Chat` message (UTF-8, at most MAX_CHAT
bytes; a longer line is cut between characters into several, in order), only inside the secure
channel like everything else. Each session keeps the lines of this session in a ChatLog (bounded:
the oldest go first) so a chat panel opened late can show them; nothing is written to disk.
"""

import collections
import threading
import time

from tagio.protocol.session import MAX_CHAT

MAX_HISTORY = 500           # lines kept per session
MAX_LINE = 64 * 1024        # bytes of one line a person may send (cut into MAX_CHAT pieces)


def chat_pieces(text):
    """`text` as Chat message texts of at most MAX_CHAT UTF-8 bytes, cut between characters.
    Raises ValueError for an empty or too long line."""
    data = text.encode("utf-8")
    if not text.strip() or len(data) > MAX_LINE:
        raise ValueError(f"a chat line must hold 1 to {MAX_LINE} bytes")
    start = 0
    while start < len(data):
        end = min(start + MAX_CHAT, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:    # inside a character: back off
            end -= 1
        yield data[start:end].decode("utf-8")
        start = end


class ChatLog:
    """The lines of one session: (time, who, text), who is "me" or "partner"."""

    def __init__(self, limit=MAX_HISTORY, clock=time.time):
        self._lines = collections.deque(maxlen=limit)
        self._lock = threading.Lock()
        self._clock = clock
        self.added = 0              # lines ever added (a display remembers how many it showed)

    def add(self, who, text):
        with self._lock:
            self._lines.append((self._clock(), who, text))
            self.added += 1

    def lines(self):
        with self._lock:
            return list(self._lines)

    def since(self, count):
        """(lines added after the first `count`, as far as they are still kept; the new count)."""
        with self._lock:
            new = min(self.added - count, len(self._lines))
            return (list(self._lines)[len(self._lines) - new:] if new > 0 else []), self.added
