"""Which parts of the X screen were drawn on since the last look (X DAMAGE extension).

Theory of operation (x11vnc's -xdamage does the same): polling a 1080p screen means grabbing and
comparing 8 MB every frame, ~2 ms of CPU even when nothing moved. The X server already knows what it
drew: a Damage object on the root window in RawRectangles mode sends one DamageNotify event per
drawing operation with the rectangle it touched. `DamageProbe.collect()` drains those events without
blocking and returns the rectangles (screen coordinates); the host then grabs and compares only the
boxes they cover, and `wait()` lets the capture thread sleep until something is drawn. Right
after its sleep to the next tick the capture thread calls `look()` instead: it reads what came
and waits only when nothing had, and collect() then returns what it read - one read of the socket
per frame, not a select() and a read. Damage is
a hint, never trusted alone: the host still compares the pixels it grabs, and does a full grab at
start, after a monitor switch, when the event stream overflows (`None`) and every few seconds as a
safety net for drawing the server does not report.

The events are read off the socket here (`RawEvents`), not through python-xlib: its generic
parser costs ~0.1 ms of Python per event and per look, and a small animation makes one event a
frame. python-xlib opens the connection, authenticates and creates the Damage object; then this
probe reads the 32-byte events itself and python-xlib is not used on that connection again (only
to close it). A look is one recv(); when it brought DamageNotify events only (the usual case: no
request on this connection has a reply) struct parses them all in C, else a loop walks them one
by one. A python-xlib without the internals this needs gets the old way (`XlibEvents`).

No DamageSubtract is ever sent: in RawRectangles mode every drawing is reported whatever the
server's damage region holds, and the X server ignores DamageSubtract for a Damage object of that
level (ProcDamageSubtract acts only when the level is not DamageReportRawRegion), so the request
cost a system call and changed nothing.

`DamageProbe.open()` returns None off X11, without python-xlib or without the extension; the host then
polls the screen. The probe owns its own X connection and is used by one thread only (the capture
thread). An X server that goes away mid-session is a ConfigError from wait(), look() and
collect(), one clear message instead of a traceback.
"""

import select
import socket
import struct

from tagio.errors import ConfigError

MAX_EVENTS = 2048       # more rectangles than this per collect: cheaper to grab everything (None)
MAX_READ = 4 * MAX_EVENTS   # events read per drain: a server drawing faster than we read cannot
                            # keep the capture thread here for ever (the rest waits for next time)
EVENT_SIZE = 32         # every X event is 32 bytes; replies and generic events say how many more
READ_CHUNK = 128 * EVENT_SIZE   # bytes asked of the socket per recv()
REPLY, GENERIC_EVENT = 1, 35
_AREA = struct.Struct("=hhHH")      # DamageNotify's area at byte 16 (python-xlib speaks native order)
_NOTIFY_AREAS = struct.Struct("=16xhhHH8x")     # the same, read off whole 32-byte events in a row
_LENGTH = struct.Struct("=I")


class RawEvents:
    """The connection's events, read from its socket and parsed with struct (see the module doc).
    `leftover`: bytes python-xlib had read but not parsed when it handed the socket over."""

    def __init__(self, sock, event_type, leftover=b""):
        self._sock = sock
        self._event_type = event_type
        self._kind = bytes([event_type])
        self._buf = bytes(leftover)     # the start of an event not wholly read yet

    def fileno(self):
        return self._sock.fileno()

    def buffered(self):
        """Nothing is kept unparsed but a partial event: the socket alone says whether more came."""
        return False

    def read(self, limit):
        """(rectangles of the DamageNotify events waiting, events read), at most `limit` events.
        Never blocks. Raises OSError when the server is gone. The usual look, nothing kept from
        before and a few events waiting, is one recv() straight into the parse."""
        most = limit * EVENT_SIZE
        if self._buf:
            buf = self._receive(most)
        else:
            want = most if most < READ_CHUNK else READ_CHUNK
            try:
                buf = self._sock.recv(want, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return [], 0
            if len(buf) == want < most:
                buf = self._read_on(buf, most)      # a burst: read on, chunk by chunk
            elif not buf:
                raise ConnectionResetError("the X server closed the connection")
        size = len(buf)
        count, rest = divmod(size, EVENT_SIZE)
        whole = size - rest
        if buf[0:whole:EVENT_SIZE].count(self._kind) == count:     # DamageNotify only: all in C
            self._buf = buf[whole:] if rest else b""
            return list(_NOTIFY_AREAS.iter_unpack(buf[:whole] if rest else buf)), count
        return self._walk(buf, limit)

    def _walk(self, buf, limit):
        """read() for a buffer that holds other events or replies (of any length) too."""
        rects, count, off = [], 0, 0
        while count < limit and len(buf) - off >= EVENT_SIZE:
            kind, size = buf[off] & 0x7F, EVENT_SIZE
            if kind in (REPLY, GENERIC_EVENT):
                size += 4 * _LENGTH.unpack_from(buf, off + 4)[0]
                if len(buf) - off < size:
                    break
            elif kind == self._event_type:
                rects.append(_AREA.unpack_from(buf, off + 16))
            off, count = off + size, count + 1
        self._buf = buf[off:]
        return rects, count

    def _receive(self, most):
        """What waits on the socket after the kept partial event, up to `most` bytes in all,
        READ_CHUNK at a time: a read that comes back short has emptied the socket (no second
        recv() that can only fail with EAGAIN)."""
        return self._read_on(self._buf, most)

    def _read_on(self, buf, most):
        chunks, size = [buf], len(buf)
        while size < most:
            want = min(most - size, READ_CHUNK)
            try:
                data = self._sock.recv(want, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                raise ConnectionResetError("the X server closed the connection")
            chunks.append(data)
            size += len(data)
            if len(data) < want:
                break
        return b"".join(chunks)


class XlibEvents:
    """The same through python-xlib (its queue, its parser): for a python-xlib whose internals
    RawEvents cannot take over."""

    def __init__(self, display, damage, event_type):
        self._display, self._damage, self._event_type = display, damage, event_type
        self._buffered = True       # python-xlib's queue may hold events (False: it was seen empty)

    def fileno(self):
        return self._display.fileno()

    def buffered(self):
        """python-xlib reads the socket only inside its own calls: after a read that left its
        queue empty, the socket alone says whether reports came."""
        return self._buffered and bool(self._display.pending_events())

    def read(self, limit):
        display, rects, count = self._display, [], 0
        while count < limit:
            pending = min(display.pending_events(), limit - count)    # one look at the socket ...
            self._buffered = pending > 0
            if not pending:
                break
            for _ in range(pending):        # ... for every event it brought in (none of these blocks)
                event = display.next_event()
                if event.type == self._event_type:
                    area = event.area
                    rects.append((area.x, area.y, area.width, area.height))
            count += pending
        return rects, count


class DamageProbe:
    def __init__(self, xdisplay, events, lost=(OSError,)):
        self._display = xdisplay    # kept to close it
        self._events = events       # RawEvents or XlibEvents
        self._lost = lost           # what reading raises when the server has gone away
        self._rects, self._overflow = [], False      # read by drain() or look(), not yet collected
        self._fresh = False         # look() just read them: collect() needs no read of its own
        self._watched = [events.fileno()]           # what wait() selects on
        # RawEvents keeps nothing unparsed (a call saved per frame); XlibEvents may
        self._buffered = None if isinstance(events, RawEvents) else events.buffered

    @classmethod
    def open(cls, display=None):
        """A probe for `display` (None: $DISPLAY), or None where the server cannot report damage."""
        try:
            from Xlib import display as xdisplay
            from Xlib.error import ConnectionClosedError
            from Xlib.ext import damage as xdamage
            conn = xdisplay.Display(display)
        except Exception:       # not X11, python-xlib missing, or no display: poll the screen instead
            return None
        try:
            if not conn.has_extension(xdamage.extname):
                conn.close()
                return None
            conn.damage_query_version()
            handle = conn.screen().root.damage_create(xdamage.DamageReportRawRectangles)
            event_type = conn.extension_event.DamageNotify
            conn.sync()     # a server that refuses the Damage object fails here, not in collect()
            events = cls._take_over(conn, handle, event_type, xdamage.extname)
        except Exception:       # an X server with a broken DAMAGE extension
            conn.close()
            return None
        probe = cls(conn, events, (ConnectionClosedError, OSError))
        if isinstance(events, RawEvents):
            probe._rects = cls._queued(conn, event_type)
        return probe

    @staticmethod
    def _take_over(conn, damage, event_type, extname):
        """RawEvents on the connection's socket, or XlibEvents when this python-xlib does not keep
        its socket, read buffer and event queue where RawEvents expects them."""
        inner = conn.display
        sock = getattr(inner, "socket", None)
        try:
            leftover = bytes(inner.data_recv)     # python-xlib's own bytes view of what it read
        except (AttributeError, TypeError):
            leftover = None
        if (not isinstance(sock, socket.socket) or leftover is None
                or not isinstance(getattr(inner, "event_queue", None), list)):
            return XlibEvents(conn, damage, event_type)
        return RawEvents(sock, event_type, leftover)

    @staticmethod
    def _queued(conn, event_type):
        """Rectangles of the events python-xlib parsed before the hand-over."""
        rects = []
        while conn.display.event_queue:
            event = conn.display.event_queue.pop(0)
            if event.type == event_type:
                rects.append((event.area.x, event.area.y, event.area.width, event.area.height))
        return rects

    def _gone(self, exc):
        return ConfigError(f"the X display went away: {exc}")

    def wait(self, timeout):
        """Wait up to `timeout` seconds for the server to report drawing; True when it has.

        Lets the host capture as soon as something is drawn instead of on a fixed grid that beats
        against the application's own timer (a 60 Hz animation polled at 60 Hz loses frames)."""
        try:
            if self._rects or self._overflow or (self._buffered is not None and self._buffered()):
                return True
            ready = select.select(self._watched, (), (), max(0.0, timeout))[0]
        except self._lost as exc:
            raise self._gone(exc) from exc
        return bool(ready)

    def look(self, timeout):
        """wait() for a capture that follows at once (pace_tick after its sleep to the tick):
        first read what already came, and when something had, collect() hands it over without a
        look of its own at the socket. The usual frame of an animation that draws just before
        the tick is then one recv() instead of a select() and a recv(); drawing not there yet is
        waited for as by wait()."""
        try:
            rects = self._events.read(MAX_READ)[0]
        except self._lost as exc:
            raise self._gone(exc) from exc
        if rects and not self._rects and not self._overflow and len(rects) <= MAX_EVENTS:
            self._rects = rects         # the usual frame: nothing kept before
        elif rects:
            self._keep(rects)
        if self._rects or self._overflow:
            self._fresh = True
            return True
        return self.wait(timeout)

    def drain(self):
        """Read the reports waiting on the connection into the probe (at most MAX_EVENTS kept,
        then only an overflow mark). Never blocks. Called while capture waits for the viewer, so
        the X server never has to queue reports for us for long."""
        self._keep(self._read())

    def collect(self):
        """Rectangles (x, y, w, h) drawn since the last call, or None when there were too many to
        list (then treat the whole screen as damaged). Never blocks. One look at the socket; what
        drain() kept before comes first; right after look() found something, no look at all."""
        if self._fresh:
            self._fresh = False
            rects, overflow = self._rects, self._overflow
            self._rects, self._overflow = [], False
            return None if overflow else rects
        rects = self._read()
        if self._rects or self._overflow:
            self._keep(rects)
            rects, overflow = self._rects, self._overflow
            self._rects, self._overflow = [], False
            return None if overflow else rects
        return None if len(rects) > MAX_EVENTS else rects

    def _read(self):
        try:
            return self._events.read(MAX_READ)[0]
        except self._lost as exc:
            raise self._gone(exc) from exc

    def _keep(self, rects):
        room = MAX_EVENTS - len(self._rects)
        self._rects += rects[:max(room, 0)]
        self._overflow = self._overflow or len(rects) > room

    def close(self):
        try:
            self._display.close()
        except Exception:       # the X server is already gone
            pass
