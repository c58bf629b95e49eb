"""Where the host's pointer is and what it looks like, read separately from the screen image.

Theory of operation: screen grabs do not contain the pointer, so the host reports it on its own
(Cursor messages): the position when it moved, the shape only when it changes. On X11 both
come from the server - `QueryPointer` for the position, XFixes `GetCursorImage` (with a serial that
changes with the shape) for the picture - through python-xlib, which pynput already depends on.
Each python-xlib round trip costs ~0.1-0.2 ms of Python, so neither is asked every frame: the
picture is fetched only after the server sent a CursorNotify (XFixes SelectCursorInput), and
`CursorTracker` asks for the position every poll only while the pointer moves (for MOVING_FOR
after a move), otherwise every POSITION_EVERY (a resting pointer that starts to move is seen
within 0.1 s; the viewer's own pointer is drawn locally in the meantime). The position query
itself skips python-xlib (`RawPointer`): on a second connection of its own, python-xlib connects
and authenticates, then the 8-byte QueryPointer request and its 32-byte reply are written and read
here with struct (as tagio.session.damage does with its events), ~10x cheaper.
Elsewhere, or when XFixes is missing, `CursorProbe.open()` returns None and the host falls back to
pynput's pointer position without a shape. The probe owns its own X connection and is used by one
thread only (the capture thread).
"""

import select
import socket
import struct
import time

from PIL import Image

from tagio.protocol import session as m
from tagio.session.xreply import read_reply

MAX_SIDE = 128      # larger cursors are cropped (matches messages.MAX_CURSOR_SIDE)


class CursorShape:
    def __init__(self, serial, hot_x, hot_y, width, height, rgba):
        self.serial, self.hot_x, self.hot_y = serial, hot_x, hot_y
        self.width, self.height, self.rgba = width, height, rgba


QUERY_POINTER = 38                  # the core protocol's opcode
_QUERY = struct.Struct("=BxHI")     # opcode, length in 4-byte units (2), window (native order, as
_ROOT_XY = struct.Struct("=hh")     # python-xlib speaks); the reply's root_x, root_y at byte 16
REPLY_SIZE = 32


class RawPointer:
    """QueryPointer on a connection only this object uses after python-xlib opened it (see the
    module doc). Raises OSError when the server is gone or answers with an error."""

    def __init__(self, conn, sock, root):
        self._conn, self._sock = conn, sock
        self._request = _QUERY.pack(QUERY_POINTER, 2, root)

    @classmethod
    def open(cls, display=None):
        """A RawPointer, or None when python-xlib does not keep its socket where this expects it
        (then CursorProbe asks through python-xlib)."""
        try:
            from Xlib import display as xdisplay
            conn = xdisplay.Display(display)
        except Exception:       # no display now: the caller has its own connection or none
            return None
        inner = conn.display
        sock = getattr(inner, "socket", None)
        try:
            unread = bytes(inner.data_recv)     # python-xlib's bytes read off the socket, unparsed
        except (AttributeError, TypeError):
            unread = None
        if not isinstance(sock, socket.socket) or unread != b"":
            conn.close()
            return None
        return cls(conn, sock, conn.screen().root.id)

    def position(self):
        self._sock.sendall(self._request)
        reply = self._sock.recv(REPLY_SIZE)
        if len(reply) != REPLY_SIZE or reply[0] != 1:   # rare: a short read, an event, an error
            reply = read_reply(self._sock, reply)       # (MappingNotify comes to every client)
        return _ROOT_XY.unpack_from(reply, 16)

    def close(self):
        self._conn.close()


class CursorProbe:
    def __init__(self, xdisplay, notified=False, pointer=None):
        self._display = xdisplay
        self._root = xdisplay.screen().root
        self._notified = notified       # the server sends CursorNotify when the picture changes
        self._shape = None              # the last picture fetched
        self._pointer = pointer         # RawPointer, or None: ask through python-xlib

    @classmethod
    def open(cls, display=None):
        """A probe for `display` (None: $DISPLAY), or None where this platform has no way to ask."""
        try:
            from Xlib import display as xdisplay
            conn = xdisplay.Display(display)
        except Exception:       # not X11, python-xlib missing, or no display: position-only fallback
            return None
        try:
            if not conn.has_extension("XFIXES"):
                conn.close()
                return None
            conn.xfixes_query_version()
        except Exception:       # an X server without a working XFixes
            conn.close()
            return None
        return cls(conn, notified=cls._ask_for_notices(conn), pointer=RawPointer.open(display))

    @staticmethod
    def _ask_for_notices(conn):
        """Ask the server for CursorNotify events; False where it refuses (the picture is then
        fetched at every look)."""
        from Xlib.ext import xfixes
        try:
            conn.xfixes_select_cursor_input(conn.screen().root, xfixes.XFixesDisplayCursorNotifyMask)
            conn.sync()
        except Exception:       # an XFixes older than version 2
            return False
        return True

    def position(self):
        """(x, y) of the pointer on the whole X screen."""
        if self._pointer is not None:
            return self._pointer.position()
        reply = self._root.query_pointer()
        return reply.root_x, reply.root_y

    def shape(self):
        """The current cursor picture as a CursorShape (RGBA, at most MAX_SIDE square); fetched
        from the server only when it said the picture changed (or it cannot say)."""
        if self._shape is None or not self._notified or self._changed():
            img = self._display.xfixes_get_cursor_image(self._root)
            self._shape = shape_from_argb(img.cursor_serial, img.xhot, img.yhot, img.width,
                                          img.height, img.cursor_image)
        return self._shape

    def _changed(self):
        """Did a CursorNotify arrive since the last look? (Only those are asked for here.) With
        python-xlib's queue empty, the socket alone can say no, with a select() instead of a
        ~0.1 ms python-xlib call."""
        queued = getattr(self._display.display, "event_queue", None)
        if isinstance(queued, list) and not queued:
            ready, _, _ = select.select([self._display.fileno()], [], [], 0)
            if not ready:
                return False
        display, seen = self._display, False
        while display.pending_events():
            display.next_event()
            seen = True
        return seen

    def close(self):
        for conn in (self._display, self._pointer):
            try:
                if conn is not None:
                    conn.close()
            except Exception:       # the X server may already be gone
                pass


def shape_from_argb(serial, hot_x, hot_y, width, height, pixels):
    """XFixes ARGB32 pixels (one int each, row by row) -> CursorShape with RGBA bytes, cropped."""
    if width * height != len(pixels) or not width or not height:
        return CursorShape(serial, 0, 0, 0, 0, b"")
    data = struct.pack(f"<{len(pixels)}I", *(p & 0xFFFFFFFF for p in pixels))    # -> B, G, R, A
    img = Image.frombytes("RGBA", (width, height), data, "raw", "BGRA")
    if width > MAX_SIDE or height > MAX_SIDE:
        img = img.crop((0, 0, min(width, MAX_SIDE), min(height, MAX_SIDE)))
    return CursorShape(serial, min(hot_x, img.width - 1), min(hot_y, img.height - 1),
                       img.width, img.height, img.tobytes())


SHAPE_EVERY = 0.1   # seconds between shape checks (a round trip and ~1k ints to parse each time)
POSITION_EVERY = 0.1    # seconds between position queries while the pointer rests ...
MOVING_FOR = 0.5        # ... which it does once it has not moved for this long


class CursorTracker:
    """Turns probe readings into Cursor messages: position when it moved, shape when it changed.

    `position()` returns desktop (x, y) or None; `shape()` returns a CursorShape or None; `origin`
    is the captured monitor's top-left, so positions go out relative to what the viewer sees."""

    def __init__(self, position, shape=None, clock=None):
        self._position, self._shape = position, shape
        self._clock = clock or time.monotonic
        self.origin = (0, 0)
        self._last_pos = None
        self._serial = None
        self._shape_at = float("-inf")
        self._where, self._moved_at, self._pos_due = None, float("-inf"), float("-inf")
        self._look_at = float("-inf")   # neither position nor shape is due before then

    def poll(self, now=None):
        """The Cursor message to send now, or None. Called every frame: while neither the position
        nor the shape is due (a resting pointer) it returns at once, without a look at either.
        `now`: the clock's time, when the caller has just read it."""
        if now is None:
            now = self._clock()
        if now < self._look_at:
            return None
        pos = self._read_position(now)
        shape = self._new_shape(now)
        self._look_at = self._pos_due if self._shape is None else min(self._pos_due,
                                                                     self._shape_at + SHAPE_EVERY)
        rel = (pos[0] - self.origin[0], pos[1] - self.origin[1]) if pos is not None else self._last_pos
        if rel is None or (rel == self._last_pos and shape is None):
            return None
        self._last_pos = rel
        if shape is None:
            return m.Cursor(rel[0], rel[1])
        return m.Cursor(rel[0], rel[1], 1, shape.hot_x, shape.hot_y, shape.width, shape.height, shape.rgba)

    def reset(self):
        """Send position and shape again (a new monitor stream starts)."""
        self._last_pos, self._serial, self._shape_at = None, None, float("-inf")
        self._pos_due = self._look_at = float("-inf")

    def _read_position(self, now):
        """The pointer's desktop position if it is time to ask (every poll while it moves, every
        POSITION_EVERY while it rests), else None."""
        if now < self._pos_due:
            return None
        pos = self._safe(self._position)
        if pos is not None and pos != self._where:
            self._where, self._moved_at = pos, now
        self._pos_due = now if now - self._moved_at < MOVING_FOR else now + POSITION_EVERY
        return pos

    def _new_shape(self, now):
        if self._shape is None or now - self._shape_at < SHAPE_EVERY:
            return None
        self._shape_at = now
        shape = self._safe(self._shape)
        if shape is None or shape.serial == self._serial or not shape.width:
            return None
        self._serial = shape.serial
        return shape

    @staticmethod
    def _safe(fn):
        try:
            return fn()
        except Exception:   # a pointer query failing (display going away) only skips this update
            return None
